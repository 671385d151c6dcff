// One request stream of an upstream HTTP/2 connection (client-connection.ts),
// as the exchange, the HTTP/1 bridge and the mirror see it: the part of
// node:http2's ClientHttp2Stream surface they use (write, end, sendTrailers,
// pause/resume, pipe, close(code), destroy(); the 'response', 'data', 'end',
// 'trailers', 'wantTrailers', 'drain', 'error' and 'close' events; rstCode,
// destroyed, closed). The halves that send and receive are stream-base.ts.
//
// Errors as node:http2 gives them, since the exchange tells failures apart by
// them: a reset by the server with a code other than NO_ERROR or CANCEL is an
// 'error' (ERR_HTTP2_STREAM_ERROR), a connection that failed cancels its
// streams with an 'error' whose message carries the cause ("connect ..." while
// connecting: the exchange's UF), and a reset of our own emits only 'close'.
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2';
import { codeName, DEFAULT_WINDOW, ErrorCode } from './frames';
import type { H2ClientConnection } from './client-connection';
import { flushInboxOf, H2StreamBase } from './stream-base';

/** Bounds on a stream going again (moved off connections that answered nothing; sent again once refused), so that servers that refuse everything cannot bounce it for ever. */
const MAX_MOVES = 3;
const MAX_RESENDS = 10;

export class H2ClientStream extends H2StreamBase {
  /** Our stream id: 0 while the stream waits for the connection or for a concurrency slot. */
  id = 0;
  session: H2ClientConnection;
  /** Tries spent going again: moved off a connection that answered nothing (client-connection.ts goneAway). */
  moves = 0;
  /** Times it was sent, refused unprocessed, and queued again. */
  resends = 0;
  /** The request's HEADERS end the stream (no body). */
  readonly endWithHeaders: boolean;
  /** The request method: a HEAD response's content-length says nothing of its DATA. */
  readonly method: string;
  /** The final response head came (1xx heads are skipped). */
  responded = false;
  /** The response's HEADERS carried END_STREAM (trailers-only). */
  endAfterHeaders = false;
  /** The head it sends when it starts (again, if the server refuses it unprocessed). */
  readonly head: OutgoingHttpHeaders;

  constructor(connection: H2ClientConnection, head: OutgoingHttpHeaders, endStream: boolean, waitForTrailers: boolean, recvWindow: number, sendWindow: number) {
    super(connection, recvWindow, sendWindow);
    this.session = connection;
    this.head = head;
    this.method = String(head[':method'] ?? 'GET');
    this.endWithHeaders = endStream;
    this.waitForTrailers = waitForTrailers && !endStream;
    if (endStream) this.endQueued = true;
    else this.sent = [];
  }

  /**
   * Whether the stream may go again, from its first byte, on this connection or another: the
   * server refused it unprocessed (a GOAWAY that left it out, or REFUSED_STREAM), nothing of the
   * response came, and its body is all kept (or it has none). gRPC calls this a transparent retry.
   */
  get mayGoAgain(): boolean {
    return !this.responded && !this.destroyed && this.moves < MAX_MOVES && this.resends < MAX_RESENDS && this.inbox === undefined && !this.remoteEnded && (this.endWithHeaders || this.sent !== undefined);
  }

  /** To wait on `connection` (this one or the next), not started: what it sent is queued again in front of what it has not. */
  moveTo(connection: H2ClientConnection, tries: boolean): void {
    this.session = connection;
    this.owner = connection;
    if (tries) this.moves++;
    if (this.id === 0) return;
    this.resends++;
    this.id = 0;
    this.localEnded = false;
    this.recvWindow = DEFAULT_WINDOW;
    this.unacknowledged = 0;
    if (this.sent !== undefined && this.sent.length > 0) {
      this.outQueue.unshift(...this.sent);
      this.outBytes += this.sentBytes;
      this.sent = [];
      this.sentBytes = 0;
    }
  }

  /** Bytes written and not yet sent (node's writableLength). */
  get writableLength(): number {
    return this.outBytes;
  }

  /** end() was called (node's writableEnded). */
  get writableEnded(): boolean {
    return this.endQueued;
  }

  /** Whether the response's end was delivered to the reader. */
  get ended(): boolean {
    return this.endDelivered;
  }

  /** The head goes out when the stream starts; nothing to do before a write. */
  protected beginSending(): void {}

  override receivedEnd(): void {
    this.remoteEnded = true;
    // With nothing held, the end is delivered even to a reader that never asked for the body
    // (node reads 0 bytes at the end): a trailers-only response ends, and its stream closes.
    if (!this.paused && this.inbox === undefined) this.deliverEnd();
  }

  override resume(): this {
    // node: resume() without a 'data' listener reads and drops the body (the mirror's shadows).
    if (!this.flowing) {
      this.flowing = true;
      this.paused = false;
      process.nextTick(flushInboxOf, this);
      return this;
    }
    return super.resume();
  }

  /** The connection: the response head (a 1xx one never comes here). */
  receivedResponse(headers: IncomingHttpHeaders, flags: number): void {
    this.responded = true;
    this.sent = undefined; // processed: it never goes again
    this.emit('response', headers, flags);
  }

  protected override emitTrailers(trailers: IncomingHttpHeaders): void {
    this.emit('trailers', trailers, 0);
  }

  // ---- ending ----

  /** RST_STREAM with `code` (node's close(code)); a stream not sent yet is dropped without a frame. */
  close(code: number = ErrorCode.NO_ERROR): void {
    if (this.destroyed) return;
    this.session.resetStream(this, code);
  }

  /** Resets the stream: CANCEL for an AbortError (the proxy gave up) or none, else INTERNAL_ERROR. */
  destroy(err?: Error): this {
    if (this.destroyed) return this;
    this.session.resetStream(this, err === undefined || err.name === 'AbortError' ? ErrorCode.CANCEL : ErrorCode.INTERNAL_ERROR);
    return this;
  }

  /**
   * The connection: the stream is over. `code`: the RST_STREAM code (either side), undefined when
   * it ended cleanly; `error`: what 'error' says first; `byPeer`: the server (or the connection)
   * ended it, so a response it cut short reads as ended on a destroyed stream, as node gives it.
   */
  closedWith(code: number | undefined, error: Error | undefined, byPeer: boolean): void {
    if (!this.markClosed(code)) return;
    const cutShort = byPeer && error === undefined && this.responded && !this.endDelivered;
    // Asynchronous, as node:http2's: whoever ended the stream finishes its own bookkeeping first.
    process.nextTick(emitClosed, this, error, cutShort);
  }
}

function emitClosed(stream: H2ClientStream, error: Error | undefined, cutShort: boolean): void {
  if (error !== undefined) stream.emit('error', error);
  if (cutShort) stream.emit('end');
  stream.emit('close');
}

/** node's error for a stream reset with `code`. */
export function streamError(code: number, detail?: string): Error {
  const err = new Error(`Stream closed with error code NGHTTP2_${codeName(code)}${detail ? ` (${detail})` : ''}`) as NodeJS.ErrnoException;
  err.code = 'ERR_HTTP2_STREAM_ERROR';
  return err;
}
