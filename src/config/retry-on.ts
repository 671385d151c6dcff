// The retry conditions weft knows: Envoy's retry_on tokens for HTTP and the
// gRPC status names. One list for the config schema, the translator (which
// passes them through) and the sidecar (which enforces them). No imports, so
// the sidecar can read it without loading the config layer.
export const RETRY_ON = [
  '5xx',
  'gateway-error',
  'reset',
  'connect-failure',
  'retriable-4xx',
  'refused-stream',
  'retriable-status-codes',
  'cancelled',
  'deadline-exceeded',
  'internal',
  'resource-exhausted',
  'unavailable',
] as const;
