// weft's own HTTP/2 server side of one downstream connection (RFC 9113), on
// the raw socket: frames parsed as they arrive, checked against the
// connection's state, HPACK (hpack-*.ts), flow control both ways, and the
// limits that keep one client from costing the proxy more than its requests
// (rapid reset, CONTINUATION floods, unread ACKs, refused and invalid
// streams). It replaces node:http2 on this path, whose per-stream objects and
// native round trips cost ~5× HAProxy's CPU per request (BENCHMARKS.md).
//
// Errors: a stream error resets the stream (RST_STREAM) and the connection
// goes on; a connection error sends GOAWAY with its code and closes the socket
// once it is written. A well-formed request becomes an H2ServerStream, handed
// to `onRequest` after the whole read is parsed, so a stream the same read
// resets (rapid reset) is never routed.
import type * as net from 'node:net';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2';
import { activityClock, idleFor } from '../../listener/activity-clock';
import { H2ConnectionBase, MAX_HEADER_LIST_SIZE } from './connection-base';
import { codeName, DEFAULT_WINDOW, ErrorCode, Flag, goawayFrame, MAX_WINDOW, PREFACE, rstStreamFrame, Setting, SETTINGS_ACK, settingsFrame } from './frames';
import { MalformedFields, newFields, requestHead, trailerFields, type RequestHead } from './request-fields';
import { H2ServerStream } from './server-stream';
import { StreamTable } from './stream-table';

/** The limits a downstream connection advertises and enforces. */
export const LIMITS = {
  /** HAProxy and nginx advertise 100 and 128. */
  maxConcurrentStreams: 100,
  maxHeaderListSize: MAX_HEADER_LIST_SIZE,
  /** Streams the client resets before they finish: a burst, then a rate (rapid reset, CVE-2023-44487). */
  resetBurst: 1000,
  resetsPerSecond: 33,
  /** Streams refused over the concurrency limit, and frames that broke a stream, before the connection ends. */
  maxRefusedStreams: 100,
  maxInvalidFrames: 100,
} as const;

/** How long streams still open may take to finish once the client has sent FIN (it can no longer send WINDOW_UPDATE). */
const CLOSING_GRACE_MS = 1000;

/** What the owner of a connection learns from it. */
export interface H2ServerHandler {
  /** A well-formed request; its body, if any, follows on the stream. */
  onRequest(stream: H2ServerStream, head: RequestHead): void;
  /** A request the codec refused before routing, or an error of the connection or a stream, counted by reason. */
  onError(scope: 'stream' | 'session', reason: string): void;
  /** A request whose header list is larger than the limit: answered (431) by the owner. */
  onOversizedHeaders(stream: H2ServerStream): void;
}

export class H2ServerConnection extends H2ConnectionBase<H2ServerStream> {
  private readonly streams = new StreamTable<H2ServerStream>();
  private prefaceSeen = false;
  /** The highest stream id the client opened. */
  private lastStreamId = 0;
  /** Streams opened in the current read, routed when it has been parsed. */
  private opened: H2ServerStream[] = [];

  // ---- limits ----
  private resetTokens: number = LIMITS.resetBurst;
  private resetRefilled = performance.now();
  private refusedStreams = 0;
  private invalidFrames = 0;

  // ---- ending ----
  /** GOAWAY sent: no new streams; the socket closes when the last stream ends. */
  private goingAway = false;
  private closingTimer: NodeJS.Timeout | undefined;
  private lastActivity = activityClock.now;
  /** How long the connection may stay with no stream before GOAWAY (its chain's idle timeout; 0: no limit). */
  idleTimeoutMs = 0;

