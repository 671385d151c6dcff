// Accepted connections read into a reused buffer, as the upstream pool's
// connections do (pool.ts, net.connect's `onread`).
//
// Node offers `onread` only for the sockets it connects: an accepted socket
// reads through the readable stream, which allocates a buffer for every read
// (a malloc'd backing store) and pushes it through Readable.push before
// 'data'. On the HTTP/1.1 path that was about 2 µs of user CPU per request
// (BENCHMARKS.md). So the accepted socket is given, in its 'connection'
// event, what `onread` gives a connected one: the buffer its handle reads
// into and the callback Node's read path calls instead of pushing. Node keeps
// both under symbols of its own; they are found by name once, and a Node
// without them reads as before. (Giving the handle to a new net.Socket made
// with `onread` does the same, but a second socket per connection cost
// 12–15 µs of CPU per connection, against 2–3 for this.)
//
// The socket still emits 'data', with a chunk its listener owns (as a
// stream's chunk is): each read is copied out of the buffer, a small one into
// Node's buffer pool (a slice of a shared 8 KiB slab, no malloc). So every
// reader (the HTTP/1 connection, the h2 server it hands a connection to, a
// TCP proxy, pipe() in a tunnel) reads it as it read a stream, and pause()
// and resume() stop and start the handle's reads as they do for a stream.
//
// Since nothing keeps the buffer past the callback, every accepted socket
// reads into the same one: libuv reads a socket and calls back before it
// reads the next, all on this thread. A connection costs no buffer of its own.
//
// A terminated TLS connection reads the same way once its handshake is done:
// node:tls reads the encrypted bytes itself, and its TLSWrap decrypts each
// record into the buffer and calls back, as a plain socket's handle does.
import type * as net from 'node:net';

/** Bytes of one read (HAProxy reads into 16 KiB buffers; the upstream pool's are 32 KiB). */
const READ_BUFFER_BYTES = 32 * 1024;
/** Where every accepted socket reads: copied out in the callback, never kept. */
const sharedReadBuffer = Buffer.allocUnsafeSlow(READ_BUFFER_BYTES);

/** What net.Socket keeps for `onread` (lib/net.js: the buffer, and the callback onStreamRead calls). */
interface OnreadSlots {
  buffer: symbol;
  callback: symbol;
}
/** Found on the first accepted socket; null: this Node has no such slots. */
let slots: OnreadSlots | null | undefined;

function onreadSlots(socket: net.Socket): OnreadSlots | null {
  if (slots !== undefined) return slots;
  const own = Object.getOwnPropertySymbols(socket);
  const buffer = own.find((s) => s.description === 'kBuffer');
  const callback = own.find((s) => s.description === 'kBufferCb');
  slots = buffer && callback ? { buffer, callback } : null;
  return slots;
}

interface SocketInternals {
  _handle?: { useUserBuffer?: (buf: Uint8Array) => void } | null;
  [slot: symbol]: unknown;
}

/**
 * Makes `accepted` read into the shared buffer; false (it reads through its
 * stream, as before) on a Node whose sockets lack what this expects. Call it
 * in the 'connection' event, before its first read; for a TLS socket, in its
 * 'secureConnection' event (its TLSWrap then decrypts into the buffer).
 */
export function readThroughBuffer(accepted: net.Socket): boolean {
  const internals = accepted as unknown as SocketInternals;
  const handle = internals._handle;
  const s = onreadSlots(accepted);
  // A socket that has read into its stream already keeps doing so: its buffered chunks come first.
  if (!s || !handle || typeof handle.useUserBuffer !== 'function' || internals[s.buffer] !== null || accepted.readableLength > 0) return false;
  internals[s.buffer] = sharedReadBuffer;
  internals[s.callback] = (n: number): void => {
    // allocUnsafe takes a slice of Node's pool below 4 KiB, memory of its own above.
    const chunk = Buffer.allocUnsafe(n);
    sharedReadBuffer.copy(chunk, 0, 0, n);
    accepted.emit('data', chunk);
  };
  handle.useUserBuffer(sharedReadBuffer);
  return true;
}
