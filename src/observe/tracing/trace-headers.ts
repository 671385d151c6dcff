// Writing a request's trace context on the request to the next hop: the
// exchanges' part of tracing, kept apart from proxy-tracer.ts so a sidecar
// without tracing never loads the OpenTelemetry SDK (~16 MiB of its RSS).
import type { RequestTrace } from './proxy-tracer';
import { PROPAGATION_FIELDS } from './propagation';

/**
 * The request's fields with the propagation fields replaced by `t`'s:
 * for HTTP/2 and node:http header objects (lower-case names).
 */
export function setTraceHeaders(headers: Record<string, unknown>, t: RequestTrace): void {
  if (t.headers.length === 0) return; // an unsampled request whose context passes as it came
  for (const name of PROPAGATION_FIELDS) delete headers[name];
  for (let i = 0; i < t.headers.length; i += 2) headers[t.headers[i]] = t.headers[i + 1];
}

