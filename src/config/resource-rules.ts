// Rules about one resource that a schema cannot say: fields that must agree
// with each other. They run after the schema, on a typed resource, both when a
// document is parsed and when a set is validated.
import { isIP } from 'node:net';
import type { Problem } from './errors';
import { durationToMs } from './duration';
import { jwksProblem } from './jwks';
import { BUILTIN_PLUGINS, builtinOf, isBuiltin } from '../plugins/builtin-plugins';
import { GROUP_PLACEHOLDERS, placeholdersIn, pluginLimits, type ConfigGroup } from './plugin-config';
import { compileRe2 } from './re2';
import { HEALTH_CHECK_DEFAULTS, type GRPCRouteSpec, type HTTPRouteSpec, PLUGIN_BACKOFF_DEFAULTS, type PluginSpec, type RequestAuthenticationSpec, type Resource, type ServiceSpec, type TrafficPolicySpec } from './kinds';

type Path = PropertyKey[];


function invalid(path: Path, detail: string, expected?: string): Problem {
  return { code: 'E_INVALID', path, detail, expected };
}

function serviceRules(spec: ServiceSpec): Problem[] {
  const out: Problem[] = [];
  const names = new Map<string, number>();
  const numbers = new Map<number, number>();
  spec.ports.forEach((p, i) => {
    const sameName = names.get(p.name);
    if (sameName !== undefined) {
      out.push({ code: 'E_DUPLICATE', path: ['spec', 'ports', i, 'name'], detail: `duplicate port name '${p.name}' (also spec.ports[${sameName}])` });
    } else names.set(p.name, i);
    const sameNumber = numbers.get(p.port);
    if (sameNumber !== undefined) {
      out.push({ code: 'E_DUPLICATE', path: ['spec', 'ports', i, 'port'], detail: `duplicate port ${p.port} (also spec.ports[${sameNumber}])` });
    } else numbers.set(p.port, i);
  });
  const portNames = spec.ports.map((p) => p.name);
  (spec.endpoints ?? []).forEach((ep, i) => {
    // EDS carries IP addresses only: Envoy and gRPC reject a hostname there.
    if (isIP(ep.address) === 0) {
      const expected = 'an IPv4 or IPv6 address (no hostname, port or brackets)';
      out.push(invalid(['spec', 'endpoints', i, 'address'], `expected ${expected}, got ${JSON.stringify(ep.address)}`, expected));
    }
    for (const key of Object.keys(ep.ports ?? {})) {
      if (!portNames.includes(key)) {
        const expected = `one of the port names ${portNames.join(', ')}`;
        out.push({ code: 'E_REFERENCE', path: ['spec', 'endpoints', i, 'ports', key], detail: `the Service has no port named '${key}' (expected ${expected})`, expected, atKey: true });
      }
    }
  });
  return out;
}

// Envoy and gRPC match with RE2: a pattern only JavaScript accepts (a lookahead, a backreference)
// would be NACKed by every xDS client, so it is checked against RE2's grammar here.
function regexRule(path: Path, type: string | undefined, value: string | undefined): Problem[] {
  if (type !== 'RegularExpression' || value === undefined) return [];
  try {
    compileRe2(value, 'full');
    return [];
  } catch (e) {
    return [invalid(path, `not a valid RE2 regular expression: ${(e as Error).message}`, 'an RE2 regular expression (no lookaround or backreferences)')];
  }
}

type PathModifier = { type: 'ReplaceFullPath' | 'ReplacePrefixMatch'; replaceFullPath?: string; replacePrefixMatch?: string };

// Gateway API: the field that goes with the type must be set, the other not.
function pathModifierRules(path: Path, mod: PathModifier): Problem[] {
  const field = mod.type === 'ReplaceFullPath' ? 'replaceFullPath' : 'replacePrefixMatch';
  const other = mod.type === 'ReplaceFullPath' ? 'replacePrefixMatch' : 'replaceFullPath';
  const out: Problem[] = [];
  if (mod[field] === undefined) {
    out.push(invalid([...path, field], `path type ${mod.type} needs ${field}, but the field is missing`, 'a path such as "/v2"'));
  }
  if (mod[other] !== undefined) {
    out.push(invalid([...path, other], `${other} does not go with path type ${mod.type}`, `no ${other}`));
  }
  return out;
}

