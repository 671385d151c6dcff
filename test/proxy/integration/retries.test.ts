// Retries in the sidecar (HTTP/1.1 upstreams): a TrafficPolicy's `retries`
// reach the sidecar as route retry_policy and cluster retry_budget, and the
// sidecar tries again on 5xx, resets, refused connections and per-try
// timeouts, up to num_retries, backed off with full jitter, never once a
// response byte went downstream, with request bodies replayed only when
// buffered, and held to the cluster's retry budget.
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as http from 'node:http';
import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { admin, docs, exitGuard, freePort, HttpUpstream, Mesh, parsePrometheus, RawUpstream, request, serviceYaml, sleep, T, waitFor, type Sidecar } from '../../helpers/proxy-harness';
import type { RouteAction } from '../../../src/proxy/config/types';
import * as grpc from '@grpc/grpc-js';
import { EchoClient, startEchoServer, unary, type EchoServer } from '../../helpers/grpc-echo';

let mesh: Mesh;
let sc: Sidecar;
let flaky: HttpUpstream;
let good: HttpUpstream;
let budgeted: HttpUpstream;
let raw: RawUpstream;
let refusedPort: number;
let echo: EchoServer;
let h2up: http2.Http2Server;

const FLAG = 'x-weft-response-flags';
/** Attempts seen per request id, with their x-envoy-attempt-count and arrival time. */
const attempts = new Map<string, { count: string; at: number; body: number }[]>();
let budgetInFlight = 0;
let budgetMaxRetriesInFlight = 0;
let budgetRetriesInFlight = 0;
let rawEarly = 0;
let rawLate = 0;

const policy = (name: string, retries: string) => `apiVersion: weft.dev/v1
kind: TrafficPolicy
metadata: { name: ${name} }
spec:
  targetRef: { name: ${name} }
  retries: ${retries}
`;

