// Cluster decoding: translator output for every policy knob weft supports,
// hand-written clusters for the rest, one NACK per unsupported or invalid case.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { CLUSTER_DEFAULTS, decodeCluster } from '../../../src/proxy/config/decode-cluster';
import { ADS, anyOf, nack, translated, TYPE_URL, wire, type Obj } from './helpers';

const MESH = `
apiVersion: weft.dev/v1
kind: Service
metadata: { name: web }
spec: { ports: [{ name: http, port: 8080, protocol: http }] }
---
apiVersion: weft.dev/v1
kind: Service
metadata: { name: rpc }
spec: { ports: [{ name: grpc, port: 50051, protocol: grpc }] }
---
apiVersion: weft.dev/v1
kind: Service
metadata: { name: db }
spec: { ports: [{ name: pg, port: 5432, protocol: tcp }] }
---
apiVersion: weft.dev/v1
kind: Service
metadata: { name: ring }
spec: { ports: [{ name: http, port: 80, protocol: http }] }
---
apiVersion: weft.dev/v1
kind: TrafficPolicy
metadata: { name: web }
spec:
  targetRef: { name: web }
  loadBalancer: { type: LeastRequest }
  connectionPool: { maxConnections: 10, maxPendingRequests: 20, maxRequests: 30, maxRetries: 4, connectTimeout: 250ms, maxRequestsPerConnection: 100 }
  timeouts: { idle: 30s }
---
apiVersion: weft.dev/v1
kind: TrafficPolicy
metadata: { name: rpc }
spec: { targetRef: { name: rpc }, loadBalancer: { type: Maglev } }
---
apiVersion: weft.dev/v1
kind: TrafficPolicy
metadata: { name: db }
spec: { targetRef: { name: db }, loadBalancer: { type: Random } }
---
apiVersion: weft.dev/v1
kind: TrafficPolicy
metadata: { name: ring }
spec: { targetRef: { name: ring }, loadBalancer: { type: RingHash, ringHash: { minimumRingSize: 2048, maximumRingSize: 4096 } } }
`;

const cluster = (name: string, yaml = MESH, node: Obj = { service: 'web', appPort: 18080 }) =>
  decodeCluster(translated(yaml, node)(TYPE_URL.Cluster, name));

test('cluster: translator output — EDS clusters with policies, protocols and defaults', () => {
  assert.deepEqual(cluster('outbound|8080||web.default'), {
    cluster: {
      name: 'outbound|8080||web.default',
      discovery: 'EDS',
      edsName: 'outbound|8080||web.default',
      lbPolicy: 'LEAST_REQUEST',
      ringHash: { minRingSize: 1024, maxRingSize: 8_388_608 },
      connectTimeoutMs: 250,
      limits: { maxConnections: 10, maxPendingRequests: 20, maxRequests: 30, maxRetries: 4 },
      protocol: 'http1',
      idleTimeoutMs: 30_000,
      maxRequestsPerConnection: 100,
      // Auto mTLS (MeshTLS): endpoints registered with a sidecar get TLS to web's own identity.
      transportSocketMatches: [
        {
          name: 'tlsMode-weft',
          match: { tlsMode: 'weft' },
          tls: {
            certificateSecret: 'default',
            validationSecret: 'ROOTCA',
            sanMatchers: [{ kind: 'exact', value: 'spiffe://cluster.local/ns/default/sa/web' }],
            alpn: ['http/1.1'],
            sni: 'web.default',
          },
        },
      ],
    },
  });
  const rpc = cluster('outbound|50051||rpc.default').cluster;
  assert.deepEqual([rpc.lbPolicy, rpc.protocol, rpc.connectTimeoutMs, rpc.limits, rpc.idleTimeoutMs, rpc.maxRequestsPerConnection], [
    'MAGLEV',
    'http2',
    5000,
    CLUSTER_DEFAULTS.limits,
    3_600_000,
    0,
  ]);
  const db = cluster('outbound|5432||db.default').cluster;
  assert.deepEqual([db.lbPolicy, db.protocol], ['RANDOM', 'http1'], 'a TCP cluster has no protocol options: HTTP/1.1 as in Envoy');
  assert.deepEqual(cluster('outbound|80||ring.default').cluster.ringHash, { minRingSize: 2048, maxRingSize: 4096 });
});