function httpRouteRules(spec: HTTPRouteSpec): Problem[] {
  const out: Problem[] = [];
  spec.rules.forEach((rule, i) => {
    const at = ['spec', 'rules', i];
    (rule.matches ?? []).forEach((m, j) => {
      out.push(...regexRule([...at, 'matches', j, 'path', 'value'], m.path?.type, m.path?.value));
      (m.headers ?? []).forEach((h, k) => out.push(...regexRule([...at, 'matches', j, 'headers', k, 'value'], h.type, h.value)));
      (m.queryParams ?? []).forEach((q, k) => out.push(...regexRule([...at, 'matches', j, 'queryParams', k, 'value'], q.type, q.value)));
    });
    let redirects = false;
    (rule.filters ?? []).forEach((f, j) => {
      let mod: PathModifier | undefined;
      let modPath: Path = [];
      if (f.type === 'RequestRedirect') {
        redirects = true;
        mod = f.requestRedirect.path;
        modPath = [...at, 'filters', j, 'requestRedirect', 'path'];
      } else if (f.type === 'URLRewrite') {
        mod = f.urlRewrite.path;
        modPath = [...at, 'filters', j, 'urlRewrite', 'path'];
      }
      if (!mod) return;
      out.push(...pathModifierRules(modPath, mod));
      // A prefix can only be replaced when the rule matched on one prefix.
      const matches = rule.matches;
      if (mod.type === 'ReplacePrefixMatch' && matches && !(matches.length === 1 && (matches[0].path?.type ?? 'PathPrefix') === 'PathPrefix')) {
        out.push(invalid([...at, 'matches'], 'path type ReplacePrefixMatch needs exactly one match, of path type PathPrefix', 'one match with a PathPrefix path'));
      }
    });
    if (!rule.backendRefs?.length && !redirects) {
      out.push(invalid([...at, 'backendRefs'], 'a rule needs backendRefs or a RequestRedirect filter', 'at least one backendRef'));
    }
  });
  return out;
}

function grpcRouteRules(spec: GRPCRouteSpec): Problem[] {
  const out: Problem[] = [];
  spec.rules.forEach((rule, i) => {
    const at = ['spec', 'rules', i];
    (rule.matches ?? []).forEach((m, j) => {
      const method = m.method;
      if (method && method.service === undefined && method.method === undefined) {
        out.push(invalid([...at, 'matches', j, 'method'], 'a method match needs service, method or both', 'service and/or method'));
      }
      out.push(...regexRule([...at, 'matches', j, 'method', 'service'], method?.type, method?.service));
      out.push(...regexRule([...at, 'matches', j, 'method', 'method'], method?.type, method?.method));
      (m.headers ?? []).forEach((h, k) => out.push(...regexRule([...at, 'matches', j, 'headers', k, 'value'], h.type, h.value)));
    });
    if (!rule.backendRefs?.length) out.push(invalid([...at, 'backendRefs'], 'a rule needs backendRefs', 'at least one backendRef'));
  });
  return out;
}

// Envoy's ring defaults; a bound given alone is compared with the other default.
const RING_MIN_DEFAULT = 1024;
const RING_MAX_DEFAULT = 8_388_608;

function faultRules(fault: TrafficPolicySpec['fault']): Problem[] {
  if (!fault) return [];
  const at: Path = ['spec', 'fault'];
  const out: Problem[] = [];
  if (!fault.delay && !fault.abort) out.push(invalid(at, 'a fault needs a delay or an abort', 'delay and/or abort'));
  if (fault.delay && durationToMs(fault.delay.fixed) === 0) {
    out.push(invalid([...at, 'delay', 'fixed'], 'fixed must be longer than 0', 'a duration > 0'));
  }
  const abort = fault.abort;
  if (abort && (abort.httpStatus === undefined) === (abort.grpcStatus === undefined)) {
    const both = abort.httpStatus !== undefined;
    out.push(invalid([...at, 'abort', both ? 'grpcStatus' : 'httpStatus'], both ? 'set httpStatus or grpcStatus, not both' : 'an abort needs httpStatus or grpcStatus', 'exactly one of httpStatus, grpcStatus'));
  }
  (fault.headers ?? []).forEach((h, i) => out.push(...regexRule([...at, 'headers', i, 'value'], h.type, h.value)));
  return out;
}

