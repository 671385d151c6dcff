// TrafficPolicy.rateLimit → the callee's inbound HttpConnectionManager.
// A limit protects the service it targets, so it is enforced where every
// caller's request arrives: the inbound listener of each replica's sidecar
// (proxyless gRPC clients support neither filter and get nothing).
//
//   rateLimit.local    envoy.filters.http.local_ratelimit (LocalRateLimit, stage 0): token_bucket
//                      {max_tokens: burst ?? requests, tokens_per_fill: requests, fill_interval: per},
//                      filter_enabled/filter_enforced 100%, rate_limited_as_resource_exhausted;
//                      `by` → a descriptor whose entry has no value (one bucket per distinct value,
//                      Envoy ≥ 1.34's dynamic descriptors) and always_consume_default_token_bucket
//                      false; the route's rate_limits {stage 0} action remote_address or request_headers
//   rateLimit.global   envoy.filters.http.ratelimit (RateLimit, stage 1): domain "weft", timeout,
//                      failure_mode_deny false, rate_limit_service.grpc_service.envoy_grpc
//                      .cluster_name "xds_cluster" (the control plane); route rate_limits {stage 1}
//                      actions generic_key {weft.service: <name>.<namespace>} then remote_address or
//                      request_headers (skip_if_absent: header-less requests share one counter)
import type { TrafficPolicySpec } from '../config/kinds';
import { anyOf } from '../xds/protos';
import {
  CONTROL_PLANE_CLUSTER,
  GLOBAL_RATE_LIMIT_STAGE,
  LOCAL_RATE_LIMIT_STAGE,
  RATE_LIMIT_DOMAIN,
  RATE_LIMIT_SERVICE_KEY,
} from '../xds/rate-limit-names';
import { TYPE_URL } from '../xds/type-urls';
import { duration, ENUM, wrap } from './proto-values';

type Obj = Record<string, unknown>;
type RateLimit = NonNullable<TrafficPolicySpec['rateLimit']>;
type By = NonNullable<NonNullable<RateLimit['local']>['by']>;

export const LOCAL_RATE_LIMIT_FILTER = 'envoy.filters.http.local_ratelimit';
export const GLOBAL_RATE_LIMIT_FILTER = 'envoy.filters.http.ratelimit';

/** How long a sidecar waits for the control plane's verdict before letting the request through. */
export const GLOBAL_RATE_LIMIT_TIMEOUT = '100ms';

/** The descriptor key of a header's value (request_headers action). */
export function headerDescriptorKey(header: string): string {
  return `header.${header.toLowerCase()}`;
}

export interface InboundRateLimit {
  /** HTTP filters to put before the router, in order. */
  httpFilters: Obj[];
  /** The inbound route's RouteAction.rate_limits. */
  rateLimits: Obj[];
}

function byAction(by: By, skipIfAbsent: boolean): Obj {
  if (by === 'source') return { remote_address: {} };
  const header: Obj = { header_name: by.header.toLowerCase(), descriptor_key: headerDescriptorKey(by.header) };
  if (skipIfAbsent) header.skip_if_absent = true;
  return { request_headers: header };
}

function byKey(by: By): string {
  return by === 'source' ? 'remote_address' : headerDescriptorKey(by.header);
}

const ALL = () => ({ default_value: { numerator: 100, denominator: ENUM.fractionDenominator().HUNDRED } });

/** The filters and route rate_limits of a service's rate limits on one inbound port; undefined when it has none. */
export function inboundRateLimit(rl: RateLimit | undefined, service: { name: string; namespace: string }, statPrefix: string): InboundRateLimit | undefined {
  if (!rl?.local && !rl?.global) return undefined;
  const out: InboundRateLimit = { httpFilters: [], rateLimits: [] };
  if (rl.local) {
    const bucket = { max_tokens: rl.local.burst ?? rl.local.requests, tokens_per_fill: wrap(rl.local.requests), fill_interval: duration(rl.local.per) };
    const config: Obj = {
      stat_prefix: statPrefix,
      token_bucket: bucket,
      filter_enabled: ALL(),
      filter_enforced: ALL(),
      rate_limited_as_resource_exhausted: true,
    };
    if (rl.local.by) {
      // An entry without a value: a bucket of this size for each distinct value.
      config.descriptors = [{ entries: [{ key: byKey(rl.local.by) }], token_bucket: bucket }];
      config.always_consume_default_token_bucket = { value: false };
      out.rateLimits.push({ actions: [byAction(rl.local.by, false)] });
    }
    out.httpFilters.push({ name: LOCAL_RATE_LIMIT_FILTER, typed_config: anyOf(TYPE_URL.LocalRateLimit, config) });
  }
  if (rl.global) {
    out.httpFilters.push({
      name: GLOBAL_RATE_LIMIT_FILTER,
      typed_config: anyOf(TYPE_URL.RateLimit, {
        domain: RATE_LIMIT_DOMAIN,
        stage: GLOBAL_RATE_LIMIT_STAGE,
        stat_prefix: statPrefix,
        timeout: duration(GLOBAL_RATE_LIMIT_TIMEOUT),
        failure_mode_deny: false,
        rate_limited_as_resource_exhausted: true,
        rate_limit_service: {
          grpc_service: { envoy_grpc: { cluster_name: CONTROL_PLANE_CLUSTER } },
          transport_api_version: ENUM.apiVersion().V3,
        },
      }),
    });
    const actions: Obj[] = [{ generic_key: { descriptor_key: RATE_LIMIT_SERVICE_KEY, descriptor_value: `${service.name}.${service.namespace}` } }];
    if (rl.global.by) actions.push(byAction(rl.global.by, true));
    out.rateLimits.push({ stage: wrap(GLOBAL_RATE_LIMIT_STAGE), actions });
  }
  void LOCAL_RATE_LIMIT_STAGE; // stage 0 is the proto default: left unset
  return out;
}
