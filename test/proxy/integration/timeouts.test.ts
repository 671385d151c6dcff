// Timeouts beyond the route's: a TrafficPolicy's connectTimeout (an endpoint
// that never completes the handshake → 503 UF at the timeout), streamIdle
// (nothing moves either way: 408 SI before a response, the connection cut
// after one started, a stalled upload ended too) and idle (a service's
// inbound side closes its callers' idle connections, half-sent heads included).
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as http2 from 'node:http2';
import { docs, exitGuard, HttpUpstream, Mesh, onRequestHeads, RawClient, RawUpstream, request, serviceYaml, T, type Sidecar } from '../../helpers/proxy-harness';
import type { RouteAction } from '../../../src/proxy/config/types';

let mesh: Mesh;
let sc: Sidecar;
let home: Sidecar;
let app: HttpUpstream;
/** /silent: reads the head, says nothing; /half: sends a head and 5 of 100 body bytes, then nothing. */
let stall: RawUpstream;
/** A listener that never accepts, with its accept queue full: a new connect never completes. */
let noAccept: ChildProcess;
let noAcceptPort = 0;

const policy = (name: string, spec: string) => `apiVersion: weft.dev/v1
kind: TrafficPolicy
metadata: { name: ${name} }
spec:
  targetRef: { name: ${name} }
${spec}`;

before(async () => {
  app = await HttpUpstream.start('home-app');
  stall = await RawUpstream.start((s) =>
    onRequestHeads(s, (head) => {
      if (head.includes('/half')) s.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhello');
    }),
  );
  // Python, because Node accepts every connection itself. With listen(0) the kernel completes one
  // handshake into the queue; the helper fills it, so later SYNs are dropped and connects hang.
  noAccept = spawn('python3', ['-c', `
import socket, sys, time
s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(0)
port = s.getsockname()[1]
fill = []
for _ in range(3):
    c = socket.socket(); c.setblocking(False)
    try: c.connect(('127.0.0.1', port))
    except BlockingIOError: pass
    fill.append(c)
time.sleep(0.3)
print(port, flush=True)
sys.stdin.read()
`], { stdio: ['pipe', 'pipe', 'inherit'] });
  noAcceptPort = await new Promise<number>((resolve, reject) => {
    noAccept.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    noAccept.once('error', reject);
  });
  mesh = await Mesh.start({
    'services.yaml': docs(
      serviceYaml({ name: 'stall', endpoints: [stall.port] }),
      serviceYaml({ name: 'stall-h2', port: 81, endpoints: [stall.port] }),
      serviceYaml({ name: 'blackhole', endpoints: [noAcceptPort] }),
      serviceYaml({ name: 'home' }),
    ),
    'policies.yaml': docs(
      policy('stall', '  timeouts: { streamIdle: 600ms }\n'),
      policy('stall-h2', '  timeouts: { streamIdle: 600ms }\n'),
      policy('blackhole', '  connectionPool: { connectTimeout: 300ms }\n'),
      policy('home', '  timeouts: { idle: 600ms }\n'),
    ),
  });
  sc = await mesh.sidecar();
  home = await mesh.sidecar({ service: 'home', appPort: app.port });
  await sc.waitConfig((c) => [...c.routeTables.values()].some((t) => t.virtualHosts.some((v) => v.routes.some((r) => (r.action as RouteAction).idleTimeoutMs === 600))), 3000, 'routes with a stream idle timeout');
}, T);

after(async () => {
  exitGuard();
  noAccept?.kill();
  await mesh.close();
  await Promise.all([app.close(), stall.close()]);
});

test('connectTimeout: an endpoint that never completes the handshake → 503 UF at about the timeout', T, async () => {
  const t0 = performance.now();
  const res = await request(sc.outboundPort, { host: 'blackhole', timeoutMs: 4000 });
  const ms = performance.now() - t0;
  assert.equal(res.status, 503);
  assert.equal(res.headers['x-weft-response-flags'], 'UF');
  assert.ok(ms >= 280 && ms < 2000, `answered after ${ms.toFixed(0)} ms`);
});

test('streamIdle: an upstream that never answers → 408 SI after the idle timeout (no route timeout set)', T, async () => {
  const t0 = performance.now();
  const res = await request(sc.outboundPort, { host: 'stall', path: '/silent', timeoutMs: 5000 });
  const ms = performance.now() - t0;
  assert.equal(res.status, 408);
  assert.equal(res.headers['x-weft-response-flags'], 'SI');
  assert.ok(ms >= 590 && ms < 2500, `answered after ${ms.toFixed(0)} ms`);
});

test('streamIdle: a response that stalls mid-body → the client connection is cut', T, async () => {
  const c = await RawClient.connect(sc.outboundPort);
  c.write('GET /half HTTP/1.1\r\nHost: stall\r\n\r\n');
  const t0 = performance.now();
  await c.readUntil('hello', 3000);
  await c.waitEnd(4000);
  const ms = performance.now() - t0;
  assert.ok(c.closed || c.ended, 'connection cut');
  assert.ok(ms >= 550 && ms < 3000, `cut after ${ms.toFixed(0)} ms`);
});

test('streamIdle: an upload that stalls → 408 SI, and the upstream connection is closed', T, async () => {
  const before = stall.connections;
  const c = await RawClient.connect(sc.outboundPort);
  c.write('POST /silent HTTP/1.1\r\nHost: stall\r\nContent-Length: 100\r\n\r\n0123456789');
  const res = await c.readResponse('POST', 4000);
  assert.equal(res.status, 408);
  assert.equal(res.headers['x-weft-response-flags'], 'SI');
  assert.ok(stall.connections > before, 'the head went upstream');
  c.destroy();
});

test('streamIdle over HTTP/2: no frames either way → 408 SI', T, async () => {
  const client = http2.connect(`http://127.0.0.1:${sc.outboundPort}`);
  try {
    const headers = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
      const req = client.request({ ':path': '/silent', ':authority': 'stall-h2:81' });
      req.on('response', resolve);
      req.on('error', reject);
      req.resume();
      req.end();
    });
    assert.equal(headers[':status'], 408);
    assert.equal(headers['x-weft-response-flags'], 'SI');
  } finally {
    client.close();
  }
});

test('idle: the inbound side closes a caller connection idle past the service idle timeout, and a half-sent head', T, async () => {
  await home.waitConfig((c) => [...c.listeners.values()].some((l) => l.direction === 'inbound'), 3000, 'the inbound listener');
  const c = await RawClient.connect(home.inboundPort);
  c.write('GET / HTTP/1.1\r\nHost: home\r\n\r\n');
  assert.equal((await c.readResponse()).status, 200);
  const t0 = performance.now();
  await c.waitEnd(4000);
  const ms = performance.now() - t0;
  assert.ok(c.ended, 'closed by the sidecar');
  assert.ok(ms >= 550 && ms < 3000, `closed after ${ms.toFixed(0)} ms idle`);
  // Slowloris: half a head, then nothing.
  const slow = await RawClient.connect(home.inboundPort);
  slow.write('GET / HTTP/1.1\r\nHo');
  await slow.waitEnd(4000);
  assert.ok(slow.ended, 'a half-sent head is closed too');
  // A busy connection is not idle: requests every 200 ms for 1.2 s keep it open.
  const busy = await RawClient.connect(home.inboundPort);
  for (let i = 0; i < 6; i++) {
    busy.write('GET / HTTP/1.1\r\nHost: home\r\n\r\n');
    assert.equal((await busy.readResponse()).status, 200);
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.equal(busy.ended, false);
  busy.destroy();
});
