// The proxy's typed configuration: what the xDS client decodes Envoy v3
// resources into, and all the data plane reads. Plain, validated, ready to
// use on the hot path (regexes compiled, durations in ms, weights summed).
// An Envoy field that would change behaviour and is not listed here is not
// supported: the decoder NACKs it by name.

import type { RouteRateLimit } from '../filters/rate-limit-actions';
import type { NetworkRbacConfig } from '../tcp/network-rbac';

export interface ProxyConfig {
  listeners: Map<string, ListenerConfig>;
  routeTables: Map<string, RouteTable>;
  clusters: Map<string, ClusterConfig>;
  /** Endpoints by cluster name (EDS service_name, or the cluster's inline load_assignment). */
  endpoints: Map<string, EndpointSet>;
  /** The version of each type the config was built from, for /config_dump. */
  versions: Record<'LDS' | 'RDS' | 'CDS' | 'EDS', string>;
}

// ---- listeners ----

export interface ListenerConfig {
  name: string;
  address: string;
  port: number;
  direction: 'inbound' | 'outbound' | 'unspecified';
  /** Filter chains chosen by the connection's original destination port; `defaultChain` otherwise. */
  chains: FilterChain[];
  defaultChain?: FilterChain;
  /** listener_filters tls_inspector: the first byte says TLS (0x16) or plaintext, and chains match on it. */
  tlsInspector?: { timeoutMs: number; continueOnTimeout: boolean };
  /** false (bind_to_port): no socket; connections come only by ListenerManager.handOver. */
  bindToPort?: false;
}

export interface FilterChain {
  name: string;
  /** Match on the original destination port (interception); absent: any. */
  destinationPort?: number;
  /** filter_chain_match.transport_protocol, as tls_inspector tells it; absent: any. */
  transportProtocol?: 'tls' | 'raw_buffer';
  /** transport_socket DownstreamTlsContext: the chain terminates mTLS. */
  tls?: DownstreamTlsConfig;
  network: HttpNetworkFilter | TcpNetworkFilter;
}

/** Envoy's SAN matcher on the peer certificate's URI SANs (match_typed_subject_alt_names). */
export interface SanMatcher {
  kind: 'exact' | 'prefix';
  value: string;
}

/** What both ends of an mTLS connection present and verify. */
export interface TlsCommonConfig {
  /** SDS names (tls/secret-store.ts): our certificate, and the trust bundle the peer's chain must end in. */
  certificateSecret: string;
  validationSecret: string;
  /** The peer's URI SAN must match one of these; empty: any certificate of the trust bundle. */
  sanMatchers: SanMatcher[];
  alpn: string[];
}

export interface DownstreamTlsConfig extends TlsCommonConfig {
  /** Always true: a caller without a certificate is refused. */
  requireClientCertificate: true;
}

export interface UpstreamTlsConfig extends TlsCommonConfig {
  sni: string;
}

/** One of a cluster's transport_socket_matches: endpoints whose metadata has every key of `match` use `tls`. */
export interface TransportSocketMatch {
  name: string;
  match: Record<string, string>;
  tls: UpstreamTlsConfig;
}

export interface HttpNetworkFilter {
  kind: 'http';
  statPrefix: string;
  /** RDS name, or the inline table (inbound listeners carry theirs inline). */
  routeTableName?: string;
  routeTable?: RouteTable;
  /** HTTP filters before the router, in order (the router itself is implied). */
  httpFilters: HttpFilterConfig[];
  /** A request with no activity either way for this long ends (408 SI, or a reset once answered); 0 = never. */
  streamIdleTimeoutMs: number;
  /** A downstream connection with no request in flight and no bytes for this long is closed; 0 = never. */
  idleTimeoutMs: number;
}

export interface HttpFilterConfig {
  /** The HttpFilter's name: the key of its per-route configs. */
  name: string;
  /** Type URL of its typed_config: which filter it is (see filters/catalog.ts). */
  typeUrl: string;
  /** What that filter type's decoder made of it. */
  config: unknown;
}

