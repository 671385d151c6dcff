// What every policy shares: weights respected, unhealthy and draining never
// picked, priority failover, empty sets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { LbPolicy } from '../../../src/proxy/config/types';
import { createLoadBalancer } from '../../../src/proxy/upstream/lb/load-balancer';
import { cluster, endpoint, endpointSet, locality, seeded, tally } from './fixtures';

const POLICIES: LbPolicy[] = ['ROUND_ROBIN', 'LEAST_REQUEST', 'RANDOM', 'RING_HASH', 'MAGLEV'];

/** Allowed deviation of a share, relative to the expected share. A ring's arcs vary with its point count. */
const TOLERANCE: Record<LbPolicy, number> = {
  ROUND_ROBIN: 0.001,
  LEAST_REQUEST: 0.03,
  RANDOM: 0.03,
  RING_HASH: 0.25,
  MAGLEV: 0.05,
};

const weighted = endpointSet(
  locality([endpoint('a', { weight: 1 }), endpoint('b', { weight: 2 }), endpoint('c', { weight: 3 }), endpoint('d', { weight: 4 })]),
);

for (const policy of POLICIES) {
  test(`${policy}: shares follow endpoint weights`, () => {
    const random = seeded(1);
    const lb = createLoadBalancer(cluster(policy), weighted, { random });
    assert.equal(lb.size, 4);
    const picks = 100_000;
    // Hashing policies get a random hash per request, as many distinct clients would.
    const hashing = policy === 'RING_HASH' || policy === 'MAGLEV';
    const ctx = { hash: 0 };
    const counts = tally(() => {
      if (!hashing) return lb.pick();
      ctx.hash = Math.floor(random() * 2 ** 32);
      return lb.pick(ctx);
    }, picks);
    for (const [address, weight] of [['a', 1], ['b', 2], ['c', 3], ['d', 4]] as const) {
      const share = (counts.get(`${address}:8080`) ?? 0) / picks;
      const expected = weight / 10;
      assert.ok(Math.abs(share - expected) <= expected * TOLERANCE[policy], `${address}: ${share} vs ${expected}`);
    }
  });

  test(`${policy}: a random pick (no hash) follows the weights too`, () => {
    const lb = createLoadBalancer(cluster(policy), weighted, { random: seeded(2) });
    const counts = tally(() => lb.pick(), 100_000);
    const shareD = (counts.get('d:8080') ?? 0) / 100_000;
    assert.ok(Math.abs(shareD - 0.4) <= 0.4 * TOLERANCE[policy], `d: ${shareD}`);
  });

  test(`${policy}: unhealthy and draining endpoints are never picked`, () => {
    const set = endpointSet(
      locality([
        endpoint('ok'),
        endpoint('sick', { health: 'unhealthy' }),
        endpoint('leaving', { health: 'draining' }),
        endpoint('new', { health: 'unknown' }),
      ]),
    );
    const random = seeded(3);
    const lb = createLoadBalancer(cluster(policy), set, { random });
    assert.equal(lb.size, 2);
    const counts = tally(() => lb.pick({ hash: Math.floor(random() * 2 ** 32) }), 10_000);
    assert.deepEqual([...counts.keys()].sort(), ['new:8080', 'ok:8080']);
  });

  test(`${policy}: priority 1 takes over when priority 0 has no healthy endpoint`, () => {
    const set = endpointSet(
      locality([endpoint('near', { health: 'unhealthy' })], { priority: 0, zone: 'here' }),
      locality([endpoint('far1'), endpoint('far2')], { priority: 1, zone: 'there' }),
    );
    const lb = createLoadBalancer(cluster(policy), set, { random: seeded(4) });
    assert.equal(lb.size, 2);
    const counts = tally(() => lb.pick({ hash: 12345 }), 1000);
    assert.ok(!counts.has('near:8080'));
    const healthy = createLoadBalancer(
      cluster(policy),
      endpointSet(locality([endpoint('near')], { priority: 0 }), locality([endpoint('far1')], { priority: 1 })),
    );
    assert.equal(healthy.pick({ hash: 1 })?.address, 'near');
  });

  test(`${policy}: locality weights count`, () => {
    const set = endpointSet(
      locality([endpoint('a1'), endpoint('a2')], { zone: 'a', weight: 1 }),
      locality([endpoint('b1')], { zone: 'b', weight: 2 }),
    );
    const lb = createLoadBalancer(cluster(policy), set, { random: seeded(5) });
    const counts = tally(() => lb.pick(), 60_000);
    // b1 carries its locality's 2/3; a1 and a2 split the other third.
    const share = (counts.get('b1:8080') ?? 0) / 60_000;
    assert.ok(Math.abs(share - 2 / 3) <= (2 / 3) * TOLERANCE[policy], `b1: ${share}`);
  });

  test(`${policy}: an empty or all-down set picks nothing`, () => {
    for (const set of [
      endpointSet(),
      endpointSet(locality([])),
      endpointSet(locality([endpoint('x', { health: 'unhealthy' }), endpoint('y', { health: 'draining' })])),
    ]) {
      const lb = createLoadBalancer(cluster(policy), set);
      assert.equal(lb.size, 0);
      assert.equal(lb.pick(), undefined);
      assert.equal(lb.pick({ hash: 7 }), undefined);
    }
  });

  test(`${policy}: a single endpoint is always picked`, () => {
    const lb = createLoadBalancer(cluster(policy), endpointSet(locality([endpoint('solo')])));
    for (let i = 0; i < 100; i++) assert.equal(lb.pick({ hash: i * 7919 })?.address, 'solo');
  });
}