/** healthCheck: fields that belong to one type, durations above 0, a timeout within the interval. */
function healthCheckRules(hc: TrafficPolicySpec['healthCheck']): Problem[] {
  if (!hc) return [];
  const out: Problem[] = [];
  const at = (field: string): Path => ['spec', 'healthCheck', field];
  if (hc.type === 'http' && hc.path === undefined) out.push(invalid(at('path'), 'an http health check needs a path', 'a path such as /healthz'));
  if (hc.type !== 'http' && hc.path !== undefined) out.push(invalid(at('path'), `path is for http health checks, not ${hc.type}`, 'type http'));
  if (hc.type !== 'http' && hc.expectedStatuses !== undefined) out.push(invalid(at('expectedStatuses'), `expectedStatuses is for http health checks, not ${hc.type}`, 'type http'));
  if (hc.type !== 'grpc' && hc.grpcService !== undefined) out.push(invalid(at('grpcService'), `grpcService is for grpc health checks, not ${hc.type}`, 'type grpc'));
  for (const field of ['interval', 'timeout'] as const) {
    const value = hc[field];
    if (value !== undefined && durationToMs(value) === 0) out.push(invalid(at(field), `${field} must be longer than 0`, 'a duration > 0'));
  }
  const interval = durationToMs(hc.interval ?? HEALTH_CHECK_DEFAULTS.interval);
  const timeout = durationToMs(hc.timeout ?? HEALTH_CHECK_DEFAULTS.timeout);
  if (interval > 0 && timeout > interval) {
    out.push(invalid(at('timeout'), `timeout ${hc.timeout ?? HEALTH_CHECK_DEFAULTS.timeout} is longer than interval ${hc.interval ?? HEALTH_CHECK_DEFAULTS.interval}`, `a duration <= the interval`));
  }
  return out;
}

function trafficPolicyRules(spec: TrafficPolicySpec): Problem[] {
  const out: Problem[] = [];
  const lb = spec.loadBalancer;
  if (lb?.hashOn && lb.type !== 'RingHash' && lb.type !== 'Maglev') {
    out.push(invalid(['spec', 'loadBalancer', 'hashOn'], `hashOn needs loadBalancer type RingHash or Maglev, got ${lb.type}`, 'type RingHash or Maglev'));
  }
  if (lb?.ringHash) {
    if (lb.type !== 'RingHash') {
      out.push(invalid(['spec', 'loadBalancer', 'ringHash'], `ringHash needs loadBalancer type RingHash, got ${lb.type}`, 'type RingHash'));
    }
    const min = lb.ringHash.minimumRingSize ?? RING_MIN_DEFAULT;
    const max = lb.ringHash.maximumRingSize ?? RING_MAX_DEFAULT;
    if (min > max) {
      const field = lb.ringHash.minimumRingSize !== undefined ? 'minimumRingSize' : 'maximumRingSize';
      const detail = `minimumRingSize ${min} is larger than maximumRingSize ${max}` + (field === 'maximumRingSize' ? ` (minimumRingSize defaults to ${RING_MIN_DEFAULT})` : '');
      out.push(invalid(['spec', 'loadBalancer', 'ringHash', field], detail, field === 'minimumRingSize' ? `at most ${max}` : `at least ${min}`));
    }
  }
  // Durations where 0 would mean "never" or "always" rather than "off".
  const positive: [Path, string | undefined][] = [
    [['spec', 'retries', 'backoff', 'baseInterval'], spec.retries?.backoff?.baseInterval],
    [['spec', 'outlierDetection', 'interval'], spec.outlierDetection?.interval],
    [['spec', 'outlierDetection', 'baseEjectionTime'], spec.outlierDetection?.baseEjectionTime],
    [['spec', 'connectionPool', 'connectTimeout'], spec.connectionPool?.connectTimeout],
    [['spec', 'rateLimit', 'local', 'per'], spec.rateLimit?.local?.per],
    [['spec', 'rateLimit', 'global', 'per'], spec.rateLimit?.global?.per],
  ];
  for (const [path, value] of positive) {
    if (value !== undefined && durationToMs(value) === 0) {
      out.push(invalid(path, `${String(path.at(-1))} must be longer than 0`, 'a duration > 0'));
    }
  }
  out.push(...faultRules(spec.fault));
  out.push(...rateLimitRules(spec.rateLimit));
  out.push(...healthCheckRules(spec.healthCheck));
  const backoff = spec.retries?.backoff;
  if (backoff) {
    const base = durationToMs(backoff.baseInterval);
    if (backoff.maxInterval !== undefined && durationToMs(backoff.maxInterval) < base) {
      out.push(
        invalid(
          ['spec', 'retries', 'backoff', 'maxInterval'],
          `maxInterval ${backoff.maxInterval} is shorter than baseInterval ${backoff.baseInterval}`,
          `a duration >= ${backoff.baseInterval}`,
        ),
      );
    }
  }
  return out;
}

