// Stopping a sidecar (what `weft proxy` does on SIGTERM): it stops accepting,
// idle keep-alive connections close at once, a request in flight finishes
// (and its connection closes after it), HTTP/2 sessions get GOAWAY, and what
// is still open after the grace period is cut, so close() always resolves.
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { docs, exitGuard, freePort, HttpUpstream, Mesh, RawClient, RawUpstream, serviceYaml, T, waitFor } from '../../helpers/proxy-harness';

let mesh: Mesh;
let app: HttpUpstream;
let hang: RawUpstream;
let echo: RawUpstream;
let tcpPort: number;

before(async () => {
  app = await HttpUpstream.start('app');
  app.handler = (req, res) => setTimeout(() => res.writeHead(200, { 'content-length': 2 }).end('ok'), req.url === '/slow' ? 300 : 0);
  hang = await RawUpstream.start(() => {});
  echo = await RawUpstream.start((s) => s.on('data', (c: Buffer) => s.write(c)));
  tcpPort = await freePort();
  mesh = await Mesh.start({
    'services.yaml': docs(
      serviceYaml({ name: 'app', endpoints: [app.port] }),
      serviceYaml({ name: 'hang', endpoints: [hang.port] }),
      serviceYaml({ name: 'echo', port: tcpPort, protocol: 'tcp', endpoints: [echo.port] }),
    ),
  });
}, T);

after(async () => {
  exitGuard();
  await mesh.close();
  await Promise.all([app.close(), hang.close(), echo.close()]);
}, T);

/** A sidecar of its own, taken out of the mesh's list (the test closes it). */
async function ownSidecar(nodeId: string) {
  const sc = await mesh.sidecar({ nodeId });
  mesh.sidecars.splice(mesh.sidecars.indexOf(sc), 1);
  return sc;
}

test('shutdown: an idle keep-alive connection does not hold close(); the client sees the end', T, async () => {
  const sc = await ownSidecar('idle');
  const c = await RawClient.connect(sc.outboundPort);
  try {
    c.write('GET / HTTP/1.1\r\nHost: app\r\n\r\n');
    assert.equal((await c.readResponse()).status, 200);
    const started = Date.now();
    const closing = sc.proxy.close();
    await c.waitEnd(1000);
    c.destroy(); // as an HTTP client does when the server closes
    await closing;
    assert.ok(Date.now() - started < 1000, `close() took ${Date.now() - started} ms`);
    // No longer accepting.
    await assert.rejects(RawClient.connect(sc.outboundPort));
  } finally {
    c.destroy();
  }
});

test('shutdown: a request in flight finishes with connection: close, then close() resolves', T, async () => {
  const sc = await ownSidecar('inflight');
  const c = await RawClient.connect(sc.outboundPort);
  try {
    c.write('GET /slow HTTP/1.1\r\nHost: app\r\n\r\n');
    await waitFor(() => app.seen.some((r) => r.url === '/slow'), 1000, 'the request upstream');
    let closed = false;
    const started = Date.now();
    const closing = sc.proxy.close().then(() => (closed = true));
    const res = await c.readResponse();
    assert.equal(closed, false, 'close() waits for the request in flight');
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), 'ok');
    assert.equal(res.headers.connection, 'close');
    await c.waitEnd(1000);
    c.destroy();
    await closing;
    assert.ok(Date.now() - started < 1000, `close() took ${Date.now() - started} ms`);
  } finally {
    c.destroy();
  }
});

test('shutdown: a request that never ends, a TCP connection and an h2 session are cut after the grace period', T, async () => {
  const sc = await ownSidecar('stuck');
  const c = await RawClient.connect(sc.outboundPort);
  const t = await RawClient.connect(tcpPort);
  const session = http2.connect(`http://127.0.0.1:${sc.outboundPort}`);
  session.on('error', () => {});
  try {
    c.write('GET / HTTP/1.1\r\nHost: hang\r\n\r\n');
    await waitFor(() => hang.connections > 0, 1000, 'the request upstream');
    t.write('ping');
    assert.equal((await t.readBytes(4)).toString(), 'ping');
    const req = session.request({ ':path': '/', ':authority': 'app' });
    req.resume();
    await new Promise((resolve) => req.on('end', resolve));
    let goaway = false;
    session.on('goaway', () => (goaway = true));
    const started = Date.now();
    await sc.proxy.close(300);
    const took = Date.now() - started;
    assert.ok(took >= 250 && took < 1500, `close(300) took ${took} ms`);
    await c.waitEnd(1000);
    await t.waitEnd(1000);
    await waitFor(() => goaway || session.closed || session.destroyed, 1000, 'the h2 session told to go away');
  } finally {
    c.destroy();
    t.destroy();
    session.destroy();
  }
});

test('shutdown: a new connection after close() is refused', T, async () => {
  const sc = await ownSidecar('refuse');
  const port = sc.outboundPort;
  await sc.proxy.close();
  await assert.rejects(
    new Promise<void>((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => {
        s.destroy();
        resolve();
      });
      s.on('error', reject);
    }),
  );
});
