// One request stream of a downstream HTTP/2 connection (server-connection.ts),
// as the exchange sees it. It has the part of node:http2's ServerHttp2Stream
// surface the exchange uses (respond, write, end, trailers, pause, pipe, the
// 'data'/'end'/'trailers'/'drain'/'wantTrailers'/'close' events) without being
// a stream.Duplex: a chunk goes from the socket's read to the listener, and
// from write() to the connection's DATA frames, with no queue in between
// beyond what flow control needs.
import { EventEmitter } from 'node:events';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2';
import { activityClock } from '../../listener/activity-clock';
import { ErrorCode } from './frames';
import type { H2ServerConnection } from './server-connection';

/** Response bytes queued (waiting for flow-control window or the socket) before write() says "wait". */
const WRITE_HIGH_WATER = 64 * 1024;

/** What can receive a request body through pipe(): an upstream stream or request. */
interface PipeTarget {
  write(chunk: Buffer): boolean;
  once(event: 'drain', listener: () => void): unknown;
}

export class H2ServerStream extends EventEmitter {
  /** The request's HEADERS carried END_STREAM: there is no body. */
  readonly endAfterHeaders: boolean;
  headersSent = false;
  destroyed = false;
  closed = false;
  /** The RST_STREAM code that ended the stream (either side), undefined if it ended cleanly. */
  rstCode: number | undefined = undefined;
  /** The connection's socket, where node:http2 has `stream.session.socket`. */
  readonly session: H2ServerConnection;

  // ---- request side ----
  /** The client sent END_STREAM (all of the body is here). */
  remoteEnded: boolean;
  /** Body bytes still allowed by content-length (-1: no content-length). */
  remainingLength: number;
  /** Window this side granted the client for the stream. */
  recvWindow: number;
  /** Body bytes handed to the exchange whose window is not yet given back. */
  unacknowledged = 0;
  /** Chunks received while the exchange was not reading (no 'data' listener yet, or paused). */
  private inbox: Buffer[] | undefined;
  private flowing = false;
  private paused = false;
  private endDelivered = false;
  private pendingTrailers: IncomingHttpHeaders | undefined;

  // ---- response side ----
  /** Window the client granted for the stream. */
  sendWindow: number;
  /** DATA waiting for window or the socket, and its bytes. */
  readonly outQueue: Buffer[] = [];
  outBytes = 0;
  /** end() was called: END_STREAM (or the trailers) goes after the queued DATA. */
  endQueued = false;
  /** Trailers to send once the DATA is out (waitForTrailers and sendTrailers). */
  trailersQueued: OutgoingHttpHeaders | undefined;
  private waitForTrailers = false;
  localEnded = false;
  private needDrain = false;

  /** The stream idle timeout (setTimeout), swept with the connection; 0 = none. */
  idleTimeoutMs = 0;
  onIdle: (() => void) | undefined;
  lastActivity = activityClock.now;

  constructor(
    connection: H2ServerConnection,
    readonly id: number,
    endStream: boolean,
    contentLength: number,
    recvWindow: number,
    sendWindow: number,
  ) {
    super();
    this.session = connection;
    this.endAfterHeaders = endStream;
    this.remoteEnded = endStream;
    this.remainingLength = contentLength;
    this.recvWindow = recvWindow;
    this.sendWindow = sendWindow;
  }

  // ---- the exchange's side: reading the request ----

  override on(event: string | symbol, listener: (...args: any[]) => void): this {
    super.on(event, listener);
    if (event === 'data' && !this.flowing) {
      this.flowing = true;
      if (!this.paused) process.nextTick(() => this.flushInbox());
    } else if (event === 'end' && this.remoteEnded && !this.endDelivered && this.flowing && !this.paused) {
      process.nextTick(() => this.flushInbox());
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

  /** Forwards the request body to `dest` as it comes, pausing while `dest` is full. The end is the caller's (onBodyEnd). */
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
      this.emit('data', chunk);
    } else {
      (this.inbox ??= []).push(chunk);
    }
  }

  /** The connection: the request's trailers, then its end. */
  receivedTrailers(trailers: IncomingHttpHeaders): void {
    this.pendingTrailers = trailers;
  }

  /** The connection: END_STREAM arrived. */
  receivedEnd(): void {
    this.remoteEnded = true;
    if (this.flowing && !this.paused && this.inbox === undefined) this.deliverEnd();
  }

  private flushInbox(): void {
    if (this.destroyed) return;
    const inbox = this.inbox;
    if (inbox !== undefined) {
      while (inbox.length > 0 && !this.paused && !this.destroyed) {
        const chunk = inbox.shift()!;
        this.unacknowledged += chunk.length;
        this.emit('data', chunk);
      }
      if (inbox.length > 0 || this.destroyed) return;
      this.inbox = undefined;
      this.session.consumed(this);
    }
    if (this.remoteEnded && !this.paused) this.deliverEnd();
  }

