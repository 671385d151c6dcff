// weft's own HTTP/2 client side of one upstream connection (RFC 9113), on the
// raw socket (h2c with prior knowledge, or TLS with ALPN h2): our requests as
// streams with odd ids, HPACK both ways, flow control both ways, the server's
// SETTINGS_MAX_CONCURRENT_STREAMS respected by queueing the streams beyond it,
// PING, GOAWAY and RST_STREAM, and the checks the server side makes (frames,
// response heads, content-length) so that a server that sends garbage ends
// its own connection or stream, never the process. It replaces node:http2's
// client, whose per-request AsyncResource, Duplex and header conversions were
// most of the upstream half of the proxy's CPU per h2 request.
//
// Errors: a malformed response resets its stream (RST_STREAM PROTOCOL_ERROR)
// and fails it with an 'error'; a connection error sends GOAWAY with its code
// and fails every stream. A request the server left unprocessed goes again
// rather than failing: streams still queued at a GOAWAY move to the
// connection the pool makes next (as a request waits in Envoy's pool, not on
// a connection), and streams it sent that a GOAWAY left out, or that the
// server refused (REFUSED_STREAM), are queued again with their kept body
// (client-stream.ts mayGoAgain). nginx says GOAWAY every 1000 requests, and
// hundreds of queued streams refused at once turned into 503s. A stream that
// cannot go again fails with rstCode REFUSED_STREAM.
import type * as net from 'node:net';
import type * as tls from 'node:tls';
import type { OutgoingHttpHeaders } from 'node:http2';
import { H2ConnectionBase, MAX_HEADER_LIST_SIZE } from './connection-base';
import { H2ClientStream, streamError } from './client-stream';
import { StreamTable } from './stream-table';
import { codeName, DEFAULT_WINDOW, ErrorCode, Flag, goawayFrame, MAX_WINDOW, PREFACE, rstStreamFrame, Setting, SETTINGS_ACK, settingsFrame } from './frames';
import { MalformedFields, trailerFields } from './request-fields';
import { responseHead, type ResponseHead } from './response-fields';

export interface H2ClientOptions {
  /** Streams at once until the server's SETTINGS says otherwise (node's peerMaxConcurrentStreams). */
  peerMaxConcurrentStreams: number;
  /** The socket is TLS: streams wait for its handshake, and ALPN must have chosen h2. */
  secure: boolean;
  /** The connection takes no new streams any more (GOAWAY either way, an error, the socket closed): once. */
  onGone?: () => void;
  /** Where the streams a GOAWAY leaves unprocessed go (the pool's next connection); without it, or when it gives none, they are refused. */
  successor?: () => H2ClientConnection | undefined;
}

export class H2ClientConnection extends H2ConnectionBase<H2ClientStream> {
  private readonly streams = new StreamTable<H2ClientStream>();
  /** Streams waiting for the connection or for a concurrency slot, in order. */
  private waiting: H2ClientStream[] = [];
  private nextStreamId = 1;
  private maxConcurrent: number;
  private connected = false;
  /** close() was called: no new requests; the connection ends when its streams have. */
  private closing = false;
  /** The server's GOAWAY came: nothing new starts here. */
  private peerGoaway = false;
  private goneNotified = false;
  /** Why the socket failed, if it did: the cause the streams' errors carry. */
  private failure: Error | undefined;
  private lastActivity = performance.now();
  private idleTimer: NodeJS.Timeout | undefined;
  /** Responses that began here: a connection that answered none (and whose GOAWAY took none) made no progress. */
  private responses = 0;
  /** Frames of a read are being handled: streams that end free their slots for after it. */
  private reading = false;

