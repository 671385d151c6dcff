// Upstream failures through the sidecar, each answered locally with the
// response flag that says why: connect failure (UF), an upstream that closes
// or talks garbage (UC, UPE), a route timeout (UT), no endpoint (UH) and the
// circuit breaker's overflow (UO). A failing connection never disturbs
// another one.
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import type * as net from 'node:net';
import { docs, exitGuard, freePort, HttpUpstream, Mesh, RawClient, RawUpstream, request, serviceYaml, T, waitFor, type Sidecar } from '../../helpers/proxy-harness';

let mesh: Mesh;
let sc: Sidecar;
let ok: HttpUpstream;
let midHead: RawUpstream;
let garbage: RawUpstream;
let hang: RawUpstream;
let closer: RawUpstream;
let midBody: RawUpstream;
let badFraming: RawUpstream;
let limited: RawUpstream;
/** Sockets of `limited` whose request is held; answered when the test says. */
const held: net.Socket[] = [];
let refusedPort: number;

const FLAG = 'x-weft-response-flags';

before(async () => {
  ok = await HttpUpstream.start('ok');
  ok.handler = (req, res) => {
    const ms = Number(new URL(req.url!, 'http://x').searchParams.get('ms') ?? 0);
    setTimeout(() => res.writeHead(200, { 'content-length': 2 }).end('ok'), ms);
  };
  midHead = await RawUpstream.start((s) => s.once('data', () => s.end('HTTP/1.1 200 OK\r\nContent-Le')));
  garbage = await RawUpstream.start((s) => s.once('data', () => s.write('this is not http at all\r\n\r\n')));
  hang = await RawUpstream.start(() => {});
  closer = await RawUpstream.start((s) => s.once('data', () => s.destroy()));
  midBody = await RawUpstream.start((s) => s.once('data', () => s.end('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b')));
  badFraming = await RawUpstream.start((s) =>
    s.once('data', () => s.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n')),
  );
  limited = await RawUpstream.start((s) => s.once('data', () => held.push(s)));
  refusedPort = await freePort(); // nothing listens there
  mesh = await Mesh.start({
    'services.yaml': docs(
      serviceYaml({ name: 'ok', endpoints: [ok.port] }),
      serviceYaml({ name: 'refused', endpoints: [refusedPort] }),
      serviceYaml({ name: 'midhead', endpoints: [midHead.port] }),
      serviceYaml({ name: 'garbage', endpoints: [garbage.port] }),
      serviceYaml({ name: 'hang', endpoints: [hang.port] }),
      serviceYaml({ name: 'closer', endpoints: [closer.port] }),
      serviceYaml({ name: 'midbody', endpoints: [midBody.port] }),
      serviceYaml({ name: 'badframing', endpoints: [badFraming.port] }),
      serviceYaml({ name: 'limited', endpoints: [limited.port] }),
      serviceYaml({ name: 'empty' }),
    ),
    'policy.yaml': `
apiVersion: weft.dev/v1
kind: TrafficPolicy
metadata: { name: limited }
spec:
  targetRef: { name: limited }
  connectionPool: { maxConnections: 1, maxPendingRequests: 1 }
`,
    'routes.yaml': `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: hang }
spec:
  parentRefs: [{ kind: Service, name: hang, port: 80 }]
  rules:
    - backendRefs: [{ name: hang }]
      timeouts: { request: 300ms }
`,
  });
  sc = await mesh.sidecar();
}, T);

after(async () => {
  exitGuard();
  await mesh.close();
  await Promise.all([ok, midHead, garbage, hang, closer, midBody, badFraming, limited].map((u) => u.close()));
}, T);

const get = (host: string, path = '/') => request(sc.outboundPort, { host, path });

test('failures: connection refused → 503 UF', T, async () => {
  const res = await get('refused');
  assert.equal(res.status, 503);
  assert.equal(res.headers[FLAG], 'UF');
  assert.match(res.text, /connect/);
});

test('failures: the upstream closes in the middle of the response head → 502 with a flag', T, async () => {
  const res = await get('midhead');
  assert.ok(res.status === 502 || res.status === 503, `status ${res.status}`);
  assert.match(String(res.headers[FLAG]), /^(UPE|UC)$/);
});

test('failures: the upstream sends garbage → 502 UPE', T, async () => {
  const res = await get('garbage');
  assert.equal(res.status, 502);
  assert.equal(res.headers[FLAG], 'UPE');
});

test('failures: a response with both Content-Length and Transfer-Encoding → 502 UPE', T, async () => {
  const res = await get('badframing');
  assert.equal(res.status, 502);
  assert.equal(res.headers[FLAG], 'UPE');
});

test('failures: the upstream closes the connection without answering → 503 UC', T, async () => {
  const res = await get('closer');
  assert.equal(res.status, 503);
  assert.equal(res.headers[FLAG], 'UC');
});

test('failures: the upstream hangs past the route timeout of 300 ms → 504 UT in about 300 ms', T, async () => {
  const started = Date.now();
  const res = await get('hang');
  const took = Date.now() - started;
  assert.equal(res.status, 504);
  assert.equal(res.headers[FLAG], 'UT');
  assert.ok(took >= 280 && took < 800, `took ${took} ms`);
  assert.ok(hang.connections >= 1, 'the request did reach the upstream');
});

test('failures: a service with no endpoints → 503 UH', T, async () => {
  const res = await get('empty');
  assert.equal(res.status, 503);
  assert.equal(res.headers[FLAG], 'UH');
});

test('failures: the upstream dies in the middle of the body → the client connection is cut, not completed', T, async () => {
  const c = await RawClient.connect(sc.outboundPort);
  try {
    c.write('GET / HTTP/1.1\r\nHost: midbody\r\n\r\n');
    const head = await c.readUntil('\r\n\r\n');
    assert.match(head, /^HTTP\/1\.1 200/);
    await c.waitEnd(2000);
    assert.ok(c.buffered.length < 100, 'the body is short: the client can tell');
  } finally {
    c.destroy();
  }
});

test('failures: maxConnections 1 + maxPendingRequests 1 with a hanging upstream → the third request gets 503 UO at once', T, async () => {
  const first = await RawClient.connect(sc.outboundPort);
  const second = await RawClient.connect(sc.outboundPort);
  const third = await RawClient.connect(sc.outboundPort);
  try {
    first.write('GET /1 HTTP/1.1\r\nHost: limited\r\n\r\n');
    await waitFor(() => held.length === 1, 2000, 'the first request upstream');
    second.write('GET /2 HTTP/1.1\r\nHost: limited\r\n\r\n');
    const pool = () => sc.runtime().cluster('outbound|80||limited.default')!.pool;
    await waitFor(() => pool().pendingRequests === 1, 2000, 'the second request queued in the pool');
    const started = performance.now();
    third.write('GET /3 HTTP/1.1\r\nHost: limited\r\n\r\n');
    const res = await third.readResponse();
    const took = performance.now() - started;
    assert.equal(res.status, 503);
    assert.equal(res.headers[FLAG], 'UO');
    assert.ok(took < 50, `the overflow took ${took.toFixed(1)} ms`);
    assert.equal(limited.connections, 1, 'one upstream connection at most');

    // The first is answered: the queued second takes the connection.
    held[0].write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst');
    assert.equal((await first.readResponse()).body.toString(), 'first');
    await waitFor(() => limited.text().includes('GET /2 '), 2000, 'the second request upstream');
    held[0].write('HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond');
    assert.equal((await second.readResponse()).body.toString(), 'second');

    // A client that aborts (RST) while holding the only connection frees it for the next.
    const fourth = await RawClient.connect(sc.outboundPort);
    fourth.write('GET /4 HTTP/1.1\r\nHost: limited\r\n\r\n');
    await waitFor(() => limited.text().includes('GET /4 '), 2000, 'the fourth request upstream');
    fourth.reset();
    const fifth = await RawClient.connect(sc.outboundPort);
    fifth.write('GET /5 HTTP/1.1\r\nHost: limited\r\n\r\n');
    await waitFor(() => limited.text().includes('GET /5 '), 2000, 'the fifth request upstream after the fourth gave up');
    held[held.length - 1].write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfifth');
    assert.equal((await fifth.readResponse()).body.toString(), 'fifth');
    fifth.destroy();
  } finally {
    first.destroy();
    second.destroy();
    third.destroy();
  }
});

test('failures: a misbehaving upstream on one connection never disturbs a concurrent one', T, async () => {
  const slow = get('ok', '/?ms=150');
  const failures = await Promise.all([get('garbage'), get('midhead'), get('closer'), get('refused'), get('midbody').catch((e: Error) => e)]);
  assert.equal(failures[0].status, 502);
  const res = await slow;
  assert.equal(res.status, 200);
  assert.equal(res.text, 'ok');
  // And the proxy keeps serving.
  assert.equal((await get('ok')).text, 'ok');
});
