// What a stream of weft's HTTP/2 codec is on either side of the proxy: the
// half that receives (DATA handed to 'data' listeners as it is parsed, held
// while the reader pauses, its window given back as it is read) and the half
// that sends (write/end queue DATA the connection pumps as flow control
// allows; trailers after it). server-stream.ts (a downstream request) and
// client-stream.ts (an upstream request) add what their side needs. Not a
// stream.Duplex: a chunk goes from the socket's read to the listener, and from
// write() to the connection's DATA frames, with no queue in between beyond
// what flow control needs; and not an EventEmitter either (see StreamEvents).
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2';
import { activityClock } from '../../listener/activity-clock';

/** Bytes queued (waiting for flow-control window or the socket) before write() says "wait". */
const WRITE_HIGH_WATER = 64 * 1024;
/** Request body bytes an upstream stream keeps until its response begins, to go again if refused unprocessed. */
const REPLAY_LIMIT = 64 * 1024;

/** What can receive a body through pipe(): an upstream stream or request. */
export interface PipeTarget {
  write(chunk: Buffer): boolean;
  once(event: 'drain', listener: () => void): unknown;
}

/** The connection a stream belongs to, as the stream calls it. */
export interface StreamOwner<S> {
  /** The reader took what the stream held: its window may go back to the peer. */
  consumed(stream: S): void;
  /** The received side delivered its end: the stream may be closed. */
  maybeClosed(stream: S): void;
  /** Queued DATA (and the end) may go out. */
  pump(stream: S): void;
}

type ListenerFunction = (...args: any[]) => void;

/**
 * A listener that is an object, as the DOM's EventListener: one object can take several events of
 * several streams without a closure made for each (the exchange takes its upstream stream's this way).
 */
export interface StreamEventHandler {
  handleEvent(event: string, a: unknown, b: unknown, source: StreamEvents): void;
}

type Listener = ListenerFunction | StreamEventHandler;

/**
 * The events of a stream ('data', 'end', 'response', 'close', …) as the exchange listens to them:
 * on, once, emit, removeListener, with EventEmitter's rules (listeners in order, an 'error' nobody
 * listens to is thrown) but none of its generality (capture, newListener, max-listener warnings),
 * which cost 5% of the CPU of an h2c request, every stream having a handful of listeners.
 * An emit runs the listeners there were when it began: one added meanwhile is appended past its
 * count, and a removal replaces the list rather than shifting it.
 */
export class StreamEvents {
  private listeners: Record<string, Listener | Listener[] | undefined> | undefined;

  on(event: string, listener: Listener): this {
    const all = (this.listeners ??= {});
    const had = all[event];
    if (had === undefined) all[event] = listener;
    else if (!Array.isArray(had)) all[event] = [had, listener];
    else had.push(listener);
    return this;
  }

  once(event: string, listener: ListenerFunction): this {
    const wrapper = (...args: unknown[]): void => {
      this.removeListener(event, wrapper);
      listener(...args);
    };
    return this.on(event, wrapper);
  }

  removeListener(event: string, listener: Listener): this {
    const had = this.listeners?.[event];
    if (had === undefined) return this;
    if (!Array.isArray(had)) {
      if (had === listener) this.listeners![event] = undefined;
      return this;
    }
    const i = had.indexOf(listener);
    if (i >= 0) this.listeners![event] = had.length === 2 ? had[1 - i] : had.filter((_, k) => k !== i);
    return this;
  }

  emit(event: string, a?: unknown, b?: unknown): boolean {
    const had = this.listeners?.[event];
    if (had === undefined) {
      if (event === 'error') throw a;
      return false;
    }
    if (!Array.isArray(had)) call(had, this, event, a, b);
    else for (let i = 0, n = had.length; i < n; i++) call(had[i], this, event, a, b);
    return true;
  }
}

function call(listener: Listener, source: StreamEvents, event: string, a: unknown, b: unknown): void {
  if (typeof listener === 'function') listener.call(source, a, b);
  else listener.handleEvent(event, a, b, source);
}

