// What weft's HTTP/2 connections share on either side of the proxy
// (server-connection.ts downstream, client-connection.ts upstream): the frame
// reading loop with the checks the frame header alone allows, padding, the
// connection windows, DATA pumped out as the windows and the socket allow
// (then the trailers or END_STREAM), the peer's SETTINGS that shape what we
// send, and the output batched into one write per turn of the event loop.
import type * as net from 'node:net';
import type { OutgoingHttpHeaders } from 'node:http2';
import {
  DEFAULT_MAX_FRAME_SIZE,
  DEFAULT_WINDOW,
  ErrorCode,
  Flag,
  FRAME_HEADER_BYTES,
  FrameType,
  MAX_MAX_FRAME_SIZE,
  MAX_WINDOW,
  pingFrame,
  Setting,
  windowUpdateFrame,
} from './frames';
import { HpackDecoder, HpackError } from './hpack-decoder';
import { HpackEncoder } from './hpack-encoder';
import type { H2StreamBase } from './stream-base';
import { StreamTable } from './stream-table';
import { FrameOutput } from './frame-output';

/** Bytes the socket may hold before DATA waits for it to drain. */
const SOCKET_HIGH_WATER = 256 * 1024;

/** The header list size either side advertises and decodes (HAProxy and nginx take 64 kB too). */
export const MAX_HEADER_LIST_SIZE = 65_536;
/** CONTINUATION frames after one HEADERS (nghttp2 takes 8; CVE-2024-27316 is the flood of them). */
const MAX_CONTINUATIONS = 8;
/** Bytes of our replies (ACKs, RSTs) queued unread before the connection ends (a peer that sends PINGs and never reads). */
const MAX_UNREAD_REPLY_BYTES = 1 << 20;

/** A header block being received (HEADERS, then CONTINUATION until END_HEADERS). */
export interface HeaderBlock {
  streamId: number;
  parts: Buffer[];
  bytes: number;
  endStream: boolean;
  continuations: number;
  /** Set when the stream is refused whatever the block holds: it is decoded (HPACK state), then dropped. */
  drop?: string;
}

/** A stream as the connection pumps it: the base halves and its id. */
export type PumpedStream = H2StreamBase & { readonly id: number };

export abstract class H2ConnectionBase<S extends PumpedStream> {
  protected readonly encoder = new HpackEncoder();
  protected readonly decoder = new HpackDecoder({ maxHeaderListSize: MAX_HEADER_LIST_SIZE });
  /** The header block being received. */
  protected block: HeaderBlock | undefined;
  /** Bytes of a frame not yet complete. */
  protected pending: Buffer | undefined;
  /** The peer's first frame (its SETTINGS, §3.4) came. */
  protected settingsSeen = false;

  // ---- flow control ----
  protected connRecvWindow = DEFAULT_WINDOW;
  /** Received DATA bytes whose connection window is not yet given back. */
  protected connUnacknowledged = 0;
  protected connSendWindow = DEFAULT_WINDOW;
  protected peerInitialWindow = DEFAULT_WINDOW;
  protected peerMaxFrameSize = DEFAULT_MAX_FRAME_SIZE;
  /** Streams with DATA waiting for window or the socket, by id (a StreamTable, not a Set: see stream-table.ts). */
  protected readonly blocked = new StreamTable<S>();

  // ---- output ----
  /** This turn's frames, written once per turn (flush). */
  protected readonly out = new FrameOutput();
  /** Bytes of this turn's frames other than DATA (what reply() weighs: DATA is bounded by the windows). */
  private controlBytes = 0;
  private flushScheduled = false;

  /** The connection is over: nothing more is read or sent. */
  closed = false;

  constructor(readonly socket: net.Socket) {}

  // ---------------------------------------------------------------- reading

