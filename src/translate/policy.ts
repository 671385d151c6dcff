// TrafficPolicy → Envoy fields. A policy targets a Service; what it says about
// connections and endpoints lands on that service's clusters, what it says
// about requests lands on the routes of that service's virtual hosts.
//
//   loadBalancer.type              cluster lb_policy (+ ring_hash_lb_config)
//   loadBalancer.hashOn            route hash_policy (header | cookie | connection_properties.source_ip), each terminal
//   connectionPool.max*            cluster circuit_breakers.thresholds[DEFAULT]
//   connectionPool.connectTimeout  cluster connect_timeout
//   connectionPool.maxRequestsPerConnection, timeouts.idle
//                                  HttpProtocolOptions.common_http_protocol_options (TCP ports: tcp_proxy idle_timeout)
//   outlierDetection               cluster outlier_detection, enforcing_* = 100 for what is configured, 0 otherwise
//                                  (failurePercentage → failure_percentage_*, off unless configured)
//   fault                          route typed_per_filter_config["envoy.filters.http.fault"] (see fault.ts);
//                                  the sidecar's outbound listener gets the fault filter when a route uses it
//   (a policy on a route's backend Service: its request-level settings apply when every backend of the
//    rule has the same, see backend-policy.ts)
//   retries                        route retry_policy; retries.budget → circuit_breakers.thresholds[DEFAULT].retry_budget;
//                                  non-idempotent methods get a route of their own (see retry-methods.ts)
//   timeouts.request               route timeout and max_stream_duration (the default when the rule sets none)
//   timeouts.streamIdle            route idle_timeout (the stream idle timeout)
//   timeouts.idle (own service)    the inbound listener's HCM common_http_protocol_options.idle_timeout
//   rateLimit.local / .global      the callee's inbound HCM: local_ratelimit / ratelimit filters and the
//                                  inbound route's rate_limits (see rate-limit.ts)
//   healthCheck                    cluster health_checks[0] (http/tcp/grpc_health_check), sidecars only:
//                                  proxyless gRPC clients do not run active checks
import { HEALTH_CHECK_DEFAULTS, type TrafficPolicySpec } from '../config/kinds';
import type { RequestPolicy } from './backend-policy';
import type { NodeRole } from './types';
import { duration, ENUM, wrap, ZERO_DURATION } from './proto-values';

type Obj = Record<string, unknown>;
type LoadBalancer = NonNullable<TrafficPolicySpec['loadBalancer']>;
type HashOn = NonNullable<LoadBalancer['hashOn']>[number];

const LB_POLICY: Record<LoadBalancer['type'], string> = {
  RoundRobin: 'ROUND_ROBIN',
  LeastRequest: 'LEAST_REQUEST',
  Random: 'RANDOM',
  RingHash: 'RING_HASH',
  Maglev: 'MAGLEV',
};

/**
 * grpc-js accepts only ROUND_ROBIN and RING_HASH in `lb_policy` and rejects
 * the whole cluster otherwise, so a proxyless client gets the nearest policy
 * it has: Maglev is consistent hashing like RingHash; the others round-robin.
 */
const PROXYLESS_LB_POLICY: Record<LoadBalancer['type'], string> = {
  RoundRobin: 'ROUND_ROBIN',
  LeastRequest: 'ROUND_ROBIN',
  Random: 'ROUND_ROBIN',
  RingHash: 'RING_HASH',
  Maglev: 'RING_HASH',
};

/** Retry conditions when a policy sets attempts but no retryOn (Istio's default, valid for HTTP and gRPC). */
export const DEFAULT_RETRY_ON = ['connect-failure', 'refused-stream', 'unavailable', 'cancelled'] as const;

