// Accepted sockets read into one shared buffer (accepted-reads.ts), and so
// do terminated TLS sockets once secured. What a listener gets must still be
// a stream's chunks: its own to keep, in order, with pause() stopping the
// reads and 'end' after the last byte. Real sockets on loopback, plain and
// TLS; every byte is checked against a pattern of its offset, so a chunk
// that still points into the shared buffer shows.
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { test } from 'node:test';
import * as tls from 'node:tls';
import { createRoot, issueKeyedLeaf } from '../../../src/ca/pki';
import { readThroughBuffer } from '../../../src/proxy/listener/accepted-reads';
import { firstMismatch, pattern, writeUntilPushedBack } from '../../helpers/byte-pattern';
import { seeded } from '../../helpers/prng';

type Transport = 'tcp' | 'tls';
interface Server {
  port: number;
  close: () => Promise<void>;
}

/** A server key pair and the root that signed it, made once (P-256, as the mesh's). */
const pki = (async () => {
  const root = await createRoot({ commonName: 'accepted-reads root', ttlMs: 3600_000 });
  const leaf = await issueKeyedLeaf(root, { uri: 'spiffe://test/reader', ttlMs: 3600_000, dnsNames: ['reader'] });
  return { ca: root.certPem, cert: leaf.certPem, key: leaf.keyPem };
})();

/**
 * A server whose sockets read through the shared buffer; `onSocket` gets
 * each. TLS: set in 'secureConnection', as the listener does after a handshake.
 */
async function server(transport: Transport, onSocket: (socket: net.Socket) => void): Promise<Server> {
  const take = (socket: net.Socket) => {
    assert.equal(readThroughBuffer(socket), true, `this Node lets an accepted ${transport} socket read into a buffer of ours`);
    onSocket(socket);
  };
  const srv = transport === 'tcp' ? net.createServer({ allowHalfOpen: true }, take) : tls.createServer({ ...(await pki), allowHalfOpen: true }, take);
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  return { port: (srv.address() as net.AddressInfo).port, close: () => new Promise((resolve) => srv.close(() => resolve())) };
}

async function connect(transport: Transport, port: number): Promise<net.Socket> {
  const { ca } = await pki;
  return new Promise((resolve, reject) => {
    const c = transport === 'tcp' ? net.connect(port, '127.0.0.1', () => resolve(c)) : tls.connect({ port, host: '127.0.0.1', ca, servername: 'reader' }, () => resolve(c));
    c.once('error', reject);
  });
}

for (const transport of ['tcp', 'tls'] as const) {
  test(`accepted reads (${transport}): chunks kept by two connections reading at once are each their own, every byte in order`, async () => {
    const kept = new Map<number, Buffer[]>();
    const ended = new Map<number, Promise<void>>();
    let n = 0;
    const srv = await server(transport, (socket) => {
      const chunks: Buffer[] = [];
      kept.set(n, chunks);
      ended.set(n++, new Promise((resolve) => socket.on('end', () => (socket.end(), resolve()))));
      socket.on('data', (chunk: Buffer) => chunks.push(chunk)); // kept as they come: no copy
    });
    const random = seeded(11);
    const TOTAL = 1 << 20;
    const clients = [await connect(transport, srv.port), await connect(transport, srv.port)];
    // Both write in pieces from 1 byte to 64 KiB, turn by turn, so reads of the two interleave.
    const sent = [0, 0];
    while (sent[0] < TOTAL || sent[1] < TOTAL) {
      for (let i = 0; i < 2; i++) {
        if (sent[i] >= TOTAL) continue;
        const size = Math.min(TOTAL - sent[i], random() < 0.5 ? 1 + Math.floor(random() * 200) : 1 + Math.floor(random() * 65536));
        clients[i].write(pattern(sent[i], size));
        sent[i] += size;
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
    for (const c of clients) c.end();
    await Promise.all([...ended.values()]);
    assert.equal(kept.size, 2);
    for (const chunks of kept.values()) {
      assert.ok(chunks.length > 1, 'the bytes came in several reads');
      const body = Buffer.concat(chunks);
      assert.equal(body.length, TOTAL);
      assert.equal(firstMismatch(body), -1);
    }
    for (const c of clients) c.destroy();
    await srv.close();
  });

  test(`accepted reads (${transport}): pause() stops reading (the writer is pushed back, no chunk while paused); resume() brings every byte`, async () => {
    const chunks: Buffer[] = [];
    let paused = false;
    let whilePaused = 0;
    let serverSide!: net.Socket;
    let endOfData!: () => void;
    const ended = new Promise<void>((resolve) => (endOfData = resolve));
    const srv = await server(transport, (socket) => {
      serverSide = socket;
      socket.on('data', (chunk: Buffer) => {
        if (paused) whilePaused++;
        chunks.push(chunk);
        if (chunks.length === 1) {
          paused = true;
          socket.pause();
        }
      });
      socket.on('end', () => {
        socket.end();
        endOfData();
      });
    });
    const client = await connect(transport, srv.port);
    let pushedBack!: () => void;
    const wasPushedBack = new Promise<void>((resolve) => (pushedBack = resolve));
    let total = -1;
    const allWritten = new Promise<void>((resolve) =>
      writeUntilPushedBack(client, (piece) => piece, pushedBack, (sent) => ((total = sent), resolve())),
    );
    await wasPushedBack; // only a reader that stopped reading pushes its writer back
    assert.equal(whilePaused, 0, 'no chunk arrives while the socket is paused');
    paused = false;
    serverSide.resume();
    await allWritten;
    client.end();
    await ended;
    const body = Buffer.concat(chunks);
    assert.equal(body.length, total);
    assert.equal(firstMismatch(body), -1);
    client.destroy();
    await srv.close();
  });

  test(`accepted reads (${transport}): a half-close is the stream's 'end', and the socket can still answer`, async () => {
    const srv = await server(transport, (socket) => {
      let got = '';
      socket.on('data', (chunk: Buffer) => (got += chunk.toString('latin1')));
      socket.on('end', () => socket.end(`got ${got}`));
    });
    const client = await connect(transport, srv.port);
    let answer = '';
    client.on('data', (chunk: Buffer) => (answer += chunk.toString('latin1')));
    const closed = new Promise<void>((resolve) => client.on('close', () => resolve()));
    client.end('hello');
    await closed;
    assert.equal(answer, 'got hello');
    await srv.close();
  });
}

test('accepted reads (tls): a socket whose stream already holds bytes keeps reading through it, so nothing is reordered', async () => {
  const TOTAL = 256 * 1024;
  let received!: (body: Buffer) => void;
  const body = new Promise<Buffer>((resolve) => (received = resolve));
  let switched: boolean | undefined;
  const srv = tls.createServer({ ...(await pki), allowHalfOpen: true }, (socket) => {
    // Left alone until node:tls has read some cleartext into the stream, as a late caller would find it.
    const whenBuffered = () => {
      if (socket.readableLength === 0) return void setImmediate(whenBuffered);
      switched = readThroughBuffer(socket);
      const chunks: Buffer[] = [];
      socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      socket.on('end', () => (socket.end(), received(Buffer.concat(chunks))));
    };
    whenBuffered();
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const client = await connect('tls', (srv.address() as net.AddressInfo).port);
  for (let sent = 0; sent < TOTAL; sent += 4096) client.write(pattern(sent, 4096));
  client.end();
  const got = await body;
  assert.equal(switched, false, 'a socket with buffered bytes is not switched');
  assert.equal(got.length, TOTAL);
  assert.equal(firstMismatch(got), -1);
  client.destroy();
  await new Promise((resolve) => srv.close(resolve));
});
