// Small writes wait for the end of the event loop's turn, so that the writes
// of every read the turn handled leave together (Envoy does the same: a
// connection's write only schedules its write event).
//
// A write to a peer that sleeps in epoll wakes it, and the waker pays for the
// wakeup in system time. Written as each read is handled, a sidecar's
// responses reach wrk (or a client) one at a time, each waking it; its
// requests wake the upstream the same way. On this 2-core machine that came
// to 0.2–0.9 wakeups per request, and the runs with most of them cost up to
// 1.7× HAProxy's CPU per request against 1.2× (BENCHMARKS.md, "Writes held to
// the end of the turn"). Held, a turn's writes go out back to back after its
// reads: the peer wakes once, finds several ready, and is still busy for the
// next.
//
// Holding is cork() now and uncork() from setImmediate, which runs after the
// poll phase that delivered the reads. Corking keeps every write to the
// socket in order, whoever makes it; end() sends what is held; destroy()
// would drop it, so a path that destroys after writing calls releaseWrites
// first. Only small writes are held: the caller copies what it writes while
// held out of a reused read buffer, which is cheap below Node's pool size.
import type * as net from 'node:net';

/** Writes up to this size are held: copying one is cheap (Node's buffer pool serves copies below 4 KiB). */
const HELD_WRITE_MAX_BYTES = 4 * 1024;

/** A connection whose socket's writes can be held: `writesHeld` is true while they are. */
export interface WriteHolder {
  readonly socket: net.Socket;
  writesHeld: boolean;
}

let pending: WriteHolder[] = [];
let spare: WriteHolder[] = [];
let scheduled = false;

/**
 * Holds the socket's writes until the end of this turn, unless they are held
 * already or it has bytes still waiting to go (a slow reader: its writes are
 * not small ones to batch, and the caller sees backpressure as before).
 */
export function holdWrites(holder: WriteHolder): void {
  if (holder.writesHeld || holder.socket.writableLength > 0) return;
  holder.writesHeld = true;
  holder.socket.cork();
  pending.push(holder);
  if (!scheduled) {
    scheduled = true;
    setImmediate(releaseAll);
  }
}

/**
 * Writes a chunk the caller owns (not a view of a buffer reused within the
 * turn): held when small, else after what is held. Returns socket.write's
 * answer, for backpressure.
 */
export function writeOwnBytes(holder: WriteHolder, chunk: Buffer): boolean {
  holdFor(holder, chunk.length);
  return holder.socket.write(chunk);
}

/** Before a write of `bytes`: holds the socket's writes when it is small, else sends what is held so it goes first. */
export function holdFor(holder: WriteHolder, bytes: number): void {
  if (bytes <= HELD_WRITE_MAX_BYTES) holdWrites(holder);
  else releaseWrites(holder);
}

/** Sends what is held now: before destroy(), or before a write that must leave as it is. */
export function releaseWrites(holder: WriteHolder): void {
  if (!holder.writesHeld) return;
  holder.writesHeld = false;
  holder.socket.uncork();
}

function releaseAll(): void {
  scheduled = false;
  // Swapped, not copied: a write made while releasing (a 'drain' handler) is held for the next turn.
  const release = pending;
  pending = spare;
  spare = release;
  for (let i = 0; i < release.length; i++) releaseWrites(release[i]);
  release.length = 0;
}
