// `weft explain` on the demo's own config (examples/mesh): routes named as the
// user wrote them (resource and rule, not the translator's entry names or its
// per-method copies), durations and times as people read them.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { explainRequest } from '../../src/observe/explain';
import { renderExplain } from '../../src/cli/commands/explain';
import { ago, duration } from '../../src/cli/format';
import { meshView } from '../translate/helpers';

const dir = path.join(__dirname, '..', '..', '..', 'examples', 'mesh');
const view = meshView(
  fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => fs.readFileSync(path.join(dir, f), 'utf8'))
    .join('\n---\n'),
);

/** Internal names and raw numbers a reader should never see. */
function assertReadable(text: string): void {
  assert.doesNotMatch(text, /\|non-idempotent|\(\?:|HTTPRoute\/|\d{6,}|\d\.\d{4,}|\d+ms\b/, text);
}

test('explain on the demo config: a POST to payment takes the retry policy\'s copy for non-idempotent methods, named as the default route', async () => {
  const r = await explainRequest(view, [], { from: 'order', method: 'POST', url: 'http://payment:8083/pay', headers: [] });
  assert.equal(r.route.title, 'the default route of payment.default:8083 (no route attaches to it), for POST, PATCH, CONNECT');
  assert.deepEqual(r.route.origin, { default: true, nonIdempotentMethods: ['POST', 'PATCH', 'CONNECT'] });
  assert.deepEqual(r.route.matchedBecause, ['path starts with /', 'method is POST, PATCH or CONNECT']);
  const text = renderExplain(r);
  assertReadable(text);
  assert.match(text, /^Route {6}the default route of payment\.default:8083 \(no route attaches to it\), for POST, PATCH, CONNECT$/m);
  assert.match(text, /matched because path starts with \/ and method is POST, PATCH or CONNECT/);
  assert.match(text, /retried only when the request never reached the upstream/);
  assert.match(text, /timeout 2 s, idle 30 s/);
  assert.match(text, /retries {2}2 on connect-failure, per try 500 ms, backoff 25 ms to 250 ms/);
  assert.match(text, /outlier detection: 3 gateway errors in a row ejects an endpoint for 15 s \(longer each time, up to 5 min\), at most 50% of them; checked every 5 s/);
  assert.match(text, /health check: TCP connect every 5 s \(timeout 1 s\)/);

  // A GET skips the copy, named the same way, and takes the route itself.
  const get = await explainRequest(view, [], { from: 'order', method: 'GET', url: 'http://payment:8083/pay', headers: [] });
  const getText = renderExplain(get);
  assertReadable(getText);
  assert.match(getText, /skipped {2}the default route of payment\.default:8083 \(no route attaches to it\), for POST, PATCH, CONNECT: needs path starts with \/ and method is POST, PATCH or CONNECT/);
  assert.match(getText, /^Route {6}the default route of payment\.default:8083 \(no route attaches to it\)$/m);
});

test('explain on the demo config: the canary HTTPRoute by resource and rule', async () => {
  const r = await explainRequest(view, [], { from: 'storefront', method: 'GET', url: 'http://product:8081/products', headers: [] });
  assert.equal(r.route.name, 'HTTPRoute/default/product-canary/1/0');
  assert.equal(r.route.title, 'HTTPRoute default/product-canary spec.rules[1]');
  assert.deepEqual(r.route.origin, { kind: 'HTTPRoute', namespace: 'default', name: 'product-canary', rule: 1, match: 0, field: 'spec.rules[1]' });
  const text = renderExplain(r);
  assertReadable(text);
  assert.match(text, /skipped {2}HTTPRoute default\/product-canary spec\.rules\[0\]: needs path starts with \/admin/);
  assert.match(text, /^Route {6}HTTPRoute default\/product-canary spec\.rules\[1\]$/m);
  assert.match(text, /timeout 3 s/);
  assert.match(text, /connect timeout 5 s/);
});

test('durations and moments as people read them', () => {
  assert.deepEqual([0.4213, 1.234, 7.972643999999491, 250.4, 2000, 2500, 15_000, 300_000, 5_400_000].map(duration), [
    '0.42 ms',
    '1.2 ms',
    '8 ms',
    '250 ms',
    '2 s',
    '2.5 s',
    '15 s',
    '5 min',
    '1.5 h',
  ]);
  const now = 1_796_375_020_813;
  assert.equal(ago(now - 3_200, now), '3 s ago');
  assert.equal(ago(now - 400.5, now), '0.4 s ago');
  assert.equal(ago(new Date(now + 12_000).toISOString(), now), 'in 12 s');
});
