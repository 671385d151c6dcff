// Per-node scoping: dependsOn, backends reached through routes, everything otherwise.
import { describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { meshView, proxyless, resourcesFor, service, sidecar } from './helpers';
import { TYPE_URL } from '../../src/xds/type-urls';

const MESH =
  service('storefront', 8080, 'http', '  dependsOn: [{ name: product }, { name: order }, { name: ghost }]\n') +
  service('product', 8081) +
  service('product-v2', 8081) +
  service('order', 50051, 'grpc') +
  service('payment', 50052, 'grpc') +
  service('audit', 9000) +
  `apiVersion: weft.dev/v1
kind: Service
metadata: { name: billing, namespace: finance }
spec:
  ports: [{ name: grpc, port: 50053, protocol: grpc }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: product-canary }
spec:
  parentRefs: [{ kind: Service, name: product, port: 8081 }]
  rules:
    - filters: [{ type: RequestMirror, requestMirror: { backendRef: { name: audit, port: 9000 } } }]
      backendRefs: [{ name: product, weight: 90 }, { name: product-v2, weight: 10 }]
---
`;

describe('scope', () => {
  test('dependsOn: those services, plus the backends and mirrors their routes lead to (clusters only)', () => {
    for (const node of [sidecar({ service: 'storefront' }), proxyless({ service: 'storefront' })]) {
      const d = resourcesFor(meshView(MESH), node);
      assert.deepEqual(d.names(TYPE_URL.Cluster).filter((n) => n.startsWith('outbound')), [
        'outbound|50051||order.default',
        'outbound|8081||product-v2.default',
        'outbound|8081||product.default',
        'outbound|9000||audit.default',
      ]);
      assert.deepEqual(d.names(TYPE_URL.ClusterLoadAssignment), [
        'outbound|50051||order.default',
        'outbound|8081||product-v2.default',
        'outbound|8081||product.default',
        'outbound|9000||audit.default',
      ]);
      if (node.role === 'sidecar') {
        const vhosts = d.routeConfig('outbound').virtual_hosts.map((v: { name: string }) => v.name);
        assert.deepEqual(vhosts, ['order.default:50051', 'product.default:8081'], 'backends get no virtual host');
      } else {
        assert.deepEqual(d.names(TYPE_URL.RouteConfiguration), ['order.default:50051', 'product.default:8081']);
      }
    }
  });

  test('no dependsOn: every service in the mesh', () => {
    const d = resourcesFor(meshView(MESH), proxyless({ service: 'order' }));
    assert.equal(d.names(TYPE_URL.Cluster).length, 7);
    assert.ok(d.names(TYPE_URL.RouteConfiguration).includes('billing.finance:50053'));
  });

  test('a node without a service, or naming a service that does not exist, sees everything', () => {
    for (const node of [proxyless(), proxyless({ service: 'nobody' })]) {
      assert.equal(resourcesFor(meshView(MESH), node).names(TYPE_URL.Cluster).length, 7);
    }
  });

  test('dependsOn in another namespace', () => {
    const yaml =
      MESH +
      `apiVersion: weft.dev/v1
kind: Service
metadata: { name: teller, namespace: finance }
spec:
  ports: [{ name: http, port: 8000, protocol: http }]
  dependsOn: [{ name: billing }, { name: payment, namespace: default }]
`;
    const d = resourcesFor(meshView(yaml), proxyless({ service: 'teller', namespace: 'finance' }));
    assert.deepEqual(d.names(TYPE_URL.Cluster), ['outbound|50052||payment.default', 'outbound|50053||billing.finance']);
    // The node's own namespace gets the short names (server Listeners of its own service aside).
    assert.deepEqual(d.names(TYPE_URL.Listener).filter((n) => !n.startsWith('weft.dev/grpc/lds/inbound/')), [
      'billing',
      'billing.finance',
      'billing.finance:50053',
      'billing:50053',
      'payment.default',
      'payment.default:50052',
    ]);
  });

  test('a sidecar with a service also gets its inbound listener and clusters', () => {
    const d = resourcesFor(meshView(MESH), sidecar({ service: 'storefront' }));
    assert.ok(d.names(TYPE_URL.Cluster).includes('inbound|8080||'));
    assert.ok(d.names(TYPE_URL.Listener).includes('inbound'));
  });

  test('an AuthorizationPolicy of another namespace is ignored, without error', () => {
    const yaml =
      MESH +
      `apiVersion: weft.dev/v1
kind: AuthorizationPolicy
metadata: { name: deny, namespace: elsewhere }
spec: { action: DENY, rules: [{ from: [{ source: { namespaces: [evil] } }] }] }
`;
    const withPolicies = resourcesFor(meshView(yaml), sidecar({ service: 'storefront' }));
    const without = resourcesFor(meshView(MESH), sidecar({ service: 'storefront' }));
    assert.deepEqual(withPolicies.byType, without.byType);
  });
});