before(async () => {
  flaky = await HttpUpstream.start('flaky');
  // /?id=…&fail=N&mode=503|reset|hang: the first N attempts of each id fail that way.
  flaky.handler = (req: http.IncomingMessage, res: http.ServerResponse, body: Buffer) => {
    const q = new URL(req.url!, 'http://x').searchParams;
    const id = q.get('id') ?? '';
    const seen = attempts.get(id) ?? [];
    attempts.set(id, seen);
    seen.push({ count: String(req.headers['x-envoy-attempt-count']), at: performance.now(), body: body.length });
    if (seen.length <= Number(q.get('fail') ?? 0)) {
      const mode = q.get('mode') ?? '503';
      if (mode === 'reset') return req.socket.destroy();
      if (mode === 'hang') return;
      return res.writeHead(Number(mode), { 'content-length': 4 }).end('fail');
    }
    res.writeHead(200, { 'content-length': 2 }).end('ok');
  };
  good = await HttpUpstream.start('good');
  budgeted = await HttpUpstream.start('budgeted');
  budgeted.handler = (req, res) => {
    const retry = req.headers['x-envoy-attempt-count'] !== '1';
    budgetInFlight++;
    if (retry) budgetMaxRetriesInFlight = Math.max(budgetMaxRetriesInFlight, ++budgetRetriesInFlight);
    setTimeout(() => {
      budgetInFlight--;
      if (retry) budgetRetriesInFlight--;
      res.writeHead(503, { 'content-length': 4 }).end('busy');
    }, 60);
  };
  // /early: the first two connections close before answering; /late: half a response, then a reset.
  raw = await RawUpstream.start((s) =>
    s.once('data', (c: Buffer) => {
      const line = c.toString('latin1').split('\r\n')[0];
      if (line.includes('/early')) {
        if (rawEarly++ < 2) return s.destroy();
        return s.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok');
      }
      rawLate++;
      s.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b');
      setTimeout(() => s.destroy(), 20);
    }),
  );
  refusedPort = await freePort();
  echo = await startEchoServer('echo', 3);
  // An h2c upstream: /?id=…&fail=N answers 503 to the first N attempts of each id.
  h2up = http2.createServer();
  h2up.on('stream', (stream, headers) => {
    const q = new URL(String(headers[':path']), 'http://x').searchParams;
    const r = q.get('id') ?? '';
    const seen = attempts.get(r) ?? [];
    attempts.set(r, seen);
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      seen.push({ count: String(headers['x-envoy-attempt-count']), at: performance.now(), body: Buffer.concat(chunks).length });
      if (seen.length <= Number(q.get('fail') ?? 0)) stream.respond({ ':status': 503 }, { endStream: true });
      else {
        stream.respond({ ':status': 200 });
        stream.end('ok');
      }
    });
    stream.on('error', () => {});
  });
  await new Promise<void>((resolve) => h2up.listen(0, '127.0.0.1', () => resolve()));
  mesh = await Mesh.start({
    'services.yaml': docs(
      serviceYaml({ name: 'flaky', endpoints: [flaky.port] }),
      serviceYaml({ name: 'norefuse', endpoints: [refusedPort, good.port] }),
      serviceYaml({ name: 'raw', endpoints: [raw.port] }),
      serviceYaml({ name: 'budgeted', endpoints: [budgeted.port] }),
      serviceYaml({ name: 'pertry', endpoints: [flaky.port] }),
      serviceYaml({ name: 'idem', endpoints: [flaky.port] }),
      serviceYaml({ name: 'idemrefuse', endpoints: [refusedPort, good.port] }),
      serviceYaml({ name: 'echo', port: 50051, protocol: 'grpc', endpoints: [echo.port] }),
      serviceYaml({ name: 'h2flaky', port: 81, protocol: 'http2', endpoints: [(h2up.address() as AddressInfo).port] }),
    ),
    'policies.yaml': docs(
      policy('flaky', '{ attempts: 3, retryOn: [5xx, reset, connect-failure], nonIdempotent: true, backoff: { baseInterval: 20ms, maxInterval: 40ms } }'),
      policy('idem', '{ attempts: 2, retryOn: [5xx, connect-failure], backoff: { baseInterval: 5ms } }'),
      policy('idemrefuse', '{ attempts: 2, retryOn: [5xx, connect-failure], backoff: { baseInterval: 5ms } }'),
      policy('norefuse', '{ attempts: 2, retryOn: [connect-failure], backoff: { baseInterval: 5ms } }'),
      policy('raw', '{ attempts: 2, retryOn: [reset], backoff: { baseInterval: 5ms } }'),
      policy('budgeted', '{ attempts: 3, retryOn: [5xx], backoff: { baseInterval: 5ms, maxInterval: 10ms }, budget: { percent: 10, minRetriesPerSecond: 2 } }'),
      policy('pertry', '{ attempts: 2, retryOn: [5xx], perTryTimeout: 100ms, backoff: { baseInterval: 5ms } }'),
      policy('echo', '{ attempts: 3, retryOn: [unavailable], backoff: { baseInterval: 5ms } }'),
      policy('h2flaky', '{ attempts: 3, retryOn: [5xx], nonIdempotent: true, backoff: { baseInterval: 5ms } }'),
    ),
  });
  sc = await mesh.sidecar();
  await sc.waitConfig((c) => [...c.routeTables.values()].some((t) => t.virtualHosts.some((v) => v.routes.some((r) => (r.action as RouteAction).retry))), 3000, 'routes with retry policies');
}, T);

after(async () => {
  exitGuard();
  await mesh.close();
  await Promise.all([flaky.close(), good.close(), budgeted.close(), raw.close(), echo.close(), new Promise<void>((r) => h2up.close(() => r()))]);
});

let nextId = 0;
const id = () => `r${++nextId}`;

async function retriesStat(cluster: string, name = 'weft_retries_total'): Promise<number> {
  const metrics = parsePrometheus((await admin(sc, '/stats/prometheus')).text);
  return metrics.filter((m) => m.name === name && m.labels.cluster.includes(cluster)).reduce((n, m) => n + m.value, 0);
}

