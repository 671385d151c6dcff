// Trace context on the wire: W3C Trace Context (`traceparent`, `tracestate`)
// and B3, single header (`b3`) and multi header (`X-B3-TraceId`, `-SpanId`,
// `-ParentSpanId`, `-Sampled`, `-Flags`). A request's context is read in the
// format it came with and written to the next hop in that same format
// (W3C when it came with none). Malformed values count as absent: the
// sidecar then starts a new trace rather than forwarding garbage.

export type TraceFormat = 'w3c' | 'b3' | 'b3multi';

export interface RemoteContext {
  /** 32 lower-case hex digits (a 64-bit B3 id is left-padded with zeros). */
  traceId: string;
  spanId: string;
  /** undefined: the caller deferred the decision (B3 without a sampling state). */
  sampled: boolean | undefined;
  /** The B3 trace id had 16 hex digits: it goes on with 16. */
  shortTraceId: boolean;
}

export interface Extracted {
  format: TraceFormat;
  /** Absent when the request carried no (valid) context. */
  parent: RemoteContext | undefined;
}

/** Every field a propagated context lives in (lower case); tracestate is forwarded as received. */
export const PROPAGATION_FIELDS = ['traceparent', 'b3', 'x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'x-b3-sampled', 'x-b3-flags'];

const HEX32 = /^[0-9a-f]{32}$/;
const HEX16 = /^[0-9a-f]{16}$/;
const ZERO32 = '00000000000000000000000000000000';
const ZERO16 = '0000000000000000';

/** Reads the context of a request; `get` returns a field's value by lower-case name. */
export function extract(get: (lowerName: string) => string | undefined): Extracted {
  const tp = get('traceparent');
  if (tp !== undefined) return { format: 'w3c', parent: parseTraceparent(tp) };
  const single = get('b3');
  if (single !== undefined) return { format: 'b3', parent: parseB3Single(single) };
  const traceId = get('x-b3-traceid');
  if (traceId !== undefined) {
    const flags = get('x-b3-flags');
    const sampled = flags === '1' ? true : b3Sampled(get('x-b3-sampled'));
    return { format: 'b3multi', parent: b3Context(traceId, get('x-b3-spanid') ?? '', sampled === null ? undefined : sampled) };
  }
  return { format: 'w3c', parent: undefined };
}

/** `version-traceid-parentid-flags`; version 00 exactly, later versions by their first four fields (W3C §3.2.4). */
export function parseTraceparent(value: string): RemoteContext | undefined {
  const v = value.trim().toLowerCase();
  if (v.length < 55 || v[2] !== '-' || v[35] !== '-' || v[52] !== '-') return undefined;
  const version = v.slice(0, 2);
  if (!/^[0-9a-f]{2}$/.test(version) || version === 'ff') return undefined;
  if (version === '00' && v.length !== 55) return undefined;
  if (version !== '00' && v.length > 55 && v[55] !== '-') return undefined;
  const traceId = v.slice(3, 35);
  const spanId = v.slice(36, 52);
  const flags = v.slice(53, 55);
  if (!HEX32.test(traceId) || traceId === ZERO32 || !HEX16.test(spanId) || spanId === ZERO16 || !/^[0-9a-f]{2}$/.test(flags)) return undefined;
  return { traceId, spanId, sampled: (parseInt(flags, 16) & 1) === 1, shortTraceId: false };
}

/** `{traceid}-{spanid}[-{sampling}[-{parentspanid}]]`, or a lone sampling state (no context). */
export function parseB3Single(value: string): RemoteContext | undefined {
  const parts = value.trim().toLowerCase().split('-');
  if (parts.length < 2 || parts.length > 4) return undefined;
  let sampled: boolean | undefined;
  if (parts.length >= 3) {
    if (parts[2] === 'd') sampled = true;
    else {
      const s = b3Sampled(parts[2]);
      if (s === null || s === undefined) return undefined;
      sampled = s;
    }
  }
  if (parts.length === 4 && !HEX16.test(parts[3])) return undefined;
  return b3Context(parts[0], parts[1], sampled);
}

/** '1'/'true' sampled, '0'/'false' not, absent deferred; null when malformed. */
function b3Sampled(v: string | undefined): boolean | undefined | null {
  if (v === undefined) return undefined;
  const s = v.trim().toLowerCase();
  if (s === '1' || s === 'true') return true;
  if (s === '0' || s === 'false') return false;
  return null;
}

function b3Context(traceIdRaw: string, spanIdRaw: string, sampled: boolean | undefined): RemoteContext | undefined {
  const t = traceIdRaw.trim().toLowerCase();
  const spanId = spanIdRaw.trim().toLowerCase();
  const shortTraceId = t.length === 16;
  const traceId = shortTraceId ? ZERO16 + t : t;
  if (!HEX32.test(traceId) || traceId === ZERO32 || !HEX16.test(spanId) || spanId === ZERO16) return undefined;
  return { traceId, spanId, sampled, shortTraceId };
}

/**
 * The fields that carry a context to the next hop, flat [name, value, …]:
 * `spanId` is the sidecar's span (the next hop's parent), `parentSpanId` the
 * span before it (B3 says it; W3C does not).
 */
export function inject(format: TraceFormat, traceId: string, spanId: string, parentSpanId: string | undefined, sampled: boolean, shortTraceId: boolean): string[] {
  if (format === 'w3c') return ['traceparent', `00-${traceId}-${spanId}-${sampled ? '01' : '00'}`];
  const t = shortTraceId ? traceId.slice(16) : traceId;
  if (format === 'b3') return ['b3', `${t}-${spanId}-${sampled ? '1' : '0'}${parentSpanId ? `-${parentSpanId}` : ''}`];
  const out = ['x-b3-traceid', t, 'x-b3-spanid', spanId];
  if (parentSpanId) out.push('x-b3-parentspanid', parentSpanId);
  out.push('x-b3-sampled', sampled ? '1' : '0');
  return out;
}
