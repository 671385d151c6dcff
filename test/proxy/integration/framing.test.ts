// Framing and connection semantics through the sidecar: keep-alive reuse,
// pipelining, chunked and Content-Length bodies both ways, HEAD, 204/304,
// 100-continue, Upgrade tunnels, EOF-delimited responses, half-close and
// HTTP/1.0 clients.
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as http from 'node:http';
import type * as net from 'node:net';
import { docs, HttpUpstream, Mesh, onRequestHeads, RawClient, RawUpstream, request, serviceYaml, type Sidecar, sleep, T, waitFor, exitGuard } from '../../helpers/proxy-harness';

let mesh: Mesh;
let sc: Sidecar;
let app: HttpUpstream;
let raw: RawUpstream;
/** What the raw upstream does with each request head. */
let rawBehaviour: (socket: net.Socket, head: string) => void = () => {};

const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');
const bytes = (n: number, seed = 1) => {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 7 + (i >> 8)) & 0xff;
  return b;
};

before(async () => {
  app = await HttpUpstream.start('app');
  app.handler = (req, res, body) => {
    const url = new URL(req.url!, 'http://x');
    switch (url.pathname) {
      case '/echo':
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-sha256': sha(body), 'x-length': String(body.length), 'content-length': body.length });
        return res.end(body);
      case '/chunked': {
        const data = bytes(Number(url.searchParams.get('size')), 2);
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-sha256': sha(data) });
        let off = 0;
        const step = () => {
          if (off >= data.length) return res.end();
          const n = Math.min(data.length - off, 1 + ((off * 7919) % 40_000));
          res.write(data.subarray(off, off + n));
          off += n;
          setImmediate(step);
        };
        return step();
      }
      case '/head':
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 1234 });
        return res.end(req.method === 'HEAD' ? undefined : 'x'.repeat(1234));
      case '/204':
        res.writeHead(204, { 'x-empty': 'yes' });
        return res.end();
      case '/304':
        res.writeHead(304, { etag: '"v1"', 'content-length': 99 });
        return res.end();
      case '/slow': {
        const text = `${url.searchParams.get('id')}`;
        setTimeout(() => res.writeHead(200, { 'content-length': text.length }).end(text), Number(url.searchParams.get('ms') ?? 0));
        return;
      }
      default: {
        const text = `${req.method} ${req.url} HTTP/${req.httpVersion}`;
        res.writeHead(200, { 'content-length': Buffer.byteLength(text) });
        return res.end(text);
      }
    }
  };
  raw = await RawUpstream.start((socket) => onRequestHeads(socket, (head) => rawBehaviour(socket, head)));
  mesh = await Mesh.start({
    'services.yaml': docs(serviceYaml({ name: 'app', port: 80, endpoints: [app.port] }), serviceYaml({ name: 'raw', port: 80, endpoints: [raw.port] })),
  });
  sc = await mesh.sidecar();
}, T);

after(async () => {
  exitGuard();
  await mesh.close();
  await app.close();
  await raw.close();
}, T);

const H = 'Host: app\r\n';

test('framing: keep-alive: one client connection and one upstream connection carry many requests', T, async () => {
  const c = await RawClient.connect(sc.outboundPort);
  const before = app.connections;
  const requestsBefore = app.requests;
  try {
    for (let i = 0; i < 20; i++) {
      c.write(`GET /n/${i} HTTP/1.1\r\n${H}\r\n`);
      const res = await c.readResponse();
      assert.equal(res.status, 200);
      assert.equal(res.body.toString(), `GET /n/${i} HTTP/1.1`);
      assert.equal(res.headers.connection, undefined, 'the connection stays open');
    }
  } finally {
    c.destroy();
  }
  // New client connections, one after the other, reuse the same upstream connection too.
  for (let i = 0; i < 5; i++) {
    const res = await request(sc.outboundPort, { host: 'app', path: `/fresh/${i}` });
    assert.equal(res.status, 200);
  }
  assert.equal(app.requests - requestsBefore, 25);
  assert.ok(app.connections - before <= 1, `${app.connections - before} upstream connections for 25 sequential requests`);
});

test('framing: three pipelined requests in one write get three responses in order', T, async () => {
  const c = await RawClient.connect(sc.outboundPort);
  try {
    c.write(
      `GET /slow?ms=60&id=first HTTP/1.1\r\n${H}\r\n` +
        `POST /echo HTTP/1.1\r\n${H}Content-Length: 6\r\n\r\nsecond` +
        `GET /slow?ms=0&id=third HTTP/1.1\r\n${H}\r\n`,
    );
    const a = await c.readResponse();
    const b = await c.readResponse();
    const d = await c.readResponse();
    assert.deepEqual([a.body.toString(), b.body.toString(), d.body.toString()], ['first', 'second', 'third']);
  } finally {
    c.destroy();
  }
});