  /** Why a frame cannot come here whatever its payload (a connection error, §5.1), or undefined. */
  private misplaced(type: number, streamId: number): string | undefined {
    // Inside a header block only its CONTINUATION may come (§6.10).
    if (this.block !== undefined) return type !== FrameType.CONTINUATION || streamId !== this.block.streamId ? 'header block interrupted' : undefined;
    switch (type) {
      case FrameType.CONTINUATION:
        return 'CONTINUATION without HEADERS';
      case FrameType.PUSH_PROMISE:
        return 'PUSH_PROMISE (weft takes no push: a client cannot push, and weft the client turns it off)';
      case FrameType.DATA:
        return streamId === 0 ? 'DATA on stream 0' : this.idle(streamId) ? 'DATA on an idle stream' : undefined;
      case FrameType.HEADERS:
        return this.headersMisplaced(streamId);
      case FrameType.RST_STREAM:
        return streamId === 0 ? 'RST_STREAM on stream 0' : this.idle(streamId) ? 'RST_STREAM on an idle stream' : undefined;
      case FrameType.PRIORITY:
        return streamId === 0 ? 'PRIORITY on stream 0' : undefined;
      case FrameType.WINDOW_UPDATE:
        return streamId !== 0 && this.idle(streamId) ? 'WINDOW_UPDATE on an idle stream' : undefined;
      case FrameType.SETTINGS:
      case FrameType.PING:
      case FrameType.GOAWAY:
        return streamId !== 0 ? 'a connection frame on a stream' : undefined;
      default:
        return undefined;
    }
  }

  /** Whether a (non-zero) stream id names a stream the peer cannot be talking about yet: an idle one (§5.1). */
  protected abstract idle(streamId: number): boolean;
  /** Why HEADERS cannot come on this stream whatever it holds, or undefined. */
  protected abstract headersMisplaced(streamId: number): string | undefined;
  protected abstract onDataFrame(flags: number, streamId: number, payload: Buffer): void;
  protected abstract onHeadersFrame(flags: number, streamId: number, payload: Buffer): void;
  /** A whole header block (in `block`): takeBlock() decodes it. */
  protected abstract onHeaderBlock(): void;
  protected abstract onPriority(streamId: number, payload: Buffer): void;
  protected abstract onRstStream(streamId: number, payload: Buffer): void;
  protected abstract onSettings(flags: number, streamId: number, payload: Buffer): void;
  protected abstract onGoaway(streamId: number, payload: Buffer): void;
  protected abstract onWindowUpdate(streamId: number, payload: Buffer): void;
  abstract connectionError(code: ErrorCode, detail: string): void;

  /** Parses the frames of `buf` from `at`; an incomplete frame waits in `pending` for the next read. */
  protected readFrames(buf: Buffer, at: number): void {
    while (!this.closed) {
      if (buf.length - at < FRAME_HEADER_BYTES) break;
      const length = (buf[at] << 16) | (buf[at + 1] << 8) | buf[at + 2];
      const type = buf[at + 3];
      const flags = buf[at + 4];
      const streamId = buf.readUInt32BE(at + 5) & MAX_WINDOW;
      // Our SETTINGS_MAX_FRAME_SIZE is the default: anything longer is a connection error (§4.2).
      if (length > DEFAULT_MAX_FRAME_SIZE) return this.connectionError(ErrorCode.FRAME_SIZE_ERROR, 'frame too large');
      // What the header alone shows wrong is refused from it, not after waiting for the payload.
      const sizeError = wrongSize(type, flags, length);
      if (sizeError !== undefined) return this.connectionError(ErrorCode.FRAME_SIZE_ERROR, sizeError);
      const misplaced = this.misplaced(type, streamId);
      if (misplaced !== undefined) return this.connectionError(ErrorCode.PROTOCOL_ERROR, misplaced);
      if (buf.length - at - FRAME_HEADER_BYTES < length) break;
      const payload = buf.subarray(at + FRAME_HEADER_BYTES, at + FRAME_HEADER_BYTES + length);
      at += FRAME_HEADER_BYTES + length;
      if (!this.settingsSeen && type !== FrameType.SETTINGS) return this.connectionError(ErrorCode.PROTOCOL_ERROR, 'first frame is not SETTINGS');
      this.onFrame(type, flags, streamId, payload);
    }
    if (!this.closed && at < buf.length) this.pending = buf.subarray(at);
  }

