// A route's rate_limits (envoy.config.route.v3.RateLimit): the actions that
// turn a request into rate limit descriptors, read by the local and global
// rate limit filters of the same stage.
//
// Supported subset (NACK otherwise): RateLimit {stage, actions}; Action
// request_headers {header_name, descriptor_key, skip_if_absent} | remote_address
// | generic_key {descriptor_value, descriptor_key (default "generic_key")}.
// Envoy's semantics: an action that cannot produce its entry (header absent)
// drops the whole descriptor, unless skip_if_absent, which drops the entry only.
// Not supported: limit (overrides), disable_key, hits_addend, apply_on_stream_done,
// source_cluster, destination_cluster, header_value_match, metadata, …
import type { FieldPath } from '../config/nack';
import { onlyFields } from '../config/nack';
import type { Obj } from '../config/read-proto';
import type { FilterRequest } from './http-filter';

export type RateLimitAction =
  | { kind: 'remote_address' }
  | { kind: 'request_headers'; header: string; key: string; skipIfAbsent: boolean }
  | { kind: 'generic_key'; key: string; value: string };

export interface RouteRateLimit {
  stage: number;
  actions: RateLimitAction[];
}

export interface DescriptorEntry {
  key: string;
  value: string;
}
export type Descriptor = DescriptorEntry[];

const T = 'envoy.config.route.v3.RateLimit';

export function decodeRouteRateLimits(at: FieldPath, list: Obj[]): RouteRateLimit[] {
  return list.map((r, i) => {
    const here = at.index(i);
    onlyFields(here, T, r, ['stage', 'actions']);
    const stage = r.stage?.value ?? 0;
    if (stage > 10) here.field('stage').invalid(`must be at most 10, got ${stage}`);
    const actions = (r.actions ?? []).map((a: Obj, j: number) => action(here.field('actions').index(j), a));
    if (actions.length === 0) here.field('actions').invalid('needs at least one action');
    return { stage, actions };
  });
}

function action(at: FieldPath, a: Obj): RateLimitAction {
  onlyFields(at, `${T}.Action`, a, ['request_headers', 'remote_address', 'generic_key']);
  if (a.request_headers) {
    const h = a.request_headers;
    const here = at.field('request_headers');
    onlyFields(here, `${T}.Action.RequestHeaders`, h, ['header_name', 'descriptor_key', 'skip_if_absent']);
    if (!h.header_name) here.field('header_name').invalid('must not be empty');
    if (!h.descriptor_key) here.field('descriptor_key').invalid('must not be empty');
    return { kind: 'request_headers', header: String(h.header_name).toLowerCase(), key: h.descriptor_key, skipIfAbsent: !!h.skip_if_absent };
  }
  if (a.remote_address) {
    onlyFields(at.field('remote_address'), `${T}.Action.RemoteAddress`, a.remote_address, []);
    return { kind: 'remote_address' };
  }
  if (a.generic_key) {
    const g = a.generic_key;
    const here = at.field('generic_key');
    onlyFields(here, `${T}.Action.GenericKey`, g, ['descriptor_value', 'descriptor_key']);
    if (!g.descriptor_value) here.field('descriptor_value').invalid('must not be empty');
    return { kind: 'generic_key', key: g.descriptor_key || 'generic_key', value: g.descriptor_value };
  }
  return at.invalid('needs request_headers, remote_address or generic_key');
}

/** The descriptors a request yields for the rate limits of one stage. */
export function descriptorsFor(limits: readonly RouteRateLimit[] | undefined, stage: number, req: FilterRequest): Descriptor[] {
  const out: Descriptor[] = [];
  if (!limits) return out;
  for (const limit of limits) {
    if (limit.stage !== stage) continue;
    const d = descriptor(limit.actions, req);
    if (d && d.length > 0) out.push(d);
  }
  return out;
}

function descriptor(actions: readonly RateLimitAction[], req: FilterRequest): Descriptor | undefined {
  const entries: Descriptor = [];
  for (const a of actions) {
    if (a.kind === 'generic_key') {
      entries.push({ key: a.key, value: a.value });
    } else if (a.kind === 'remote_address') {
      if (!req.sourceAddress) return undefined;
      entries.push({ key: 'remote_address', value: req.sourceAddress });
    } else {
      const value = req.header(a.header);
      if (value === undefined) {
        if (a.skipIfAbsent) continue;
        return undefined;
      }
      entries.push({ key: a.key, value });
    }
  }
  return entries;
}