  private deliverEnd(): void {
    if (this.endDelivered || this.destroyed) return;
    this.endDelivered = true;
    if (this.pendingTrailers !== undefined) this.emit('trailers', this.pendingTrailers);
    this.emit('end');
    this.session.maybeClosed(this);
  }

  /** Whether the exchange holds received bytes it has not read (paused, or not reading yet). */
  get holding(): boolean {
    return this.paused || !this.flowing;
  }

  // ---- the exchange's side: writing the response ----

  respond(headers: OutgoingHttpHeaders, options?: { endStream?: boolean; waitForTrailers?: boolean }): void {
    if (this.headersSent || this.destroyed) return;
    this.headersSent = true;
    this.waitForTrailers = options?.waitForTrailers === true;
    const endStream = options?.endStream === true;
    if (endStream) this.localEnded = this.endQueued = true;
    this.session.sendHeaders(this, headers, endStream);
    if (endStream) this.session.maybeClosed(this);
  }

  write(chunk: Buffer | string): boolean {
    if (this.destroyed || this.endQueued) return false;
    this.enqueue(chunk);
    this.session.pump(this);
    if (this.outBytes < WRITE_HIGH_WATER) return true;
    this.needDrain = true;
    return false;
  }

  end(chunk?: Buffer | string): this {
    if (this.destroyed || this.endQueued) return this;
    // Queued with the end, so that the last chunk's DATA frame carries END_STREAM.
    if (chunk !== undefined) this.enqueue(chunk);
    if (!this.headersSent) this.respond({ ':status': 200 });
    if (this.endQueued) return this;
    this.endQueued = true;
    this.session.pump(this);
    return this;
  }

  private enqueue(chunk: Buffer | string): void {
    if (!this.headersSent) this.respond({ ':status': 200 });
    const data = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    if (data.length === 0) return;
    this.lastActivity = activityClock.now;
    this.outQueue.push(data);
    this.outBytes += data.length;
  }

  sendTrailers(trailers: OutgoingHttpHeaders): void {
    if (this.destroyed || this.localEnded) return;
    this.trailersQueued = trailers;
    this.session.pump(this);
  }

  /** Whether the response ends with END_STREAM on its last DATA frame (no trailers asked for or given). */
  get endsWithData(): boolean {
    return this.trailersQueued === undefined && !this.waitForTrailers;
  }

  /**
   * The connection: the DATA is out. A response that waits for trailers gets 'wantTrailers', once
   * (sendTrailers may follow at once or later); returns whether it was asked.
   */
  askTrailers(): boolean {
    if (!this.waitForTrailers) return false;
    this.waitForTrailers = false;
    this.emit('wantTrailers');
    return true;
  }

  /** The connection: queued bytes went out. */
  drained(): void {
    this.lastActivity = activityClock.now;
    if (this.needDrain && this.outBytes < WRITE_HIGH_WATER) {
      this.needDrain = false;
      this.emit('drain');
    }
  }

  // ---- ending ----

  /** RST_STREAM with `code` (node:http2's close(code)); a response already ended goes out first. */
  close(code: number = ErrorCode.NO_ERROR): void {
    if (this.destroyed) return;
    this.session.resetStream(this, code, true);
  }

  /** Resets the stream: CANCEL for an AbortError (the proxy gave up), else INTERNAL_ERROR. */
  destroy(err?: Error): this {
    if (this.destroyed) return this;
    this.session.resetStream(this, err?.name === 'AbortError' ? ErrorCode.CANCEL : err ? ErrorCode.INTERNAL_ERROR : ErrorCode.CANCEL, false);
    return this;
  }

  /** The stream idle timeout: `onIdle` runs after `ms` with no frame either way (0 turns it off). */
  setTimeout(ms: number, onIdle?: () => void): void {
    this.idleTimeoutMs = ms;
    if (onIdle) this.onIdle = onIdle;
  }

  /** The connection: the stream is over (both sides ended, or reset); `code` when reset. */
  closedWith(code: number | undefined): void {
    if (this.closed) return;
    this.closed = true;
    this.destroyed = true;
    this.rstCode = code;
    this.inbox = undefined;
    this.outQueue.length = 0;
    this.outBytes = 0;
    // Asynchronous, as node:http2's: whoever ended the stream finishes its own bookkeeping first.
    process.nextTick(emitClosed, this, code === undefined);
  }
}

function emitClosed(stream: H2ServerStream, clean: boolean): void {
  if (clean) stream.emit('finish');
  stream.emit('close');
}