test('ROUND_ROBIN: exact proportions in every window of one cycle', () => {
  const lb = createLoadBalancer(cluster('ROUND_ROBIN'), weighted, { random: seeded(6) });
  // Σw = 10: every 10 consecutive picks hold a once, b twice, c 3 and d 4 times.
  for (let cycle = 0; cycle < 50; cycle++) {
    const counts = tally(() => lb.pick(), 10);
    assert.deepEqual(Object.fromEntries([...counts].sort()), { 'a:8080': 1, 'b:8080': 2, 'c:8080': 3, 'd:8080': 4 });
  }
});

test('ROUND_ROBIN: a heavy endpoint does not take a whole cycle\'s picks before the light ones', () => {
  const set = endpointSet(locality([endpoint('heavy', { weight: 3 }), endpoint('light1'), endpoint('light2')]));
  for (const u of [0, 0.5, 0.99]) {
    const lb = createLoadBalancer(cluster('ROUND_ROBIN'), set, { random: () => u });
    const cycle = Array.from({ length: 5 }, () => lb.pick()!.address);
    assert.notDeepEqual(cycle.slice(0, 3), ['heavy', 'heavy', 'heavy'], cycle.join(' '));
  }
});

for (const weights of [[3, 1, 1], [1, 2, 3, 4], [7, 3, 2], [5, 1]]) {
  test(`ROUND_ROBIN: weights ${weights.join(':')}: every prefix of the sequence is within one pick of the exact share`, () => {
    const set = endpointSet(locality(weights.map((weight, i) => endpoint(`e${i}`, { weight }))));
    const lb = createLoadBalancer(cluster('ROUND_ROBIN'), set, { random: seeded(weights.length) });
    const total = weights.reduce((sum, w) => sum + w, 0);
    const counts = weights.map(() => 0);
    for (let t = 1; t <= total * 20; t++) {
      counts[Number(lb.pick()!.address.slice(1))]++;
      weights.forEach((w, i) => assert.ok(Math.abs(counts[i] - (t * w) / total) < 1, `pick ${t}: e${i} ${counts[i]}`));
    }
  });
}

test('ROUND_ROBIN: equal weights cycle through every endpoint, from a random start', () => {
  const set = endpointSet(locality([endpoint('a'), endpoint('b'), endpoint('c')]));
  const first = new Set<string>();
  for (const u of [0, 0.34, 0.67]) {
    const lb = createLoadBalancer(cluster('ROUND_ROBIN'), set, { random: () => u });
    const cycle = [lb.pick()!, lb.pick()!, lb.pick()!].map((e) => e.address);
    assert.deepEqual([...cycle].sort(), ['a', 'b', 'c']);
    first.add(cycle[0]);
  }
  assert.equal(first.size, 3);
});
