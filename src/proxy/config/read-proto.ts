// Readers for the protobuf value shapes the decoders meet everywhere
// (Durations, wrappers, Anys, config sources, socket addresses, regexes), each
// validating and naming the field on error. Inputs are decodeMessage objects:
// snake_case, enums as names, 64-bit numbers as numbers, absent when unset.
import { isIP } from 'node:net';
import { decodeMessage } from '../../xds/protos';
import { onlyFields, type FieldPath } from './nack';
import { compileRe2, Re2SyntaxError, type Re2Mode } from '../../config/re2';

export type Obj = Record<string, any>;

/** A google.protobuf.Duration in whole milliseconds; any non-zero duration is at least 1 ms. */
export function durationMs(at: FieldPath, d: Obj | undefined, whenAbsent: number): number {
  if (!d) return whenAbsent;
  const seconds = d.seconds ?? 0;
  const nanos = d.nanos ?? 0;
  if (seconds < 0 || nanos < 0 || nanos > 999_999_999) at.invalid(`must be a non-negative duration, got ${seconds}s ${nanos}ns`);
  return seconds * 1000 + Math.ceil(nanos / 1e6);
}

/** A UInt32Value/BoolValue-style wrapper's value; an empty wrapper holds the default (0, false). */
export function wrapped<T>(w: { value?: T } | undefined, whenAbsent: T, zero: T): T {
  if (!w) return whenAbsent;
  return w.value ?? zero;
}

export function u32(w: { value?: number } | undefined, whenAbsent: number): number {
  return wrapped(w, whenAbsent, 0);
}

export function bool(w: { value?: boolean } | undefined, whenAbsent: boolean): boolean {
  return wrapped(w, whenAbsent, false);
}

/** The message inside a google.protobuf.Any, decoded by its type URL, which must be one of `accepted`. */
export function unpackAny(at: FieldPath, any: Obj | undefined, accepted: readonly string[]): { typeUrl: string; msg: Obj } {
  if (!any || !any.type_url) at.invalid('is required');
  const typeUrl: string = any.type_url;
  if (!accepted.includes(typeUrl)) at.note(typeUrl).unsupported();
  try {
    return { typeUrl, msg: decodeMessage(typeUrl, any.value ?? new Uint8Array()) };
  } catch (err) {
    return at.invalid(`does not decode as ${typeUrl}: ${(err as Error).message}`);
  }
}

/** A ConfigSource must point at the ADS stream weft already has (`ads` or `self`), API version V3. */
export function requireAdsConfigSource(at: FieldPath, source: Obj | undefined): void {
  if (!source) at.invalid('is required');
  onlyFields(at, 'envoy.config.core.v3.ConfigSource', source, ['ads', 'self', 'resource_api_version']);
  if (!source.ads && !source.self) at.field('config_source_specifier').unsupported('must be ads or self: weft proxy fetches everything over its ADS stream');
  if (source.resource_api_version !== undefined && source.resource_api_version !== 'V3') {
    at.field('resource_api_version').invalid(`must be V3, got ${source.resource_api_version}`);
  }
}

export interface IpPort {
  address: string;
  port: number;
}

/**
 * An Address holding a TCP socket_address with an IP literal and a port
 * (pipes, internal addresses, named ports, resolvers and hostnames are not
 * supported: weft proxy resolves no names).
 */
export function ipSocketAddress(at: FieldPath, address: Obj | undefined, opts: { allowPortZero: boolean }): IpPort {
  if (!address) at.invalid('is required');
  onlyFields(at, 'envoy.config.core.v3.Address', address, ['socket_address']);
  const sa = address.socket_address;
  const here = at.field('socket_address');
  if (!sa) here.invalid('is required');
  onlyFields(here, 'envoy.config.core.v3.SocketAddress', sa, ['address', 'port_value', 'protocol']);
  if (sa.protocol !== undefined && sa.protocol !== 'TCP') here.field('protocol').unsupported(`${sa.protocol} is not supported by weft proxy yet`);
  const ip: string = sa.address ?? '';
  if (isIP(ip) === 0) {
    here.field('address').unsupported(`"${ip}" is not an IP address: hostnames are not supported by weft proxy`);
  }
  const port: number = sa.port_value ?? 0;
  if (port > 65535 || (port === 0 && !opts.allowPortZero)) here.field('port_value').invalid(`must be a port 1-65535, got ${port}`);
  return { address: ip, port };
}

/** Compiles an RE2 pattern, NACKing what RE2 rejects. */
export function re2(at: FieldPath, pattern: string | undefined, mode: Re2Mode): RegExp {
  if (pattern === undefined || pattern === '') at.invalid('must be a non-empty regex');
  try {
    return compileRe2(pattern, mode);
  } catch (err) {
    if (err instanceof Re2SyntaxError) at.invalid(`"${pattern}" is not a valid RE2 regex: ${err.message}`);
    throw err;
  }
}

/** An envoy.type.matcher.v3.RegexMatcher (`safe_regex`): the deprecated google_re2 limits are accepted and not used. */
export function regexMatcher(at: FieldPath, m: Obj | undefined, mode: Re2Mode): RegExp {
  if (!m) at.invalid('is required');
  onlyFields(at, 'envoy.type.matcher.v3.RegexMatcher', m, ['regex', 'google_re2']);
  return re2(at.field('regex'), m.regex, mode);
}

/**
 * A decoded google.protobuf.Struct as plain JSON. protobufjs bundles the
 * well-known types with camelCase field names (stringValue, structValue, …),
 * and decodeMessage keeps the oneof's `kind`.
 */
export function structToJson(struct: Obj | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(struct?.fields ?? {})) out[key] = valueToJson(value as Obj);
  return out;
}

function valueToJson(v: Obj): unknown {
  switch (v.kind) {
    case 'nullValue':
      return null;
    case 'numberValue':
      return v.numberValue;
    case 'stringValue':
      return v.stringValue;
    case 'boolValue':
      return v.boolValue;
    case 'structValue':
      return structToJson(v.structValue);
    case 'listValue':
      return ((v.listValue?.values ?? []) as Obj[]).map(valueToJson);
    default:
      return null;
  }
}
