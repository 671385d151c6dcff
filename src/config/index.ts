// The public face of config/: kinds, parsing and validation.
export * from './kinds';
export { durationToMs, msToProtoDuration, DURATION_PATTERN } from './duration';
export { ConfigError, resourceLabel, type ConfigErrorCode, type ConfigErrorInit, type ResourceRef } from './errors';
export { formatPath } from './field-path';
export { loadConfigPath, parseDocuments, parseResource } from './parse';
export { validateAgainst, validateDelete, validateSet, type Where } from './validate';
export { attachesTo, resolvePlugins, type ResolvedPlugin } from './plugin-config';