export interface TcpNetworkFilter {
  kind: 'tcp';
  statPrefix: string;
  clusters: WeightedCluster[];
  totalWeight: number;
  idleTimeoutMs?: number;
  /** envoy.filters.network.rbac filters before tcp_proxy, in order. */
  rbac?: NetworkRbacConfig[];
}

// ---- routes ----

export interface RouteTable {
  name: string;
  virtualHosts: VirtualHost[];
}

export interface VirtualHost {
  name: string;
  /** As in Envoy: exact names, "*.suffix", "prefix*", "*"; lower case. */
  domains: string[];
  routes: Route[];
}

export interface Route {
  name: string;
  match: RouteMatch;
  action: RouteAction | RedirectAction | DirectResponseAction;
  requestHeadersToAdd: HeaderToAdd[];
  requestHeadersToRemove: string[];
  responseHeadersToAdd: HeaderToAdd[];
  responseHeadersToRemove: string[];
  /** typed_per_filter_config, decoded, by HTTP filter name; absent when the route has none. */
  perFilterConfig?: Record<string, unknown>;
}

export interface RouteMatch {
  /** exact `path`, `prefix`, `pathSeparatedPrefix` (whole segments) or a `regex` over the path (without query). */
  path:
    | { kind: 'prefix'; value: string }
    | { kind: 'pathSeparatedPrefix'; value: string }
    | { kind: 'exact'; value: string }
    | { kind: 'regex'; regex: RegExp };
  caseSensitive: boolean;
  headers: HeaderMatcher[];
  queryParams: QueryMatcher[];
}

export interface HeaderMatcher {
  /** Lower case. `:method` and `:authority` match the request line and host. */
  name: string;
  kind: 'exact' | 'regex' | 'present' | 'prefix' | 'suffix' | 'contains';
  value?: string;
  regex?: RegExp;
  invert: boolean;
}

export interface QueryMatcher {
  name: string;
  kind: 'exact' | 'regex' | 'present';
  value?: string;
  regex?: RegExp;
}

export interface HeaderToAdd {
  name: string;
  value: string;
  /** append: add another value; overwrite: replace what the request had. */
  append: boolean;
}

export interface WeightedCluster {
  name: string;
  weight: number;
}

export interface RouteAction {
  kind: 'route';
  clusters: WeightedCluster[];
  totalWeight: number;
  /** 0 = no timeout. */
  timeoutMs: number;
  /** The route's stream idle timeout (idle_timeout), overriding the listener's; 0 = none. */
  idleTimeoutMs?: number;
  retry?: RetryPolicy;
  hashPolicies: HashPolicy[];
  prefixRewrite?: string;
  /** `substitution` in String.prototype.replace syntax ($1, $&, $$), as re2Substitution() produces. */
  regexRewrite?: { regex: RegExp; substitution: string };
  hostRewrite?: string;
  mirrors: { cluster: string; percent: number }[];
  /** rate_limits: descriptor actions for the rate limit filters (filters/rate-limit-actions.ts). */
  rateLimits?: RouteRateLimit[];
}

export interface RetryPolicy {
  /** Conditions, as Envoy's retry_on tokens ("5xx", "reset", "unavailable", …). */
  retryOn: Set<string>;
  numRetries: number;
  /** 0 = none (the route timeout bounds every attempt). */
  perTryTimeoutMs: number;
  backoff: { baseMs: number; maxMs: number };
  retriableStatusCodes: number[];
}

export type HashPolicy =
  | { kind: 'header'; name: string; terminal: boolean }
  | { kind: 'cookie'; name: string; ttlMs?: number; terminal: boolean }
  | { kind: 'sourceIp'; terminal: boolean };

