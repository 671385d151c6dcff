// One request stream of a downstream HTTP/2 connection (server-connection.ts),
// as the exchange sees it. It has the part of node:http2's ServerHttp2Stream
// surface the exchange uses (respond, write, end, trailers, pause, pipe, the
// 'data'/'end'/'trailers'/'drain'/'wantTrailers'/'close' events); the halves
// that receive and send are stream-base.ts, shared with the upstream side.
import type { OutgoingHttpHeaders } from 'node:http2';
import { ErrorCode } from './frames';
import type { H2ServerConnection } from './server-connection';
import { H2StreamBase } from './stream-base';

export class H2ServerStream extends H2StreamBase {
  /** The request's HEADERS carried END_STREAM: there is no body. */
  readonly endAfterHeaders: boolean;
  headersSent = false;
  /** The connection's socket, where node:http2 has `stream.session.socket`. */
  readonly session: H2ServerConnection;

  /** The stream idle timeout (setTimeout), swept with the connection; 0 = none. */
  idleTimeoutMs = 0;
  onIdle: (() => void) | undefined;

  constructor(
    connection: H2ServerConnection,
    readonly id: number,
    endStream: boolean,
    contentLength: number,
    recvWindow: number,
    sendWindow: number,
  ) {
    super(connection, recvWindow, sendWindow);
    this.session = connection;
    this.endAfterHeaders = endStream;
    this.remoteEnded = endStream;
    this.remainingLength = contentLength;
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

  protected beginSending(): void {
    if (!this.headersSent) this.respond({ ':status': 200 });
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
    if (!this.markClosed(code)) return;
    // Asynchronous, as node:http2's: whoever ended the stream finishes its own bookkeeping first.
    process.nextTick(emitClosed, this, code === undefined);
  }
}

function emitClosed(stream: H2ServerStream, clean: boolean): void {
  if (clean) stream.emit('finish');
  stream.emit('close');
}
