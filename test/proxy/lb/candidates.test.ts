import { test } from 'node:test';
import assert from 'node:assert/strict';
import { selectCandidates, sortedByKey } from '../../../src/proxy/upstream/lb/candidates';
import { endpoint, endpointSet, locality } from './fixtures';

function shares(set: ReturnType<typeof endpointSet>): Record<string, number> {
  const c = selectCandidates(set);
  return Object.fromEntries(c.endpoints.map((e, i) => [e.address, Math.round(c.weights[i] * 1000) / 1000]));
}

const cases: [name: string, set: ReturnType<typeof endpointSet>, expected: Record<string, number>][] = [
  [
    'healthy and unknown are candidates; unhealthy and draining are not',
    endpointSet(
      locality([
        endpoint('a'),
        endpoint('b', { health: 'unknown' }),
        endpoint('c', { health: 'unhealthy' }),
        endpoint('d', { health: 'draining' }),
      ]),
    ),
    { a: 0.5, b: 0.5 },
  ],
  ['endpoint weights', endpointSet(locality([endpoint('a', { weight: 1 }), endpoint('b', { weight: 3 })])), { a: 0.25, b: 0.75 }],
  [
    'locality share × endpoint share within the locality',
    endpointSet(
      locality([endpoint('a1'), endpoint('a2', { weight: 3 })], { zone: 'a', weight: 1 }),
      locality([endpoint('b1')], { zone: 'b', weight: 3 }),
    ),
    { a1: 0.063, a2: 0.188, b1: 0.75 },
  ],
  [
    'a locality keeps its share when some of its endpoints are down',
    endpointSet(
      locality([endpoint('a1'), endpoint('a2', { health: 'unhealthy' })], { zone: 'a', weight: 1 }),
      locality([endpoint('b1'), endpoint('b2')], { zone: 'b', weight: 1 }),
    ),
    { a1: 0.5, b1: 0.25, b2: 0.25 },
  ],
  [
    'priority 0 wins while it has a candidate',
    endpointSet(locality([endpoint('near')], { priority: 0 }), locality([endpoint('far')], { priority: 1, zone: 'y' })),
    { near: 1 },
  ],
  [
    'priority 1 when priority 0 has no healthy endpoint',
    endpointSet(
      locality([endpoint('near', { health: 'unhealthy' }), endpoint('near2', { health: 'draining' })], { priority: 0 }),
      locality([endpoint('far1'), endpoint('far2')], { priority: 1, zone: 'y' }),
      locality([endpoint('farther')], { priority: 2, zone: 'w' }),
    ),
    { far1: 0.5, far2: 0.5 },
  ],
  [
    'localities of a priority need not be listed in order',
    endpointSet(locality([endpoint('far')], { priority: 1 }), locality([endpoint('near')], { priority: 0 })),
    { near: 1 },
  ],
  [
    'a locality of weight 0 gets nothing',
    endpointSet(locality([endpoint('a')], { zone: 'a', weight: 0 }), locality([endpoint('b')], { zone: 'b', weight: 2 })),
    { b: 1 },
  ],
  [
    'all localities of weight 0: endpoint weights alone',
    endpointSet(
      locality([endpoint('a', { weight: 1 })], { zone: 'a', weight: 0 }),
      locality([endpoint('b', { weight: 3 })], { zone: 'b', weight: 0 }),
    ),
    { a: 0.25, b: 0.75 },
  ],
  ['an endpoint weight of 0 counts as 1', endpointSet(locality([endpoint('a', { weight: 0 }), endpoint('b')])), { a: 0.5, b: 0.5 }],
  ['no endpoint is healthy', endpointSet(locality([endpoint('a', { health: 'unhealthy' })])), {}],
  ['no locality', endpointSet(), {}],
];

for (const [name, set, expected] of cases) {
  test(`candidates: ${name}`, () => {
    assert.deepEqual(shares(set), expected);
  });
}

test('candidates: sortedByKey orders by endpoint key and keeps each weight with its endpoint', () => {
  const c = sortedByKey(selectCandidates(endpointSet(locality([endpoint('b', { weight: 3 }), endpoint('a')]))));
  assert.deepEqual(
    c.endpoints.map((e) => e.address),
    ['a', 'b'],
  );
  assert.deepEqual(c.weights, [0.25, 0.75]);
});