test('cluster: translator output — the STATIC inbound cluster carries its endpoints', () => {
  const inbound = cluster('inbound|8080||');
  assert.equal(inbound.cluster.discovery, 'STATIC');
  assert.equal(inbound.cluster.edsName, 'inbound|8080||');
  assert.equal(inbound.cluster.lbPolicy, 'ROUND_ROBIN');
  assert.deepEqual(inbound.endpoints, {
    clusterName: 'inbound|8080||',
    localities: [
      {
        zone: '',
        priority: 0,
        weight: 1,
        endpoints: [{ address: '127.0.0.1', port: 18080, weight: 1, health: 'healthy', zone: '', key: '127.0.0.1:18080' }],
      },
    ],
  });
});

test('cluster: outlier detection from a TrafficPolicy is decoded with Envoy defaults for what it leaves out; a retry budget is decoded', () => {
  const outlier = MESH.replace('timeouts: { idle: 30s }', 'timeouts: { idle: 30s }\n  outlierDetection: { consecutive5xx: 3, interval: 2s, maxEjectionPercent: 50 }');
  assert.deepEqual(cluster('outbound|8080||web.default', outlier).cluster.outlierDetection, {
    consecutive5xx: 3,
    enforcingConsecutive5xx: 100,
    consecutiveGatewayFailure: 5,
    enforcingConsecutiveGatewayFailure: 0,
    intervalMs: 2000,
    baseEjectionTimeMs: 30_000,
    maxEjectionTimeMs: 300_000,
    maxEjectionPercent: 50,
    alwaysEjectOneHost: false,
    successRate: { enforcing: 0, minimumHosts: 5, requestVolume: 100, stdevFactor: 1900 },
    failurePercentage: { enforcing: 0, minimumHosts: 5, requestVolume: 50, threshold: 85 },
  });
  const hc = MESH.replace('timeouts: { idle: 30s }', 'timeouts: { idle: 30s }\n  healthCheck: { type: http, path: /healthz, expectedStatuses: [200, 204] }');
  assert.deepEqual(cluster('outbound|8080||web.default', hc).cluster.healthCheck, {
    kind: 'http',
    intervalMs: 10_000,
    timeoutMs: 1000,
    unhealthyThreshold: 3,
    healthyThreshold: 1,
    path: '/healthz',
    host: 'web.default', // the translator's, not the cluster name (no valid authority)
    expectedStatuses: [[200, 201], [204, 205]],
  });
  const budget = MESH.replace('timeouts: { idle: 30s }', 'timeouts: { idle: 30s }\n  retries: { attempts: 0, budget: { percent: 20 } }');
  assert.deepEqual(cluster('outbound|8080||web.default', budget).cluster.retryBudget, { percent: 20, minConcurrency: 3 });
  assert.equal(cluster('outbound|8080||web.default').cluster.retryBudget, undefined);
  const floor = MESH.replace('timeouts: { idle: 30s }', 'timeouts: { idle: 30s }\n  retries: { attempts: 2, budget: { percent: 5, minRetriesPerSecond: 1 } }');
  assert.deepEqual(cluster('outbound|8080||web.default', floor).cluster.retryBudget, { percent: 5, minConcurrency: 1 });
  assert.equal(
    nack(() => decode(eds({ circuit_breakers: { thresholds: [{ retry_budget: { budget_percent: { value: 150 } } }] } })), 'E_CONFIG_INVALID'),
    'Cluster "c": circuit_breakers.thresholds[0].retry_budget.budget_percent must be 0-100, got 150',
  );
});

const HPO_KEY = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';
const hpo = (options: Obj) => ({ [HPO_KEY]: anyOf(TYPE_URL.HttpProtocolOptions, options) });
const eds = (extra: Obj = {}): Obj => ({ name: 'c', type: 'EDS', eds_cluster_config: { eds_config: ADS }, ...extra });
const decode = (c: Obj) => decodeCluster(wire(TYPE_URL.Cluster, c));
const HC: Obj = { timeout: { seconds: 1 }, interval: { seconds: 5 }, unhealthy_threshold: { value: 2 }, healthy_threshold: { value: 1 }, tcp_health_check: {} };

