// envoy.filters.http.ratelimit: ask the control plane's RateLimitService
// whether the request's descriptors are over their shared limit.
//
// Supported subset of RateLimit (anything else is a NACK naming it): domain, stage,
// request_type (both), timeout (default 20 ms, as Envoy), failure_mode_deny,
// rate_limited_as_resource_exhausted, stat_prefix, rate_limit_service {grpc_service
// {envoy_grpc.cluster_name "xds_cluster" (the control plane this proxy gets its config from),
// timeout}, transport_api_version V3}.
// Descriptors come from the route's rate_limits of the same stage; none → no call. An error or a
// timeout lets the request through (counted in weft_ratelimit_failure_mode_allowed_total, logged
// at most every 10 s), or with failure_mode_deny answers 500 flagged RLSE.
// Not supported: enable_x_ratelimit_headers, disable_x_envoy_ratelimited_header,
// rate_limited_status, response_headers_to_add, status_on_error, other gRPC services or clusters.
import { onlyFields, type FieldPath } from '../config/nack';
import { durationMs, type Obj } from '../config/read-proto';
import type { Route } from '../config/types';
import { CONTROL_PLANE_CLUSTER } from '../../xds/rate-limit-names';
import { TYPE_URL } from '../../xds/type-urls';
import type { FilterState, HttpFilterType } from './catalog';
import { filterEnv } from './filter-env';
import type { FilterRequest, FilterVerdict, HttpFilter, LocalReplySpec } from './http-filter';
import { descriptorsFor } from './rate-limit-actions';
import { countLimited, rateLimitedReply } from './rate-limit-common';
import { rlsClient } from './rls-client';

export interface GlobalRateLimitConfig {
  domain: string;
  stage: number;
  timeoutMs: number;
  failureModeDeny: boolean;
  asResourceExhausted: boolean;
  statPrefix: string;
}

const T = 'envoy.extensions.filters.http.ratelimit.v3.RateLimit';
const ENVOY_DEFAULT_TIMEOUT_MS = 20;
const FAIL_LOG_EVERY_MS = 10_000;

export function decodeGlobalRateLimit(at: FieldPath, msg: Obj): GlobalRateLimitConfig {
  onlyFields(at, T, msg, ['domain', 'stage', 'request_type', 'timeout', 'failure_mode_deny', 'rate_limited_as_resource_exhausted', 'rate_limit_service', 'stat_prefix']);
  if (!msg.domain) at.field('domain').invalid('must not be empty');
  const stage = msg.stage ?? 0;
  if (stage > 10) at.field('stage').invalid(`must be at most 10, got ${stage}`);
  if (msg.request_type && msg.request_type !== 'both') at.field('request_type').unsupported(`"${msg.request_type}" is not supported by weft proxy (only "both")`);
  const rls = msg.rate_limit_service;
  const here = at.field('rate_limit_service');
  if (!rls) here.invalid('is required');
  onlyFields(here, 'envoy.config.ratelimit.v3.RateLimitServiceConfig', rls, ['grpc_service', 'transport_api_version']);
  if (rls.transport_api_version !== 'V3') here.field('transport_api_version').invalid(`must be V3, got ${rls.transport_api_version ?? 'AUTO'}`);
  const g = rls.grpc_service;
  if (!g) here.field('grpc_service').invalid('is required');
  onlyFields(here.field('grpc_service'), 'envoy.config.core.v3.GrpcService', g, ['envoy_grpc', 'timeout']);
  const cluster = g.envoy_grpc?.cluster_name;
  if (!g.envoy_grpc) here.field('grpc_service').field('envoy_grpc').invalid('is required (google_grpc is not supported)');
  onlyFields(here.field('grpc_service').field('envoy_grpc'), 'envoy.config.core.v3.GrpcService.EnvoyGrpc', g.envoy_grpc, ['cluster_name']);
  if (cluster !== CONTROL_PLANE_CLUSTER) {
    here.field('grpc_service').field('envoy_grpc').field('cluster_name').unsupported(`"${cluster}": weft proxy calls only the control plane's rate limit service ("${CONTROL_PLANE_CLUSTER}")`);
  }
  let timeoutMs = durationMs(at.field('timeout'), msg.timeout, ENVOY_DEFAULT_TIMEOUT_MS);
  if (g.timeout) timeoutMs = Math.min(timeoutMs || Infinity, durationMs(here.field('grpc_service').field('timeout'), g.timeout, 0) || Infinity);
  if (!Number.isFinite(timeoutMs) || timeoutMs === 0) timeoutMs = ENVOY_DEFAULT_TIMEOUT_MS;
  return {
    domain: msg.domain,
    stage,
    timeoutMs,
    failureModeDeny: msg.failure_mode_deny === true,
    asResourceExhausted: msg.rate_limited_as_resource_exhausted === true,
    statPrefix: msg.stat_prefix ?? '',
  };
}

class GlobalRateLimitFilter implements HttpFilter {
  constructor(
    readonly name: string,
    private readonly config: GlobalRateLimitConfig,
    private readonly state: FilterState,
  ) {}

  decodeHeaders(req: FilterRequest, route: Route): FilterVerdict {
    if (route.action.kind !== 'route') return undefined;
    const descriptors = descriptorsFor(route.action.rateLimits, this.config.stage, req);
    if (descriptors.length === 0) return undefined;
    return { kind: 'wait', until: this.ask(descriptors) };
  }

  private async ask(descriptors: ReturnType<typeof descriptorsFor>): Promise<LocalReplySpec | undefined> {
    const c = this.config;
    const env = filterEnv(this.state);
    try {
      if (!env.controlPlane) throw new Error('no control plane address');
      const verdict = await rlsClient(this.state, env, env.controlPlane).shouldRateLimit(c.domain, descriptors, c.timeoutMs);
      if (!verdict.overLimit) return undefined;
      countLimited(env, 'global', c.statPrefix, true);
      return rateLimitedReply(429, verdict.retryAfterMs, c.asResourceExhausted, `global rate limit ${c.domain}`);
    } catch (err) {
      env.stats?.rateLimitFailure(c.statPrefix, c.failureModeDeny);
      const now = Date.now();
      const last = (this.state.get('global_ratelimit|last-failure-log') as number | undefined) ?? 0;
      if (now - last >= FAIL_LOG_EVERY_MS) {
        this.state.set('global_ratelimit|last-failure-log', now);
        env.log?.('warn', c.failureModeDeny ? 'rate limit service failed: denying' : 'rate limit service failed: letting requests through', {
          error: (err as Error).message,
          timeoutMs: c.timeoutMs,
        });
      }
      if (!c.failureModeDeny) return undefined;
      return { status: 500, flag: 'RLSE', detail: 'rate limit service error' };
    }
  }
}

export const GLOBAL_RATE_LIMIT_TYPE: HttpFilterType = {
  typeUrl: TYPE_URL.RateLimit,
  decode: decodeGlobalRateLimit,
  create: (name, config, state) => new GlobalRateLimitFilter(name, config as GlobalRateLimitConfig, state),
};
