// TrafficPolicy → cluster and route fields, one case per field.
import { describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { assertSubset, meshView, proxyless, resourcesFor, service, sidecar, unpack, type Obj } from './helpers';
import type { NodeInfo } from '../../src/translate/types';

const CLUSTER = 'outbound|50052||pay.default';

function withPolicy(spec: string, node: NodeInfo = sidecar()) {
  const yaml =
    service('pay', 50052, 'grpc') +
    `apiVersion: weft.dev/v1
kind: TrafficPolicy
metadata: { name: pay }
spec:
  targetRef: { kind: Service, name: pay }
${spec
  .split('\n')
  .map((l) => `  ${l}`)
  .join('\n')}
`;
  const d = resourcesFor(meshView(yaml), node);
  const routes =
    node.role === 'sidecar' ? d.routes('outbound', 'pay.default:50052') : d.routes('pay.default:50052', 'pay.default:50052');
  const cluster = d.cluster(CLUSTER);
  const protocol = unpack(cluster.typed_extension_protocol_options['envoy.extensions.upstreams.http.v3.HttpProtocolOptions']);
  return { cluster, route: routes[0].route as Obj, protocol };
}

describe('loadBalancer', () => {
  const cases: [string, string, Obj | undefined][] = [
    ['{ type: RoundRobin }', 'ROUND_ROBIN', undefined],
    ['{ type: LeastRequest }', 'LEAST_REQUEST', undefined],
    ['{ type: Random }', 'RANDOM', undefined],
    ['{ type: Maglev }', 'MAGLEV', undefined],
    [
      '{ type: RingHash, ringHash: { minimumRingSize: 1024, maximumRingSize: 4096 } }',
      'RING_HASH',
      { minimum_ring_size: { value: 1024 }, maximum_ring_size: { value: 4096 } },
    ],
  ];
  for (const [lb, policy, ring] of cases) {
    test(`${lb} → lb_policy ${policy}`, () => {
      const { cluster } = withPolicy(`loadBalancer: ${lb}`);
      // ROUND_ROBIN is the zero value: absent and ROUND_ROBIN are the same.
      assert.equal(cluster.lb_policy ?? 'ROUND_ROBIN', policy);
      if (ring) assertSubset(cluster.ring_hash_lb_config, ring);
      else assert.equal(cluster.ring_hash_lb_config, undefined);
    });
  }

  test('no policy: ROUND_ROBIN, nothing else', () => {
    const d = resourcesFor(meshView(service('pay', 50052, 'grpc')), sidecar());
    const c = d.cluster(CLUSTER);
    assert.equal(c.lb_policy ?? 'ROUND_ROBIN', 'ROUND_ROBIN');
    for (const f of ['circuit_breakers', 'outlier_detection', 'connect_timeout', 'ring_hash_lb_config']) assert.equal(c[f], undefined, f);
  });

  // grpc-js rejects a cluster whose lb_policy is neither ROUND_ROBIN nor RING_HASH.
  const proxylessCases: [string, string][] = [
    ['LeastRequest', 'ROUND_ROBIN'],
    ['Random', 'ROUND_ROBIN'],
    ['Maglev', 'RING_HASH'],
    ['RingHash', 'RING_HASH'],
  ];
  for (const [type, policy] of proxylessCases) {
    test(`proxyless: ${type} → ${policy}`, () => {
      const { cluster } = withPolicy(`loadBalancer: { type: ${type} }`, proxyless());
      assert.equal(cluster.lb_policy ?? 'ROUND_ROBIN', policy);
    });
  }

  test('hashOn → route hash_policy, each terminal so the first present source wins', () => {
    const { route } = withPolicy(`loadBalancer:
  type: RingHash
  hashOn:
    - header: X-User
    - cookie: { name: session, ttl: 1h }
    - sourceIP: true`);
    assertSubset(route.hash_policy, [
      { header: { header_name: 'x-user' }, terminal: true },
      { cookie: { name: 'session', ttl: { seconds: 3600 } }, terminal: true },
      { connection_properties: { source_ip: true }, terminal: true },
    ]);
  });

  test('a canary parent without a policy hashes as its backend says', () => {
    const yaml =
      service('shop', 8080) +
      service('shop-v1', 8080) +
      `apiVersion: weft.dev/v1
kind: TrafficPolicy
metadata: { name: sticky }
spec:
  targetRef: { name: shop-v1 }
  loadBalancer: { type: RingHash, hashOn: [{ header: x-session }] }
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: r }
spec:
  parentRefs: [{ kind: Service, name: shop }]
  rules: [{ backendRefs: [{ name: shop-v1 }] }]
`;
    const d = resourcesFor(meshView(yaml), sidecar());
    const [route] = d.routes('outbound', 'shop.default:8080');
    assertSubset(route.route.hash_policy, [{ header: { header_name: 'x-session' } }]);
    assert.equal(d.cluster('outbound|8080||shop-v1.default').lb_policy, 'RING_HASH');
  });
});

describe('connectionPool', () => {
  test('limits → circuit_breakers.thresholds[DEFAULT]; connectTimeout → connect_timeout', () => {
    const { cluster, protocol } = withPolicy(
      'connectionPool: { maxConnections: 100, maxPendingRequests: 10, maxRequests: 200, maxRetries: 3, connectTimeout: 1s500ms, maxRequestsPerConnection: 50 }',
    );
    assertSubset(cluster.circuit_breakers, {
      thresholds: [
        {
          max_connections: { value: 100 },
          max_pending_requests: { value: 10 },
          max_requests: { value: 200 },
          max_retries: { value: 3 },
        },
      ],
    });
    // DEFAULT is the enum's zero; grpc-js reads max_requests from the DEFAULT threshold.
    assert.equal(cluster.circuit_breakers.thresholds[0].priority ?? 'DEFAULT', 'DEFAULT');
    assertSubset(cluster.connect_timeout, { seconds: 1, nanos: 500_000_000 });
    assertSubset(protocol, {
      common_http_protocol_options: { max_requests_per_connection: { value: 50 } },
      explicit_http_config: { http2_protocol_options: {} },
    });
  });
});

describe('outlierDetection', () => {
  test('consecutive errors and ejection → outlier_detection, success rate off when not asked', () => {
    const { cluster } = withPolicy(
      'outlierDetection: { consecutive5xx: 5, consecutiveGatewayErrors: 3, interval: 10s, baseEjectionTime: 30s, maxEjectionPercent: 50 }',
    );
    assertSubset(cluster.outlier_detection, {
      consecutive_5xx: { value: 5 },
      enforcing_consecutive_5xx: { value: 100 },
      consecutive_gateway_failure: { value: 3 },
      enforcing_consecutive_gateway_failure: { value: 100 },
      interval: { seconds: 10 },
      base_ejection_time: { seconds: 30 },
      max_ejection_percent: { value: 50 },
      // Envoy and gRPC enable success-rate ejection unless enforcing is 0.
      enforcing_success_rate: {},
    });
  });

  test('success rate → success_rate_* with enforcement; consecutive 5xx off when not asked', () => {
    const { cluster } = withPolicy('outlierDetection: { successRate: { minimumHosts: 3, requestVolume: 50, stdevFactor: 1.9 } }');
    assertSubset(cluster.outlier_detection, {
      enforcing_success_rate: { value: 100 },
      success_rate_minimum_hosts: { value: 3 },
      success_rate_request_volume: { value: 50 },
      success_rate_stdev_factor: { value: 1900 },
      enforcing_consecutive_5xx: {},
    });
    assert.equal(cluster.outlier_detection.consecutive_5xx, undefined);
  });
});

describe('retries', () => {
  test('attempts, retryOn, codes, per-try timeout and back-off → retry_policy', () => {
    const { route } = withPolicy(`retries:
  attempts: 3
  retryOn: [unavailable, cancelled, 5xx]
  retriableStatusCodes: [503, 504]
  perTryTimeout: 250ms
  backoff: { baseInterval: 25ms, maxInterval: 250ms }`);
    assertSubset(route.retry_policy, {
      retry_on: 'unavailable,cancelled,5xx,retriable-status-codes',
      num_retries: { value: 3 },
      per_try_timeout: { nanos: 250_000_000 },
      retriable_status_codes: [503, 504],
      retry_back_off: { base_interval: { nanos: 25_000_000 }, max_interval: { nanos: 250_000_000 } },
    });
  });

  test('no retryOn: connect-failure, refused-stream and the retriable gRPC codes', () => {
    const { route } = withPolicy('retries: { attempts: 2 }');
    assertSubset(route.retry_policy, { retry_on: 'connect-failure,refused-stream,unavailable,cancelled', num_retries: { value: 2 } });
  });

  test('attempts 0: no retry policy', () => {
    const { route } = withPolicy('retries: { attempts: 0 }');
    assert.equal(route.retry_policy, undefined);
  });

  test('non-idempotent methods get a route of their own that retries only what never reached the upstream', () => {
    const d = resourcesFor(meshView(service('web', 8080, 'http') + `apiVersion: weft.dev/v1
kind: TrafficPolicy
metadata: { name: web }
spec:
  targetRef: { name: web }
  retries: { attempts: 2, retryOn: [5xx, connect-failure], retriableStatusCodes: [409], perTryTimeout: 1s }
`), sidecar());
    const routes = d.routes('outbound', 'web.default:8080');
    assert.deepEqual(routes.map((r: Obj) => r.name), ['default|non-idempotent', 'default']);
    assertSubset(routes[0].match.headers, [{ name: ':method', string_match: { safe_regex: { regex: '^(POST|PATCH|CONNECT)$' } } }]);
    assertSubset(routes[0].route.retry_policy, { retry_on: 'connect-failure', num_retries: { value: 2 }, per_try_timeout: { seconds: 1 } });
    assert.equal(routes[0].route.retry_policy.retriable_status_codes, undefined);
    assertSubset(routes[1].route.retry_policy, { retry_on: '5xx,connect-failure,retriable-status-codes' });
  });

  test('nonIdempotent: true, gRPC ports, and safe-only conditions: one route', () => {
    const one = (yaml: string, svc: string, port: number) => resourcesFor(meshView(yaml), sidecar()).routes('outbound', `${svc}.default:${port}`).map((r: Obj) => r.name);
    const pol = (name: string, retries: string) => `apiVersion: weft.dev/v1
kind: TrafficPolicy
metadata: { name: ${name} }
spec:
  targetRef: { name: ${name} }
  retries: ${retries}
`;
    assert.deepEqual(one(service('web', 8080, 'http') + pol('web', '{ attempts: 2, retryOn: [5xx], nonIdempotent: true }'), 'web', 8080), ['default']);
    assert.deepEqual(one(service('web', 8080, 'http') + pol('web', '{ attempts: 2, retryOn: [connect-failure] }'), 'web', 8080), ['default']);
    assert.deepEqual(one(service('pay', 50052, 'grpc') + pol('pay', '{ attempts: 2, retryOn: [unavailable] }'), 'pay', 50052), ['default']);
  });

  test('budget → circuit_breakers retry_budget', () => {
    const { cluster } = withPolicy('retries: { attempts: 2, budget: { percent: 20, minRetriesPerSecond: 5 } }');
    assertSubset(cluster.circuit_breakers.thresholds[0].retry_budget, {
      budget_percent: { value: 20 },
      min_retry_concurrency: { value: 5 },
    });
  });

  test('a rule backendRequest timeout overrides perTryTimeout', () => {
    const yaml =
      service('pay', 50052, 'grpc') +
      `apiVersion: weft.dev/v1
kind: TrafficPolicy
metadata: { name: pay }
spec:
  targetRef: { name: pay }
  retries: { attempts: 1, perTryTimeout: 1s }
  timeouts: { request: 5s }
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: { name: r }
spec:
  parentRefs: [{ kind: Service, name: pay }]
  rules:
    - matches: [{ method: { service: a.B } }]
      backendRefs: [{ name: pay }]
      timeouts: { request: 3s, backendRequest: 200ms }
    - backendRefs: [{ name: pay }]
`;
    const routes = resourcesFor(meshView(yaml), sidecar()).routes('outbound', 'pay.default:50052');
    assertSubset(routes[0].route, {
      timeout: { seconds: 3 },
      max_stream_duration: { max_stream_duration: { seconds: 3 } },
      retry_policy: { per_try_timeout: { nanos: 200_000_000 }, num_retries: { value: 1 } },
    });
    assertSubset(routes[1].route, {
      timeout: { seconds: 5 },
      max_stream_duration: { max_stream_duration: { seconds: 5 } },
      retry_policy: { per_try_timeout: { seconds: 1 } },
    });
  });
});

describe('timeouts', () => {
  test('request → route timeout and max_stream_duration (what grpc-js reads)', () => {
    for (const node of [sidecar(), proxyless()]) {
      const { route } = withPolicy('timeouts: { request: 300ms }', node);
      assertSubset(route, { timeout: { nanos: 300_000_000 }, max_stream_duration: { max_stream_duration: { nanos: 300_000_000 } } });
    }
  });

  test('idle → the cluster\'s common_http_protocol_options.idle_timeout', () => {
    const { protocol } = withPolicy('timeouts: { idle: 5m }');
    assertSubset(protocol.common_http_protocol_options, { idle_timeout: { seconds: 300 } });
  });

  test('streamIdle → route idle_timeout', () => {
    const { route } = withPolicy('timeouts: { streamIdle: 90s }');
    assertSubset(route, { idle_timeout: { seconds: 90 } });
  });

  test("the service's own idle → its inbound listener's common_http_protocol_options.idle_timeout", () => {
    const yaml =
      service('web', 8080, 'http') +
      `apiVersion: weft.dev/v1
kind: TrafficPolicy
metadata: { name: web }
spec:
  targetRef: { name: web }
  timeouts: { idle: 2m }
`;
    const d = resourcesFor(meshView(yaml), sidecar({ service: 'web' }));
    const hcm = unpack(d.listener('inbound').filter_chains[0].filters[0].typed_config);
    assertSubset(hcm.common_http_protocol_options, { idle_timeout: { seconds: 120 } });
  });

  test('idle on a TCP service → tcp_proxy idle_timeout', () => {
    const yaml =
      service('db', 5432, 'tcp') +
      `apiVersion: weft.dev/v1
kind: TrafficPolicy
metadata: { name: db }
spec:
  targetRef: { name: db }
  timeouts: { idle: 1h }
`;
    const d = resourcesFor(meshView(yaml), sidecar());
    const listener = d.listener('outbound|5432|db.default');
    const tcpProxy = unpack(listener.filter_chains[0].filters[0].typed_config);
    assertSubset(tcpProxy, { cluster: 'outbound|5432||db.default', idle_timeout: { seconds: 3600 } });
    assert.equal(d.cluster('outbound|5432||db.default').typed_extension_protocol_options, undefined, 'no HTTP options on TCP');
  });
});

test('the first policy by namespace/name wins when two target one service', () => {
  const yaml =
    service('pay', 50052, 'grpc') +
    `apiVersion: weft.dev/v1
kind: TrafficPolicy
metadata: { name: b }
spec: { targetRef: { name: pay }, loadBalancer: { type: Random } }
---
apiVersion: weft.dev/v1
kind: TrafficPolicy
metadata: { name: a }
spec: { targetRef: { name: pay }, loadBalancer: { type: Maglev } }
`;
  assert.equal(resourcesFor(meshView(yaml), sidecar()).cluster(CLUSTER).lb_policy, 'MAGLEV');
});

describe('outlierDetection.failurePercentage', () => {
  test('→ failure_percentage_* with enforcement; off when not asked', () => {
    const { cluster } = withPolicy('outlierDetection: { failurePercentage: { threshold: 50, minimumHosts: 3, requestVolume: 10 }, interval: 1s }');
    assertSubset(cluster.outlier_detection, {
      enforcing_failure_percentage: { value: 100 },
      failure_percentage_threshold: { value: 50 },
      failure_percentage_minimum_hosts: { value: 3 },
      failure_percentage_request_volume: { value: 10 },
    });
    assert.equal(withPolicy('outlierDetection: { consecutive5xx: 5 }').cluster.outlier_detection.enforcing_failure_percentage, undefined);
  });
});

describe('fault', () => {
  const FAULT = 'envoy.filters.http.fault';
  const routesOf = (spec: string, node: NodeInfo) => {
    const yaml = `${service('pay', 50052, 'grpc')}apiVersion: weft.dev/v1
kind: TrafficPolicy
metadata: { name: pay }
spec:
  targetRef: { kind: Service, name: pay }
  ${spec}
`;
    const d = resourcesFor(meshView(yaml), node);
    return { d, routes: node.role === 'sidecar' ? d.routes('outbound', 'pay.default:50052') : d.routes('pay.default:50052', 'pay.default:50052') };
  };

  test('delay, abort and headers → a per-route HTTPFault; the outbound listener gets the fault filter', () => {
    const { d, routes } = routesOf(
      'fault: { delay: { fixed: 200ms, percent: 12.5 }, abort: { grpcStatus: 14 }, headers: [{ name: X-Fault, value: "on" }] }',
      sidecar(),
    );
    const fault = unpack(routes[0].typed_per_filter_config[FAULT]);
    assertSubset(fault, {
      delay: { fixed_delay: { seconds: 0, nanos: 200_000_000 }, percentage: { numerator: 125_000, denominator: 'MILLION' } },
      abort: { grpc_status: 14, percentage: { numerator: 100, denominator: 'HUNDRED' } },
      headers: [{ name: 'x-fault', string_match: { exact: 'on' } }],
    });
    assert.equal(fault.abort.http_status, undefined);
    const hcm = unpack(d.listener('outbound').filter_chains[0].filters[0].typed_config);
    assert.deepEqual(hcm.http_filters.map((f: Obj) => f.name), [FAULT, 'envoy.filters.http.router']);
  });

  test('no fault anywhere: no fault filter on the outbound listener', () => {
    const { d, routes } = routesOf('timeouts: { request: 1s }', sidecar());
    assert.equal(routes[0].typed_per_filter_config, undefined);
    const hcm = unpack(d.listener('outbound').filter_chains[0].filters[0].typed_config);
    assert.deepEqual(hcm.http_filters.map((f: Obj) => f.name), ['envoy.filters.http.router']);
  });

  test('proxyless: grpc-js ignores HTTPFault.headers, so the headers move into a route match ahead of a fault-free copy', () => {
    const { routes } = routesOf('fault: { abort: { httpStatus: 503, percent: 50 }, headers: [{ name: x-fault, value: "on" }] }', proxyless());
    assert.deepEqual(routes.map((r) => r.name), ['default|fault', 'default']);
    assertSubset(routes[0].match.headers, [{ name: 'x-fault', string_match: { exact: 'on' } }]);
    const fault = unpack(routes[0].typed_per_filter_config[FAULT]);
    assertSubset(fault, { abort: { http_status: 503, percentage: { numerator: 50 } } });
    assert.equal(fault.headers, undefined);
    assert.equal(routes[1].typed_per_filter_config, undefined);
    const plain = routesOf('fault: { abort: { httpStatus: 503 } }', proxyless()).routes;
    assert.deepEqual(plain.map((r) => r.name), ['default']);
    assert.ok(plain[0].typed_per_filter_config[FAULT]);
  });
});

describe('healthCheck', () => {
  test('http → health_checks[0].http_health_check with defaults, statuses as ranges; sidecars only', () => {
    const { cluster } = withPolicy('healthCheck: { type: http, path: /healthz, expectedStatuses: [200, 204] }');
    assertSubset(cluster.health_checks, [
      {
        timeout: { seconds: 1, nanos: 0 },
        interval: { seconds: 10, nanos: 0 },
        unhealthy_threshold: { value: 3 },
        healthy_threshold: { value: 1 },
        // The Host a callee's sidecar accepts (the cluster name, Envoy's default, has a '|').
        http_health_check: { path: '/healthz', host: 'pay.default', expected_statuses: [{ start: 200, end: 201 }, { start: 204, end: 205 }] },
      },
    ]);
    assert.equal(withPolicy('healthCheck: { type: http, path: /healthz }', proxyless()).cluster.health_checks, undefined);
  });

  test('tcp and grpc', () => {
    const tcp = withPolicy('healthCheck: { type: tcp, interval: 2s, timeout: 500ms, unhealthyThreshold: 2, healthyThreshold: 3 }').cluster.health_checks[0];
    assertSubset(tcp, { timeout: { seconds: 0, nanos: 500_000_000 }, interval: { seconds: 2 }, unhealthy_threshold: { value: 2 }, healthy_threshold: { value: 3 }, tcp_health_check: {} });
    assert.deepEqual(withPolicy('healthCheck: { type: grpc, grpcService: pay.Pay }').cluster.health_checks[0].grpc_health_check, { service_name: 'pay.Pay' });
  });
});