test('cluster: hand-written — defaults, service_name, self config source, HIGH thresholds, accepted no-ops', () => {
  const c = decode(eds({ alt_stat_name: 'x', metadata: {} })).cluster;
  assert.deepEqual(c, {
    name: 'c',
    discovery: 'EDS',
    edsName: 'c',
    lbPolicy: 'ROUND_ROBIN',
    ringHash: CLUSTER_DEFAULTS.ringHash,
    connectTimeoutMs: 5000,
    limits: CLUSTER_DEFAULTS.limits,
    protocol: 'http1',
    idleTimeoutMs: 3_600_000,
    maxRequestsPerConnection: 0,
  });
  assert.equal(decode(eds({ eds_cluster_config: { eds_config: { self: {} }, service_name: 'svc' } })).cluster.edsName, 'svc');
  const limits = decode(
    eds({
      circuit_breakers: {
        thresholds: [
          { priority: 'HIGH', max_connections: { value: 1 } },
          { max_requests: { value: 7 }, track_remaining: true },
          { max_requests: { value: 9 } },
        ],
      },
    }),
  ).cluster.limits;
  assert.deepEqual(limits, { ...CLUSTER_DEFAULTS.limits, maxRequests: 7 }, 'HIGH is unused; the first DEFAULT counts');
  const h2 = decode(
    eds({ typed_extension_protocol_options: hpo({ explicit_http_config: { http2_protocol_options: {} }, common_http_protocol_options: { idle_timeout: { seconds: 0 } } }) }),
  ).cluster;
  assert.deepEqual([h2.protocol, h2.idleTimeoutMs], ['http2', 0], 'idle_timeout 0 disables it');
  const s = decode({ name: 's', connect_timeout: { nanos: 1 } });
  assert.deepEqual([s.cluster.discovery, s.cluster.connectTimeoutMs, s.endpoints], ['STATIC', 1, { clusterName: 's', localities: [] }]);
  assert.equal(decode(eds({ load_assignment: { cluster_name: 'c' } })).endpoints, undefined, 'an EDS cluster ignores load_assignment, as Envoy does');
});

const upstream = (extra: Obj, validation: Obj = {}) => ({
  name: 'envoy.transport_sockets.tls',
  typed_config: anyOf(TYPE_URL.UpstreamTlsContext, {
    sni: 'x',
    common_tls_context: {
      tls_certificate_sds_secret_configs: [{ name: 'default', sds_config: ADS }],
      combined_validation_context: { default_validation_context: validation, validation_context_sds_secret_config: { name: 'ROOTCA', sds_config: ADS } },
    },
    ...extra,
  }),
});