  private onFrame(type: number, flags: number, streamId: number, payload: Buffer): void {
    switch (type) {
      case FrameType.DATA:
        return this.onDataFrame(flags, streamId, payload);
      case FrameType.HEADERS:
        return this.onHeadersFrame(flags, streamId, payload);
      case FrameType.CONTINUATION:
        return this.onContinuation(flags, payload);
      case FrameType.PRIORITY:
        return this.onPriority(streamId, payload);
      case FrameType.RST_STREAM:
        return this.onRstStream(streamId, payload);
      case FrameType.SETTINGS:
        return this.onSettings(flags, streamId, payload);
      case FrameType.PING:
        if (!(flags & Flag.ACK)) this.reply(pingFrame(payload, true));
        return;
      case FrameType.GOAWAY:
        return this.onGoaway(streamId, payload);
      case FrameType.WINDOW_UPDATE:
        return this.onWindowUpdate(streamId, payload);
      default:
        return; // unknown frame types are ignored (§4.1, §5.5); PUSH_PROMISE never gets here (misplaced())
    }
  }

  /** A CONTINUATION of the block being received (one without a block was refused by misplaced()). */
  private onContinuation(flags: number, payload: Buffer): void {
    const block = this.block!;
    // A block past the header list limit, or in more frames than a real one needs, is a flood (CVE-2024-27316).
    if (++block.continuations > MAX_CONTINUATIONS || block.bytes + payload.length > MAX_HEADER_LIST_SIZE * 2) {
      return this.connectionError(ErrorCode.ENHANCE_YOUR_CALM, 'CONTINUATION flood');
    }
    block.parts.push(payload);
    block.bytes += payload.length;
    if (flags & Flag.END_HEADERS) this.onHeaderBlock();
  }

  /**
   * The whole header block, decoded: its fields (name, value, …) and header list size (-1: over
   * the limit). Undefined after the connection error a broken block is (COMPRESSION_ERROR).
   */
  protected takeBlock(): { block: HeaderBlock; fields: string[]; size: number } | undefined {
    const block = this.block!;
    this.block = undefined;
    const data = block.parts.length === 1 ? block.parts[0] : Buffer.concat(block.parts, block.bytes);
    const fields: string[] = [];
    try {
      return { block, fields, size: this.decoder.decode(data, fields) };
    } catch (err) {
      if (!(err instanceof HpackError)) throw err;
      this.connectionError(ErrorCode.COMPRESSION_ERROR, err.message);
      return undefined;
    }
  }

  /** A reply the peer must read (ACKs, RSTs): a peer that makes us queue them unread is cut off. */
  protected reply(frame: Buffer): void {
    if (this.socket.writableLength + this.controlBytes > MAX_UNREAD_REPLY_BYTES) return this.connectionError(ErrorCode.ENHANCE_YOUR_CALM, 'replies not read');
    this.queue(frame);
  }

  /** Strips the padding of a PADDED frame; undefined (after the connection error) when it is invalid. */
  protected unpad(flags: number, payload: Buffer): Buffer | undefined {
    if (!(flags & Flag.PADDED)) return payload;
    if (payload.length < 1 || payload[0] >= payload.length) {
      this.connectionError(ErrorCode.PROTOCOL_ERROR, 'padding exceeds the payload');
      return undefined;
    }
    return payload.subarray(1, payload.length - payload[0]);
  }

  /**
   * The settings of the peer's SETTINGS frame that shape what we send (§6.5.2): table size,
   * initial window, frame size; the others go to `other`. Returns false after a connection error.
   */
  protected applySettings(payload: Buffer, streams: Iterable<S>, other: (id: number, value: number) => string | undefined): boolean {
    this.settingsSeen = true;
    for (let i = 0; i < payload.length; i += 6) {
      const id = payload.readUInt16BE(i);
      const value = payload.readUInt32BE(i + 2);
      switch (id) {
        case Setting.HEADER_TABLE_SIZE:
          this.encoder.setPeerMaxTableSize(value);
          break;
        case Setting.INITIAL_WINDOW_SIZE: {
          if (value > MAX_WINDOW) return this.failed(ErrorCode.FLOW_CONTROL_ERROR, 'INITIAL_WINDOW_SIZE too large');
          // The change applies to every open stream's window (§6.9.2).
          const delta = value - this.peerInitialWindow;
          this.peerInitialWindow = value;
          for (const stream of streams) {
            stream.sendWindow += delta;
            if (stream.sendWindow > MAX_WINDOW) return this.failed(ErrorCode.FLOW_CONTROL_ERROR, 'INITIAL_WINDOW_SIZE overflows a stream window');
          }
          if (delta > 0 && this.blocked.size > 0) for (const stream of this.blocked.values()) this.pump(stream);
          break;
        }
        case Setting.MAX_FRAME_SIZE:
          if (value < DEFAULT_MAX_FRAME_SIZE || value > MAX_MAX_FRAME_SIZE) return this.failed(ErrorCode.PROTOCOL_ERROR, 'MAX_FRAME_SIZE out of range');
          this.peerMaxFrameSize = value;
          break;
        default: {
          const error = other(id, value);
          if (error !== undefined) return this.failed(ErrorCode.PROTOCOL_ERROR, error);
        }
      }
    }
    return true;
  }

