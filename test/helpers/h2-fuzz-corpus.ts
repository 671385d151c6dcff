// The seeded generator of HTTP/2 client byte streams the fuzz and differential
// tests send: the preface, then a mix of valid and mutated frames (random
// types, flags, stream ids and lengths, truncated frames, random HPACK bytes,
// bit-flipped valid frames).
import { seeded } from './prng';
import { Flag, frame, FrameType, literalBlock, PREFACE, settingsFrame, u32 } from './h2-tools';

export class Gen {
  private readonly rnd: () => number;
  constructor(seed: number) {
    this.rnd = seeded(seed);
  }
  int(n: number): number {
    return Math.floor(this.rnd() * n);
  }
  chance(p: number): boolean {
    return this.rnd() < p;
  }
  pick<X>(xs: readonly X[]): X {
    return xs[this.int(xs.length)];
  }
  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
  /** Mostly small odd client stream ids, sometimes anything (0, even, huge, reserved bit). */
  streamId(): number {
    if (this.chance(0.75)) return 1 + 2 * this.int(8);
    return this.pick([0, 2, 4, 0x7fffffff, 0xffffffff, this.int(2 ** 31)]);
  }
}

const AUTHORITIES = ['h1svc', 'h2svc', 'nowhere.example'];
const METHODS = ['GET', 'POST', 'HEAD', 'PUT', 'DELETE', 'OPTIONS', 'CONNECT', 'G E T'];

function requestBlock(g: Gen, i: number): Buffer {
  const fields: [string, string][] = [
    [':method', g.pick(METHODS)],
    [':scheme', g.pick(['http', 'https', 'ftp'])],
    [':authority', g.pick(AUTHORITIES)],
    [':path', g.pick([`/fuzz/${i}`, '/', '*', '', 'x', `/a b/${i}`])],
  ];
  for (let k = g.int(4); k > 0; k--) fields.push(g.pick<[string, string]>([['x-fuzz', String(i)], ['content-length', String(g.int(20))], ['te', g.pick(['trailers', 'gzip'])], ['connection', 'close'], ['X-Up', 'v'], ['x-bad', 'a\r\nb'], ['host', g.pick(AUTHORITIES)]]));
  if (g.chance(0.2)) fields.splice(g.int(fields.length), 1); // a pseudo-header or field missing
  if (g.chance(0.2)) fields.reverse(); // pseudo-headers after regular ones
  let block = literalBlock(fields);
  // Indexed static fields (:method GET, :path /, :scheme http) and random HPACK bytes.
  if (g.chance(0.2)) block = Buffer.concat([Buffer.from([0x82, 0x84, 0x86]), block]);
  if (g.chance(0.15)) block = Buffer.concat([block, g.bytes(1 + g.int(40))]);
  if (g.chance(0.1)) block = g.bytes(1 + g.int(60));
  return block;
}