test('cluster: NACK for every field outside the subset, naming it', () => {
  const tls = { name: 'envoy.transport_sockets.tls', typed_config: anyOf(TYPE_URL.Secret, {}) };
  const cases: [Obj, string][] = [
    [eds({ outlier_detection: { consecutive_local_origin_failure: { value: 10 } } }), 'outlier_detection.consecutive_local_origin_failure'],
    [eds({ outlier_detection: { split_external_local_origin_errors: true } }), 'outlier_detection.split_external_local_origin_errors'],
    [eds({ health_checks: [{ ...HC, no_traffic_interval: { seconds: 1 } }] }), 'health_checks[0].no_traffic_interval'],
    [eds({ health_checks: [HC, HC] }), 'health_checks[1]'],
    [eds({ health_checks: [{ ...HC, tcp_health_check: { send: { text: '00' } } }] }), 'health_checks[0].tcp_health_check.send'],
    [eds({ health_checks: [{ ...HC, tcp_health_check: undefined, http_health_check: { path: '/', method: 'POST' } }] }), 'health_checks[0].http_health_check.method POST'],
    [eds({ transport_socket: tls }), 'transport_socket'],
    [eds({ transport_socket_matches: [{ name: 'm', match: {}, transport_socket: tls }] }), `transport_socket_matches[0].transport_socket.typed_config (${TYPE_URL.Secret})`],
    [eds({ transport_socket_matches: [{ name: 'm', transport_socket: upstream({ allow_renegotiation: true }) }] }), 'transport_socket_matches[0].transport_socket.typed_config.allow_renegotiation'],
    [eds({ transport_socket_matches: [{ name: 'm', transport_socket: upstream({}, { match_typed_subject_alt_names: [{ san_type: 'DNS', matcher: { exact: 'a' } }] }) }] }), 'transport_socket_matches[0].transport_socket.typed_config.common_tls_context.combined_validation_context.default_validation_context.match_typed_subject_alt_names[0].san_type DNS'],
    [eds({ transport_socket_matches: [{ name: 'm', transport_socket: upstream({}, { match_typed_subject_alt_names: [{ san_type: 'URI', matcher: { suffix: 'a' } }] }) }] }), 'transport_socket_matches[0].transport_socket.typed_config.common_tls_context.combined_validation_context.default_validation_context.match_typed_subject_alt_names[0].matcher.suffix'],
    [eds({ transport_socket_matches: [{ name: 'm', transport_socket: upstream({}, { crl: { inline_string: 'x' } }) }] }), 'transport_socket_matches[0].transport_socket.typed_config.common_tls_context.combined_validation_context.default_validation_context.crl'],
    [eds({ transport_socket_matches: [{ name: 'm', match: { fields: { n: { numberValue: 1 } } }, transport_socket: upstream({}) }] }), 'transport_socket_matches[0].match.n'],
    [eds({ maglev_lb_config: { table_size: { value: 7 } } }), 'maglev_lb_config'],
    [eds({ least_request_lb_config: { choice_count: { value: 3 } } }), 'least_request_lb_config'],
    [eds({ common_lb_config: { healthy_panic_threshold: { value: 10 } } }), 'common_lb_config'],
    [eds({ lb_subset_config: {} }), 'lb_subset_config'],
    [eds({ load_balancing_policy: {} }), 'load_balancing_policy'],
    [eds({ upstream_connection_options: {} }), 'upstream_connection_options'],
    [eds({ http2_protocol_options: {} }), 'http2_protocol_options'],
    [eds({ max_requests_per_connection: { value: 1 } }), 'max_requests_per_connection'],
    [eds({ dns_lookup_family: 'V4_ONLY' }), 'dns_lookup_family'],
    [eds({ cluster_type: { name: 'envoy.clusters.aggregate' } }), 'cluster_type'],
    [eds({ circuit_breakers: { per_host_thresholds: [{ max_connections: { value: 1 } }] } }), 'circuit_breakers.per_host_thresholds'],
    [eds({ circuit_breakers: { thresholds: [{ max_connection_pools: { value: 1 } }] } }), 'circuit_breakers.thresholds[0].max_connection_pools'],
    [eds({ type: 'STRICT_DNS' }), 'type STRICT_DNS'],
    [eds({ type: 'LOGICAL_DNS' }), 'type LOGICAL_DNS'],
    [eds({ type: 'ORIGINAL_DST' }), 'type ORIGINAL_DST'],
    [eds({ lb_policy: 'CLUSTER_PROVIDED' }), 'lb_policy CLUSTER_PROVIDED'],
    [eds({ lb_policy: 'RING_HASH', ring_hash_lb_config: { hash_function: 'MURMUR_HASH_2' } }), 'ring_hash_lb_config.hash_function MURMUR_HASH_2'],
    [eds({ eds_cluster_config: { eds_config: { path_config_source: { path: '/x' } } } }), 'eds_cluster_config.eds_config.path_config_source'],
    [eds({ typed_extension_protocol_options: { 'envoy.extensions.upstreams.tcp.v3.TcpProtocolOptions': anyOf(TYPE_URL.Router, {}) } }), 'typed_extension_protocol_options["envoy.extensions.upstreams.tcp.v3.TcpProtocolOptions"]'],
    [eds({ typed_extension_protocol_options: hpo({ auto_config: {} }) }), `typed_extension_protocol_options["${HPO_KEY}"].auto_config`],
    [eds({ typed_extension_protocol_options: hpo({ explicit_http_config: { http3_protocol_options: {} } }) }), `typed_extension_protocol_options["${HPO_KEY}"].explicit_http_config.http3_protocol_options`],
    [eds({ typed_extension_protocol_options: hpo({ explicit_http_config: { http_protocol_options: { accept_http_10: true } } }) }), `typed_extension_protocol_options["${HPO_KEY}"].explicit_http_config.http_protocol_options.accept_http_10`],
    [eds({ typed_extension_protocol_options: hpo({ explicit_http_config: { http2_protocol_options: { max_concurrent_streams: { value: 10 } } } }) }), `typed_extension_protocol_options["${HPO_KEY}"].explicit_http_config.http2_protocol_options.max_concurrent_streams`],
    [eds({ typed_extension_protocol_options: hpo({ explicit_http_config: { http_protocol_options: {} }, common_http_protocol_options: { max_headers_count: { value: 10 } } }) }), `typed_extension_protocol_options["${HPO_KEY}"].common_http_protocol_options.max_headers_count`],
    [eds({ typed_extension_protocol_options: hpo({ explicit_http_config: { http_protocol_options: {} }, http_filters: [{ name: 'x' }] }) }), `typed_extension_protocol_options["${HPO_KEY}"].http_filters`],
  ];
  for (const [c, path] of cases) {
    const message = nack(() => decode(c));
    assert.ok(message.startsWith(`Cluster "c": ${path} `), `expected ${path}, got: ${message}`);
    assert.match(message, /not supported by weft proxy yet/);
  }
});

