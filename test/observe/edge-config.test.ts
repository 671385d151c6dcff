// The config the dashboard shows for one edge, on the demo mesh's own config
// (examples/mesh): the canary route, payment's policies, MeshTLS and authz.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { edgeConfig } from '../../src/observe/edge-config';
import { meshView } from '../translate/helpers';

const dir = path.resolve(__dirname, '../../../examples/mesh');
const demo = fs.readdirSync(dir).map((f) => fs.readFileSync(path.join(dir, f), 'utf8').replace(/\n*$/, '\n---\n')).join('');
const sidecars = (n: number) => Array.from({ length: n }, (_, i) => ({ address: `10.0.0.${i + 1}`, ports: { http: 15006 }, sidecar: true }));
const view = meshView(demo, { 'default/payment': sidecars(2), 'default/product': sidecars(1), 'default/product-v2': sidecars(1) });
const names = (blocks: { kind: string; name: string; why: string }[]) => blocks.map((b) => `${b.kind} ${b.name}: ${b.why}`);

test('order → payment: payment\'s TrafficPolicy, its strict MeshTLS and its AuthorizationPolicy; mTLS', () => {
  const c = edgeConfig(view, 'order.default', 'payment.default');
  assert.deepEqual(names(c.routes), []);
  assert.deepEqual(names(c.trafficPolicies), ['TrafficPolicy payment: targets payment.default']);
  assert.deepEqual(names(c.meshTls), ['MeshTLS payment-strict: targets payment.default']);
  assert.deepEqual(names(c.authorizationPolicies), ['AuthorizationPolicy payment-callers: targets payment.default']);
  assert.deepEqual([c.security?.security, c.security?.tlsMode], ['mtls', 'strict']);
  assert.equal(c.signals, undefined, 'no topology given: no signals');
  assert.deepEqual((c.trafficPolicies[0].spec as { retries: { attempts: number } }).retries.attempts, 2);
});

test('storefront → product: the canary route on product (its parent); storefront → product-v2: the same route, as its backend', () => {
  const parent = edgeConfig(view, 'storefront.default', 'product.default');
  assert.deepEqual(names(parent.routes), ['HTTPRoute product-canary: parentRef product.default']);
  assert.deepEqual(names(parent.meshTls), []);
  assert.equal(parent.security?.tlsMode, 'permissive');
  const backend = edgeConfig(view, 'storefront.default', 'product-v2.default');
  assert.deepEqual(names(backend.routes), ['HTTPRoute product-canary: product-v2.default is a backend (parent product.default)']);
});

test('the edge\'s signals come from the topology, with its security', () => {
  const c = edgeConfig(view, 'order.default', 'payment.default', {
    at: new Date().toISOString(),
    windowSeconds: 10,
    services: [],
    edges: [{ source: 'order.default', destination: 'payment.default', rps: 3, requests: 30, successRate: 1 }],
    unreachable: [],
  });
  assert.equal(c.signals?.rps, 3);
  assert.equal(c.signals?.security, 'mtls');
});
