import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Endpoint } from '../../../src/proxy/config/types';
import { createLoadBalancer } from '../../../src/proxy/upstream/lb/load-balancer';
import { cluster, endpoint, endpointSet, endpoints, locality, seeded, tally } from './fixtures';

function withLoad(load: Record<string, number>) {
  return (e: Endpoint) => load[e.address] ?? 0;
}

test('LEAST_REQUEST: of two draws, the one with fewer requests in flight wins', () => {
  const set = endpointSet(locality([endpoint('busy'), endpoint('idle')]));
  const lb = createLoadBalancer(cluster('LEAST_REQUEST'), set, {
    random: seeded(1),
    activeRequests: withLoad({ busy: 10, idle: 0 }),
  });
  const counts = tally(() => lb.pick(), 10_000);
  // busy only when both draws land on it: 1/4 of the time.
  const busy = (counts.get('busy:8080') ?? 0) / 10_000;
  assert.ok(Math.abs(busy - 0.25) < 0.02, `busy: ${busy}`);
});

test('LEAST_REQUEST: one overloaded endpoint among ten is rarely picked', () => {
  const set = endpointSet(locality(endpoints(10)));
  const hot = set.localities[0].endpoints[0].address;
  const lb = createLoadBalancer(cluster('LEAST_REQUEST'), set, { random: seeded(2), activeRequests: withLoad({ [hot]: 50 }) });
  const counts = tally(() => lb.pick(), 100_000);
  // (1/10)² = 1% instead of 10%.
  const share = (counts.get(`${hot}:8080`) ?? 0) / 100_000;
  assert.ok(share < 0.015, `hot: ${share}`);
});

test('LEAST_REQUEST: load is compared per unit of weight', () => {
  const set = endpointSet(locality([endpoint('big', { weight: 4 }), endpoint('small', { weight: 1 })]));
  // big holds 6 in flight (1.5 per weight unit), small 2 (2 per unit): big is the less loaded.
  const lb = createLoadBalancer(cluster('LEAST_REQUEST'), set, { random: seeded(3), activeRequests: withLoad({ big: 6, small: 2 }) });
  const counts = tally(() => lb.pick(), 10_000);
  // small only when drawn twice: (1/5)² = 4%.
  const small = (counts.get('small:8080') ?? 0) / 10_000;
  assert.ok(Math.abs(small - 0.04) < 0.01, `small: ${small}`);
});

test('LEAST_REQUEST: live load steers picks to balance in-flight requests', () => {
  const set = endpointSet(locality(endpoints(5)));
  const inFlight = new Map<string, number>();
  const lb = createLoadBalancer(cluster('LEAST_REQUEST'), set, {
    random: seeded(4),
    activeRequests: (e) => inFlight.get(e.key) ?? 0,
  });
  // 100 long-lived requests, none finishing: P2C keeps the spread tight.
  for (let i = 0; i < 100; i++) {
    const e = lb.pick()!;
    inFlight.set(e.key, (inFlight.get(e.key) ?? 0) + 1);
  }
  const loads = [...inFlight.values()];
  assert.ok(Math.max(...loads) - Math.min(...loads) <= 3, loads.join(','));
});

test('LEAST_REQUEST: without an activeRequests callback it is weighted random', () => {
  const set = endpointSet(locality([endpoint('a', { weight: 1 }), endpoint('b', { weight: 3 })]));
  const lb = createLoadBalancer(cluster('LEAST_REQUEST'), set, { random: seeded(5) });
  const counts = tally(() => lb.pick(), 100_000);
  assert.ok(Math.abs((counts.get('b:8080') ?? 0) / 100_000 - 0.75) < 0.01);
});