/** A rate-limit period is at most a day: counters and buckets are not meant to span longer. */
const RATE_LIMIT_MAX_PERIOD_MS = 86_400_000;

function rateLimitRules(rl: TrafficPolicySpec['rateLimit']): Problem[] {
  const out: Problem[] = [];
  for (const which of ['local', 'global'] as const) {
    const per = rl?.[which]?.per;
    if (per !== undefined && durationToMs(per) > RATE_LIMIT_MAX_PERIOD_MS) {
      out.push(invalid(['spec', 'rateLimit', which, 'per'], `per ${per} is longer than a day`, 'a duration <= 24h'));
    }
  }
  const local = rl?.local;
  // Envoy refuses a local bucket refilled more often than every 50 ms.
  if (local && durationToMs(local.per) > 0 && durationToMs(local.per) < 50) {
    out.push(invalid(['spec', 'rateLimit', 'local', 'per'], `per ${local.per} is shorter than 50ms`, 'a duration >= 50ms'));
  }
  if (local?.burst !== undefined && local.burst < local.requests) {
    out.push(
      invalid(['spec', 'rateLimit', 'local', 'burst'], `burst ${local.burst} is smaller than requests ${local.requests}: the bucket could never hold a period's tokens`, `at least ${local.requests}`),
    );
  }
  return out;
}

const JWKS_SOURCES = ['file', 'inline', 'service'] as const;
const JWKS_SERVICE_FIELDS = ['namespace', 'port', 'path', 'cacheDuration'] as const;

// A JWT rule's keys come from exactly one place, and a Service source says where on it.
function requestAuthenticationRules(spec: RequestAuthenticationSpec): Problem[] {
  const out: Problem[] = [];
  spec.jwtRules.forEach((rule, i) => {
    const at: Path = ['spec', 'jwtRules', i, 'jwks'];
    const jwks = rule.jwks;
    const set = JWKS_SOURCES.filter((k) => jwks[k] !== undefined);
    const expected = 'exactly one of file, inline or service';
    if (set.length !== 1) {
      const detail = set.length === 0 ? `no key source: expected ${expected}` : `${set.join(' and ')} are both set: expected ${expected}`;
      out.push(invalid(set.length === 0 ? at : [...at, set[1]], detail, expected));
      return;
    }
    if (jwks.service !== undefined) {
      if (jwks.port === undefined) out.push(invalid([...at, 'port'], 'a JWKS service needs the port to fetch the keys from', 'a port of the Service'));
      if (jwks.path === undefined) out.push(invalid([...at, 'path'], 'a JWKS service needs the path of its JWKS document', 'an absolute path, e.g. /.well-known/jwks.json'));
    } else {
      for (const f of JWKS_SERVICE_FIELDS) {
        if (jwks[f] !== undefined) out.push(invalid([...at, f], `only applies to a JWKS served by a service (jwks.service)`));
      }
    }
    if (jwks.file !== undefined && !jwks.file.startsWith('/')) {
      out.push(invalid([...at, 'file'], `expected an absolute path, got ${JSON.stringify(jwks.file)}`, 'an absolute path on the callee\'s host'));
    }
    if (jwks.inline !== undefined) {
      const problem = jwksProblem(jwks.inline);
      if (problem) out.push(invalid([...at, 'inline'], `not a JWKS document: ${problem}`, 'a JSON Web Key Set, {"keys": [...]}'));
    }
  });
  return out;
}