export abstract class H2StreamBase extends StreamEvents {
  destroyed = false;
  closed = false;
  /** The RST_STREAM code that ended the stream (either side), undefined if it ended cleanly. */
  rstCode: number | undefined = undefined;

  // ---- the receiving half ----
  /** The peer sent END_STREAM. */
  remoteEnded = false;
  /** Body bytes still allowed by content-length (-1: no content-length). */
  remainingLength = -1;
  /** Window this side granted the peer for the stream. */
  recvWindow: number;
  /** Body bytes handed to the reader whose window is not yet given back. */
  unacknowledged = 0;
  /** Body bytes handed to the reader in all (what the exchange reports as the bytes it received). */
  bytesRead = 0;
  /** Chunks received while nobody was reading (no 'data' listener yet, or paused). */
  protected inbox: Buffer[] | undefined;
  protected flowing = false;
  protected paused = false;
  protected endDelivered = false;
  protected pendingTrailers: IncomingHttpHeaders | undefined;

  // ---- the sending half ----
  /** Window the peer granted for the stream. */
  sendWindow: number;
  /** DATA waiting for window or the socket, and its bytes. */
  readonly outQueue: Buffer[] = [];
  outBytes = 0;
  /** end() was called: END_STREAM (or the trailers) goes after the queued DATA. */
  endQueued = false;
  /** Trailers to send once the DATA is out (waitForTrailers and sendTrailers). */
  trailersQueued: OutgoingHttpHeaders | undefined;
  protected waitForTrailers = false;
  localEnded = false;
  /**
   * DATA sent and kept until the response begins (an upstream request only), so that a stream the
   * server refused unprocessed can go again: undefined when there is nothing to keep or too much.
   */
  sent: Buffer[] | undefined = undefined;
  sentBytes = 0;
  private needDrain = false;
  lastActivity = activityClock.now;

  constructor(
    /** The connection; an upstream stream still queued may move to another (client-stream.ts moveTo). */
    protected owner: StreamOwner<H2StreamBase>,
    recvWindow: number,
    sendWindow: number,
  ) {
    super();
    this.recvWindow = recvWindow;
    this.sendWindow = sendWindow;
  }

  // ---- reading ----

  override on(event: string, listener: Listener): this {
    super.on(event, listener);
    if (event === 'data' && !this.flowing) {
      this.flowing = true;
      // What came before the reader is handed over on the next tick; with nothing held, there is nothing to hand.
      if (!this.paused && (this.inbox !== undefined || this.remoteEnded)) process.nextTick(flushInboxOf, this);
    } else if (event === 'end' && this.remoteEnded && !this.endDelivered && this.flowing && !this.paused) {
      process.nextTick(flushInboxOf, this);
    }
    return this;
  }

  pause(): this {
    this.paused = true;
    return this;
  }

  resume(): this {
    if (!this.paused) return this;
    this.paused = false;
    if (this.flowing) this.flushInbox();
    return this;
  }

  /** Forwards the body to `dest` as it comes, pausing while `dest` is full. The end is the caller's (onBodyEnd). */
  pipe<T extends PipeTarget>(dest: T, _options?: { end?: boolean }): T {
    this.on('data', (chunk: Buffer) => {
      if (!dest.write(chunk)) {
        this.pause();
        dest.once('drain', () => this.resume());
      }
    });
    return dest;
  }

  /** The connection: a DATA payload for this stream. */
  received(chunk: Buffer): void {
    this.lastActivity = activityClock.now;
    if (this.flowing && !this.paused && this.inbox === undefined) {
      this.unacknowledged += chunk.length;
      this.bytesRead += chunk.length;
      this.emit('data', chunk);
    } else {
      (this.inbox ??= []).push(chunk);
    }
  }

  /** The connection: the trailers, then the end. */
  receivedTrailers(trailers: IncomingHttpHeaders): void {
    this.pendingTrailers = trailers;
  }

  /** The connection: END_STREAM arrived. */
  receivedEnd(): void {
    this.remoteEnded = true;
    if (this.flowing && !this.paused && this.inbox === undefined) this.deliverEnd();
  }

