// Writes held to the end of the event loop's turn (turn-writes.ts): they
// leave after the turn's reads, in order with every other write to the
// socket, and releaseWrites sends them before a destroy. Real sockets on
// loopback; the peer counts what it received.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as net from 'node:net';
import { test } from 'node:test';
import { holdWrites, releaseWrites, type WriteHolder } from '../../src/proxy/turn-writes';

interface Pair {
  /** Our side: the socket whose writes are held. */
  holder: WriteHolder;
  /** Everything the peer has received so far. */
  received(): string;
  /** Resolves once the peer has received `n` bytes. */
  receivedBytes(n: number): Promise<void>;
  peerClosed: Promise<void>;
  close(): void;
}

async function pair(): Promise<Pair> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const accepted = once(server, 'connection') as Promise<[net.Socket]>;
  const socket = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  await once(socket, 'connect');
  const [peer] = await accepted;
  let text = '';
  const waiters: { n: number; resolve: () => void }[] = [];
  peer.setEncoding('latin1').on('data', (chunk: string) => {
    text += chunk;
    for (const w of waiters.splice(0)) if (text.length >= w.n) w.resolve();
    else waiters.push(w);
  });
  peer.on('error', () => {});
  socket.on('error', () => {});
  return {
    holder: { socket, writesHeld: false },
    received: () => text,
    receivedBytes: (n) => (text.length >= n ? Promise.resolve() : new Promise((resolve) => waiters.push({ n, resolve }))),
    peerClosed: once(peer, 'close').then(() => undefined),
    close: () => {
      socket.destroy();
      peer.destroy();
      server.close();
    },
  };
}

test('held writes stay in the socket until the turn ends, then leave together in order', async () => {
  const [a, b] = [await pair(), await pair()];
  try {
    holdWrites(a.holder);
    a.holder.socket.write('one ');
    holdWrites(b.holder);
    b.holder.socket.write('first');
    holdWrites(a.holder); // held already: no second cork
    a.holder.socket.write('two');
    assert.equal(a.holder.writesHeld, true);
    assert.equal(a.holder.socket.writableLength, 'one two'.length, 'nothing is written before the turn ends');
    assert.equal(b.holder.socket.writableLength, 'first'.length);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(a.holder.writesHeld, false);
    assert.equal(a.holder.socket.writableCorked, 0, 'released: corked once, uncorked once');
    await Promise.all([a.receivedBytes(7), b.receivedBytes(5)]);
    assert.equal(a.received(), 'one two');
    assert.equal(b.received(), 'first');
  } finally {
    a.close();
    b.close();
  }
});

test("a write of the caller's own, and a cork pair of its own, while held keep the order", async () => {
  const p = await pair();
  try {
    holdWrites(p.holder);
    p.holder.socket.write('a');
    p.holder.socket.cork();
    p.holder.socket.write('b');
    p.holder.socket.write('c');
    p.holder.socket.uncork(); // the caller's pair: still held by ours
    assert.equal(p.holder.socket.writableLength, 3);
    releaseWrites(p.holder); // a write that must leave now: what is held goes first
    p.holder.socket.write('d');
    holdWrites(p.holder);
    p.holder.socket.write('e');
    await p.receivedBytes(5);
    assert.equal(p.received(), 'abcde');
  } finally {
    p.close();
  }
});

test('releaseWrites before destroy: the peer gets the held bytes, then the close', async () => {
  const p = await pair();
  try {
    holdWrites(p.holder);
    p.holder.socket.write('last words');
    releaseWrites(p.holder);
    p.holder.socket.destroy();
    await p.peerClosed;
    assert.equal(p.received(), 'last words');
  } finally {
    p.close();
  }
});

test('a socket with bytes still waiting to go is not held: its writes queue behind them as before', async () => {
  const p = await pair();
  try {
    p.holder.socket.cork(); // stands in for a slow reader: bytes pending in the socket
    p.holder.socket.write('pending');
    holdWrites(p.holder);
    assert.equal(p.holder.writesHeld, false);
    p.holder.socket.uncork();
    await p.receivedBytes(7);
    assert.equal(p.received(), 'pending');
  } finally {
    p.close();
  }
});