  private failed(code: ErrorCode, detail: string): false {
    this.connectionError(code, detail);
    return false;
  }

  /** WINDOW_UPDATE on stream 0: every blocked stream may go on. */
  protected connectionWindowUpdate(increment: number): void {
    if (increment === 0) return this.connectionError(ErrorCode.PROTOCOL_ERROR, 'WINDOW_UPDATE of 0');
    this.connSendWindow += increment;
    if (this.connSendWindow > MAX_WINDOW) return this.connectionError(ErrorCode.FLOW_CONTROL_ERROR, 'connection window overflow');
    if (this.blocked.size > 0) for (const stream of this.blocked.values()) this.pump(stream);
  }

  // ---------------------------------------------------------------- flow control of what we receive

  /** The reader took what a stream held: its window goes back to the peer. */
  consumed(stream: S): void {
    if (stream.remoteEnded || stream.destroyed || stream.unacknowledged < this.streamWindowRefill) return;
    const n = stream.unacknowledged;
    stream.unacknowledged = 0;
    stream.recvWindow += n;
    this.queue(windowUpdateFrame(stream.id, n));
    this.scheduleFlush();
  }

  /** Unread bytes of a stream's window given back at once (half the window we grant). */
  protected get streamWindowRefill(): number {
    return DEFAULT_WINDOW / 2;
  }

  /** The connection window is given back as DATA arrives: each stream's own window bounds what is held. */
  protected acknowledgeConnection(): void {
    if (this.connUnacknowledged < DEFAULT_WINDOW / 2 || this.closed) return;
    const n = this.connUnacknowledged;
    this.connUnacknowledged = 0;
    this.connRecvWindow += n;
    this.queue(windowUpdateFrame(0, n));
  }

  // ---------------------------------------------------------------- writing

  /** Sending side of `stream` is over (its END_STREAM queued). */
  protected abstract localEnd(stream: S): void;

  /** Sends what a stream has queued, as far as the windows and the socket allow, then its end. */
  pump(stream: S): void {
    if (this.closed || stream.closed || !this.canSend(stream)) return;
    while (stream.outQueue.length > 0) {
      const room = Math.min(stream.sendWindow, this.connSendWindow, this.peerMaxFrameSize);
      if (room <= 0 || this.socket.writableLength > SOCKET_HIGH_WATER) {
        this.blocked.set(stream.id, stream);
        this.scheduleFlush();
        return;
      }
      const chunk = stream.outQueue[0];
      const n = Math.min(room, chunk.length);
      const last = n === chunk.length && stream.outQueue.length === 1;
      const part = n === chunk.length ? chunk : chunk.subarray(0, n);
      if (n === chunk.length) stream.outQueue.shift();
      else stream.outQueue[0] = chunk.subarray(n);
      stream.outBytes -= n;
      stream.sendWindow -= n;
      this.connSendWindow -= n;
      // The last DATA carries END_STREAM when the message ends without trailers.
      const end = last && stream.endQueued && stream.endsWithData;
      this.out.frameHeader(n, FrameType.DATA, end ? Flag.END_STREAM : 0, stream.id);
      this.out.bytes(part);
      if (stream.sent !== undefined) stream.keepSent(part);
      if (end) return this.localEnd(stream);
    }
    this.blocked.delete(stream.id);
    this.scheduleFlush();
    // A 'drain' listener may write (and end) at once: the pump it ran sent what it could, and the end
    // goes after what it left queued, never before.
    stream.drained();
    if (!stream.endQueued || stream.localEnded || stream.closed || stream.outQueue.length > 0) return;
    // sendTrailers() from the 'wantTrailers' listener comes back here and ends the stream itself.
    if (stream.trailersQueued === undefined && stream.askTrailers() && (stream.trailersQueued === undefined || stream.localEnded)) return;
    if (stream.trailersQueued !== undefined && hasFields(stream.trailersQueued)) {
      this.queueHeaders(stream.id, stream.trailersQueued, true);
    } else {
      this.out.frameHeader(0, FrameType.DATA, Flag.END_STREAM, stream.id);
    }
    this.localEnd(stream);
  }