  /** What the stream held goes to the reader, as far as it reads (also the tick after a reader came: flushInboxOf). */
  flushInbox(): void {
    if (this.destroyed) return;
    const inbox = this.inbox;
    if (inbox !== undefined) {
      while (inbox.length > 0 && !this.paused && !this.destroyed) {
        const chunk = inbox.shift()!;
        this.unacknowledged += chunk.length;
        this.bytesRead += chunk.length;
        this.emit('data', chunk);
      }
      if (inbox.length > 0 || this.destroyed) return;
      this.inbox = undefined;
      this.owner.consumed(this);
    }
    if (this.remoteEnded && !this.paused) this.deliverEnd();
  }

  protected deliverEnd(): void {
    if (this.endDelivered || this.destroyed) return;
    this.endDelivered = true;
    if (this.pendingTrailers !== undefined) this.emitTrailers(this.pendingTrailers);
    this.emit('end');
    this.owner.maybeClosed(this);
  }

  protected emitTrailers(trailers: IncomingHttpHeaders): void {
    this.emit('trailers', trailers);
  }

  /** Whether the reader holds received bytes it has not read (paused, or not reading yet). */
  get holding(): boolean {
    return this.paused || !this.flowing;
  }

  // ---- writing ----

  /** Whether the sending side has begun (its HEADERS queued): write() before it sends a default head. */
  protected abstract beginSending(): void;

  write(chunk: Buffer | string): boolean {
    if (this.destroyed || this.endQueued) return false;
    this.enqueue(chunk);
    this.owner.pump(this);
    if (this.outBytes < WRITE_HIGH_WATER) return true;
    this.needDrain = true;
    return false;
  }

  end(chunk?: Buffer | string): this {
    if (this.destroyed || this.endQueued) return this;
    // Queued with the end, so that the last chunk's DATA frame carries END_STREAM.
    if (chunk !== undefined) this.enqueue(chunk);
    this.beginSending();
    if (this.endQueued) return this;
    this.endQueued = true;
    this.owner.pump(this);
    return this;
  }

  private enqueue(chunk: Buffer | string): void {
    this.beginSending();
    const data = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    if (data.length === 0) return;
    this.lastActivity = activityClock.now;
    this.outQueue.push(data);
    this.outBytes += data.length;
  }

  sendTrailers(trailers: OutgoingHttpHeaders): void {
    if (this.destroyed || this.localEnded) return;
    this.trailersQueued = trailers;
    this.owner.pump(this);
  }

  /** Whether the message ends with END_STREAM on its last DATA frame (no trailers asked for or given). */
  get endsWithData(): boolean {
    return this.trailersQueued === undefined && !this.waitForTrailers;
  }

  /**
   * The connection: the DATA is out. A message that waits for trailers gets 'wantTrailers', once
   * (sendTrailers may follow at once or later); returns whether it was asked.
   */
  askTrailers(): boolean {
    if (!this.waitForTrailers) return false;
    this.waitForTrailers = false;
    this.emit('wantTrailers');
    return true;
  }

  /** The connection: `part` went out as DATA; kept while the stream may still have to go again. */
  keepSent(part: Buffer): void {
    this.sentBytes += part.length;
    if (this.sentBytes > REPLAY_LIMIT) this.sent = undefined;
    else this.sent!.push(part);
  }

  /** The connection: queued bytes went out. */
  drained(): void {
    this.lastActivity = activityClock.now;
    if (this.needDrain && this.outBytes < WRITE_HIGH_WATER) {
      this.needDrain = false;
      this.emit('drain');
    }
  }

  /** The stream is over: what it still held is dropped. Returns false when it already was. */
  protected markClosed(code: number | undefined): boolean {
    if (this.closed) return false;
    this.closed = true;
    this.destroyed = true;
    this.rstCode = code;
    this.inbox = undefined;
    this.outQueue.length = 0;
    this.outBytes = 0;
    return true;
  }
}

/** process.nextTick(flushInboxOf, stream): the stream hands what it held to its reader, with no closure per call. */
export function flushInboxOf(stream: H2StreamBase): void {
  stream.flushInbox();
}