// A built-in plugin (`command: [weft, plugin, <name>]`) exists, runs as a type it supports, and its
// config.global parses with its schema (placeholders filled with sample values first).
function builtinPluginRules(spec: PluginSpec): Problem[] {
  const name = builtinOf(spec.command ?? []);
  if (name === undefined) return [];
  const known = Object.keys(BUILTIN_PLUGINS).join(', ');
  if (!isBuiltin(name)) return [invalid(['spec', 'command', 2], `weft has no built-in plugin "${name}" (there are ${known})`, `one of ${known}`)];
  const builtin = BUILTIN_PLUGINS[name];
  const out: Problem[] = [];
  if (!(builtin.types as readonly string[]).includes(spec.type)) out.push(invalid(['spec', 'type'], `the ${name} plugin runs as ${builtin.types.join(' or ')}, not ${spec.type}`, builtin.types.join(' or ')));
  const sample = { service: 'svc', namespace: 'ns' };
  const global = Object.fromEntries(Object.entries(spec.config.global).map(([k, v]) => [k, v.replace(/\$\{([^}]*)\}/g, (w, key: string) => (sample as Record<string, string>)[key] ?? w)]));
  const parsed = builtin.config.safeParse(global);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const key = issue.path[0];
      if (issue.code === 'unrecognized_keys') {
        for (const k of issue.keys) out.push(invalid(['spec', 'config', 'global', k], `the ${name} plugin has no setting "${k}"`, `settings of ${name}: ${Object.keys(builtin.config.shape).join(', ')}`));
      } else if (key !== undefined && global[String(key)] === undefined) {
        out.push(invalid(['spec', 'config', 'global', String(key)], `the ${name} plugin needs ${String(key)}`));
      } else {
        out.push(invalid(['spec', 'config', 'global', ...(key !== undefined ? [String(key)] : [])], key === undefined ? issue.message : `${issue.message} (the ${name} plugin's ${String(key)})`));
      }
    }
  }
  if (name === 'backup' && parsed.success) {
    const c = parsed.data as { paths?: string[]; command?: string; restoreCommand?: string };
    const restoring = spec.type === 'init';
    if (!c.paths && !(restoring ? c.restoreCommand : c.command)) {
      out.push(invalid(['spec', 'config', 'global'], `the backup plugin needs paths (archived with tar) or ${restoring ? 'restoreCommand' : 'command'}`, 'paths: "data" or command/restoreCommand'));
    }
  }
  return out;
}

