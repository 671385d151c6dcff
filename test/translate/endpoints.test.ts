// ClusterLoadAssignments: ports by name, localities by zone, zone priority, weights, health.
import { describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { assertSubset, meshView, proxyless, resourcesFor, sidecar, type EndpointSpec } from './helpers';
import type { NodeInfo } from '../../src/translate/types';

const SERVICE = `apiVersion: weft.dev/v1
kind: Service
metadata: { name: api }
spec:
  ports: [{ name: http, port: 8080, protocol: http }, { name: admin, port: 9090, protocol: http }]
`;

function cla(endpoints: EndpointSpec[], node: NodeInfo = sidecar(), port = 8080) {
  return resourcesFor(meshView(SERVICE, { 'default/api': endpoints }), node).endpoints(`outbound|${port}||api.default`);
}

describe('endpoints', () => {
  test('the port of each endpoint is the one of the service port name; endpoints without it are left out', () => {
    const eps: EndpointSpec[] = [
      { address: '10.0.0.1', ports: { http: 18080, admin: 19090 } },
      { address: '10.0.0.2', ports: { http: 28080 } },
    ];
    const admin = cla(eps, sidecar(), 9090);
    assertSubset(admin.endpoints, [
      { lb_endpoints: [{ endpoint: { address: { socket_address: { address: '10.0.0.1', port_value: 19090 } } } }] },
    ]);
    const http = cla(eps);
    assert.deepEqual(
      http.endpoints[0].lb_endpoints.map((e: any) => e.endpoint.address.socket_address.port_value),
      [18080, 28080],
    );
  });

  test('weights and health', () => {
    const c = cla([
      { address: '10.0.0.3', ports: { http: 1 }, health: 'draining', weight: 5 },
      { address: '10.0.0.1', ports: { http: 1 }, weight: 3 },
      { address: '10.0.0.2', ports: { http: 1 }, health: 'unhealthy', weight: 7 },
    ]);
    assertSubset(c.endpoints, [
      {
        locality: {},
        // Only endpoints that can take traffic weigh in (grpc-js spreads load across localities by it).
        load_balancing_weight: { value: 3 },
        lb_endpoints: [
          { endpoint: { address: { socket_address: { address: '10.0.0.1' } } }, health_status: 'HEALTHY', load_balancing_weight: { value: 3 } },
          { endpoint: { address: { socket_address: { address: '10.0.0.2' } } }, health_status: 'UNHEALTHY', load_balancing_weight: { value: 7 } },
          { endpoint: { address: { socket_address: { address: '10.0.0.3' } } }, health_status: 'DRAINING', load_balancing_weight: { value: 5 } },
        ],
      },
    ]);
  });

  test('a locality with nothing healthy still weighs 1 (Envoy requires ≥ 1)', () => {
    const c = cla([{ address: '10.0.0.1', ports: { http: 1 }, health: 'unhealthy' }]);
    assertSubset(c.endpoints[0].load_balancing_weight, { value: 1 });
  });

  test('no endpoints: an empty assignment', () => {
    assert.deepEqual(cla([]).endpoints, undefined);
  });

  test('the same address and port twice is one endpoint', () => {
    const c = cla([
      { address: '10.0.0.1', ports: { http: 1 }, origin: 'b' },
      { address: '10.0.0.1', ports: { http: 1 }, origin: 'a', weight: 9 },
    ]);
    assert.equal(c.endpoints[0].lb_endpoints.length, 1);
    assertSubset(c.endpoints[0].lb_endpoints[0].load_balancing_weight, { value: 9 }, 'origin "a" sorts first');
  });

  const zoned: EndpointSpec[] = [
    { address: '10.0.2.1', ports: { http: 1 }, zone: 'zone-b' },
    { address: '10.0.1.1', ports: { http: 1 }, zone: 'zone-a' },
    { address: '10.0.1.2', ports: { http: 1 }, zone: 'zone-a' },
    { address: '10.0.9.1', ports: { http: 1 } },
  ];

  test('localities by zone; a node without a zone has every locality at priority 0', () => {
    const c = cla(zoned);
    assertSubset(
      c.endpoints.map((l: any) => ({ zone: l.locality.zone, priority: l.priority, n: l.lb_endpoints.length, w: l.load_balancing_weight.value })),
      [
        { zone: undefined, priority: undefined, n: 1, w: 1 },
        { zone: 'zone-a', priority: undefined, n: 2, w: 2 },
        { zone: 'zone-b', priority: undefined, n: 1, w: 1 },
      ],
    );
  });

  test('a node in a zone: its zone at priority 0, the others at priority 1', () => {
    for (const node of [sidecar({ zone: 'zone-b' }), proxyless({ zone: 'zone-b' })]) {
      const c = cla(zoned, node);
      assert.deepEqual(
        c.endpoints.map((l: any) => [l.locality.zone ?? '', l.priority ?? 0]),
        [
          ['zone-b', 0],
          ['', 1],
          ['zone-a', 1],
        ],
      );
    }
  });

  test('a node whose zone has no endpoint: everything at priority 0 (no priority 1 without a 0)', () => {
    const c = cla(zoned, sidecar({ zone: 'zone-z' }));
    assert.ok(c.endpoints.every((l: any) => (l.priority ?? 0) === 0));
  });
});
