import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { WeightedCluster } from '../../../src/proxy/config/types';
import { pickWeightedCluster } from '../../../src/proxy/router/weighted';
import { seeded } from '../lb/fixtures';

const splits: [name: string, clusters: WeightedCluster[]][] = [
  ['80/20 canary', [{ name: 'v1', weight: 80 }, { name: 'v2', weight: 20 }]],
  ['three-way', [{ name: 'a', weight: 1 }, { name: 'b', weight: 2 }, { name: 'c', weight: 7 }]],
  ['1% sliver', [{ name: 'main', weight: 99 }, { name: 'sliver', weight: 1 }]],
  ['with a zero weight', [{ name: 'a', weight: 50 }, { name: 'off', weight: 0 }, { name: 'b', weight: 50 }]],
];

for (const [name, clusters] of splits) {
  test(`pickWeightedCluster: ${name}: 100k picks within 1% of the weights`, () => {
    const total = clusters.reduce((sum, c) => sum + c.weight, 0);
    const random = seeded(42);
    const counts = new Map<string, number>();
    const picks = 100_000;
    for (let i = 0; i < picks; i++) {
      const chosen = pickWeightedCluster(clusters, total, random);
      counts.set(chosen, (counts.get(chosen) ?? 0) + 1);
    }
    for (const c of clusters) {
      const share = (counts.get(c.name) ?? 0) / picks;
      assert.ok(Math.abs(share - c.weight / total) < 0.01, `${c.name}: ${share}`);
    }
  });
}

test('pickWeightedCluster: edges', () => {
  const one = [{ name: 'only', weight: 5 }];
  assert.equal(pickWeightedCluster(one, 5, () => 0.99), 'only');
  assert.equal(pickWeightedCluster([], 0, () => 0.5), '');
  const two = [{ name: 'a', weight: 1 }, { name: 'b', weight: 1 }];
  assert.equal(pickWeightedCluster(two, 2, () => 0), 'a');
  assert.equal(pickWeightedCluster(two, 2, () => 0.4999), 'a');
  assert.equal(pickWeightedCluster(two, 2, () => 0.5), 'b');
  // A total above the sum: the rest goes to the last cluster.
  assert.equal(pickWeightedCluster(two, 10, () => 0.9), 'b');
});
