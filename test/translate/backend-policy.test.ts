// A TrafficPolicy on a backend Service (a canary's v2): its cluster-level
// settings land on the backend's cluster; its request-level ones (retries,
// timeouts.request, timeouts.streamIdle, fault) apply to a route rule's
// requests when every backend of the rule has the same, and the called
// Service's own policy says nothing of them. Otherwise they are not applied,
// and policyWarnings() names the rule and the policy.
import { describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { assertSubset, meshView, parseResources, resourcesFor, routeNamed, service, sidecar, unpack, type Obj } from './helpers';
import { policyWarnings } from '../../src/translate/policy-warnings';

const FAULT = 'envoy.filters.http.fault';

function policy(name: string, target: string, spec: string): string {
  return `apiVersion: weft.dev/v1
kind: TrafficPolicy
metadata: { name: ${name} }
spec:
  targetRef: { kind: Service, name: ${target} }
  ${spec}
---
`;
}

/** The mesh: an HTTPRoute on hello; /v2 only to hello-v2, the rest 90/10 to hello and hello-v2. */
const HELLO_ROUTE = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: hello }
spec:
  parentRefs: [{ kind: Service, name: hello, port: 8080 }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /v2 } }]
      backendRefs: [{ name: hello-v2, port: 8080 }]
    - backendRefs:
        - { name: hello, port: 8080, weight: 90 }
        - { name: hello-v2, port: 8080, weight: 10 }
---
`;
const RETRIES = 'retries: { attempts: 3, retryOn: [5xx], nonIdempotent: true }';

function mesh(policies: string) {
  const yaml = service('hello') + service('hello-v2') + HELLO_ROUTE + policies;
  const view = meshView(yaml);
  const routes = resourcesFor(view, sidecar({ service: 'client' })).routes('outbound', 'hello.default:8080');
  return {
    only: routeNamed(routes, 'HTTPRoute/default/hello/0/0'),
    split: routeNamed(routes, 'HTTPRoute/default/hello/1/0'),
    routes,
    warnings: policyWarnings(parseResources(yaml)),
    view,
  };
}

describe('a TrafficPolicy on a backend Service', () => {
  test('retries on hello-v2 apply to the rule that sends everything to hello-v2', () => {
    const { only, split } = mesh(policy('hello-v2', 'hello-v2', RETRIES));
    assertSubset(only.route.retry_policy, { retry_on: '5xx', num_retries: { value: 3 } });
    // The 90/10 rule also sends to hello, which has no retries: one retry policy cannot cover both.
    assert.equal(split.route.retry_policy, undefined);
  });

  test('…and the 90/10 rule that also sends to hello is named in a warning, with the policy', () => {
    const { warnings } = mesh(policy('hello-v2', 'hello-v2', RETRIES));
    assert.equal(warnings.length, 1, JSON.stringify(warnings));
    const [w] = warnings;
    assert.equal(w.code, 'W_POLICY_NOT_APPLIED');
    assert.deepEqual(w.resource, { kind: 'TrafficPolicy', namespace: 'default', name: 'hello-v2' });
    assert.equal(w.path, 'spec.retries');
    assert.deepEqual(w.route, { kind: 'HTTPRoute', namespace: 'default', name: 'hello', rule: 1 });
    assert.match(w.message, /TrafficPolicy default\/hello-v2: spec\.retries: /);
    assert.match(w.message, /rule 1 of HTTPRoute default\/hello/);
    assert.match(w.message, /hello has no retries/);
  });

  test('the same retries on every backend of the rule apply to it; no warning', () => {
    const { only, split, warnings } = mesh(policy('hello', 'hello', RETRIES) + policy('hello-v2', 'hello-v2', RETRIES));
    assertSubset(only.route.retry_policy, { retry_on: '5xx', num_retries: { value: 3 } });
    assertSubset(split.route.retry_policy, { retry_on: '5xx', num_retries: { value: 3 } });
    assert.deepEqual(warnings, []);
  });

  test('different retries on the backends: none applied from them, a warning for each rule they miss', () => {
    const yaml = service('hello') + service('hello-v2') + service('hello-v3') + `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: hello }
spec:
  parentRefs: [{ kind: Service, name: hello, port: 8080 }]
  rules:
    - backendRefs: [{ name: hello-v2, port: 8080, weight: 50 }, { name: hello-v3, port: 8080, weight: 50 }]
---
` + policy('hello-v2', 'hello-v2', RETRIES) + policy('hello-v3', 'hello-v3', 'retries: { attempts: 1 }');
    const [route] = resourcesFor(meshView(yaml), sidecar()).routes('outbound', 'hello.default:8080');
    assert.equal(route.route.retry_policy, undefined);
    const warnings = policyWarnings(parseResources(yaml));
    assert.deepEqual(warnings.map((w) => `${w.resource.name} ${w.path} ${w.route?.rule}`), ['hello-v2 spec.retries 0', 'hello-v3 spec.retries 0']);
    assert.match(warnings[0].message, /hello-v3 has other retries/);
  });

  test("the called Service's own retries decide for every rule; a backend's other retries are named", () => {
    const { only, split, warnings } = mesh(policy('hello', 'hello', 'retries: { attempts: 1 }') + policy('hello-v2', 'hello-v2', RETRIES));
    assertSubset(only.route.retry_policy, { num_retries: { value: 1 } });
    assertSubset(split.route.retry_policy, { num_retries: { value: 1 } });
    assert.deepEqual(warnings.map((w) => `${w.resource.name} ${w.route?.rule}`), ['hello-v2 0', 'hello-v2 1']);
    assert.match(warnings[0].message, /the called Service's own TrafficPolicy default\/hello sets retries, and it decides/);
  });

  test("the called Service's policy decides where it speaks; the backend's fills in what it leaves out", () => {
    const yaml =
      service('shop') +
      service('shop-v1') +
      policy('shop', 'shop', 'timeouts: { request: 2s }') +
      policy('shop-v1', 'shop-v1', 'timeouts: { request: 9s, streamIdle: 4s }\n  retries: { attempts: 2, retryOn: [connect-failure] }') +
      `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: r }
