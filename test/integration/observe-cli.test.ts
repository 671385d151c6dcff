// `weft top` and `weft explain` against a real mesh: a control plane, a real
// sidecar for the calling service `web`, real upstreams. top reads the
// control plane's aggregator (which scrapes the sidecar's metrics); explain's
// answer is checked against what the same sidecar really does with the
// request (the route, the cluster split, the NR flag).
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { docs, exitGuard, HttpUpstream, Mesh, request, serviceYaml, waitFor, type Sidecar } from '../helpers/proxy-harness';
import { runExplain } from '../../src/cli/commands/explain';
import { runTop } from '../../src/cli/commands/top';

let mesh: Mesh;
let web: Sidecar;
let v1: HttpUpstream;
let v2: HttpUpstream;
let orders: HttpUpstream;
let api: string;

const ROUTES = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: product-canary }
spec:
  parentRefs: [{ kind: Service, name: product, port: 80 }]
  rules:
    - matches: [{ headers: [{ name: x-user, value: a }] }]
      backendRefs: [{ name: product-v2, port: 80 }]
    - matches: [{ path: { type: PathPrefix, value: /items } }]
      backendRefs:
        - { name: product, port: 80, weight: 90 }
        - { name: product-v2, port: 80, weight: 10 }
`;

const POLICY = `apiVersion: weft.dev/v1
kind: TrafficPolicy
metadata: { name: order }
spec:
  targetRef: { name: order }
  timeouts: { request: 1500ms }
  retries: { attempts: 3, retryOn: [5xx], perTryTimeout: 300ms }
  outlierDetection: { consecutive5xx: 4, interval: 1s, baseEjectionTime: 10s }
`;

function collect(): { out: { write(t: string): boolean }; text: () => string } {
  let text = '';
  return { out: { write: (t: string) => ((text += t), true) }, text: () => text };
}

before(async () => {
  v1 = await HttpUpstream.start('v1');
  v2 = await HttpUpstream.start('v2');
  orders = await HttpUpstream.start('orders');
  mesh = await Mesh.start({
    'services.yaml': docs(
      serviceYaml({ name: 'web' }),
      serviceYaml({ name: 'product', endpoints: [v1.port] }),
      serviceYaml({ name: 'product-v2', endpoints: [v2.port] }),
      serviceYaml({ name: 'order', endpoints: [orders.port] }),
    ),
    'routes.yaml': ROUTES,
    'policies.yaml': POLICY,
  });
  web = await mesh.sidecar({ nodeId: 'web-1', service: 'web' });
  api = `http://127.0.0.1:${mesh.cp!.apiPort}`;
});

after(async () => {
  exitGuard();
  await mesh?.close();
  await Promise.all([v1, v2, orders].map((u) => u?.close()));
});

