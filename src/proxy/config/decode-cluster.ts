// envoy.config.cluster.v3.Cluster → ClusterConfig (plus, for a STATIC
// cluster, the EndpointSet of its inline load_assignment).
//
// Supported subset (anything else that changes behaviour is a NACK naming it):
//   Cluster            name, type EDS | STATIC (the default), eds_cluster_config {eds_config
//                      ads|self, service_name (default: the cluster name)}, load_assignment
//                      (STATIC; an EDS cluster ignores it, as Envoy does), lb_policy
//                      ROUND_ROBIN | LEAST_REQUEST | RANDOM | RING_HASH | MAGLEV,
//                      ring_hash_lb_config {minimum_ring_size, maximum_ring_size, XX_HASH},
//                      connect_timeout (default 5 s), circuit_breakers.thresholds
//                      {priority, max_connections, max_pending_requests, max_requests,
//                      max_retries, retry_budget {budget_percent (default 20), min_retry_concurrency
//                      (default 3)}; track_remaining accepted}, typed_extension_protocol_options
//                      (alt_stat_name, metadata accepted)
//   circuit breakers   the DEFAULT priority's thresholds apply (Envoy's defaults: 1024 each,
//                      3 retries); HIGH thresholds are accepted and unused, as weft routes
//                      never run at HIGH priority (RouteAction.priority is not supported)
//   HttpProtocolOptions (key envoy.extensions.upstreams.http.v3.HttpProtocolOptions)
//                      explicit_http_config http_protocol_options {} → http1 |
//                      http2_protocol_options {} → http2; common_http_protocol_options
//                      {idle_timeout (default 1 h; 0 never), max_requests_per_connection}
//                      No protocol options: HTTP/1.1, as in Envoy.
//   outlier_detection, health_checks   see decode-endpoint-health.ts
//   transport_socket_matches           UpstreamTlsContext per endpoint metadata (auto mTLS), see decode-tls.ts
// Not supported (NACK): DNS and ORIGINAL_DST types, cluster_type, transport_socket (the cluster-wide
// socket; auto mTLS uses transport_socket_matches), per_host_thresholds,
// maglev/least_request/round_robin lb configs, load_balancing_policy,
// common_lb_config, lb_subset_config, upstream_connection_options, HTTP/3, auto_config,
// use_downstream_protocol_config, HTTP/1 and HTTP/2 codec options, …
import { decodeLoadAssignment } from './decode-endpoints';
import { decodeHealthChecks, decodeOutlierDetection } from './decode-endpoint-health';
import { TYPE_URL } from '../../xds/type-urls';
import { FieldPath, onlyFields } from './nack';
import { decodeTransportSocketMatches } from './decode-tls';
import { durationMs, requireAdsConfigSource, u32, unpackAny, type Obj } from './read-proto';
import type { CircuitBreakerLimits, ClusterConfig, EndpointSet, LbPolicy } from './types';

const T = 'envoy.config.cluster.v3.Cluster';

export const HTTP_PROTOCOL_OPTIONS_KEY = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';

/** Envoy's defaults. */
export const CLUSTER_DEFAULTS = {
  connectTimeoutMs: 5000,
  idleTimeoutMs: 3_600_000,
  limits: { maxConnections: 1024, maxPendingRequests: 1024, maxRequests: 1024, maxRetries: 3 } as Readonly<CircuitBreakerLimits>,
  ringHash: { minRingSize: 1024, maxRingSize: 8_388_608 },
} as const;

const LB_POLICIES: ReadonlySet<string> = new Set<LbPolicy>(['ROUND_ROBIN', 'LEAST_REQUEST', 'RANDOM', 'RING_HASH', 'MAGLEV']);

export interface DecodedCluster {
  cluster: ClusterConfig;
  /** A STATIC cluster's endpoints (keyed by the cluster name in ProxyConfig.endpoints). */
  endpoints?: EndpointSet;
}