/** One frame, valid in shape or not. */
function oneFrame(g: Gen, i: number): Buffer {
  const sid = g.streamId();
  switch (g.int(13)) {
    case 0:
      return settingsFrame(Array.from({ length: g.int(4) }, () => [1 + g.int(8), g.pick([0, 1, 2, 100, 16384, 16383, 2 ** 24, 2 ** 31, 2 ** 32 - 1, g.int(2 ** 32)])] as [number, number]), g.chance(0.2));
    case 1:
      return frame(FrameType.PING, g.chance(0.2) ? Flag.ACK : 0, g.chance(0.9) ? 0 : sid, g.bytes(g.chance(0.9) ? 8 : g.int(16)));
    case 2:
      return frame(FrameType.WINDOW_UPDATE, 0, g.chance(0.5) ? 0 : sid, u32(g.pick([0, 1, 65535, 2 ** 31 - 1, 2 ** 31, g.int(2 ** 32)])));
    case 3:
      return frame(FrameType.RST_STREAM, 0, sid, u32(g.int(16)));
    case 4:
      return frame(FrameType.PRIORITY, 0, sid, Buffer.concat([u32(g.chance(0.3) ? sid : g.int(2 ** 32)), Buffer.from([g.int(256)])]));
    case 5:
      return frame(FrameType.GOAWAY, 0, g.chance(0.9) ? 0 : sid, Buffer.concat([u32(g.int(2 ** 31)), u32(g.int(16)), g.bytes(g.int(8))]));
    case 6:
    case 7: {
      let flags = Flag.END_HEADERS | (g.chance(0.6) ? Flag.END_STREAM : 0);
      let payload = requestBlock(g, i);
      if (g.chance(0.15)) flags &= ~Flag.END_HEADERS;
      if (g.chance(0.1)) {
        flags |= Flag.PADDED;
        const pad = g.int(300);
        payload = Buffer.concat([Buffer.from([pad & 0xff]), payload, Buffer.alloc(g.chance(0.5) ? pad & 0xff : g.int(4))]);
      }
      if (g.chance(0.1)) {
        flags |= Flag.PRIORITY;
        payload = Buffer.concat([u32(g.chance(0.5) ? sid : g.int(2 ** 32)), Buffer.from([g.int(256)]), payload]);
      }
      return frame(FrameType.HEADERS, flags, sid, payload);
    }
    case 8:
      return frame(FrameType.CONTINUATION, g.chance(0.5) ? Flag.END_HEADERS : 0, sid, requestBlock(g, i));
    case 9: {
      let flags = g.chance(0.5) ? Flag.END_STREAM : 0;
      let payload = g.bytes(g.int(g.chance(0.9) ? 64 : 17000));
      if (g.chance(0.1)) {
        flags |= Flag.PADDED;
        payload = Buffer.concat([Buffer.from([g.int(256)]), payload]);
      }
      return frame(FrameType.DATA, flags, sid, payload);
    }
    case 10:
      return frame(FrameType.PUSH_PROMISE, Flag.END_HEADERS, sid, Buffer.concat([u32(2 + 2 * g.int(10)), requestBlock(g, i)]));
    case 11:
      return frame(10 + g.int(246), g.int(256), sid, g.bytes(g.int(32))); // an unknown type: must be ignored
    default:
      return frame(g.int(10), g.int(256), sid, g.bytes(g.int(48))); // any type, flags and payload
  }
}

/** A valid frame, sometimes damaged: bits flipped, the length, type or flags rewritten. */
export function mutated(g: Gen, f: Buffer): Buffer {
  if (!g.chance(0.3)) return f;
  const out = Buffer.from(f);
  switch (g.int(4)) {
    case 0:
      for (let k = 1 + g.int(4); k > 0; k--) out[g.int(out.length)] ^= 1 << g.int(8);
      break;
    case 1:
      out.writeUIntBE(g.pick([0, 1, 8, out.length - 9 + 1, 16385, 2 ** 24 - 1, g.int(2 ** 24)]) & 0xffffff, 0, 3);
      break;
    case 2:
      out[3] = g.int(256);
      break;
    default:
      out[4] = g.int(256);
  }
  return out;
}

export interface Plan {
  bytes: Buffer;
  /** The client ends with TCP RST instead of FIN. */
  reset: boolean;
  /** A short summary for failure messages. */
  summary: string;
}

export function plan(g: Gen, i: number): Plan {
  const parts: Buffer[] = [];
  const kinds: string[] = [];
  const preface = g.int(20);
  if (preface === 0) parts.push(mutated(g, Buffer.concat([PREFACE, Buffer.alloc(9)])).subarray(0, PREFACE.length)), kinds.push('bad-preface');
  else if (preface === 1) kinds.push('no-settings'), parts.push(PREFACE);
  else parts.push(PREFACE, settingsFrame([[2, 0]]));
  for (let n = 1 + g.int(12); n > 0; n--) {
    const f = mutated(g, oneFrame(g, i));
    kinds.push(`${f[3]}/${f[4].toString(16)}/${f.readUInt32BE(5)}/${f.readUIntBE(0, 3)}`);
    parts.push(f);
  }
  if (g.chance(0.5)) parts.push(frame(FrameType.PING, 0, 0, Buffer.from('fuzzping'))), kinds.push('ping');
  let bytes = Buffer.concat(parts);
  if (g.chance(0.1)) {
    bytes = bytes.subarray(0, PREFACE.length + g.int(bytes.length - PREFACE.length)); // truncated mid-frame
    kinds.push(`truncated@${bytes.length}`);
  }
  return { bytes, reset: g.chance(0.2), summary: kinds.join(' ') };
}