test('weft top shows the calls web → product and web → order with their rate and success rate', { timeout: 30_000 }, async () => {
  let running = true;
  // Steady traffic while the aggregator scrapes (rates are counter deltas between scrapes).
  const traffic = (async () => {
    for (let i = 0; running; i++) {
      await request(web.outboundPort, { host: i % 3 ? 'product' : 'order', path: '/items' }).catch(() => {});
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  try {
    let text = '';
    await waitFor(
      async () => {
        const c = collect();
        await runTop({ api, once: true, out: c.out });
        text = c.text();
        return /web\s+product\s+[1-9]/.test(text) && /web\s+order\s+[1-9]/.test(text);
      },
      20_000,
      'weft top showing both calls with a rate',
    ).catch((err) => assert.fail(`${err.message}\n${text}`));
    assert.match(text, /FROM\s+TO\s+RPS\s+SUCCESS\s+P50\s+P99/);
    assert.match(text, /web\s+product\s+[\d.]+\s+100%\s+[\d.]+ms\s+[\d.]+ms/, text);
    assert.match(text, /^product\s+0\s+[1-9]/m, text);

    // The command line, as a script would run it.
    const bin = path.resolve(__dirname, '../../../bin/weft.js');
    // (not spawnSync: the control plane answering it runs in this process)
    const cli = await promisify(execFile)(process.execPath, [bin, 'top', '--once', '--api', api], { encoding: 'utf8', timeout: 15_000 });
    assert.match(cli.stdout, /web\s+order\s+[\d.]+\s+100%/);
  } finally {
    running = false;
    await traffic;
  }
});

/** The clock times of the last few seconds as `weft top` prints them (its header uses the local format). */
function recentClockTimes(seconds: number): string[] {
  const now = Date.now();
  return Array.from({ length: seconds + 2 }, (_, i) => new Date(now - (seconds - i + 1) * 1000).toLocaleTimeString());
}

test('weft top --once after an idle spell: a fresh timestamp, and traffic that just started shows (no all-zero rows)', { timeout: 45_000 }, async () => {
  // Idle: wait for a window without requests on web → order (the control plane up for a while, no calls).
  await waitFor(
    async () => {
      const t = (await (await fetch(`${api}/api/v1/topology`)).json()) as any;
      return t.windowSeconds > 0 && t.edges.every((e: any) => e.requests === 0);
    },
    25_000,
    'a window without requests',
  );
  let running = true;
  let sent = 0;
  const traffic = (async () => {
    while (running) {
      if ((await request(web.outboundPort, { host: 'order', path: '/items' }).catch(() => undefined))?.status === 200) sent++;
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  try {
    await waitFor(async () => sent > 0, 5000, 'a first call web → order');
    // One run, as a user would type it: it waits for the window that holds the new calls.
    const c = collect();
    await runTop({ api, once: true, out: c.out });
    const text = c.text();
    const header = text.split('\n')[0];
    assert.ok(recentClockTimes(8).some((t) => header.includes(t)), `not a fresh time: ${header}`);
    assert.match(header, /rates over the last [\d.]+s/);
    assert.match(text, /web\s+order\s+(?!0\.0\s)[\d.]+\s+100%/, text);
  } finally {
    running = false;
    await traffic;
  }
});

test('weft top --once on a mesh without a window yet says it is warming up instead of printing zeros', { timeout: 20_000 }, async () => {
  const idle = await Mesh.start({ 'services.yaml': docs(serviceYaml({ name: 'lonely', endpoints: [v1.port] })) });
  try {
    const c = collect();
    await runTop({ api: `http://127.0.0.1:${idle.cp!.apiPort}`, once: true, waitMs: 1500, out: c.out });
    const text = c.text();
    assert.match(text.split('\n')[0], /warming up: no full window yet/);
    assert.match(text, /^lonely\s+0\s+-\s+-\s+-\s+-$/m, text);
    assert.doesNotMatch(text, /0\.0|over the last 0s/, text);
  } finally {
    await idle.close();
  }
});

async function explain(method: string, url: string, headers: string[] = []): Promise<{ text: string; json: any }> {
  const t = collect();
  await runExplain(method, url, { from: 'web', header: headers, output: 'text', api, out: t.out });
  const j = collect();
  await runExplain(method, url, { from: 'web', header: headers, output: 'json', api, out: j.out });
  return { text: t.text(), json: JSON.parse(j.text()) };
}

test('weft explain: a header match sends x-user: a to product-v2, as the sidecar does', { timeout: 15_000 }, async () => {
  const { text, json } = await explain('GET', 'http://product/catalog', ['x-user: a']);
  assert.equal(json.listener.name, 'outbound');
  assert.equal(json.route.name, 'HTTPRoute/default/product-canary/0/0');
  assert.deepEqual(json.route.matchedBecause, ['path starts with /', 'header x-user exact "a"']);
  assert.deepEqual(json.clusters.map((c: any) => [c.name, c.weight]), [['outbound|80||product-v2.default', '100%']]);
  assert.deepEqual(json.clusters[0].endpoints.map((e: any) => e.address), [`127.0.0.1:${v2.port}`]);
  assert.equal(json.route.title, 'HTTPRoute default/product-canary spec.rules[0]');
  assert.match(text, /Route\s+HTTPRoute default\/product-canary spec\.rules\[0\]\n/);
  assert.match(text, /matched because path starts with \/ and header x-user exact "a"/);
  const res = await request(web.outboundPort, { host: 'product', path: '/catalog', headers: { 'x-user': 'a' } });
  assert.equal(res.headers['x-upstream'], 'v2');
});

test('weft explain: the canary split 90/10 on /items, even with x-user: a (the longer path comes first)', { timeout: 15_000 }, async () => {
  for (const headers of [[], ['x-user: a']]) {
    const { text, json } = await explain('GET', 'http://product/items', headers);
    assert.equal(json.route.name, 'HTTPRoute/default/product-canary/1/0');
    assert.deepEqual(json.route.matchedBecause, ['path starts with /items (whole segments)']);
    assert.deepEqual(json.clusters.map((c: any) => [c.name, c.weight]), [
      ['outbound|80||product.default', '90%'],
      ['outbound|80||product-v2.default', '10%'],
    ]);
    assert.match(text, /Cluster\s+outbound\|80\|\|product\.default\s+weight 90%/);
  }
  // The sidecar splits the same way: mostly v1, some v2.
  const seen = { v1: 0, v2: 0 } as Record<string, number>;
  for (let i = 0; i < 60; i++) seen[String((await request(web.outboundPort, { host: 'product', path: '/items', headers: { 'x-user': 'a' } })).headers['x-upstream'])]++;
  assert.ok(seen.v1 > seen.v2 && seen.v1 + seen.v2 === 60, JSON.stringify(seen));
});

test('weft explain: the retry policy, timeout, outlier detection and live endpoint state of order', { timeout: 15_000 }, async () => {
  const { text, json } = await explain('GET', 'http://order/items');
  assert.equal(json.route.timeoutMs, 1500);
  assert.equal(json.route.retry.numRetries, 3);
  assert.deepEqual(json.route.retry.retryOn, ['5xx']);
  assert.equal(json.route.retry.perTryTimeoutMs, 300);
  assert.equal(json.clusters[0].outlierDetection.consecutive5xx, 4);
  // The endpoint as the live sidecar sees it (its /clusters).
  assert.equal(json.clusters[0].endpoints[0].live[0].node, 'web-1');
  assert.match(text, /retries\s+3 on 5xx, per try 300 ms/);
  assert.match(text, /timeout 1\.5 s/);
  assert.match(text, /endpoint 127\.0\.0\.1:\d+ healthy — in load balancing/);
});

test('weft explain: no route → NR, and the sidecar answers the same request 404 NR', { timeout: 15_000 }, async () => {
  const miss = await explain('GET', 'http://product/other');
  assert.equal(miss.json.verdict.flag, 'NR');
  // Each route of the host, with what it needed.
  assert.deepEqual(miss.json.notMatched.map((n: any) => [n.route, n.match, n.matched]), [
    ['HTTPRoute/default/product-canary/1/0', ['path starts with /items (whole segments)'], false],
    ['HTTPRoute/default/product-canary/0/0', ['path starts with /', 'header x-user exact "a"'], false],
  ]);
  assert.match(miss.text, /skipped\s+HTTPRoute default\/product-canary spec\.rules\[0\]: needs path starts with \/ and header x-user exact "a"/);
  assert.equal(miss.json.verdict.status, 404);
  assert.match(miss.text, /Verdict\s+404 NR: no route of product\.default:80 matches GET \/other/);
  const res = await request(web.outboundPort, { host: 'product', path: '/other' });
  assert.equal(res.status, 404);
  assert.equal(res.headers['x-weft-response-flags'], 'NR');

  const unknown = await explain('GET', 'http://nosuch/');
  assert.equal(unknown.json.verdict.flag, 'NR');
  assert.match(unknown.text, /no virtual host for authority "nosuch"/);
  const res2 = await request(web.outboundPort, { host: 'nosuch', path: '/' });
  assert.equal(res2.headers['x-weft-response-flags'], 'NR');
});

test('weft explain: the last similar requests the live sidecar saw, with how long ago and how long they took', { timeout: 15_000 }, async () => {
  for (let i = 0; i < 3; i++) assert.equal((await request(web.outboundPort, { host: 'order', path: '/recent' })).status, 200);
  const { text, json } = await explain('GET', 'http://order/recent');
  assert.equal(json.recentRequests.length, 3);
  const lines = text.split('\n').filter((l) => /GET \/recent {2}→/.test(l));
  assert.equal(lines.length, 3, text);
  for (const line of lines) assert.match(line, /^ +\d+(\.\d)? s ago {2}GET \/recent {2}→ 200 - {2}outbound\|80\|\|order\.default 127\.0\.0\.1:\d+ in \d+(\.\d{1,2})? (ms|s)$/, text);
  // No epoch milliseconds, no 16-digit durations, no internal route names.
  assert.doesNotMatch(text, /\d{6,}|\d\.\d{4,}|\|non-idempotent|\(\?:/, text);
  // A POST takes the retry policy's copy for non-idempotent methods: named as the route it copies.
  const post = await explain('POST', 'http://order/recent');
  assert.deepEqual(post.json.route.origin, { default: true, nonIdempotentMethods: ['POST', 'PATCH', 'CONNECT'] });
  assert.match(post.text, /Route\s+the default route of order\.default:80 \(no route attaches to it\), for POST, PATCH, CONNECT\n  matched because path starts with \/ and method is POST, PATCH or CONNECT/);
});

test('weft explain: a bad request names what is wrong', { timeout: 15_000 }, async () => {
  await assert.rejects(runExplain('GET', 'http://product/', { from: 'nobody', header: [], output: 'text', api, out: collect().out }), /no service default\/nobody/);
  await assert.rejects(runExplain('GET', 'product', { from: 'web', header: [], output: 'text', api, out: collect().out }), /not an absolute URL/);
});

// Issue 18: a TrafficPolicy with retries on product-v2, the canary backend of the route on product.
test('weft explain: retries of a policy on product-v2 apply where the rule sends only there (the sidecar retries), and are a warning on the 90/10 split', { timeout: 30_000 }, async () => {
  mesh.write(
    'canary-policy.yaml',
    `apiVersion: weft.dev/v1
kind: TrafficPolicy
metadata: { name: product-v2 }
spec:
  targetRef: { name: product-v2 }
  retries: { attempts: 2, retryOn: [5xx], nonIdempotent: true }
`,
  );
  // v2 fails every other request: with one retry, each call is answered 200 after exactly two attempts.
  let n = 0;
  v2.handler = (_req, res) => {
    const fail = ++n % 2 === 1;
    res.writeHead(fail ? 503 : 200, { 'x-upstream': 'v2', 'content-length': '0' });
    res.end();
  };
  try {
    await waitFor(async () => (await explain('GET', 'http://product/catalog', ['x-user: a'])).json.route.retry !== undefined, 10_000, 'explain showing the retries');
    // Asked again: explain() asks twice (text, then JSON), and the policy may have arrived between the two.
    const only = await explain('GET', 'http://product/catalog', ['x-user: a']);
    assert.equal(only.json.route.retry.numRetries, 2);
    assert.match(only.text, /retries\s+2 on 5xx/);
    assert.equal(only.json.route.warnings, undefined);

    const split = await explain('GET', 'http://product/items');
    assert.equal(split.json.route.retry, undefined);
    assert.match(split.text, /retries\s+none\n\s+warning\s+TrafficPolicy default\/product-v2: spec\.retries: not applied to the requests rule 1 of HTTPRoute default\/product-canary sends to product-v2: product has no retries/);

    // The sidecar does what explain says (once its config has arrived).
    await waitFor(
      async () => {
        const before = v2.requests;
        const res = await request(web.outboundPort, { host: 'product', path: '/catalog', headers: { 'x-user': 'a' } });
        return res.status === 200 && v2.requests - before === 2;
      },
      10_000,
      'a call answered 200 after a retry',
    );
  } finally {
    v2.handler = undefined;
    fs.unlinkSync(path.join(mesh.configDir, 'canary-policy.yaml'));
  }
});