spec:
  parentRefs: [{ kind: Service, name: shop }]
  rules: [{ backendRefs: [{ name: shop-v1 }] }]
`;
    const [route] = resourcesFor(meshView(yaml), sidecar()).routes('outbound', 'shop.default:8080');
    assertSubset(route.route, { timeout: { seconds: 2 }, idle_timeout: { seconds: 4 }, retry_policy: { retry_on: 'connect-failure', num_retries: { value: 2 } } });
    const warnings = policyWarnings(parseResources(yaml));
    assert.deepEqual(warnings.map((w) => w.path), ['spec.timeouts.request']);
  });

  test("a rule's own timeouts.request decides over a backend policy's (warned when they differ)", () => {
    const yaml =
      service('shop') +
      service('shop-v1') +
      policy('shop-v1', 'shop-v1', 'timeouts: { request: 9s }') +
      `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: r }
spec:
  parentRefs: [{ kind: Service, name: shop }]
  rules: [{ backendRefs: [{ name: shop-v1 }], timeouts: { request: 1s } }]
`;
    const [route] = resourcesFor(meshView(yaml), sidecar()).routes('outbound', 'shop.default:8080');
    assertSubset(route.route, { timeout: { seconds: 1 } });
    const [w] = policyWarnings(parseResources(yaml));
    assert.match(w.message, /rule 0 of HTTPRoute default\/r sets its own timeouts\.request/);
  });

  test('retries from a backend keep the non-idempotent route of their own', () => {
    const { routes } = mesh(policy('hello-v2', 'hello-v2', 'retries: { attempts: 2, retryOn: [5xx, connect-failure] }'));
    const names = routes.map((r: Obj) => r.name);
    assert.ok(names.includes('HTTPRoute/default/hello/0/0|non-idempotent'), names.join(', '));
    assertSubset(routeNamed(routes, 'HTTPRoute/default/hello/0/0|non-idempotent').route.retry_policy, { retry_on: 'connect-failure' });
    assert.ok(!names.includes('HTTPRoute/default/hello/1/0|non-idempotent'), names.join(', '));
  });

  test('a fault on hello-v2 applies to the rule that sends only there; the outbound listener gets the fault filter', () => {
    const { only, split, warnings, view } = mesh(policy('hello-v2', 'hello-v2', 'fault: { abort: { httpStatus: 503, percent: 50 } }'));
    assertSubset(unpack(only.typed_per_filter_config[FAULT]), { abort: { http_status: 503 } });
    assert.equal(split.typed_per_filter_config, undefined);
    assert.deepEqual(warnings.map((w) => `${w.path} ${w.route?.rule}`), ['spec.fault 1']);
    // hello-v2 is not callable from this client (dependsOn), only reached through hello's route.
    const yaml = service('client', 8080, 'http', '  dependsOn: [{ name: hello }]\n');
    const d = resourcesFor({ ...view, services: [...view.services, ...meshView(yaml).services] }, sidecar({ service: 'client' }));
    const hcm = unpack(d.listener('outbound').filter_chains[0].filters[0].typed_config);
    assert.deepEqual(hcm.http_filters.map((f: Obj) => f.name), [FAULT, 'envoy.filters.http.router']);
  });

  test('cluster-level settings of a backend policy need no agreement: they are on its cluster, no warning', () => {
    const yaml =
      service('hello') +
      service('hello-v2') +
      HELLO_ROUTE +
      policy('hello-v2', 'hello-v2', 'connectionPool: { maxConnections: 5 }\n  outlierDetection: { consecutive5xx: 2 }\n  retries: { attempts: 0, budget: { percent: 20 } }');
    const d = resourcesFor(meshView(yaml), sidecar());
    assertSubset(d.cluster('outbound|8080||hello-v2.default').circuit_breakers.thresholds[0], { max_connections: { value: 5 }, retry_budget: { budget_percent: { value: 20 } } });
    assert.deepEqual(policyWarnings(parseResources(yaml)), []);
  });
});

test('a policy on a TCP-only Service: what it says of requests is a warning, what it says of connections is not', () => {
  const yaml =
    service('db', 5432, 'tcp') +
    policy('db', 'db', 'retries: { attempts: 2 }\n  timeouts: { request: 1s, idle: 1h }\n  rateLimit: { local: { requests: 5, per: 1s } }\n  connectionPool: { maxConnections: 10 }');
  assert.deepEqual(
    policyWarnings(parseResources(yaml)).map((w) => [w.path, w.route]),
    [['spec.retries', undefined], ['spec.timeouts.request', undefined], ['spec.rateLimit', undefined]],
  );
  assert.match(policyWarnings(parseResources(yaml))[0].message, /TrafficPolicy default\/db: spec\.retries: not applied: Service default\/db has only TCP ports/);
});