test('framing: a large chunked request body split across writes arrives whole', T, async () => {
  const body = bytes(300_000, 3);
  let encoded = '';
  const parts: Buffer[] = [];
  for (let off = 0, i = 0; off < body.length; i++) {
    const n = Math.min(body.length - off, 1 + ((i * 104729) % 20_000));
    parts.push(Buffer.from(`${n.toString(16)}${i % 3 === 0 ? ';ext=1' : ''}\r\n`, 'latin1'), body.subarray(off, off + n), Buffer.from('\r\n'));
    off += n;
  }
  parts.push(Buffer.from('0\r\nx-trailer: t\r\n\r\n'));
  const wire = Buffer.concat(parts);
  encoded = wire.toString('latin1');
  const c = await RawClient.connect(sc.outboundPort);
  try {
    c.write(`POST /echo HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n`);
    // Odd split points, so sizes, CRLFs and data are cut everywhere.
    for (let off = 0, i = 0; off < wire.length; i++) {
      const n = Math.min(wire.length - off, 1 + ((i * 7907) % 9000));
      c.write(wire.subarray(off, off + n));
      off += n;
      if (i % 4 === 0) await sleep(1);
    }
    const res = await c.readResponse('POST', 5000);
    assert.equal(res.status, 200);
    assert.equal(res.headers['x-length'], String(body.length));
    assert.equal(res.headers['x-sha256'], sha(body));
    assert.ok(encoded.length > body.length);
  } finally {
    c.destroy();
  }
});

test('framing: a large chunked response arrives whole and the connection is reusable after it', T, async () => {
  const c = await RawClient.connect(sc.outboundPort);
  try {
    c.write(`GET /chunked?size=400000 HTTP/1.1\r\n${H}\r\n`);
    const res = await c.readResponse('GET', 5000);
    assert.equal(res.status, 200);
    assert.match(res.headers['transfer-encoding'] ?? '', /chunked/);
    assert.equal(res.body.length, 400_000);
    assert.equal(sha(res.body), res.headers['x-sha256']);
    c.write(`GET /after HTTP/1.1\r\n${H}\r\n`);
    assert.equal((await c.readResponse()).body.toString(), 'GET /after HTTP/1.1');
  } finally {
    c.destroy();
  }
});

test('framing: 1 MiB Content-Length bodies both ways', T, async () => {
  const body = bytes(1 << 20, 4);
  const res = await request(sc.outboundPort, { host: 'app', path: '/echo', method: 'POST', body, headers: { 'content-length': body.length } });
  assert.equal(res.status, 200);
  assert.equal(res.headers['x-length'], String(1 << 20));
  assert.equal(res.headers['x-sha256'], sha(body));
  assert.equal(res.body.length, 1 << 20);
  assert.ok(res.body.equals(body));
});

test('framing: HEAD, 204 and 304 have no body, and the connection goes on', T, async () => {
  const c = await RawClient.connect(sc.outboundPort);
  try {
    c.write(`HEAD /head HTTP/1.1\r\n${H}\r\n`);
    const head = await c.readResponse('HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], '1234');
    c.write(`GET /204 HTTP/1.1\r\n${H}\r\n`);
    const noContent = await c.readResponse();
    assert.equal(noContent.status, 204);
    assert.equal(noContent.headers['x-empty'], 'yes');
    c.write(`GET /304 HTTP/1.1\r\n${H}If-None-Match: "v1"\r\n\r\n`);
    const notModified = await c.readResponse();
    assert.equal(notModified.status, 304);
    assert.equal(notModified.headers.etag, '"v1"');
    c.write(`GET /last HTTP/1.1\r\n${H}\r\n`);
    const last = await c.readResponse();
    assert.equal(last.body.toString(), 'GET /last HTTP/1.1', 'no stray body bytes in between');
    await sleep(20);
    assert.equal(c.buffered.length, 0);
  } finally {
    c.destroy();
  }
});

test('framing: Expect: 100-continue — the client waits for 100, then sends the body', T, async () => {
  const c = await RawClient.connect(sc.outboundPort);
  try {
    c.write(`POST /echo HTTP/1.1\r\n${H}Content-Length: 11\r\nExpect: 100-continue\r\n\r\n`);
    const interim = await c.readResponse();
    assert.equal(interim.status, 100);
    c.write('hello world');
    const res = await c.readResponse('POST');
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), 'hello world');
  } finally {
    c.destroy();
  }
});