export function decodeCluster(msg: Obj): DecodedCluster {
  const name: string = msg.name ?? '';
  const at = new FieldPath('Cluster', name);
  onlyFields(at, T, msg, [
    'name',
    'alt_stat_name',
    'type',
    'eds_cluster_config',
    'load_assignment',
    'connect_timeout',
    'lb_policy',
    'ring_hash_lb_config',
    'circuit_breakers',
    'typed_extension_protocol_options',
    'metadata',
    'outlier_detection',
    'health_checks',
    'transport_socket_matches',
  ]);
  if (!name) at.field('name').invalid('is required');
  const type: string = msg.type ?? 'STATIC';
  if (type !== 'EDS' && type !== 'STATIC') at.field('type').unsupported(`${type} is not supported by weft proxy yet (supported: EDS, STATIC)`);

  const lbPolicy: string = msg.lb_policy ?? 'ROUND_ROBIN';
  if (!LB_POLICIES.has(lbPolicy)) at.field('lb_policy').unsupported(`${lbPolicy} is not supported by weft proxy yet`);
  const connectTimeoutMs = durationMs(at.field('connect_timeout'), msg.connect_timeout, CLUSTER_DEFAULTS.connectTimeoutMs);
  if (connectTimeoutMs === 0) at.field('connect_timeout').invalid('must be above 0');

  const cluster: ClusterConfig = {
    name,
    discovery: type as ClusterConfig['discovery'],
    edsName: name,
    lbPolicy: lbPolicy as LbPolicy,
    ringHash: ringHash(at.field('ring_hash_lb_config'), msg.ring_hash_lb_config),
    connectTimeoutMs,
    ...limits(at.field('circuit_breakers'), msg.circuit_breakers),
    ...protocolOptions(at.field('typed_extension_protocol_options'), msg.typed_extension_protocol_options ?? {}),
  };
  if (msg.outlier_detection) cluster.outlierDetection = decodeOutlierDetection(at.field('outlier_detection'), msg.outlier_detection);
  const healthCheck = decodeHealthChecks(at.field('health_checks'), msg.health_checks ?? []);
  if (healthCheck) cluster.healthCheck = healthCheck;
  const matches = decodeTransportSocketMatches(at.field('transport_socket_matches'), msg.transport_socket_matches ?? []);
  if (matches.length) cluster.transportSocketMatches = matches;
  if (type === 'EDS') {
    const here = at.field('eds_cluster_config');
    if (!msg.eds_cluster_config) here.invalid('is required for an EDS cluster');
    onlyFields(here, `${T}.EdsClusterConfig`, msg.eds_cluster_config, ['eds_config', 'service_name']);
    requireAdsConfigSource(here.field('eds_config'), msg.eds_cluster_config.eds_config);
    cluster.edsName = msg.eds_cluster_config.service_name || name;
    return { cluster };
  }
  const endpoints = msg.load_assignment
    ? decodeLoadAssignment(at.field('load_assignment'), msg.load_assignment, name)
    : { clusterName: name, localities: [] };
  return { cluster, endpoints };
}

function ringHash(at: FieldPath, r: Obj | undefined): ClusterConfig['ringHash'] {
  if (!r) return { ...CLUSTER_DEFAULTS.ringHash };
  onlyFields(at, `${T}.RingHashLbConfig`, r, ['minimum_ring_size', 'maximum_ring_size', 'hash_function']);
  if (r.hash_function !== undefined && r.hash_function !== 'XX_HASH') at.field('hash_function').unsupported(`${r.hash_function} is not supported by weft proxy yet`);
  const max = CLUSTER_DEFAULTS.ringHash.maxRingSize;
  const minRingSize = u32(r.minimum_ring_size, CLUSTER_DEFAULTS.ringHash.minRingSize);
  const maxRingSize = u32(r.maximum_ring_size, max);
  if (maxRingSize > max) at.field('maximum_ring_size').invalid(`must be at most ${max}`);
  if (minRingSize < 1 || minRingSize > maxRingSize) at.field('minimum_ring_size').invalid(`must be 1-${maxRingSize}, got ${minRingSize}`);
  return { minRingSize, maxRingSize };
}