test('5xx twice, then success: the client gets 200; the upstream saw attempt counts 1, 2, 3', T, async () => {
  const r = id();
  const res = await request(sc.outboundPort, { host: 'flaky', path: `/?id=${r}&fail=2&mode=503` });
  assert.equal(res.status, 200);
  assert.equal(res.text, 'ok');
  assert.deepEqual(attempts.get(r)!.map((a) => a.count), ['1', '2', '3']);
  assert.ok((await retriesStat('flaky')) >= 2, 'weft_retries_total counts the retries');
});

test('an upstream that resets the first two attempts: 200 on the third', T, async () => {
  const r = id();
  const res = await request(sc.outboundPort, { host: 'flaky', path: `/?id=${r}&fail=2&mode=reset` });
  assert.equal(res.status, 200);
  assert.deepEqual(attempts.get(r)!.map((a) => a.count), ['1', '2', '3']);
});

test('a refused endpoint: the retry goes to the other endpoint, every request succeeds', T, async () => {
  for (let i = 0; i < 8; i++) {
    const res = await request(sc.outboundPort, { host: 'norefuse' });
    assert.equal(res.status, 200, `request ${i}: ${res.headers[FLAG] ?? ''} ${res.text}`);
  }
  assert.equal(good.requests, 8);
  assert.ok((await retriesStat('norefuse')) >= 1);
});

test('attempts are capped at num_retries + 1; the client gets the last upstream response', T, async () => {
  const r = id();
  const res = await request(sc.outboundPort, { host: 'flaky', path: `/?id=${r}&fail=10&mode=503` });
  assert.equal(res.status, 503);
  assert.equal(res.text, 'fail', 'the upstream response, not a local reply');
  assert.deepEqual(attempts.get(r)!.map((a) => a.count), ['1', '2', '3', '4']);
  // Local failures to the end: the local reply says URX.
  const r2 = id();
  const reset = await request(sc.outboundPort, { host: 'flaky', path: `/?id=${r2}&fail=10&mode=reset` });
  assert.equal(reset.status, 503);
  assert.equal(reset.headers[FLAG], 'URX');
  assert.equal(attempts.get(r2)!.length, 4);
});

test('a POST body is replayed when buffered (small); a large body is not retried', T, async () => {
  const r = id();
  const body = 'x'.repeat(5000);
  const res = await request(sc.outboundPort, { host: 'flaky', method: 'POST', path: `/?id=${r}&fail=1&mode=503`, body, headers: { 'content-type': 'text/plain' } });
  assert.equal(res.status, 200);
  assert.deepEqual(attempts.get(r)!.map((a) => [a.count, a.body]), [['1', 5000], ['2', 5000]]);
  const big = id();
  const large = await request(sc.outboundPort, { host: 'flaky', method: 'POST', path: `/?id=${big}&fail=1&mode=503`, body: Buffer.alloc(100 * 1024, 1) });
  assert.equal(large.status, 503);
  assert.equal(attempts.get(big)!.length, 1, 'a body over 64 KiB is not retried');
});

test('idempotent methods only: a POST is not retried on 503 unless nonIdempotent, but is on a refused connection; GET, PUT and DELETE are', T, async () => {
  const post = id();
  const res = await request(sc.outboundPort, { host: 'idem', method: 'POST', path: `/?id=${post}&fail=1&mode=503`, body: 'order' });
  assert.equal(res.status, 503, 'the POST got the upstream answer');
  assert.equal(attempts.get(post)!.length, 1, 'a POST reached the upstream once');
  for (const method of ['GET', 'PUT', 'DELETE']) {
    const r = id();
    assert.equal((await request(sc.outboundPort, { host: 'idem', method, path: `/?id=${r}&fail=1&mode=503` })).status, 200, method);
    assert.equal(attempts.get(r)!.length, 2, `${method} retried`);
  }
  // Nothing reached the refused endpoint: safe to try another, POST or not.
  for (let i = 0; i < 6; i++) assert.equal((await request(sc.outboundPort, { host: 'idemrefuse', method: 'POST', path: '/', body: 'x' })).status, 200);
});