export interface RedirectAction {
  kind: 'redirect';
  scheme?: string;
  host?: string;
  port?: number;
  path?: string;
  prefixRewrite?: string;
  /** Gateway API ReplacePrefixMatch "/" on a longer prefix ("/a/b" → "/b"): String.prototype.replace syntax. */
  regexRewrite?: { regex: RegExp; substitution: string };
  status: 301 | 302 | 303 | 307 | 308;
}

export interface DirectResponseAction {
  kind: 'direct';
  status: number;
  body?: string;
}

// ---- clusters and endpoints ----

export type LbPolicy = 'ROUND_ROBIN' | 'LEAST_REQUEST' | 'RANDOM' | 'RING_HASH' | 'MAGLEV';

export interface ClusterConfig {
  name: string;
  /** EDS: endpoints come by this name; STATIC: inline. */
  discovery: 'EDS' | 'STATIC';
  edsName: string;
  lbPolicy: LbPolicy;
  ringHash: { minRingSize: number; maxRingSize: number };
  connectTimeoutMs: number;
  /** The protocol spoken to the endpoints. */
  protocol: 'http1' | 'http2';
  limits: CircuitBreakerLimits;
  /** 0 = unlimited. */
  maxRequestsPerConnection: number;
  /** Idle upstream connections are closed after this; 0 = never (Envoy's default is 1 h). */
  idleTimeoutMs: number;
  /** circuit_breakers retry_budget: retries in flight ≤ percent % of active requests, at least minConcurrency. */
  retryBudget?: { percent: number; minConcurrency: number };
  /** outlier_detection: passive ejection of misbehaving endpoints (upstream/outlier-detector.ts). */
  outlierDetection?: OutlierDetectionConfig;
  /** health_checks[0]: active checks of every endpoint (upstream/health-checker.ts). */
  healthCheck?: HealthCheckConfig;
  /** transport_socket_matches (auto mTLS); an endpoint no entry matches is plaintext. */
  transportSocketMatches?: TransportSocketMatch[];
}

/** Envoy's outlier_detection; percentages 0-100, times in ms. */
export interface OutlierDetectionConfig {
  consecutive5xx: number;
  enforcingConsecutive5xx: number;
  consecutiveGatewayFailure: number;
  enforcingConsecutiveGatewayFailure: number;
  intervalMs: number;
  baseEjectionTimeMs: number;
  maxEjectionTimeMs: number;
  maxEjectionPercent: number;
  alwaysEjectOneHost: boolean;
  successRate: { enforcing: number; minimumHosts: number; requestVolume: number; stdevFactor: number };
  /** Eject a host whose share of failed requests in an interval is at least `threshold` %. */
  failurePercentage: { enforcing: number; minimumHosts: number; requestVolume: number; threshold: number };
}

export interface HealthCheckConfig {
  kind: 'http' | 'tcp' | 'grpc';
  intervalMs: number;
  timeoutMs: number;
  unhealthyThreshold: number;
  healthyThreshold: number;
  /** http: the GET path and Host; statuses accepted, as [start, end) ranges (default [200, 201)). */
  path?: string;
  host?: string;
  expectedStatuses?: [number, number][];
  /** grpc: the service name asked about ('' = the server as a whole), and the :authority. */
  serviceName?: string;
  authority?: string;
}

/** Envoy's defaults: 1024 each, 3 retries. */
export interface CircuitBreakerLimits {
  maxConnections: number;
  maxPendingRequests: number;
  maxRequests: number;
  maxRetries: number;
}

export interface EndpointSet {
  clusterName: string;
  /** Localities ordered by priority (0 first). */
  localities: Locality[];
}

export interface Locality {
  zone: string;
  priority: number;
  weight: number;
  endpoints: Endpoint[];
}

export interface Endpoint {
  address: string;
  port: number;
  weight: number;
  health: 'healthy' | 'unhealthy' | 'draining' | 'unknown';
  zone: string;
  /** "address:port", the key of pools and stats. */
  key: string;
  /** filter_metadata["envoy.transport_socket_match"] (string values), for the cluster's transport_socket_matches. */
  socketMatch?: Record<string, string>;
}
