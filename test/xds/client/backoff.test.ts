// Reconnection backoff: doubling to a cap, jitter within [base/2, base], reset.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { Backoff, DEFAULT_BACKOFF } from '../../../src/xds/client/backoff';

test('backoff: doubles from the initial delay to the cap, jittered in [base/2, base]', () => {
  const high = new Backoff(DEFAULT_BACKOFF, () => 1);
  assert.deepEqual(Array.from({ length: 10 }, () => high.next()), [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000]);
  const low = new Backoff({ initialMs: 100, maxMs: 1000 }, () => 0);
  assert.deepEqual(Array.from({ length: 6 }, () => low.next()), [50, 100, 200, 400, 500, 500]);
  assert.equal(low.attempts, 6);
  low.reset();
  assert.deepEqual([low.attempts, low.next()], [0, 50]);
  const many = new Backoff(DEFAULT_BACKOFF, () => 1);
  for (let i = 0; i < 100; i++) many.next();
  assert.equal(many.next(), 10_000, 'no overflow after many attempts');
});
