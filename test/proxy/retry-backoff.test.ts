// The retry back-off's delays, exactly: uniform in [0, min(max, base × 2^n)),
// Envoy's fully jittered exponential back-off. (The integration test in
// retries.test.ts sees the same delays through a real sidecar, where the
// machine's scheduling adds its own.)
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { backoffMs } from '../../src/proxy/retry';
import type { RetryPolicy } from '../../src/proxy/config/types';

const policy = { backoff: { baseMs: 20, maxMs: 40 } } as RetryPolicy;

test('back-off: each delay within [0, min(max, base × 2^n)), spread over the whole range', (t) => {
  const real = Math.random;
  let fixed: number | undefined;
  t.mock.method(Math, 'random', () => fixed ?? real());
  const ceilings = [20, 40, 40, 40];
  for (const [n, ceiling] of ceilings.entries()) {
    fixed = 0;
    assert.equal(backoffMs(policy, n), 0);
    fixed = 0.999999;
    const top = backoffMs(policy, n);
    assert.ok(top < ceiling && top > ceiling * 0.99, `retry ${n}: ${top} vs ${ceiling}`);
    fixed = undefined;
    const samples = Array.from({ length: 2000 }, () => backoffMs(policy, n));
    assert.ok(samples.every((d) => d >= 0 && d < ceiling));
    const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
    assert.ok(Math.abs(mean - ceiling / 2) < ceiling * 0.1, `retry ${n}: mean ${mean} ≈ ${ceiling / 2}`);
  }
});