test('no retry once the response started; a reset before it is retried', T, async () => {
  const early = await request(sc.outboundPort, { host: 'raw', path: '/early' });
  assert.equal(early.status, 200);
  assert.equal(rawEarly, 3, 'two resets, each retried (attempts: 2)');
  await assert.rejects(request(sc.outboundPort, { host: 'raw', path: '/late' }));
  await sleep(100);
  assert.equal(rawLate, 1, 'half a response went downstream: never retried');
});

test('per-try timeout 100 ms: a hanging first attempt, then success on the second', T, async () => {
  const r = id();
  const t0 = performance.now();
  const res = await request(sc.outboundPort, { host: 'pertry', path: `/?id=${r}&fail=1&mode=hang`, timeoutMs: 3000 });
  const ms = performance.now() - t0;
  assert.equal(res.status, 200);
  assert.deepEqual(attempts.get(r)!.map((a) => a.count), ['1', '2']);
  assert.ok(ms >= 95 && ms < 1000, `took ${ms} ms`);
});

test('back-off: each gap near [0, min(max, base × 2^n)), and not zero on average', T, async () => {
  // flaky: base 20 ms, max 40 ms → ceilings 20, 40, 40.
  const ceilings = [20, 40, 40];
  let total = 0;
  const n = 8;
  for (let i = 0; i < n; i++) {
    const r = id();
    const res = await request(sc.outboundPort, { host: 'flaky', path: `/?id=${r}&fail=3&mode=503` });
    assert.equal(res.status, 200);
    const seen = attempts.get(r)!;
    assert.equal(seen.length, 4);
    for (let k = 1; k < seen.length; k++) {
      const gap = seen[k].at - seen[k - 1].at;
      // The exact bounds are test/proxy/retry-backoff.test.ts's; here a busy machine's scheduling adds to
      // each gap, so the bound only catches a back-off that is far too long.
      assert.ok(gap < ceilings[k - 1] + 1000, `gap ${k}: ${gap} ms, ceiling ${ceilings[k - 1]} ms`);
      total += gap;
    }
  }
  // Mean of the uniform delays: 10 + 20 + 20 ms a request; far below that means no back-off.
  assert.ok(total / n > 15, `mean back-off per request ${total / n} ms`);
});

test('the retry budget bounds retries in flight: 20 concurrent failing requests, at most 2 retrying', T, async () => {
  const before = await retriesStat('budgeted', 'weft_retry_overflow_total');
  const results = await Promise.all(Array.from({ length: 20 }, () => request(sc.outboundPort, { host: 'budgeted', timeoutMs: 5000 })));
  assert.ok(results.every((r) => r.status === 503));
  assert.ok(budgetMaxRetriesInFlight >= 1, 'some requests were retried');
  assert.ok(budgetMaxRetriesInFlight <= 2, `retries in flight ${budgetMaxRetriesInFlight}`);
  assert.ok(budgeted.requests < 20 * 4 / 2, `upstream saw ${budgeted.requests} attempts for 20 requests`);
  assert.ok((await retriesStat('budgeted', 'weft_retry_overflow_total')) > before, 'refused retries are counted');
  await waitFor(() => budgetInFlight === 0, 2000, 'the upstream idle');
});

