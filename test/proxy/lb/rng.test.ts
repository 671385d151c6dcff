import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AliasTable } from '../../../src/proxy/upstream/lb/alias-table';
import { Rng, RNG_RANGE } from '../../../src/proxy/upstream/lb/rng';
import { seeded } from './fixtures';

test('Rng: the same seed gives the same draws; draws are integers in [0, 2^30)', () => {
  const a = new Rng(() => 0.25);
  const b = new Rng(() => 0.25);
  for (let i = 0; i < 1000; i++) {
    const x = a.next();
    assert.equal(x, b.next());
    assert.ok(Number.isInteger(x) && x >= 0 && x < RNG_RANGE);
  }
});

test('Rng: uniform (chi-square over 64 buckets, 640k draws)', () => {
  const rng = new Rng(seeded(9));
  const buckets = new Array<number>(64).fill(0);
  const draws = 640_000;
  for (let i = 0; i < draws; i++) buckets[Math.floor((rng.next() / RNG_RANGE) * 64)]++;
  const expected = draws / 64;
  const chi2 = buckets.reduce((sum, b) => sum + (b - expected) ** 2 / expected, 0);
  // 63 degrees of freedom: 99.9th percentile ≈ 103.4.
  assert.ok(chi2 < 103.4, `chi2 ${chi2}`);
});

test('AliasTable: exact probabilities over the whole draw range', () => {
  const weights = [0.1, 0.2, 0.3, 0.4];
  const table = new AliasTable(weights);
  const hits = [0, 0, 0, 0];
  const steps = 100_000;
  for (let i = 0; i < steps; i++) hits[table.sample(Math.floor((i / steps) * RNG_RANGE))]++;
  hits.forEach((h, i) => assert.ok(Math.abs(h / steps - weights[i]) < 0.001, `${i}: ${h}`));
});
