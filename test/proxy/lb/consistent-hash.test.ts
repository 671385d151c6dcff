// RING_HASH and MAGLEV: a hash always maps to the same endpoint, in every
// process and whatever order EDS lists endpoints in, and a change of the set
// moves few keys.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Endpoint, LbPolicy } from '../../../src/proxy/config/types';
import { hash32 } from '../../../src/proxy/router/hash';
import { createLoadBalancer, type LoadBalancer } from '../../../src/proxy/upstream/lb/load-balancer';
import { selectCandidates, sortedByKey } from '../../../src/proxy/upstream/lb/candidates';
import { MAGLEV_TABLE_SIZE } from '../../../src/proxy/upstream/lb/maglev';
import { RingHashLb } from '../../../src/proxy/upstream/lb/ring-hash';
import { Rng } from '../../../src/proxy/upstream/lb/rng';
import { cluster, endpoint, endpointSet, endpoints, locality } from './fixtures';

const HASHING: LbPolicy[] = ['RING_HASH', 'MAGLEV'];
const KEYS = Array.from({ length: 10_000 }, (_, i) => hash32(`session-${i}`));

function build(policy: LbPolicy, eps: Endpoint[]): LoadBalancer {
  return createLoadBalancer(cluster(policy), endpointSet(locality(eps)));
}

function assignment(lb: LoadBalancer): string[] {
  return KEYS.map((hash) => lb.pick({ hash })!.key);
}

function moved(before: string[], after: string[]): number {
  return before.filter((k, i) => k !== after[i]).length / before.length;
}

for (const policy of HASHING) {
  test(`${policy}: the same hash picks the same endpoint, every time and in a rebuilt balancer`, () => {
    const eps = endpoints(10);
    const first = assignment(build(policy, eps));
    const lb = build(policy, eps);
    assert.deepEqual(assignment(lb), first);
    assert.deepEqual(assignment(lb), first);
  });

  test(`${policy}: the order EDS lists endpoints in does not matter`, () => {
    const eps = endpoints(10);
    assert.deepEqual(assignment(build(policy, [...eps].reverse())), assignment(build(policy, eps)));
  });

  test(`${policy}: keys spread over all endpoints`, () => {
    const counts = new Map<string, number>();
    for (const key of assignment(build(policy, endpoints(10)))) counts.set(key, (counts.get(key) ?? 0) + 1);
    assert.equal(counts.size, 10);
    for (const c of counts.values()) assert.ok(c > 700 && c < 1300, `count ${c}`);
  });

  for (const removed of [0, 4, 9]) {
    test(`${policy}: removing endpoint ${removed} of 10 moves only its keys and a few more (≤ 15%)`, () => {
      const eps = endpoints(10);
      const before = assignment(build(policy, eps));
      const after = assignment(build(policy, eps.filter((_, i) => i !== removed)));
      const share = moved(before, after);
      assert.ok(share <= 0.15, `moved ${share}`);
      // Keys of the surviving endpoints overwhelmingly stay put.
      const gone = eps[removed].key;
      const strays = before.filter((k, i) => k !== gone && k !== after[i]).length / KEYS.length;
      assert.ok(strays <= 0.03, `keys moved between surviving endpoints: ${strays}`);
    });
  }

  test(`${policy}: an endpoint turning unhealthy moves only its keys and a few more`, () => {
    const eps = endpoints(10);
    const before = assignment(build(policy, eps));
    const sick = eps.map((e, i) => (i === 3 ? { ...e, health: 'unhealthy' as const } : e));
    assert.ok(moved(before, assignment(build(policy, sick))) <= 0.15);
  });

  test(`${policy}: adding an 11th endpoint moves about 1/11 of the keys`, () => {
    const eps = endpoints(11);
    const before = assignment(build(policy, eps.slice(0, 10)));
    const share = moved(before, assignment(build(policy, eps)));
    assert.ok(share <= 0.15, `moved ${share}`);
  });
}

test('RING_HASH: point counts follow weights; the lightest endpoint gets at least 128 points', () => {
  const c = sortedByKey(
    selectCandidates(endpointSet(locality([endpoint('a', { weight: 1 }), endpoint('b', { weight: 3 })]))),
  );
  const ring = new RingHashLb(c, { minRingSize: 1024, maxRingSize: 8_388_608 }, new Rng(Math.random));
  // ceil(1024 / 4 units) = 256 per unit, above the floor of 128.
  assert.equal(ring.ringSize, 256 + 768);
  const big = new RingHashLb(sortedByKey(selectCandidates(endpointSet(locality(endpoints(100))))), { minRingSize: 1024, maxRingSize: 8_388_608 }, new Rng(Math.random));
  assert.equal(big.ringSize, 100 * 128);
});

test('RING_HASH: maxRingSize caps the ring; minRingSize raises small rings', () => {
  const set = endpointSet(locality(endpoints(100)));
  const capped = new RingHashLb(sortedByKey(selectCandidates(set)), { minRingSize: 64, maxRingSize: 1000 }, new Rng(Math.random));
  assert.equal(capped.ringSize, 1000);
  const raised = new RingHashLb(sortedByKey(selectCandidates(set)), { minRingSize: 100_000, maxRingSize: 8_388_608 }, new Rng(Math.random));
  assert.equal(raised.ringSize, 100_000);
});

test('RING_HASH: a hash past the last point wraps to the first', () => {
  const lb = build('RING_HASH', endpoints(3));
  assert.equal(lb.pick({ hash: 0xffffffff })?.key, lb.pick({ hash: 0 })?.key);
});

test('MAGLEV: the table is filled in proportion to the weights', () => {
  const lb = createLoadBalancer(
    cluster('MAGLEV'),
    endpointSet(locality([endpoint('a', { weight: 1 }), endpoint('b', { weight: 3 })])),
  );
  const counts = new Map<string, number>();
  for (let slot = 0; slot < MAGLEV_TABLE_SIZE; slot++) {
    const key = lb.pick({ hash: slot })!.key;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  assert.ok(Math.abs(counts.get('a:8080')! / MAGLEV_TABLE_SIZE - 0.25) < 0.001);
});