test('framing: Upgrade: 101, then raw bytes both ways through the proxy', T, async () => {
  let upstreamSocket: net.Socket | undefined;
  rawBehaviour = (socket, head) => {
    assert.match(head, /^GET \/ws HTTP\/1\.1\r\n/);
    assert.match(head, /\r\nupgrade: echo\r\n/i);
    assert.match(head, /\r\nconnection: upgrade\r\n/i);
    upstreamSocket = socket;
    socket.removeAllListeners('data');
    socket.on('data', (c: Buffer) => {
      const text = c.toString('latin1');
      if (text === 'bye') socket.end('BYE'); // the server closes the tunnel
      else socket.write(text.toUpperCase());
    });
    socket.on('end', () => socket.end()); // as a real server does when the client goes
    socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nwelcome;');
  };
  const c = await RawClient.connect(sc.outboundPort);
  try {
    c.write('GET /ws HTTP/1.1\r\nHost: raw\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n');
    const res = await c.readResponse();
    assert.equal(res.status, 101);
    assert.equal((await c.readBytes(8)).toString(), 'welcome;');
    c.write('ping');
    assert.equal((await c.readBytes(4)).toString(), 'PING');
    const big = 'x'.repeat(200_000);
    c.write(big);
    assert.equal((await c.readBytes(big.length)).toString(), big.toUpperCase());
    // The server ends the tunnel: the client sees the end.
    c.write('bye');
    assert.equal((await c.readBytes(3)).toString(), 'BYE');
    await c.waitEnd(2000);
  } finally {
    c.destroy();
  }
  // A second tunnel that the client ends: the upstream sees it.
  const d = await RawClient.connect(sc.outboundPort);
  try {
    d.write('GET /ws HTTP/1.1\r\nHost: raw\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n');
    assert.equal((await d.readResponse()).status, 101);
    await d.readBytes(8);
    const up = upstreamSocket!;
    d.end();
    await waitFor(() => up.readableEnded || up.destroyed, 2000, 'the client end reaches the upstream');
    await d.waitEnd(2000);
  } finally {
    d.destroy();
    rawBehaviour = () => {};
  }
});

test('framing: an upstream answering "connection: close" with an EOF-delimited body', T, async () => {
  const connectionsBefore = raw.connections;
  rawBehaviour = (socket) => {
    socket.write('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\nuntil ');
    setTimeout(() => socket.end('the end'), 20);
  };
  try {
    const c = await RawClient.connect(sc.outboundPort);
    c.write('GET /eof HTTP/1.1\r\nHost: raw\r\n\r\n');
    const res = await c.readResponse();
    assert.equal(res.status, 200);
    assert.equal(res.headers.connection, 'close');
    assert.equal(res.body.toString(), 'until the end');
    assert.ok(c.ended, 'the client connection ends with the body');
    c.destroy();
    // The upstream connection is not reused: the next request opens a new one.
    rawBehaviour = (socket) => socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    const next = await request(sc.outboundPort, { host: 'raw' });
    assert.equal(next.text, 'ok');
    assert.equal(raw.connections - connectionsBefore, 2);
  } finally {
    rawBehaviour = () => {};
  }
});

test('framing: a client that half-closes after its request still gets the response', T, async () => {
  const c = await RawClient.connect(sc.outboundPort);
  try {
    c.write(`GET /slow?ms=50&id=half HTTP/1.1\r\n${H}\r\n`);
    c.end();
    const res = await c.readResponse();
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), 'half');
    await c.waitEnd(2000);
  } finally {
    c.destroy();
  }
});

test('framing: HTTP/1.0 clients: close by default, keep-alive when asked', T, async () => {
  const c = await RawClient.connect(sc.outboundPort);
  try {
    c.write(`GET /old HTTP/1.0\r\n${H}\r\n`);
    const res = await c.readResponse();
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), 'GET /old HTTP/1.0', 'the upstream sees HTTP/1.0');
    await c.waitEnd(2000);
  } finally {
    c.destroy();
  }
  const k = await RawClient.connect(sc.outboundPort);
  try {
    for (const p of ['/a', '/b']) {
      k.write(`GET ${p} HTTP/1.0\r\n${H}Connection: keep-alive\r\n\r\n`);
      const res = await k.readResponse();
      assert.equal(res.status, 200);
      assert.equal(res.headers.connection?.toLowerCase(), 'keep-alive', 'an HTTP/1.0 client needs to hear keep-alive');
    }
    // A local reply too.
    k.write('GET / HTTP/1.0\r\nHost: nowhere.example\r\nConnection: keep-alive\r\n\r\n');
    const local = await k.readResponse();
    assert.equal(local.status, 404);
    assert.equal(local.headers.connection?.toLowerCase(), 'keep-alive');
    k.write(`GET /c HTTP/1.0\r\n${H}Connection: keep-alive\r\n\r\n`);
    assert.equal((await k.readResponse()).body.toString(), 'GET /c HTTP/1.0');
  } finally {
    k.destroy();
  }
  // An HTTP/1.0 POST with a body.
  const p = await RawClient.connect(sc.outboundPort);
  try {
    p.write(`POST /echo HTTP/1.0\r\n${H}Content-Length: 4\r\n\r\nbody`);
    const res = await p.readResponse('POST');
    assert.equal(res.body.toString(), 'body');
  } finally {
    p.destroy();
  }
});

test('framing: node:http keep-alive agent with concurrent requests', T, async () => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  try {
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) => request(sc.outboundPort, { host: 'app', path: '/echo', method: 'POST', body: `req-${i}`, agent })),
    );
    results.forEach((r, i) => assert.equal(r.text, `req-${i}`));
  } finally {
    agent.destroy();
  }
});