/** Cluster fields of a policy: load balancing, circuit breakers, outlier detection, connect timeout. */
export function clusterPolicyFields(policy: TrafficPolicySpec | undefined, role: NodeRole): Obj {
  const lbType = policy?.loadBalancer?.type ?? 'RoundRobin';
  const lbPolicy = (role === 'proxyless' ? PROXYLESS_LB_POLICY : LB_POLICY)[lbType];
  const fields: Obj = { lb_policy: ENUM.lbPolicy()[lbPolicy] };
  const ring = policy?.loadBalancer?.ringHash;
  if (lbPolicy === 'RING_HASH' && ring) {
    const config: Obj = {};
    if (ring.minimumRingSize !== undefined) config.minimum_ring_size = wrap(ring.minimumRingSize);
    if (ring.maximumRingSize !== undefined) config.maximum_ring_size = wrap(ring.maximumRingSize);
    fields.ring_hash_lb_config = config;
  }
  const pool = policy?.connectionPool;
  if (pool?.connectTimeout) fields.connect_timeout = duration(pool.connectTimeout);
  const breakers = circuitBreakers(policy);
  if (breakers) fields.circuit_breakers = breakers;
  if (policy?.outlierDetection) fields.outlier_detection = outlierDetection(policy.outlierDetection);
  if (policy?.healthCheck && role === 'sidecar') fields.health_checks = [healthCheck(policy.healthCheck)];
  return fields;
}

function circuitBreakers(policy: TrafficPolicySpec | undefined): Obj | undefined {
  const pool = policy?.connectionPool;
  const budget = policy?.retries?.budget;
  const threshold: Obj = {};
  if (pool?.maxConnections !== undefined) threshold.max_connections = wrap(pool.maxConnections);
  if (pool?.maxPendingRequests !== undefined) threshold.max_pending_requests = wrap(pool.maxPendingRequests);
  if (pool?.maxRequests !== undefined) threshold.max_requests = wrap(pool.maxRequests);
  if (pool?.maxRetries !== undefined) threshold.max_retries = wrap(pool.maxRetries);
  if (budget) {
    const retryBudget: Obj = { budget_percent: wrap(budget.percent) };
    // Envoy's floor is a concurrency (retries in flight), the closest it has to a per-second minimum.
    if (budget.minRetriesPerSecond !== undefined) retryBudget.min_retry_concurrency = wrap(budget.minRetriesPerSecond);
    threshold.retry_budget = retryBudget;
  }
  if (Object.keys(threshold).length === 0) return undefined;
  return { thresholds: [{ priority: ENUM.routingPriority().DEFAULT, ...threshold }] };
}

/**
 * Envoy enforces consecutive 5xx and success rate by default (and grpc-js
 * success rate), so each detector is switched on (100) when configured and
 * off (0) when not: the policy says exactly what ejects.
 */
function outlierDetection(od: NonNullable<TrafficPolicySpec['outlierDetection']>): Obj {
  const out: Obj = {};
  if (od.consecutive5xx !== undefined) out.consecutive_5xx = wrap(od.consecutive5xx);
  out.enforcing_consecutive_5xx = wrap(od.consecutive5xx !== undefined ? 100 : 0);
  if (od.consecutiveGatewayErrors !== undefined) {
    out.consecutive_gateway_failure = wrap(od.consecutiveGatewayErrors);
    out.enforcing_consecutive_gateway_failure = wrap(100);
  }
  if (od.interval) out.interval = duration(od.interval);
  if (od.baseEjectionTime) out.base_ejection_time = duration(od.baseEjectionTime);
  if (od.maxEjectionPercent !== undefined) out.max_ejection_percent = wrap(Math.round(od.maxEjectionPercent));
  const sr = od.successRate;
  out.enforcing_success_rate = wrap(sr ? 100 : 0);
  if (sr?.minimumHosts !== undefined) out.success_rate_minimum_hosts = wrap(sr.minimumHosts);
  if (sr?.requestVolume !== undefined) out.success_rate_request_volume = wrap(sr.requestVolume);
  // Envoy and gRPC read the factor in thousandths: 1.9 is 1900.
  if (sr?.stdevFactor !== undefined) out.success_rate_stdev_factor = wrap(Math.round(sr.stdevFactor * 1000));
  const fp = od.failurePercentage;
  if (fp) {
    out.enforcing_failure_percentage = wrap(100);
    if (fp.threshold !== undefined) out.failure_percentage_threshold = wrap(fp.threshold);
    if (fp.minimumHosts !== undefined) out.failure_percentage_minimum_hosts = wrap(fp.minimumHosts);
    if (fp.requestVolume !== undefined) out.failure_percentage_request_volume = wrap(fp.requestVolume);
  }
  return out;
}