// A plugin attaches to something; placeholders are ones its group resolves; type-specific fields fit the type.
function pluginRules(spec: PluginSpec): Problem[] {
  const out: Problem[] = [];
  if (!spec.targetRefs && !spec.selector) {
    out.push(invalid(['spec'], 'a Plugin attaches to no service: set targetRefs or selector', 'targetRefs: [{ kind: Service, name }] or selector: { matchLabels }'));
  }
  for (const group of ['global', 'perPort', 'perDependency'] as ConfigGroup[]) {
    const allowed = GROUP_PLACEHOLDERS[group];
    for (const [key, value] of Object.entries(spec.config[group])) {
      const unknown = placeholdersIn(value).filter((p) => !allowed.includes(p));
      if (unknown.length > 0) {
        const expected = `placeholders ${allowed.map((a) => '${' + a + '}').join(', ')}`;
        out.push(invalid(['spec', 'config', group, key], `unknown placeholder ${unknown.map((u) => '${' + u + '}').join(', ')} in config.${group} (expected ${expected})`, expected));
      }
    }
  }
  if (spec.type === 'http-filter') {
    out.push(...httpFilterPluginRules(spec));
    return out;
  }
  if (spec.command === undefined) out.push(invalid(['spec', 'command'], `is required for ${spec.type} plugins (the argv to run)`, 'command: [program, args...]'));
  for (const field of ['module', 'direction'] as const) {
    if (spec[field] !== undefined) out.push(invalid(['spec', field], `${field} is for http-filter plugins; a ${spec.type} plugin is a process (command)`, 'type http-filter'));
  }
  out.push(...builtinPluginRules(spec));
  const limits = spec.resources ? pluginLimits(spec.resources) : {};
  if (limits.memoryBytes !== undefined && limits.memoryBytes < 4 * 1024 * 1024) out.push(invalid(['spec', 'resources', 'memory'], 'at least 4Mi: no program starts in less', '4Mi or more'));
  if (limits.cpuMillis !== undefined && limits.cpuMillis < 10) out.push(invalid(['spec', 'resources', 'cpu'], 'at least 10m (a hundredth of a core)', '10m or more'));
  if (spec.type === 'init') {
    if (spec.restartPolicy !== undefined) out.push(invalid(['spec', 'restartPolicy'], 'an init plugin runs once to completion: restartPolicy is for general plugins', 'type general'));
    if (spec.restartBackoff !== undefined) out.push(invalid(['spec', 'restartBackoff'], 'an init plugin runs once to completion: restartBackoff is for general plugins', 'type general'));
    if (spec.configReload !== undefined) out.push(invalid(['spec', 'configReload'], 'an init plugin runs once to completion: configReload is for general plugins', 'type general'));
  } else if (spec.order !== undefined) {
    out.push(invalid(['spec', 'order'], 'order is the run order of init plugins; a general plugin starts beside the app', 'type init'));
  }
  const backoff = spec.restartBackoff;
  if (backoff) {
    for (const field of ['min', 'max'] as const) {
      const value = backoff[field];
      if (value !== undefined && durationToMs(value) === 0) out.push(invalid(['spec', 'restartBackoff', field], `${field} must be longer than 0`, 'a duration > 0'));
    }
    const min = backoff.min ?? PLUGIN_BACKOFF_DEFAULTS.min;
    const max = backoff.max ?? PLUGIN_BACKOFF_DEFAULTS.max;
    if (durationToMs(max) < durationToMs(min)) {
      const field = backoff.max !== undefined ? 'max' : 'min';
      out.push(invalid(['spec', 'restartBackoff', field], `max ${max} is shorter than min ${min}` + (backoff.max === undefined ? ` (max defaults to ${max})` : ''), field === 'max' ? `a duration >= ${min}` : `a duration <= ${max}`));
    }
  }
  return out;
}

/** A module path the sidecar can load: absolute, or an npm package name (a relative path has no base the sidecar shares). */
const MODULE_SPEC = /^(\/.+|(@[a-z0-9][a-z0-9._~-]*\/)?[a-z0-9][a-z0-9._~-]*(\/[^\s]+)?)$/;

// An http-filter plugin is a module, not a process: module required, the process fields refused by name.
function httpFilterPluginRules(spec: PluginSpec): Problem[] {
  const out: Problem[] = [];
  if (spec.module === undefined) out.push(invalid(['spec', 'module'], 'is required for an http-filter plugin (the module the sidecar loads)', 'an absolute path or an npm package name'));
  else if (!MODULE_SPEC.test(spec.module)) out.push(invalid(['spec', 'module'], `expected an absolute path or an npm package name, got ${JSON.stringify(spec.module)}`, 'an absolute path or an npm package name'));
  for (const field of ['command', 'npm', 'env', 'workingDir', 'restartPolicy', 'restartBackoff', 'resources', 'configReload'] as const) {
    if (spec[field] !== undefined) out.push(invalid(['spec', field], `${field} is for init and general plugins; an http-filter plugin is a module the sidecar loads`, 'module'));
  }
  for (const group of ['perPort', 'perDependency'] as const) {
    if (Object.keys(spec.config[group]).length > 0) out.push(invalid(['spec', 'config', group], `an http-filter plugin gets config.global only`, 'config.global'));
  }
  return out;
}

/** Problems of one resource on its own, with paths from the document root. */
export function resourceRules(r: Resource): Problem[] {
  switch (r.kind) {
    case 'Service':
      return serviceRules((r as Resource<'Service'>).spec);
    case 'HTTPRoute':
      return httpRouteRules((r as Resource<'HTTPRoute'>).spec);
    case 'GRPCRoute':
      return grpcRouteRules((r as Resource<'GRPCRoute'>).spec);
    case 'TrafficPolicy':
      return trafficPolicyRules((r as Resource<'TrafficPolicy'>).spec);
    case 'RequestAuthentication':
      return requestAuthenticationRules((r as Resource<'RequestAuthentication'>).spec);
    case 'Plugin':
      return pluginRules((r as Resource<'Plugin'>).spec);
    default:
      return [];
  }
}