  constructor(
    socket: net.Socket,
    private readonly handler: H2ServerHandler,
  ) {
    super(socket);
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.onSocketDrain());
    socket.on('end', () => this.onClientEnd());
    socket.on('close', () => this.onSocketClose());
    // Our SETTINGS first (§3.4); the window and frame size stay at their defaults.
    this.queue(
      settingsFrame([
        [Setting.MAX_CONCURRENT_STREAMS, LIMITS.maxConcurrentStreams],
        [Setting.MAX_HEADER_LIST_SIZE, LIMITS.maxHeaderListSize],
        [Setting.ENABLE_PUSH, 0],
      ]),
    );
  }

  /** Streams open now. */
  get openStreams(): number {
    return this.streams.size;
  }

  private peerText: string | undefined;

  /** The client's address:port, as request records give it (built once per connection, not per request). */
  get peer(): string {
    return (this.peerText ??= `${this.socket.remoteAddress}:${this.socket.remotePort}`);
  }

  // ---------------------------------------------------------------- reading

  /** Bytes from the socket (the first call gets what the HTTP/1 sniffing already read). */
  onData(chunk: Buffer): void {
    if (this.closed) return;
    this.lastActivity = activityClock.now;
    let buf = chunk;
    if (this.pending !== undefined) {
      buf = Buffer.concat([this.pending, chunk]);
      this.pending = undefined;
    }
    try {
      this.parse(buf);
      this.startOpened();
    } catch (err) {
      // A bug of ours (or of an exchange this read drove), never the client's: this connection ends, the process does not.
      this.connectionError(ErrorCode.INTERNAL_ERROR, (err as Error).message);
    }
    this.acknowledgeConnection();
    this.scheduleFlush();
  }

  private parse(buf: Buffer): void {
    let at = 0;
    if (!this.prefaceSeen) {
      const n = Math.min(buf.length, PREFACE.length);
      if (buf.compare(PREFACE, 0, n, 0, n) !== 0) return this.connectionError(ErrorCode.PROTOCOL_ERROR, 'bad preface');
      if (n < PREFACE.length) {
        this.pending = buf;
        return;
      }
      this.prefaceSeen = true;
      at = PREFACE.length;
    }
    this.readFrames(buf, at);
  }

  /** A stream the client has not opened yet (§5.1): every id above the last it used. */
  protected idle(streamId: number): boolean {
    return streamId > this.lastStreamId;
  }

  protected headersMisplaced(streamId: number): string | undefined {
    return streamId === 0 || streamId % 2 === 0 ? 'HEADERS on a stream a client cannot open' : undefined;
  }

  /** DATA on stream 0 or an idle stream was refused from its frame header (misplaced()). */
  protected onDataFrame(flags: number, streamId: number, payload: Buffer): void {
    // The whole frame, padding included, counts against both windows (§6.9.1).
    this.connRecvWindow -= payload.length;
    if (this.connRecvWindow < 0) return this.connectionError(ErrorCode.FLOW_CONTROL_ERROR, 'DATA beyond the connection window');
    this.connUnacknowledged += payload.length;
    const stream = this.streams.get(streamId);
    // A stream already closed (reset, or ended) may still get frames that were in flight: ignored.
    if (stream === undefined || stream.remoteEnded) return;
    const data = this.unpad(flags, payload);
    if (data === undefined) return;
    stream.recvWindow -= payload.length;
    if (stream.recvWindow < 0) return this.streamError(stream, ErrorCode.FLOW_CONTROL_ERROR, 'flow_control');
    // Padding goes back with the next WINDOW_UPDATE of the stream; the data once the exchange has read it.
    stream.unacknowledged += payload.length - data.length;
    if (stream.remainingLength >= 0) {
      stream.remainingLength -= data.length;
      if (stream.remainingLength < 0) return this.streamError(stream, ErrorCode.PROTOCOL_ERROR, 'content_length');
    }
    const endStream = (flags & Flag.END_STREAM) !== 0;
    if (data.length === 0 && !endStream && ++this.invalidFrames > LIMITS.maxInvalidFrames) {
      // Empty DATA frames cost the proxy work and carry nothing (CVE-2019-9518).
      return this.connectionError(ErrorCode.ENHANCE_YOUR_CALM, 'empty DATA flood');
    }
    if (endStream && stream.remainingLength > 0) return this.streamError(stream, ErrorCode.PROTOCOL_ERROR, 'content_length');
    if (data.length > 0) stream.received(data);
    if (endStream && !stream.destroyed) stream.receivedEnd();
    else if (!stream.holding) this.consumed(stream);
  }

  protected onHeadersFrame(flags: number, streamId: number, payload: Buffer): void {
    let fragment = this.unpad(flags, payload);
    if (fragment === undefined) return;
    let drop: string | undefined;
    if (flags & Flag.PRIORITY) {
      if (fragment.length < 5) return this.connectionError(ErrorCode.FRAME_SIZE_ERROR, 'HEADERS priority truncated');
      // A stream that depends on itself is a stream error (§5.3.1); its block still carries HPACK state.
      if ((fragment.readUInt32BE(0) & MAX_WINDOW) === streamId) drop = 'self_dependency';
      fragment = fragment.subarray(5);
    }
    this.block = { streamId, parts: [fragment], bytes: fragment.length, endStream: (flags & Flag.END_STREAM) !== 0, continuations: 0, drop };
    if (flags & Flag.END_HEADERS) this.onHeaderBlock();
  }

  /** A whole header block: a new request, or the trailers of one in flight. */
  protected onHeaderBlock(): void {
    const decoded = this.takeBlock();
    if (decoded === undefined) return;
    const { block, fields, size } = decoded;
    const id = block.streamId;
    if (block.drop !== undefined) {
      if (id > this.lastStreamId) this.lastStreamId = id;
      return this.streamErrorById(id, ErrorCode.PROTOCOL_ERROR, block.drop);
    }
    if (id <= this.lastStreamId) return this.onTrailerBlock(id, fields, size, block.endStream);
    if (this.goingAway) {
      // Past our GOAWAY's last stream id: never processed, the client may retry it elsewhere.
      this.lastStreamId = id;
      this.queue(rstStreamFrame(id, ErrorCode.REFUSED_STREAM));
      return;
    }
    this.lastStreamId = id;
    if (this.streams.size >= LIMITS.maxConcurrentStreams) {
      // §5.1.2: REFUSED_STREAM says it was not processed; a client that keeps going is cut off.
      this.handler.onError('stream', 'refused_stream');
      this.queue(rstStreamFrame(id, ErrorCode.REFUSED_STREAM));
      if (++this.refusedStreams > LIMITS.maxRefusedStreams) this.connectionError(ErrorCode.ENHANCE_YOUR_CALM, 'too many refused streams');
      return;
    }
    let head: RequestHead;
    try {
      if (size < 0) head = { headers: newFields(), contentLength: -1 };
      else head = requestHead(fields);
    } catch (err) {
      if (!(err instanceof MalformedFields)) throw err;
      return this.refuse(id, `malformed_${err.reason}`);
    }
    if (block.endStream && head.contentLength > 0) return this.refuse(id, 'malformed_content_length');
    const stream = new H2ServerStream(this, id, block.endStream, head.contentLength, DEFAULT_WINDOW, this.peerInitialWindow);
    this.streams.set(id, stream);
    if (size < 0) {
      this.handler.onOversizedHeaders(stream);
      return;
    }
    (stream as StreamWithHead).head = head;
    this.opened.push(stream);
  }

  /** A header block on a stream the client opened before: trailers, if it is open and still sending. */
  private onTrailerBlock(id: number, fields: string[], size: number, endStream: boolean): void {
    const stream = this.streams.get(id);
    // A stream that is gone (reset by us, or finished) may still get a late block: its HPACK state is applied, the rest ignored.
    if (stream === undefined || stream.remoteEnded) return;
    if (!endStream) return this.streamError(stream, ErrorCode.PROTOCOL_ERROR, 'malformed_trailers_without_end_stream');
    if (size < 0) return this.streamError(stream, ErrorCode.PROTOCOL_ERROR, 'header_list_too_large');
    let trailers: IncomingHttpHeaders;
    try {
      trailers = trailerFields(fields);
    } catch (err) {
      if (!(err instanceof MalformedFields)) throw err;
      return this.streamError(stream, ErrorCode.PROTOCOL_ERROR, `malformed_${err.reason}`);
    }
    if (stream.remainingLength > 0) return this.streamError(stream, ErrorCode.PROTOCOL_ERROR, 'content_length');
    stream.receivedTrailers(trailers);
    stream.receivedEnd();
  }

  /** A malformed request: RST_STREAM(PROTOCOL_ERROR) before anything is routed (§8.1.1). */
  private refuse(id: number, reason: string): void {
    this.handler.onError('stream', reason);
    this.queue(rstStreamFrame(id, ErrorCode.PROTOCOL_ERROR));
    this.countInvalid();
  }

  protected onPriority(streamId: number, payload: Buffer): void {
    if (streamId === 0) return this.connectionError(ErrorCode.PROTOCOL_ERROR, 'PRIORITY on stream 0');
    if (payload.length !== 5) return this.streamErrorById(streamId, ErrorCode.FRAME_SIZE_ERROR, 'frame_size');
    if ((payload.readUInt32BE(0) & MAX_WINDOW) === streamId) return this.streamErrorById(streamId, ErrorCode.PROTOCOL_ERROR, 'self_dependency');
    // Priorities are deprecated (RFC 9113 §5.3.2) and weft does not schedule by them.
  }

  protected onRstStream(streamId: number, payload: Buffer): void {
    if (streamId === 0) return this.connectionError(ErrorCode.PROTOCOL_ERROR, 'RST_STREAM on stream 0');
    if (payload.length !== 4) return this.connectionError(ErrorCode.FRAME_SIZE_ERROR, 'RST_STREAM size');
    if (streamId > this.lastStreamId) return this.connectionError(ErrorCode.PROTOCOL_ERROR, 'RST_STREAM on an idle stream');
    const stream = this.streams.get(streamId);
    if (stream === undefined) return;
    const code = payload.readUInt32BE(0);
    // A client resetting streams before their response is rapid reset when it keeps doing it.
    if (!this.takeResetToken()) return this.connectionError(ErrorCode.ENHANCE_YOUR_CALM, 'rapid reset');
    if (code !== ErrorCode.NO_ERROR && code !== ErrorCode.CANCEL) this.handler.onError('stream', codeName(code));
    this.closeStream(stream, code);
  }

  private takeResetToken(): boolean {
    const now = performance.now();
    const refill = ((now - this.resetRefilled) / 1000) * LIMITS.resetsPerSecond;
    if (refill >= 1) {
      this.resetTokens = Math.min(LIMITS.resetBurst, this.resetTokens + Math.floor(refill));
      this.resetRefilled = now;
    }
    if (this.resetTokens === 0) return false;
    this.resetTokens--;
    return true;
  }

  protected onSettings(flags: number, streamId: number, payload: Buffer): void {
    if (streamId !== 0) return this.connectionError(ErrorCode.PROTOCOL_ERROR, 'SETTINGS on a stream');
    if (flags & Flag.ACK) {
      if (payload.length !== 0) return this.connectionError(ErrorCode.FRAME_SIZE_ERROR, 'SETTINGS ACK with a payload');
      return;
    }
    if (payload.length % 6 !== 0) return this.connectionError(ErrorCode.FRAME_SIZE_ERROR, 'SETTINGS size');
    // MAX_CONCURRENT_STREAMS (weft does not push), MAX_HEADER_LIST_SIZE (advisory) and unknown ones change nothing here.
    if (!this.applySettings(payload, this.streams.values(), settingsOfClient)) return;
    this.reply(SETTINGS_ACK);
  }

  protected onGoaway(streamId: number, payload: Buffer): void {
    if (streamId !== 0) return this.connectionError(ErrorCode.PROTOCOL_ERROR, 'GOAWAY on a stream');
    if (payload.length < 8) return this.connectionError(ErrorCode.FRAME_SIZE_ERROR, 'GOAWAY size');
    // The client is leaving: the streams in flight finish, then the connection closes (with our GOAWAY).
    this.goaway();
  }

  protected onWindowUpdate(streamId: number, payload: Buffer): void {
    if (payload.length !== 4) return this.connectionError(ErrorCode.FRAME_SIZE_ERROR, 'WINDOW_UPDATE size');
    const increment = payload.readUInt32BE(0) & MAX_WINDOW;
    if (streamId === 0) return this.connectionWindowUpdate(increment);
    if (streamId > this.lastStreamId) return this.connectionError(ErrorCode.PROTOCOL_ERROR, 'WINDOW_UPDATE on an idle stream');
    const stream = this.streams.get(streamId);
    if (increment === 0) {
      // A stream error (§6.9); on a stream already gone it changes nothing.
      if (stream) this.streamError(stream, ErrorCode.PROTOCOL_ERROR, 'window_update_zero');
      return;
    }
    if (stream === undefined) return;
    stream.sendWindow += increment;
    if (stream.sendWindow > MAX_WINDOW) return this.streamError(stream, ErrorCode.FLOW_CONTROL_ERROR, 'flow_control');
    this.pump(stream);
  }

  /** Routes the streams this read opened that are still open (rapid reset: a reset in the same read drops one). */
  private startOpened(): void {
    if (this.opened.length === 0) return;
    const opened = this.opened;
    this.opened = [];
    for (const stream of opened) {
      if (stream.destroyed) continue;
      const head = (stream as StreamWithHead).head!;
      (stream as StreamWithHead).head = undefined;
      this.handler.onRequest(stream, head);
    }
  }

  // ---------------------------------------------------------------- writing

  /** A response head (or trailers) for a stream. */
  sendHeaders(stream: H2ServerStream, headers: OutgoingHttpHeaders, endStream: boolean): void {
    if (this.closed) return;
    this.queueHeaders(stream.id, headers, endStream);
    this.scheduleFlush();
  }

  protected localEnd(stream: H2ServerStream): void {
    stream.localEnded = true;
    this.blocked.delete(stream.id);
    this.scheduleFlush();
    // A complete response while the request is still coming: RST_STREAM(NO_ERROR) stops the rest
    // of it (RFC 9113 §8.1) instead of reading a body nobody needs (the code close() asked for, if any).
    if (!stream.remoteEnded) return this.resetStream(stream, (stream as StreamWithReset).resetAfterEnd ?? ErrorCode.NO_ERROR, false);
    this.maybeClosed(stream);
  }

  /** A stream both sides have ended is closed (§5.1). */
  maybeClosed(stream: H2ServerStream): void {
    if (!stream.localEnded || !stream.remoteEnded || stream.closed) return;
    this.closeStream(stream, undefined);
  }

  /**
   * Resets a stream from our side. `afterResponse` (node's close(code)): a response already
   * ended goes out first, then RST_STREAM stops the rest of the request body (§8.1).
   */
  resetStream(stream: H2ServerStream, code: number, afterResponse: boolean): void {
    if (stream.closed) return;
    if (afterResponse && stream.endQueued && !stream.localEnded) {
      (stream as StreamWithReset).resetAfterEnd = code;
      return;
    }
    if (!(stream.localEnded && stream.remoteEnded)) this.queue(rstStreamFrame(stream.id, code));
    this.scheduleFlush();
    this.closeStream(stream, code);
  }

  private closeStream(stream: H2ServerStream, code: number | undefined): void {
    if (!this.streams.delete(stream.id)) return;
    this.blocked.delete(stream.id);
    // Window the stream's unread bytes held goes back to the connection with the next update.
    stream.closedWith(code);
    if (this.goingAway && this.streams.size === 0) this.finishClose();
  }

  /** A stream error: RST_STREAM with `code`, counted; the connection goes on (§5.4.2). */
  private streamError(stream: H2ServerStream, code: ErrorCode, reason: string): void {
    this.handler.onError('stream', reason);
    this.countInvalid();
    this.queue(rstStreamFrame(stream.id, code));
    this.closeStream(stream, code);
  }

  private streamErrorById(id: number, code: ErrorCode, reason: string): void {
    const stream = this.streams.get(id);
    if (stream) return this.streamError(stream, code, reason);
    this.handler.onError('stream', reason);
    this.countInvalid();
    this.queue(rstStreamFrame(id, code));
  }

  private countInvalid(): void {
    if (++this.invalidFrames > LIMITS.maxInvalidFrames) this.connectionError(ErrorCode.ENHANCE_YOUR_CALM, 'too many invalid frames');
  }

  /** A connection error (§5.4.1): GOAWAY with its code, then the socket closes once it is written. */
  connectionError(code: ErrorCode, detail: string): void {
    if (this.closed) return;
    this.handler.onError('session', codeName(code).toLowerCase());
    this.queue(goawayFrame(this.lastStreamId, code, detail));
    this.terminate();
  }

  /** Ends the connection now: the queued frames go out, then FIN; streams in flight close. */
  private terminate(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.closingTimer);
    for (const stream of this.streams.values()) this.closeStream(stream, ErrorCode.CANCEL);
    this.flush();
    this.socket.end();
    this.socket.destroySoon();
  }

  /**
   * GOAWAY (NO_ERROR): streams in flight finish, then the socket closes (the proxy drains, the
   * idle timeout, the client's GOAWAY). `graceMs` bounds how long they may take.
   */
  goaway(graceMs = 0): void {
    if (this.closed) return;
    if (!this.goingAway) {
      this.goingAway = true;
      this.queue(goawayFrame(this.lastStreamId, ErrorCode.NO_ERROR));
      this.scheduleFlush();
      if (this.streams.size === 0) return this.finishClose();
    }
    if (graceMs > 0 && this.closingTimer === undefined) {
      this.closingTimer = setTimeout(() => this.terminate(), graceMs);
      this.closingTimer.unref();
    }
  }

  private finishClose(): void {
    // After the current tick's frames (the last stream's end) are written.
    process.nextTick(() => this.terminate());
  }

  /**
   * The client's FIN. HTTP/2 has no half-closed connection: a client that sent FIN can no longer
   * send WINDOW_UPDATE, so streams in flight get CLOSING_GRACE_MS to finish, then the socket closes.
   */
  private onClientEnd(): void {
    this.goaway(CLOSING_GRACE_MS);
  }

  private onSocketClose(): void {
    this.closed = true;
    clearTimeout(this.closingTimer);
    for (const stream of this.streams.values()) this.closeStream(stream, ErrorCode.CANCEL);
  }

  /** The sweep: idle streams time out; a connection with no stream idle past `idleTimeoutMs` goes away. */
  sweepIdle(now: number): void {
    if (this.closed) return;
    if (this.streams.size === 0) {
      if (idleFor(now, this.lastActivity, this.idleTimeoutMs)) this.goaway();
      return;
    }
    for (const stream of this.streams.values()) {
      if (stream.idleTimeoutMs > 0 && idleFor(now, stream.lastActivity, stream.idleTimeoutMs)) stream.onIdle?.();
    }
  }
}

/** What the connection keeps on a stream between its HEADERS and its routing. */
type StreamWithHead = H2ServerStream & { head?: RequestHead };
/** A close(code) asked for while the response was still going out. */
type StreamWithReset = H2ServerStream & { resetAfterEnd?: number };

/** The client's settings that change nothing else (§6.5.2): ENABLE_PUSH must still be 0 or 1. */
function settingsOfClient(id: number, value: number): string | undefined {
  return id === Setting.ENABLE_PUSH && value > 1 ? 'ENABLE_PUSH not 0 or 1' : undefined;
}