/** One envoy.config.core.v3.HealthCheck; expected statuses as [s, s+1) ranges. */
function healthCheck(hc: NonNullable<TrafficPolicySpec['healthCheck']>): Obj {
  const D = HEALTH_CHECK_DEFAULTS;
  const out: Obj = {
    timeout: duration(hc.timeout ?? D.timeout),
    interval: duration(hc.interval ?? D.interval),
    unhealthy_threshold: wrap(hc.unhealthyThreshold ?? D.unhealthyThreshold),
    healthy_threshold: wrap(hc.healthyThreshold ?? D.healthyThreshold),
  };
  if (hc.type === 'http') {
    const http: Obj = { path: hc.path };
    if (hc.expectedStatuses) http.expected_statuses = hc.expectedStatuses.map((s) => ({ start: s, end: s + 1 }));
    out.http_health_check = http;
  } else if (hc.type === 'tcp') {
    out.tcp_health_check = {};
  } else {
    out.grpc_health_check = hc.grpcService ? { service_name: hc.grpcService } : {};
  }
  return out;
}

/** common_http_protocol_options of an HTTP cluster, or undefined when the policy sets none. */
export function commonHttpProtocolOptions(policy: TrafficPolicySpec | undefined): Obj | undefined {
  const out: Obj = {};
  if (policy?.timeouts?.idle) out.idle_timeout = duration(policy.timeouts.idle);
  const perConnection = policy?.connectionPool?.maxRequestsPerConnection;
  if (perConnection !== undefined) out.max_requests_per_connection = wrap(perConnection);
  return Object.keys(out).length ? out : undefined;
}

/** Route hash policies: the first source present in a request decides its hash. */
export function hashPolicies(hashOn: readonly HashOn[]): Obj[] {
  return hashOn.map((h): Obj => {
    if ('header' in h) return { header: { header_name: h.header.toLowerCase() }, terminal: true };
    if ('cookie' in h) {
      const cookie: Obj = { name: h.cookie.name };
      if (h.cookie.ttl) cookie.ttl = duration(h.cookie.ttl);
      return { cookie, terminal: true };
    }
    return { connection_properties: { source_ip: true }, terminal: true };
  });
}

export interface RouteTimeouts {
  request?: string;
  backendRequest?: string;
}

/**
 * RouteAction fields from the rule's timeouts and the called service's policy.
 * With no request timeout anywhere the route says 0 (none): Envoy's implicit
 * 15 s would cut long gRPC streams.
 */
export function routeActionPolicy(
  policy: RequestPolicy | undefined,
  ruleTimeouts: RouteTimeouts | undefined,
  hashOn: readonly HashOn[],
): Obj {
  const out: Obj = {};
  const request = ruleTimeouts?.request ?? policy?.timeouts?.request;
  if (request) {
    const d = duration(request);
    out.timeout = d;
    // What gRPC clients read (gRFC A31); Envoy caps the stream with it as well.
    out.max_stream_duration = { max_stream_duration: d };
  } else {
    out.timeout = ZERO_DURATION;
  }
  if (policy?.timeouts?.streamIdle) out.idle_timeout = duration(policy.timeouts.streamIdle);
  const retry = retryPolicy(policy?.retries, ruleTimeouts?.backendRequest);
  if (retry) out.retry_policy = retry;
  if (hashOn.length) out.hash_policy = hashPolicies(hashOn);
  return out;
}

function retryPolicy(retries: TrafficPolicySpec['retries'], backendRequest: string | undefined): Obj | undefined {
  const perTry = backendRequest ?? retries?.perTryTimeout;
  if (!retries || retries.attempts === 0) {
    // Only a per-attempt timeout: no retry_on, so nothing is retried (and num_retries
    // stays unset: grpc-js rejects 0).
    return perTry ? { per_try_timeout: duration(perTry) } : undefined;
  }
  const retryOn: string[] = [...(retries.retryOn ?? DEFAULT_RETRY_ON)];
  const codes = retries.retriableStatusCodes ?? [];
  if (codes.length && !retryOn.includes('retriable-status-codes')) retryOn.push('retriable-status-codes');
  const out: Obj = { retry_on: retryOn.join(','), num_retries: wrap(retries.attempts) };
  if (perTry) out.per_try_timeout = duration(perTry);
  if (codes.length) out.retriable_status_codes = [...codes];
  if (retries.backoff) {
    const backOff: Obj = { base_interval: duration(retries.backoff.baseInterval) };
    if (retries.backoff.maxInterval) backOff.max_interval = duration(retries.backoff.maxInterval);
    out.retry_back_off = backOff;
  }
  return out;
}
