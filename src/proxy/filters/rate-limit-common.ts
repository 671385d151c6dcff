// Pieces both rate limit filters share: the 429 they answer, its headers,
// the HttpStatus and percent fields they read, and their counter.
import { enumValues } from '../../xds/protos';
import { onlyFields, type FieldPath } from '../config/nack';
import type { Obj } from '../config/read-proto';
import type { LocalReplySpec } from './http-filter';
import type { FilterEnv } from './filter-env';

export const GRPC_RESOURCE_EXHAUSTED = 8;
export const GRPC_UNAVAILABLE = 14;

/**
 * The local reply of a limited request: `Retry-After` in whole seconds
 * (rounded up) until the limit admits again, `x-envoy-ratelimited` as Envoy
 * sends. gRPC callers get RESOURCE_EXHAUSTED when the config says
 * rate_limited_as_resource_exhausted, else UNAVAILABLE (the gRPC mapping of 429).
 */
export function rateLimitedReply(status: number, retryAfterMs: number | undefined, asResourceExhausted: boolean, detail: string): LocalReplySpec {
  const headers = ['x-envoy-ratelimited', 'true'];
  if (retryAfterMs !== undefined) headers.push('retry-after', String(Math.max(1, Math.ceil(retryAfterMs / 1000))));
  return { status, flag: 'RL', detail, headers, grpcStatus: asResourceExhausted ? GRPC_RESOURCE_EXHAUSTED : GRPC_UNAVAILABLE };
}

/** An envoy.type.v3.HttpStatus: its code; Envoy uses 429 when absent or below 400. */
export function httpStatus(at: FieldPath, s: Obj | undefined): number {
  if (!s) return 429;
  onlyFields(at, 'envoy.type.v3.HttpStatus', s, ['code']);
  const code = typeof s.code === 'number' ? s.code : (enumValues('envoy.type.v3.StatusCode')[s.code] ?? 0);
  return code >= 400 ? code : 429;
}

/**
 * A RuntimeFractionalPercent as 0 or 100 percent (weft has no runtime: the
 * runtime_key is accepted and its default_value used). Absent = 0, as Envoy.
 * A fraction in between would sample requests: not supported.
 */
export function allOrNothing(at: FieldPath, p: Obj | undefined): boolean {
  if (!p) return false;
  onlyFields(at, 'envoy.config.core.v3.RuntimeFractionalPercent', p, ['default_value', 'runtime_key']);
  const d = p.default_value;
  if (!d) return false;
  onlyFields(at.field('default_value'), 'envoy.type.v3.FractionalPercent', d, ['numerator', 'denominator']);
  const denominator = { HUNDRED: 100, TEN_THOUSAND: 10_000, MILLION: 1_000_000 }[(d.denominator as string) ?? 'HUNDRED'] ?? 100;
  const numerator = d.numerator ?? 0;
  if (numerator === 0) return false;
  if (numerator >= denominator) return true;
  return at.field('default_value').unsupported(`${numerator}/${denominator}: weft proxy applies a rate limit to all requests or none (0% or 100%)`);
}

/** Counts a limited request in weft_ratelimited_total. */
export function countLimited(env: FilterEnv, filter: 'local' | 'global', statPrefix: string, enforced: boolean): void {
  env.stats?.rateLimited(filter, statPrefix, enforced);
}