test('cluster: NACK for invalid values', () => {
  const cases: [Obj, string][] = [
    [eds({ connect_timeout: { seconds: 0 } }), 'connect_timeout must be above 0'],
    [eds({ connect_timeout: { seconds: -1 } }), 'connect_timeout must be a non-negative duration'],
    [eds({ ring_hash_lb_config: { minimum_ring_size: { value: 10 }, maximum_ring_size: { value: 5 } } }), 'ring_hash_lb_config.minimum_ring_size must be 1-5, got 10'],
    [eds({ ring_hash_lb_config: { maximum_ring_size: { value: 8_388_609 } } }), 'ring_hash_lb_config.maximum_ring_size must be at most 8388608'],
    [{ name: 'c', type: 'EDS' }, 'eds_cluster_config is required for an EDS cluster'],
    [eds({ outlier_detection: { interval: { seconds: 0 } } }), 'outlier_detection.interval must be above 0'],
    [eds({ outlier_detection: { max_ejection_percent: { value: 101 } } }), 'outlier_detection.max_ejection_percent must be 0-100, got 101'],
    [eds({ outlier_detection: { enforcing_success_rate: { value: 200 } } }), 'outlier_detection.enforcing_success_rate must be 0-100, got 200'],
    [eds({ outlier_detection: { base_ejection_time: { seconds: 60 }, max_ejection_time: { seconds: 30 } } }), 'outlier_detection.max_ejection_time must be at least base_ejection_time'],
    [eds({ health_checks: [{ ...HC, interval: { seconds: 0 } }] }), 'health_checks[0].interval must be above 0'],
    [eds({ health_checks: [{ ...HC, timeout: undefined }] }), 'health_checks[0].timeout is required'],
    [eds({ health_checks: [{ ...HC, unhealthy_threshold: { value: 0 } }] }), 'health_checks[0].unhealthy_threshold must be above 0'],
    [eds({ health_checks: [{ ...HC, tcp_health_check: undefined }] }), 'health_checks[0].health_checker needs'],
    [eds({ health_checks: [{ ...HC, tcp_health_check: undefined, http_health_check: { path: 'x' } }] }), 'health_checks[0].http_health_check.path must be an absolute path'],
    [eds({ health_checks: [{ ...HC, tcp_health_check: undefined, http_health_check: { path: '/', expected_statuses: [{ start: 300, end: 200 }] } }] }), 'health_checks[0].http_health_check.expected_statuses[0] must be a range'],
    [eds({ typed_extension_protocol_options: hpo({}) }), `typed_extension_protocol_options["${HPO_KEY}"] needs explicit_http_config`],
    [eds({ typed_extension_protocol_options: { [HPO_KEY]: anyOf(TYPE_URL.Router, {}) } }), `typed_extension_protocol_options["${HPO_KEY}"] (${TYPE_URL.Router}) is not supported`],
  ];
  for (const [c, expected] of cases) {
    const message = nack(() => decode(c), expected.endsWith('is not supported') ? 'E_CONFIG_UNSUPPORTED' : 'E_CONFIG_INVALID');
    assert.ok(message.startsWith(`Cluster "c": ${expected}`), `expected ${expected}, got: ${message}`);
  }
  assert.equal(nack(() => decode({ type: 'EDS' }), 'E_CONFIG_INVALID'), 'Cluster "": name is required');
});
