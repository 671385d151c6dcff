// The frames a connection sends in one turn of the event loop, built in place:
// frame headers, header blocks and small payloads are written one after the
// other into a buffer the connection keeps, so a turn's frames leave in one
// write with no buffer allocated per frame (a 9-byte header, a header block,
// its HEADERS frame, then a copy of them all for the write, had been four
// allocations and three copies per head). What a turn hands to the socket is
// never written again: the next turn goes on after it, in the same buffer
// until that is full, then in a new one (twice the turn's size, the turn's
// bytes moved over, so that a turn stays one piece: one write, not a writev).
import { FRAME_HEADER_BYTES, FrameType, Flag, writeFrameHeader } from './frames';

/** The smallest output buffer; an idle connection keeps at most one, of at most KEEP_BYTES. */
const BUFFER_BYTES = 8 * 1024;
/** After a turn, a buffer with less room than this left is let go, to be allocated anew when needed. */
const KEEP_ROOM = 1024;
/** After a turn, a buffer larger than this (a burst made it) is let go. */
const KEEP_BYTES = 64 * 1024;
/** DATA payloads from this size go to the socket as they are (by writev), not copied. */
const COPY_LIMIT = 1024;

const EMPTY = Buffer.alloc(0);

export class FrameOutput {
  private buf: Buffer = EMPTY;
  /** Where this turn's bytes begin in `buf`: what is before was handed to the socket. */
  private start = 0;
  private pos = 0;
  /** Earlier pieces of this turn, in order: payloads sent by reference, and the bytes before each. */
  private pieces: Buffer[] = [];
  /** Bytes queued this turn. */
  length = 0;

  /** A frame header; its payload follows with bytes(). */
  frameHeader(payloadLength: number, type: number, flags: number, streamId: number): void {
    this.room(FRAME_HEADER_BYTES);
    writeFrameHeader(this.buf, this.pos, payloadLength, type, flags, streamId);
    this.pos += FRAME_HEADER_BYTES;
    this.length += FRAME_HEADER_BYTES;
  }

  /** Bytes as they are: a whole frame, or a payload after its header. */
  bytes(data: Buffer): void {
    const n = data.length;
    this.length += n;
    if (n >= COPY_LIMIT) {
      this.seal();
      this.pieces.push(data);
      return;
    }
    this.room(n);
    const buf = this.buf;
    const at = this.pos;
    if (n <= 64) for (let i = 0; i < n; i++) buf[at + i] = data[i]; // cheaper than copy()'s argument checks
    else data.copy(buf, at);
    this.pos = at + n;
  }

  /**
   * A header block (`block[0, blockLength)`) as HEADERS, then as many CONTINUATION frames as the
   * peer's frame size needs.
   */
  headerBlock(streamId: number, block: Buffer, blockLength: number, endStream: boolean, maxFrameSize: number): void {
    const frames = Math.max(1, Math.ceil(blockLength / maxFrameSize));
    const total = frames * FRAME_HEADER_BYTES + blockLength;
    this.room(total);
    const buf = this.buf;
    let at = this.pos;
    for (let i = 0, from = 0; i < frames; i++) {
      const to = Math.min(blockLength, from + maxFrameSize);
      const flags = (i === frames - 1 ? Flag.END_HEADERS : 0) | (i === 0 && endStream ? Flag.END_STREAM : 0);
      writeFrameHeader(buf, at, to - from, i === 0 ? FrameType.HEADERS : FrameType.CONTINUATION, flags, streamId);
      at += FRAME_HEADER_BYTES;
      if (to - from <= 64) for (let k = from; k < to; k++) buf[at++] = block[k];
      else at += block.copy(buf, at, from, to);
      from = to;
    }
    this.pos = at;
    this.length += total;
  }

  /** This turn's bytes, in order, for the socket; the output is empty after it. */
  take(): Buffer[] {
    this.seal();
    const pieces = this.pieces;
    this.pieces = [];
    this.length = 0;
    if (this.buf.length - this.pos < KEEP_ROOM || this.buf.length > KEEP_BYTES) {
      this.buf = EMPTY;
      this.start = this.pos = 0;
    }
    return pieces;
  }

  /** Makes room for `n` more bytes after this turn's: in a new buffer when this one is full, the turn's bytes moved over. */
  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const turn = this.pos - this.start;
    const grown = Buffer.allocUnsafe(Math.max(BUFFER_BYTES, 2 * (turn + n)));
    if (turn > 0) this.buf.copy(grown, 0, this.start, this.pos);
    this.buf = grown;
    this.start = 0;
    this.pos = turn;
  }

  /** What this turn wrote in the buffer so far becomes a piece of its own. */
  private seal(): void {
    if (this.pos === this.start) return;
    this.pieces.push(this.buf.subarray(this.start, this.pos));
    this.start = this.pos;
  }
}