  constructor(
    socket: net.Socket | tls.TLSSocket,
    private readonly options: H2ClientOptions,
  ) {
    super(socket);
    this.maxConcurrent = options.peerMaxConcurrentStreams;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.onSocketDrain());
    socket.on('error', (err: Error) => (this.failure ??= err));
    socket.on('close', () => this.onSocketClose());
    if (options.secure) socket.once('secureConnect', () => this.onConnect());
    else if (socket.connecting) socket.once('connect', () => this.onConnect());
    else this.connected = true;
    // The preface, then our SETTINGS (§3.4); requests may follow before the server's.
    this.queue(PREFACE);
    this.queue(
      settingsFrame([
        [Setting.ENABLE_PUSH, 0],
        [Setting.MAX_HEADER_LIST_SIZE, MAX_HEADER_LIST_SIZE],
      ]),
    );
    this.scheduleFlush();
  }

  /** Whether request() may be called: not closing, no GOAWAY, not failed. */
  get acceptsStreams(): boolean {
    return !this.closed && !this.closing && !this.peerGoaway;
  }

  /** Streams open or waiting. */
  get openStreams(): number {
    return this.streams.size + this.waiting.length;
  }

  /** A request: its stream starts at once, or when the connection and a concurrency slot allow. */
  request(headers: OutgoingHttpHeaders, options?: { endStream?: boolean; waitForTrailers?: boolean }): H2ClientStream {
    if (!this.acceptsStreams) {
      const err = new Error('the upstream HTTP/2 session is closed: no new streams') as NodeJS.ErrnoException;
      err.code = 'ERR_HTTP2_INVALID_SESSION';
      throw err;
    }
    this.lastActivity = performance.now();
    const stream = new H2ClientStream(this, headers, options?.endStream === true, options?.waitForTrailers === true, DEFAULT_WINDOW, this.peerInitialWindow);
    // Nothing queued before it and a slot free: it starts now, without a turn through the queue.
    if (this.waiting.length === 0 && this.slotFree && this.nextStreamId <= MAX_WINDOW) this.start(stream);
    else {
      this.waiting.push(stream);
      this.startWaiting();
    }
    return stream;
  }

  /** Whether one more stream may start now (below the server's concurrency limit, no GOAWAY, not failed). */
  private get slotFree(): boolean {
    return this.streams.size < this.maxConcurrent && !this.peerGoaway && !this.closed;
  }

  private startWaiting(): void {
    while (this.waiting.length > 0 && this.slotFree) {
      const stream = this.waiting.shift()!;
      if (stream.destroyed) continue;
      if (this.nextStreamId > MAX_WINDOW) {
        // Stream ids are spent (§5.1.1): this connection is done; the pool makes another.
        this.waiting.unshift(stream);
        return this.goneAway(this.nextStreamId - 2, ErrorCode.NO_ERROR); // the streams started go on
      }
      this.start(stream);
    }
  }

  private start(stream: H2ClientStream): void {
    const id = this.nextStreamId;
    this.nextStreamId += 2;
    stream.id = id;
    stream.sendWindow = this.peerInitialWindow;
    this.streams.set(id, stream);
    this.queueHeaders(id, stream.head, stream.endWithHeaders);
    this.scheduleFlush();
    if (stream.endWithHeaders) stream.localEnded = true;
    else if (stream.outQueue.length > 0 || stream.endQueued) this.pump(stream);
  }

  protected override canSend(stream: H2ClientStream): boolean {
    return stream.id !== 0;
  }

  protected override writable(): boolean {
    return this.connected;
  }

  private onConnect(): void {
    if (this.options.secure && (this.socket as tls.TLSSocket).alpnProtocol !== 'h2') {
      this.failure = new Error(`TLS connect failure: the upstream did not choose h2 (ALPN: ${(this.socket as tls.TLSSocket).alpnProtocol || 'none'})`);
      this.socket.destroy();
      return;
    }
    this.connected = true;
    this.flush();
  }

  // ---------------------------------------------------------------- reading

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    this.lastActivity = performance.now();
    let buf = chunk;
    if (this.pending !== undefined) {
      buf = Buffer.concat([this.pending, chunk]);
      this.pending = undefined;
    }
    this.reading = true;
    try {
      this.readFrames(buf, 0);
    } catch (err) {
      // A bug of ours (or of an exchange this read drove), never the server's: this connection ends, the process does not.
      this.connectionError(ErrorCode.INTERNAL_ERROR, (err as Error).message);
    }
    this.reading = false;
    this.startWaiting();
    this.acknowledgeConnection();
    this.scheduleFlush();
  }

  /** A stream id the server cannot be talking about: one we never opened (push is off, so no even ones). */
  protected idle(streamId: number): boolean {
    return streamId % 2 === 0 || streamId >= this.nextStreamId;
  }

  protected headersMisplaced(streamId: number): string | undefined {
    return streamId === 0 ? 'HEADERS on stream 0' : this.idle(streamId) ? 'HEADERS on an idle stream' : undefined;
  }

  protected onDataFrame(flags: number, streamId: number, payload: Buffer): void {
    // The whole frame, padding included, counts against both windows (§6.9.1).
    this.connRecvWindow -= payload.length;
    if (this.connRecvWindow < 0) return this.connectionError(ErrorCode.FLOW_CONTROL_ERROR, 'DATA beyond the connection window');
    this.connUnacknowledged += payload.length;
    const stream = this.streams.get(streamId);
    // A stream already closed (reset by us) may still get frames that were in flight: ignored.
    if (stream === undefined) return;
    if (stream.remoteEnded) return this.streamError(stream, ErrorCode.STREAM_CLOSED, 'DATA after END_STREAM');
    const data = this.unpad(flags, payload);
    if (data === undefined) return;
    if (!stream.responded) return this.streamError(stream, ErrorCode.PROTOCOL_ERROR, 'DATA before the response head');
    stream.recvWindow -= payload.length;
    if (stream.recvWindow < 0) return this.streamError(stream, ErrorCode.FLOW_CONTROL_ERROR, 'DATA beyond the stream window');
    // Padding goes back with the next WINDOW_UPDATE of the stream; the data once the exchange has read it.
    stream.unacknowledged += payload.length - data.length;
    if (stream.remainingLength >= 0) {
      stream.remainingLength -= data.length;
      if (stream.remainingLength < 0) return this.streamError(stream, ErrorCode.PROTOCOL_ERROR, 'DATA beyond content-length');
    }
    const endStream = (flags & Flag.END_STREAM) !== 0;
    if (endStream && stream.remainingLength > 0) return this.streamError(stream, ErrorCode.PROTOCOL_ERROR, 'DATA short of content-length');
    if (data.length > 0) stream.received(data);
    if (endStream) {
      if (!stream.destroyed) stream.receivedEnd();
      this.maybeClosed(stream);
    } else if (!stream.holding) this.consumed(stream);
  }

  protected onHeadersFrame(flags: number, streamId: number, payload: Buffer): void {
    let fragment = this.unpad(flags, payload);
    if (fragment === undefined) return;
    if (flags & Flag.PRIORITY) {
      if (fragment.length < 5) return this.connectionError(ErrorCode.FRAME_SIZE_ERROR, 'HEADERS priority truncated');
      fragment = fragment.subarray(5);
    }
    this.block = { streamId, parts: [fragment], bytes: fragment.length, endStream: (flags & Flag.END_STREAM) !== 0, continuations: 0 };
    if (flags & Flag.END_HEADERS) this.onHeaderBlock();
  }

  /** A whole header block: a response head (1xx ones skipped), or the trailers after one. */
  protected onHeaderBlock(): void {
    const decoded = this.takeBlock();
    if (decoded === undefined) return;
    const { block, fields, size } = decoded;
    const stream = this.streams.get(block.streamId);
    // A stream we reset may still get a late block: its HPACK state is applied, the rest ignored.
    if (stream === undefined) return;
    if (stream.remoteEnded) return this.streamError(stream, ErrorCode.STREAM_CLOSED, 'HEADERS after END_STREAM');
    if (size < 0) return this.streamError(stream, ErrorCode.PROTOCOL_ERROR, 'response header list too large');
    if (stream.responded) return this.onTrailerBlock(stream, fields, block.endStream);
    let head: ResponseHead;
    try {
      head = responseHead(fields);
    } catch (err) {
      if (!(err instanceof MalformedFields)) throw err;
      return this.streamError(stream, ErrorCode.PROTOCOL_ERROR, `malformed response head: ${err.reason}`);
    }
    if (head.status < 200) {
      // 101 switches protocols, which HTTP/2 has no way to do (§8.6); other 1xx heads precede the response.
      if (head.status === 101) return this.streamError(stream, ErrorCode.PROTOCOL_ERROR, 'malformed response head: 101 in HTTP/2');
      if (block.endStream) return this.streamError(stream, ErrorCode.PROTOCOL_ERROR, 'malformed response head: an informational head ends the stream');
      return;
    }
    // A HEAD response, a 204 and a 304 state a length their (absent) body does not have.
    const lengthBinds = stream.method !== 'HEAD' && head.status !== 204 && head.status !== 304;
    if (block.endStream && lengthBinds && head.contentLength > 0) return this.streamError(stream, ErrorCode.PROTOCOL_ERROR, 'malformed response head: content-length without DATA');
    stream.remainingLength = lengthBinds ? head.contentLength : -1;
    stream.endAfterHeaders = block.endStream;
    this.responses++;
    stream.receivedResponse(head.headers, block.endStream ? Flag.END_STREAM | Flag.END_HEADERS : Flag.END_HEADERS);
    if (block.endStream) {
      if (!stream.destroyed) stream.receivedEnd();
      this.maybeClosed(stream);
    }
  }

  private onTrailerBlock(stream: H2ClientStream, fields: string[], endStream: boolean): void {
    if (!endStream) return this.streamError(stream, ErrorCode.PROTOCOL_ERROR, 'malformed trailers: no END_STREAM');
    let trailers;
    try {
      trailers = trailerFields(fields);
    } catch (err) {
      if (!(err instanceof MalformedFields)) throw err;
      return this.streamError(stream, ErrorCode.PROTOCOL_ERROR, `malformed trailers: ${err.reason}`);
    }
    if (stream.remainingLength > 0) return this.streamError(stream, ErrorCode.PROTOCOL_ERROR, 'DATA short of content-length');
    stream.receivedTrailers(trailers);
    stream.receivedEnd();
    this.maybeClosed(stream);
  }

  protected onPriority(streamId: number, payload: Buffer): void {
    // Priorities are deprecated (RFC 9113 §5.3.2) and ignored; only a wrong size is an error (of the stream).
    if (payload.length === 5) return;
    const stream = this.streams.get(streamId);
    if (stream) this.streamError(stream, ErrorCode.FRAME_SIZE_ERROR, 'PRIORITY size');
  }

  protected onRstStream(streamId: number, payload: Buffer): void {
    const stream = this.streams.get(streamId);
    if (stream === undefined) return;
    const code = payload.readUInt32BE(0);
    this.release(stream);
    // Refused unprocessed (over the server's concurrency, before its SETTINGS came, say): it waits
    // here for a slot and goes again, within its bound of resends.
    if (code === ErrorCode.REFUSED_STREAM && stream.mayGoAgain && this.acceptsStreams) return this.adopt(stream, false);
    // NO_ERROR and CANCEL are no error (node:http2 gives none either): a response cut short reads as ended on a destroyed stream.
    stream.closedWith(code, code === ErrorCode.NO_ERROR || code === ErrorCode.CANCEL ? undefined : streamError(code), true);
  }

  protected onSettings(flags: number, _streamId: number, payload: Buffer): void {
    if (flags & Flag.ACK) return;
    const ok = this.applySettings(payload, this.streams.values(), (id, value) => {
      if (id === Setting.MAX_CONCURRENT_STREAMS) this.maxConcurrent = value;
      // §6.5.2: a server never enables push.
      else if (id === Setting.ENABLE_PUSH && value !== 0) return 'ENABLE_PUSH from a server';
      return undefined;
    });
    if (!ok) return;
    this.reply(SETTINGS_ACK);
    this.startWaiting();
  }

  protected onWindowUpdate(streamId: number, payload: Buffer): void {
    const increment = payload.readUInt32BE(0) & MAX_WINDOW;
    if (streamId === 0) return this.connectionWindowUpdate(increment);
    const stream = this.streams.get(streamId);
    if (stream === undefined) return;
    if (increment === 0) return this.streamError(stream, ErrorCode.PROTOCOL_ERROR, 'WINDOW_UPDATE of 0');
    stream.sendWindow += increment;
    if (stream.sendWindow > MAX_WINDOW) return this.streamError(stream, ErrorCode.FLOW_CONTROL_ERROR, 'stream window overflow');
    this.pump(stream);
  }

  protected onGoaway(_streamId: number, payload: Buffer): void {
    this.goneAway(payload.readUInt32BE(0) & MAX_WINDOW, payload.readUInt32BE(4));
  }

  /** The server's GOAWAY (or our ids ran out): streams above `lastStreamId`, and the queued ones, were never processed. */
  private goneAway(lastStreamId: number, code: number): void {
    this.peerGoaway = true;
    this.gone();
    // Streams the GOAWAY left out, then those still queued, go (again) on the next connection, in order.
    const again = this.streams.values().filter((stream) => stream.id > lastStreamId);
    for (const stream of again) this.release(stream);
    again.push(...this.waiting);
    this.waiting = [];
    let successor: H2ClientConnection | undefined;
    // Leaving a connection that processed nothing of ours spends one of a stream's few tries.
    const tries = lastStreamId === 0 && this.responses === 0;
    for (const stream of again) {
      if (stream.destroyed) continue;
      if (stream.mayGoAgain && (successor ??= this.options.successor?.()) !== undefined && successor !== this) successor.adopt(stream, tries);
      else stream.closedWith(ErrorCode.REFUSED_STREAM, streamError(ErrorCode.REFUSED_STREAM, `the upstream sent GOAWAY (${codeName(code)})`), true);
    }
    if (this.streams.size === 0) this.finishClose();
  }

  /** A stream that must go again (see goneAway) waits here; `tries`: it spends one of its tries. Refused if this connection takes no streams either. */
  adopt(stream: H2ClientStream, tries: boolean): void {
    if (!this.acceptsStreams) return stream.closedWith(ErrorCode.REFUSED_STREAM, streamError(ErrorCode.REFUSED_STREAM, 'no upstream connection takes new streams'), true);
    stream.moveTo(this, tries);
    this.waiting.push(stream);
    this.startWaiting();
  }

  // ---------------------------------------------------------------- streams ending

  protected localEnd(stream: H2ClientStream): void {
    stream.localEnded = true;
    this.blocked.delete(stream.id);
    this.scheduleFlush();
    this.maybeClosed(stream);
  }

  /** Both sides ended: the stream's slot is free; the stream closes once the reader has its end. */
  maybeClosed(stream: H2ClientStream): void {
    if (!stream.localEnded || !stream.remoteEnded) return;
    this.release(stream);
    if (stream.ended) stream.closedWith(undefined, undefined, false);
  }

  /** A stream leaves the connection: its slot goes to a waiting one. */
  private release(stream: H2ClientStream): void {
    if (stream.id === 0 || !this.streams.delete(stream.id)) return;
    this.blocked.delete(stream.id);
    // During a read, the slot goes to a queued stream after the read: a GOAWAY that came with the
    // response that freed it (nginx's, every 1000 requests) then moves the stream instead of refusing it.
    if (!this.reading) this.startWaiting();
    if ((this.closing || this.peerGoaway) && this.streams.size === 0 && this.waiting.length === 0) this.finishClose();
  }

  /** Our reset of a stream (close(code), destroy()): RST_STREAM if it was sent; 'close' only. */
  resetStream(stream: H2ClientStream, code: number): void {
    if (stream.closed) return;
    if (stream.id === 0) {
      const at = this.waiting.indexOf(stream);
      if (at >= 0) this.waiting.splice(at, 1);
    } else if (this.streams.has(stream.id) && !this.closed) {
      this.queue(rstStreamFrame(stream.id, code));
      this.scheduleFlush();
    }
    this.release(stream);
    stream.closedWith(code, undefined, false);
  }

  /** A stream error of the server's (§5.4.2): RST_STREAM with `code`, and the stream fails; the connection goes on. */
  private streamError(stream: H2ClientStream, code: ErrorCode, reason: string): void {
    this.queue(rstStreamFrame(stream.id, code));
    this.release(stream);
    stream.closedWith(code, streamError(code, `upstream ${reason}`), true);
  }

  /** A connection error (§5.4.1): GOAWAY with its code; every stream fails; the socket closes once it is written. */
  connectionError(code: ErrorCode, detail: string): void {
    if (this.closed) return;
    this.queue(goawayFrame(0, code, detail));
    const err = new Error(`upstream HTTP/2 connection error ${codeName(code)}: ${detail}`) as NodeJS.ErrnoException;
    err.code = 'ERR_HTTP2_SESSION_ERROR';
    this.terminate(err);
  }

  /** Ends the connection now: streams fail with `err` (none: it ended cleanly, nothing was open). */
  private terminate(err: Error | undefined): void {
    if (this.closed) return;
    this.closed = true;
    this.gone();
    clearTimeout(this.idleTimer);
    this.failStreams(err ?? cancelled(undefined));
    this.flush();
    this.socket.end();
    this.socket.destroySoon();
  }

  private failStreams(err: Error): void {
    const open = [...this.waiting, ...this.streams.values()];
    this.waiting = [];
    this.streams.clear();
    this.blocked.clear();
    for (const stream of open) stream.closedWith(ErrorCode.INTERNAL_ERROR, err, true);
  }

  private gone(): void {
    if (this.goneNotified) return;
    this.goneNotified = true;
    this.options.onGone?.();
  }

  /**
   * Graceful close (node's session.close()): no new requests; the streams open or queued finish,
   * then GOAWAY(NO_ERROR) and the socket closes.
   */
  close(): void {
    if (this.closed || this.closing) return;
    this.closing = true;
    this.gone();
    if (this.streams.size === 0 && this.waiting.length === 0) this.finishClose();
  }

  private finishClose(): void {
    if (this.closed) return;
    this.queue(goawayFrame(0, ErrorCode.NO_ERROR));
    // After the current tick's frames (the last stream's end) are queued.
    process.nextTick(() => this.terminate(undefined));
  }

  /** Closes the connection after `ms` with no frame either way and no stream open (node's session.setTimeout). */
  setTimeout(ms: number, onIdle: () => void): void {
    clearTimeout(this.idleTimer);
    const check = () => {
      if (this.closed) return;
      const busy = this.streams.size > 0 || this.waiting.length > 0;
      const idleMs = performance.now() - this.lastActivity;
      if (!busy && idleMs >= ms) return onIdle();
      this.idleTimer = setTimeout(check, busy ? ms : ms - idleMs);
      this.idleTimer.unref();
    };
    this.idleTimer = setTimeout(check, ms);
    this.idleTimer.unref();
  }

  private onSocketClose(): void {
    clearTimeout(this.idleTimer);
    if (this.closed) return;
    this.closed = true;
    this.gone();
    this.failStreams(cancelled(this.failure));
  }
}

/** node's error for the streams of a session that ended under them, with its cause ("connect ECONNREFUSED ..." while connecting). */
function cancelled(cause: Error | undefined): Error {
  const err = new Error(cause ? `The pending stream has been canceled (caused by: ${cause.message})` : 'The pending stream has been canceled') as NodeJS.ErrnoException;
  err.code = 'ERR_HTTP2_STREAM_CANCEL';
  if (cause) err.cause = cause;
  return err;
}