  /** Whether a stream's DATA may go out yet (an upstream stream waits for its HEADERS). */
  protected canSend(_stream: S): boolean {
    return true;
  }

  protected queue(frame: Buffer): void {
    this.out.bytes(frame);
    this.controlBytes += frame.length;
  }

  /** A head or trailers: encoded, then framed (HEADERS and any CONTINUATION) straight into the output. */
  protected queueHeaders(streamId: number, headers: OutgoingHttpHeaders, endStream: boolean): void {
    encodeFields(this.encoder, headers);
    this.out.headerBlock(streamId, this.encoder.scratch, this.encoder.blockLength, endStream, this.peerMaxFrameSize);
    this.controlBytes += this.encoder.blockLength;
  }

  /**
   * Frames go out once per turn of the event loop (setImmediate, after every read of this turn):
   * the messages one read finishes, and the ACKs of a read, leave in one write. A flush per frame
   * (or per nextTick, which runs after each callback) cost a write syscall per response: 40% of
   * the CPU in the h2c profile.
   */
  protected scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(flushConnection, this);
  }

  /** Writes what is queued: the frames of this turn in one write (one writev when big payloads went by reference). */
  flush(): void {
    this.flushScheduled = false;
    if (this.out.length === 0 || this.socket.destroyed || !this.writable()) return;
    const pieces = this.out.take();
    this.controlBytes = 0;
    if (pieces.length === 1) {
      this.socket.write(pieces[0]);
      return;
    }
    this.socket.cork();
    for (const piece of pieces) this.socket.write(piece);
    this.socket.uncork();
  }

  /** Whether the socket takes frames yet (an upstream one still connecting does not). */
  protected writable(): boolean {
    return true;
  }

  protected onSocketDrain(): void {
    if (this.blocked.size > 0) for (const stream of this.blocked.values()) this.pump(stream);
    this.flush();
  }
}

function flushConnection(c: H2ConnectionBase<PumpedStream>): void {
  c.flush();
}

/** Whether a headers object has a field (Object.keys would build an array to say). */
function hasFields(headers: OutgoingHttpHeaders): boolean {
  for (const _ in headers) return true;
  return false;
}

/** Why a frame's length cannot be right for its type (a connection error, §4.2), or undefined. */
function wrongSize(type: number, flags: number, length: number): string | undefined {
  switch (type) {
    case FrameType.SETTINGS:
      return (flags & Flag.ACK ? length !== 0 : length % 6 !== 0) ? 'SETTINGS size' : undefined;
    case FrameType.PING:
      return length !== 8 ? 'PING size' : undefined;
    case FrameType.WINDOW_UPDATE:
      return length !== 4 ? 'WINDOW_UPDATE size' : undefined;
    case FrameType.RST_STREAM:
      return length !== 4 ? 'RST_STREAM size' : undefined;
    case FrameType.GOAWAY:
      return length < 8 ? 'GOAWAY size' : undefined;
    default:
      return undefined;
  }
}

/**
 * Encodes a head or trailers (a node:http2-style headers object) into a block: pseudo-headers first
 * (§8.3), names lowercased, array values as repeated fields, connection-specific fields left out
 * (§8.2.2). Field by field, with no list of them built per head.
 */
function encodeFields(encoder: HpackEncoder, headers: OutgoingHttpHeaders): void {
  encoder.begin();
  let regular = false;
  for (const key in headers) {
    if (key.charCodeAt(0) !== 0x3a) {
      regular = true;
      continue;
    }
    const value = headers[key];
    if (value !== undefined) encoder.field(key, String(value));
  }
  if (!regular) return;
  for (const key in headers) {
    if (key.charCodeAt(0) === 0x3a) continue;
    const value = headers[key];
    if (value === undefined) continue;
    const name = key.toLowerCase();
    if (name === 'connection' || name === 'keep-alive' || name === 'proxy-connection' || name === 'transfer-encoding' || name === 'upgrade') continue;
    if (Array.isArray(value)) for (const v of value) encoder.field(name, String(v));
    else encoder.field(name, String(value));
  }
}