test('examples/mesh carries retries: weft validate passes and a sidecar ACKs the config', T, async () => {
  const root = path.resolve(__dirname, '../../../..');
  const dir = path.join(root, 'examples/mesh');
  const validate = spawnSync(process.execPath, [path.join(root, 'bin/weft.js'), 'validate', '-f', dir], { encoding: 'utf8' });
  assert.equal(validate.status, 0, validate.stdout + validate.stderr);
  assert.match(fs.readFileSync(path.join(dir, 'policies.yaml'), 'utf8'), /retries:/);
  const demo = await Mesh.start(Object.fromEntries(fs.readdirSync(dir).map((f) => [f, fs.readFileSync(path.join(dir, f), 'utf8')])));
  try {
    const order = await demo.sidecar({ nodeId: 'order-1', service: 'order' });
    await order.waitConfig(
      (c) => [...c.clusters.values()].some((cl) => cl.retryBudget !== undefined) && [...c.routeTables.values()].some((t) => t.virtualHosts.some((v) => v.routes.some((r) => (r.action as RouteAction).retry))),
      3000,
      'payment routes with retries',
    );
    await waitFor(() => Object.values(demo.nodeStates('order-1')).every((s) => s === 'SYNCED'), 3000, 'every type ACKed');
    assert.ok(!Object.values(demo.nodeStates('order-1')).includes('NACKED'));
  } finally {
    await demo.close();
  }
});

test('gRPC over HTTP/2: UNAVAILABLE in a trailers-only response is retried; the third attempt answers', T, async () => {
  const client = new EchoClient(`127.0.0.1:${sc.outboundPort}`, grpc.credentials.createInsecure(), { 'grpc.default_authority': 'echo:50051', 'grpc.enable_retries': 0 });
  try {
    const res = await unary(client, 'Flaky', { id: 'g1' });
    assert.equal(res.attempt, 3);
    assert.equal(echo.flakyAttempts.get('g1'), 3);
    assert.ok((await retriesStat('echo')) >= 2);
    // attempts 3 → 4 tries at most; a call that never succeeds gets the last UNAVAILABLE.
    echo.flakyAttempts.set('g2', -100);
    await assert.rejects(unary(client, 'Flaky', { id: 'g2' }), (err: grpc.ServiceError) => err.code === grpc.status.UNAVAILABLE);
    assert.equal(echo.flakyAttempts.get('g2'), -96);
  } finally {
    client.close();
  }
});

test('HTTP/2 upstream: 503 twice then 200, from an HTTP/1.1 client (bridged, with a body) and from an h2c client', T, async () => {
  const r = id();
  const res = await request(sc.outboundPort, { host: 'h2flaky:81', method: 'POST', path: `/?id=${r}&fail=2`, body: 'payload', headers: { 'content-length': 7 } });
  assert.equal(res.status, 200);
  assert.equal(res.text, 'ok');
  assert.deepEqual(attempts.get(r)!.map((a) => [a.count, a.body]), [['1', 7], ['2', 7], ['3', 7]]);
  const r2 = id();
  const session = http2.connect(`http://127.0.0.1:${sc.outboundPort}`);
  try {
    const status = await new Promise<number>((resolve, reject) => {
      const req = session.request({ ':path': `/?id=${r2}&fail=2`, ':authority': 'h2flaky:81' });
      req.on('response', (h) => resolve(Number(h[':status'])));
      req.on('error', reject);
      req.resume();
      req.end();
    });
    assert.equal(status, 200);
    assert.deepEqual(attempts.get(r2)!.map((a) => a.count), ['1', '2', '3']);
  } finally {
    session.close();
  }
});

test('h2c client to an HTTP/1.1 upstream: 503, then a reset, then 200', T, async () => {
  const session = http2.connect(`http://127.0.0.1:${sc.outboundPort}`);
  const get = (p: string, body?: string) =>
    new Promise<number>((resolve, reject) => {
      const req = session.request({ ':path': p, ':authority': 'flaky', ':method': body ? 'POST' : 'GET' });
      req.on('response', (h) => resolve(Number(h[':status'])));
      req.on('error', reject);
      req.resume();
      req.end(body);
    });
  try {
    const r = id();
    assert.equal(await get(`/?id=${r}&fail=2&mode=503`), 200);
    assert.deepEqual(attempts.get(r)!.map((a) => a.count), ['1', '2', '3']);
    const r2 = id();
    assert.equal(await get(`/?id=${r2}&fail=1&mode=reset`, 'abc'), 200);
    assert.deepEqual(attempts.get(r2)!.map((a) => [a.count, a.body]), [['1', 3], ['2', 3]]);
  } finally {
    session.close();
  }
});
