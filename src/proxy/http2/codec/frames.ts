// HTTP/2 frames (RFC 9113 §4, §6): the codes, and the writers of the frames
// either side sends. Reading is in connection-base.ts and the two connections
// (server-connection.ts, client-connection.ts), where each frame is checked
// against the connection's state as it is parsed.

export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
export const FRAME_HEADER_BYTES = 9;

export const enum FrameType {
  DATA = 0x0,
  HEADERS = 0x1,
  PRIORITY = 0x2,
  RST_STREAM = 0x3,
  SETTINGS = 0x4,
  PUSH_PROMISE = 0x5,
  PING = 0x6,
  GOAWAY = 0x7,
  WINDOW_UPDATE = 0x8,
  CONTINUATION = 0x9,
}

export const enum Flag {
  END_STREAM = 0x1,
  ACK = 0x1,
  END_HEADERS = 0x4,
  PADDED = 0x8,
  PRIORITY = 0x20,
}

/** RFC 9113 §7. */
export const enum ErrorCode {
  NO_ERROR = 0x0,
  PROTOCOL_ERROR = 0x1,
  INTERNAL_ERROR = 0x2,
  FLOW_CONTROL_ERROR = 0x3,
  SETTINGS_TIMEOUT = 0x4,
  STREAM_CLOSED = 0x5,
  FRAME_SIZE_ERROR = 0x6,
  REFUSED_STREAM = 0x7,
  CANCEL = 0x8,
  COMPRESSION_ERROR = 0x9,
  CONNECT_ERROR = 0xa,
  ENHANCE_YOUR_CALM = 0xb,
  INADEQUATE_SECURITY = 0xc,
  HTTP_1_1_REQUIRED = 0xd,
}

/** RFC 9113 §6.5.2. */
export const enum Setting {
  HEADER_TABLE_SIZE = 0x1,
  ENABLE_PUSH = 0x2,
  MAX_CONCURRENT_STREAMS = 0x3,
  INITIAL_WINDOW_SIZE = 0x4,
  MAX_FRAME_SIZE = 0x5,
  MAX_HEADER_LIST_SIZE = 0x6,
}

export const DEFAULT_WINDOW = 65_535;
export const MAX_WINDOW = 0x7fff_ffff;
export const DEFAULT_MAX_FRAME_SIZE = 16_384;
export const MAX_MAX_FRAME_SIZE = 16_777_215;

const ERROR_CODE_NAMES = ['NO_ERROR', 'PROTOCOL_ERROR', 'INTERNAL_ERROR', 'FLOW_CONTROL_ERROR', 'SETTINGS_TIMEOUT', 'STREAM_CLOSED', 'FRAME_SIZE_ERROR', 'REFUSED_STREAM', 'CANCEL', 'COMPRESSION_ERROR', 'CONNECT_ERROR', 'ENHANCE_YOUR_CALM', 'INADEQUATE_SECURITY', 'HTTP_1_1_REQUIRED'];

/** RFC 9113 error code → its name (unknown codes by number). */
export function codeName(code: number): string {
  return ERROR_CODE_NAMES[code] ?? `code_${code}`;
}

/** Writes a frame header at `at` of `buf`. */
export function writeFrameHeader(buf: Buffer, at: number, length: number, type: number, flags: number, streamId: number): void {
  buf[at] = length >>> 16;
  buf[at + 1] = (length >>> 8) & 0xff;
  buf[at + 2] = length & 0xff;
  buf[at + 3] = type;
  buf[at + 4] = flags;
  buf.writeUInt32BE(streamId & MAX_WINDOW, at + 5);
}

/** A frame with its payload, in one buffer. */
export function frame(type: number, flags: number, streamId: number, payload?: Buffer): Buffer {
  const length = payload ? payload.length : 0;
  const buf = Buffer.allocUnsafe(FRAME_HEADER_BYTES + length);
  writeFrameHeader(buf, 0, length, type, flags, streamId);
  if (payload) payload.copy(buf, FRAME_HEADER_BYTES);
  return buf;
}

export function settingsFrame(settings: ReadonlyArray<readonly [Setting, number]>): Buffer {
  const payload = Buffer.allocUnsafe(6 * settings.length);
  settings.forEach(([id, value], i) => {
    payload.writeUInt16BE(id, 6 * i);
    payload.writeUInt32BE(value, 6 * i + 2);
  });
  return frame(FrameType.SETTINGS, 0, 0, payload);
}

export const SETTINGS_ACK = frame(FrameType.SETTINGS, Flag.ACK, 0);

export function windowUpdateFrame(streamId: number, increment: number): Buffer {
  const buf = Buffer.allocUnsafe(FRAME_HEADER_BYTES + 4);
  writeFrameHeader(buf, 0, 4, FrameType.WINDOW_UPDATE, 0, streamId);
  buf.writeUInt32BE(increment, FRAME_HEADER_BYTES);
  return buf;
}

export function rstStreamFrame(streamId: number, code: ErrorCode): Buffer {
  const buf = Buffer.allocUnsafe(FRAME_HEADER_BYTES + 4);
  writeFrameHeader(buf, 0, 4, FrameType.RST_STREAM, 0, streamId);
  buf.writeUInt32BE(code, FRAME_HEADER_BYTES);
  return buf;
}

export function goawayFrame(lastStreamId: number, code: ErrorCode, debug = ''): Buffer {
  const debugBytes = Buffer.from(debug, 'latin1');
  const buf = Buffer.allocUnsafe(FRAME_HEADER_BYTES + 8 + debugBytes.length);
  writeFrameHeader(buf, 0, 8 + debugBytes.length, FrameType.GOAWAY, 0, 0);
  buf.writeUInt32BE(lastStreamId & MAX_WINDOW, FRAME_HEADER_BYTES);
  buf.writeUInt32BE(code, FRAME_HEADER_BYTES + 4);
  debugBytes.copy(buf, FRAME_HEADER_BYTES + 8);
  return buf;
}

export function pingFrame(payload: Buffer, ack: boolean): Buffer {
  return frame(FrameType.PING, ack ? Flag.ACK : 0, 0, payload);
}
