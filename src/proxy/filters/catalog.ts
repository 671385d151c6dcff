// The HTTP filters weft proxy knows, by the type URL of their typed_config.
// decode-listener.ts decodes an HttpConnectionManager's http_filters with
// these, decode-route.ts a route's typed_per_filter_config, and the runtime
// builds each listener chain's filters with `create`. Adding a filter: write
// it in this folder and list its type here.
import type { FieldPath } from '../config/nack';
import type { Obj } from '../config/read-proto';
import type { HttpFilter } from './http-filter';
import { FAULT_FILTER_TYPE } from './fault';
import { GLOBAL_RATE_LIMIT_TYPE } from './global-rate-limit';
import { JWT_AUTHN_TYPE } from './jwt-authn';
import { LOCAL_RATE_LIMIT_TYPE } from './local-rate-limit';
import { MODULE_FILTER_TYPE } from './module-filter';
import { HTTP_RBAC_TYPE } from './rbac';

/**
 * State a filter keeps across config changes (token buckets, counters),
 * keyed by what the filter chooses (e.g. its name and listener). The runtime
 * hands the same map to every config's filters.
 */
export type FilterState = Map<string, unknown>;

export interface HttpFilterType {
  /** Type URL of the listener-level typed_config (or, for a TypedStruct, of its type_url: decode then gets the Struct as JSON). */
  typeUrl: string;
  /** Decodes (and validates, NACKing by field) the listener-level config. */
  decode(at: FieldPath, msg: Obj): unknown;
  /** Per-route config (typed_per_filter_config): its type URL and decoder; absent = not supported on routes. */
  perRoute?: { typeUrl: string; decode(at: FieldPath, msg: Obj): unknown };
  /** A filter for one listener chain of one config. `name` is the HttpFilter name, the key of per-route configs. */
  create(name: string, config: unknown, state: FilterState): HttpFilter;
}

/** Every HTTP filter weft proxy supports besides the router. */
export const HTTP_FILTER_TYPES: readonly HttpFilterType[] = [FAULT_FILTER_TYPE, LOCAL_RATE_LIMIT_TYPE, GLOBAL_RATE_LIMIT_TYPE, JWT_AUTHN_TYPE, HTTP_RBAC_TYPE, MODULE_FILTER_TYPE];

export function filterTypeFor(typeUrl: string): HttpFilterType | undefined {
  return HTTP_FILTER_TYPES.find((t) => t.typeUrl === typeUrl);
}

export function perRouteFilterTypeFor(typeUrl: string): HttpFilterType | undefined {
  return HTTP_FILTER_TYPES.find((t) => t.perRoute?.typeUrl === typeUrl);
}