function limits(at: FieldPath, cb: Obj | undefined): Pick<ClusterConfig, 'limits' | 'retryBudget'> {
  const out: CircuitBreakerLimits = { ...CLUSTER_DEFAULTS.limits };
  let budget: ClusterConfig['retryBudget'];
  if (!cb) return { limits: out };
  onlyFields(at, 'envoy.config.cluster.v3.CircuitBreakers', cb, ['thresholds']);
  let applied = false;
  (cb.thresholds ?? []).forEach((t: Obj, i: number) => {
    const here = at.field('thresholds').index(i);
    onlyFields(here, 'envoy.config.cluster.v3.CircuitBreakers.Thresholds', t, [
      'priority',
      'max_connections',
      'max_pending_requests',
      'max_requests',
      'max_retries',
      'retry_budget',
      'track_remaining',
    ]);
    // As in Envoy, the first thresholds of a priority count.
    if ((t.priority ?? 'DEFAULT') !== 'DEFAULT' || applied) return;
    applied = true;
    out.maxConnections = u32(t.max_connections, out.maxConnections);
    out.maxPendingRequests = u32(t.max_pending_requests, out.maxPendingRequests);
    out.maxRequests = u32(t.max_requests, out.maxRequests);
    out.maxRetries = u32(t.max_retries, out.maxRetries);
    if (t.retry_budget) budget = retryBudget(here.field('retry_budget'), t.retry_budget);
  });
  return budget ? { limits: out, retryBudget: budget } : { limits: out };
}

/** Envoy's defaults: 20 % of active requests, at least 3 retries in flight. */
function retryBudget(at: FieldPath, b: Obj): { percent: number; minConcurrency: number } {
  onlyFields(at, 'envoy.config.cluster.v3.CircuitBreakers.Thresholds.RetryBudget', b, ['budget_percent', 'min_retry_concurrency']);
  const percent = b.budget_percent ? (b.budget_percent.value ?? 0) : 20;
  if (!(percent >= 0 && percent <= 100)) at.field('budget_percent').invalid(`must be 0-100, got ${percent}`);
  return { percent, minConcurrency: u32(b.min_retry_concurrency, 3) };
}

type ProtocolFields = Pick<ClusterConfig, 'protocol' | 'idleTimeoutMs' | 'maxRequestsPerConnection'>;

function protocolOptions(at: FieldPath, options: Record<string, Obj>): ProtocolFields {
  const out: ProtocolFields = { protocol: 'http1', idleTimeoutMs: CLUSTER_DEFAULTS.idleTimeoutMs, maxRequestsPerConnection: 0 };
  for (const [key, any] of Object.entries(options)) {
    const here = new FieldPath(at.kind, at.resourceName, `${at.path}["${key}"]`);
    if (key !== HTTP_PROTOCOL_OPTIONS_KEY) here.unsupported();
    const { msg } = unpackAny(here, any, [TYPE_URL.HttpProtocolOptions]);
    onlyFields(here, 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions', msg, ['common_http_protocol_options', 'explicit_http_config']);
    if (msg.upstream_protocol_options !== 'explicit_http_config') here.invalid('needs explicit_http_config');
    const explicit = here.field('explicit_http_config');
    onlyFields(explicit, 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions.ExplicitHttpConfig', msg.explicit_http_config, [
      'http_protocol_options',
      'http2_protocol_options',
    ]);
    const config = msg.explicit_http_config;
    if (config.protocol_config === 'http_protocol_options') {
      onlyFields(explicit.field('http_protocol_options'), 'envoy.config.core.v3.Http1ProtocolOptions', config.http_protocol_options, []);
      out.protocol = 'http1';
    } else if (config.protocol_config === 'http2_protocol_options') {
      onlyFields(explicit.field('http2_protocol_options'), 'envoy.config.core.v3.Http2ProtocolOptions', config.http2_protocol_options, []);
      out.protocol = 'http2';
    } else {
      explicit.invalid('needs http_protocol_options or http2_protocol_options');
    }
    const common = msg.common_http_protocol_options;
    if (common) {
      const c = here.field('common_http_protocol_options');
      onlyFields(c, 'envoy.config.core.v3.HttpProtocolOptions', common, ['idle_timeout', 'max_requests_per_connection']);
      out.idleTimeoutMs = durationMs(c.field('idle_timeout'), common.idle_timeout, CLUSTER_DEFAULTS.idleTimeoutMs);
      out.maxRequestsPerConnection = u32(common.max_requests_per_connection, 0);
    }
  }
  return out;
}
