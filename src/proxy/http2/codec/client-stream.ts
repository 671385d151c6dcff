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
import { codeName, ErrorCode } from './frames';
import type { H2ClientConnection } from './client-connection';
import { H2StreamBase } from './stream-base';

export class H2ClientStream extends H2StreamBase {
  /** Our stream id: 0 while the stream waits for the connection or for a concurrency slot. */
  id = 0;
  readonly session: H2ClientConnection;
  /** The request's HEADERS end the stream (no body). */
  readonly endWithHeaders: boolean;
  /** The request method: a HEAD response's content-length says nothing of its DATA. */
  readonly method: string;
  /** The final response head came (1xx heads are skipped). */
  responded = false;
  /** The response's HEADERS carried END_STREAM (trailers-only). */
  endAfterHeaders = false;
  /** Set while queued: the head to send when the stream starts. */
  head: OutgoingHttpHeaders | undefined;

  constructor(connection: H2ClientConnection, head: OutgoingHttpHeaders, endStream: boolean, waitForTrailers: boolean, recvWindow: number, sendWindow: number) {
    super(connection, recvWindow, sendWindow);
    this.session = connection;
    this.head = head;
    this.method = String(head[':method'] ?? 'GET');
    this.endWithHeaders = endStream;
    this.waitForTrailers = waitForTrailers && !endStream;
    if (endStream) this.endQueued = true;
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
      process.nextTick(() => this.flushInbox());
      return this;
    }
    return super.resume();
  }

  /** The connection: the response head (a 1xx one never comes here). */
  receivedResponse(headers: IncomingHttpHeaders, flags: number): void {
    this.responded = true;
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
