// The sidecar reads upstream connections into a reused buffer (pool.ts,
// ReadBuffer; the mTLS case is in mtls.test.ts). These tests make the cases
// where a read must NOT be reused: a client that stops reading (the proxy's
// writes of earlier reads are still pending), a response head that arrives
// in pieces (kept between reads), and an Upgrade tunnel under backpressure.
// Every byte is checked against a pattern of its offset, so a buffer reused
// too early shows.
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import type * as net from 'node:net';
import { firstMismatch, pattern, writeUntilPushedBack } from '../../helpers/byte-pattern';
import { docs, Mesh, onRequestHeads, RawClient, RawUpstream, serviceYaml, type Sidecar, T, exitGuard } from '../../helpers/proxy-harness';

let mesh: Mesh;
let sc: Sidecar;
let raw: RawUpstream;
let behaviour: (socket: net.Socket, head: string) => void = () => {};

before(async () => {
  raw = await RawUpstream.start((socket) => onRequestHeads(socket, (head) => behaviour(socket, head)));
  mesh = await Mesh.start({ 'services.yaml': docs(serviceYaml({ name: 'raw', port: 80, endpoints: [raw.port] })) });
  sc = await mesh.sidecar();
}, T);

after(async () => {
  exitGuard();
  await mesh.close();
  await raw.close();
}, T);

test('read buffers: a client that stops reading gets every byte of a large response once it reads again', { timeout: 30_000 }, async () => {
  let pushedBack!: () => void;
  const upstreamPushedBack = new Promise<void>((r) => (pushedBack = r));
  let sent = -1;
  behaviour = (socket) => {
    socket.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n');
    writeUntilPushedBack(
      socket,
      (piece) => Buffer.concat([Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n')]),
      pushedBack,
      (n) => {
        sent = n;
        socket.write('0\r\n\r\n');
      },
    );
  };
  const c = await RawClient.connect(sc.outboundPort);
  try {
    c.socket.pause();
    c.write('GET /big HTTP/1.1\r\nHost: raw\r\n\r\n');
    // The upstream is pushed back only once the proxy has stopped reading it: its writes to us are pending.
    await upstreamPushedBack;
    c.socket.resume();
    const res = await c.readResponse('GET', 20_000);
    assert.equal(res.status, 200);
    assert.equal(res.body.length, sent);
    assert.equal(firstMismatch(res.body), -1, 'every byte as sent');
    // The upstream connection goes back to the pool and carries the next request intact.
    behaviour = (socket) => socket.write(Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n'), pattern(0, 5000)]));
    c.write('GET /next HTTP/1.1\r\nHost: raw\r\n\r\n');
    const next = await c.readResponse();
    assert.equal(next.body.length, 5000);
    assert.equal(firstMismatch(next.body), -1);
  } finally {
    c.destroy();
    behaviour = () => {};
  }
});

test('read buffers: a response head that arrives a few bytes at a time, then its body', T, async () => {
  const body = pattern(0, 100_000);
  const response = Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nX-Split: yes\r\nContent-Length: ${body.length}\r\n\r\n`), body]);
  behaviour = (socket) => {
    let off = 0;
    const step = () => {
      // The head in 3-byte pieces, each its own read at the proxy; the body in one go.
      const n = off < response.length - body.length ? 3 : response.length - off;
      socket.write(response.subarray(off, off + n));
      off += n;
      if (off < response.length) setTimeout(step, 1);
    };
    step();
  };
  const c = await RawClient.connect(sc.outboundPort);
  try {
    for (let i = 0; i < 2; i++) {
      c.write(`GET /split/${i} HTTP/1.1\r\nHost: raw\r\n\r\n`);
      const res = await c.readResponse('GET', 10_000);
      assert.equal(res.status, 200);
      assert.equal(res.headers['x-split'], 'yes');
      assert.equal(res.body.length, body.length);
      assert.equal(firstMismatch(res.body), -1);
    }
  } finally {
    c.destroy();
    behaviour = () => {};
  }
});

test('read buffers: an Upgrade tunnel whose client stops reading gets every byte once it reads again', { timeout: 30_000 }, async () => {
  let pushedBack!: () => void;
  const upstreamPushedBack = new Promise<void>((r) => (pushedBack = r));
  let sent = -1;
  behaviour = (socket) => {
    socket.removeAllListeners('data');
    socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: stream\r\n\r\n');
    writeUntilPushedBack(
      socket,
      (piece) => piece,
      pushedBack,
      (n) => {
        sent = n;
        socket.end();
      },
    );
  };
  const c = await RawClient.connect(sc.outboundPort);
  try {
    c.socket.pause();
    c.write('GET /stream HTTP/1.1\r\nHost: raw\r\nConnection: Upgrade\r\nUpgrade: stream\r\n\r\n');
    await upstreamPushedBack;
    c.socket.resume();
    assert.equal((await c.readResponse('GET', 10_000)).status, 101);
    await c.waitEnd(20_000);
    assert.ok(sent > 0);
    const got = c.buffered;
    assert.equal(got.length, sent);
    assert.equal(firstMismatch(got), -1, 'every byte as sent');
  } finally {
    c.destroy();
    behaviour = () => {};
  }
});
