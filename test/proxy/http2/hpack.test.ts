// HPACK (RFC 7541): weft's encoder and decoder against each other, against
// python's hpack module (a long-lived /usr/bin/python3 speaking JSON lines),
// and against nghttp2 through node:http2 over real sockets (its client's
// blocks into our decoder, our encoder's blocks into its server); every
// decoding error; the Huffman code against python's, byte for byte.
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { HpackDecoder, HpackError } from '../../../src/proxy/http2/codec/hpack-decoder';
import { HpackEncoder } from '../../../src/proxy/http2/codec/hpack-encoder';
import { STATIC_TABLE } from '../../../src/proxy/http2/codec/hpack-static-table';
import { huffmanDecode, huffmanEncode, huffmanEncodedLength } from '../../../src/proxy/http2/codec/huffman';
import { Flag, FrameType, PYTHON, RawH2, Setting, frame, needTool, toolMissing } from '../../helpers/h2-tools';
import { seeded } from '../../helpers/prng';

const SENSITIVE = new Set(['authorization', 'proxy-authorization', 'cookie', 'set-cookie']);

// ---- seeded random header lists ----

const NAMES = [
  'accept', 'accept-encoding', 'accept-language', 'authorization', 'cache-control', 'content-length', 'content-type', 'cookie', 'date', 'etag',
  'grpc-encoding', 'grpc-message', 'grpc-status', 'grpc-timeout', 'if-none-match', 'last-modified', 'location', 'proxy-authorization', 'referer',
  'server', 'set-cookie', 'user-agent', 'vary', 'via', 'x-forwarded-for', 'x-request-id', 'traceparent', 'x-weft-flag',
];
const VALUES = [
  '', '0', '1', '100', '200', '404', 'GET', 'POST', '/', '/index.html', 'http', 'https', 'gzip, deflate', 'gzip, deflate, br', 'identity',
  'application/grpc', 'application/json', 'text/html; charset=utf-8', '*/*', 'no-cache', 'weft/0.1', 'h2load nghttp2/1.52.0', 'upstream-h2',
  'Sat, 21 Nov 2026 11:00:00 GMT', 'session=9f2c1e7a4b8d0c3e; theme=dark',
];
const TOKEN_CHARS = 'abcdefghijklmnopqrstuvwxyz0123456789-_.!#$%&\'*+^`|~';

type Rng = () => number;
const pick = <T>(rnd: Rng, xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
const int = (rnd: Rng, lo: number, hi: number): number => lo + Math.floor(rnd() * (hi - lo + 1));

function chars(rnd: Rng, n: number, code: () => number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += String.fromCharCode(code());
  return s;
}

function token(rnd: Rng): string {
  return 'x-' + chars(rnd, int(rnd, 1, 12), () => TOKEN_CHARS.charCodeAt(Math.floor(rnd() * TOKEN_CHARS.length)));
}

/**
 * A field value. `any`: every byte 0x00–0xff may appear; otherwise what an
 * HTTP/2 field value may hold (RFC 9113 §8.2.1: no NUL, CR, LF, other
 * controls but HTAB, no leading or trailing whitespace), which nghttp2 checks.
 */
function value(rnd: Rng, any: boolean): string {
  const r = rnd();
  const code = any ? () => int(rnd, 0, 255) : () => (rnd() < 0.05 ? 9 : rnd() < 0.8 ? int(rnd, 0x20, 0x7e) : int(rnd, 0x80, 0xff));
  let v: string;
  if (r < 0.4) v = pick(rnd, VALUES);
  else if (r < 0.55) v = String(int(rnd, 0, 1e9));
  else if (r < 0.9) v = chars(rnd, int(rnd, 0, 40), code);
  else if (r < 0.95) v = chars(rnd, int(rnd, 257, 1200), code); // long: never indexed by our encoder
  else v = '';
  if (!any) v = v.replace(/^[\t ]+|[\t ]+$/g, '');
  return v;
}

/** A request-shaped field list: pseudo-headers first, then regular fields (unique names when `unique`). */
function requestFields(rnd: Rng, opts: { any: boolean; unique?: boolean; max?: number }): string[] {
  const f = [':method', pick(rnd, ['GET', 'POST', 'PUT']), ':scheme', pick(rnd, ['http', 'https']), ':path', pick(rnd, ['/', '/index.html', '/api/v1/users/' + int(rnd, 1, 50)]), ':authority', pick(rnd, ['upstream-h2', 'svc.default:8080', 'a' + int(rnd, 1, 9) + '.example'])];
  const seen = new Set<string>();
  const n = int(rnd, 0, opts.max ?? 20);
  for (let i = 0; i < n; i++) {
    const name = rnd() < 0.7 ? pick(rnd, NAMES) : token(rnd);
    if (opts.unique && seen.has(name)) continue;
    seen.add(name);
    // nghttp2 checks content-length against the body: these requests have none
    f.push(name, name === 'content-length' && !opts.any ? '0' : value(rnd, opts.any));
  }
  return f;
}

/** Any field list: response or request shaped, random names including arbitrary bytes when `any`. */
function anyFields(rnd: Rng): string[] {
  const f = rnd() < 0.5 ? [':status', pick(rnd, ['200', '204', '404', '503'])] : requestFields(rnd, { any: true, max: 0 });
  const n = int(rnd, 0, 24);
  for (let i = 0; i < n; i++) {
    const r = rnd();
    const name = r < 0.6 ? pick(rnd, NAMES) : r < 0.9 ? token(rnd) : r < 0.95 ? pick(rnd, STATIC_TABLE)[0] : chars(rnd, int(rnd, 1, 20), () => int(rnd, 0, 255));
    f.push(name, value(rnd, true));
  }
  return f;
}

/** Every byte 0x00–0xff in one value (and reversed in another), an empty value, a 5 KB one. */
function allBytesFields(): string[] {
  const all = chars(() => 0, 256, (() => { let b = 0; return () => b++; })());
  return ['x-all-bytes', all, 'x-all-bytes-reversed', [...all].reverse().join(''), 'x-empty', '', 'x-long', all.repeat(20)];
}

function listSize(fields: readonly string[]): number {
  let n = 0;
  for (let i = 0; i < fields.length; i += 2) n += fields[i].length + fields[i + 1].length + 32;
  return n;
}

function decodeAll(dec: HpackDecoder, block: Buffer): string[] {
  const out: string[] = [];
  const size = dec.decode(block, out);
  assert.equal(size, listSize(out), 'decode() returns the header list size');
  return out;
}

/** An HPACK integer (§5.1) with an N-bit prefix under the representation's high bits `first`. */
function hpackInt(value: number, prefixBits: number, first: number): number[] {
  const max = 2 ** prefixBits - 1;
  if (value < max) return [first | value];
  const out = [first | max];
  for (value -= max; value >= 128; value = Math.floor(value / 128)) out.push((value % 128) | 0x80);
  out.push(value);
  return out;
}

const bytes = (...xs: (number | string | number[])[]): Buffer =>
  Buffer.concat(xs.map((x) => (typeof x === 'number' ? Buffer.from([x]) : typeof x === 'string' ? Buffer.from(x, 'latin1') : Buffer.from(x))));

// ---- 1. round trips ----

describe('round trips: our encoder into our decoder', () => {
  for (const huffman of [false, true]) {
    test(`many blocks on one pair, peer table size changes (huffman ${huffman})`, () => {
      const rnd = seeded(huffman ? 11 : 7);
      const enc = new HpackEncoder({ huffman, maxTableSize: 8192 });
      const dec = new HpackDecoder({ maxTableSize: 8192, maxHeaderListSize: 1 << 30 });
      let changes = 0;
      let most = 0;
      for (let i = 0; i < 3000; i++) {
        if (rnd() < 0.02) {
          enc.setPeerMaxTableSize(pick(rnd, [0, 64, 200, 1000, 4096, 8192, 65536]));
          changes++;
        }
        const fields = i === 0 ? allBytesFields() : rnd() < 0.3 ? anyFields(rnd) : requestFields(rnd, { any: true });
        assert.deepEqual(decodeAll(dec, enc.encode(fields)), fields, `block ${i}`);
        most = Math.max(most, dec.tableLength);
      }
      assert.ok(changes > 30 && most > 50, `the table churned (${changes} size changes, at most ${most} entries)`);
    });
  }

  test('repeated response heads shrink to indices; sensitive and unique fields stay literal', () => {
    const enc = new HpackEncoder();
    const dec = new HpackDecoder({ maxHeaderListSize: 1 << 20 });
    const head = (len: string): string[] => [':status', '200', 'content-type', 'application/grpc', 'server', 'weft', 'grpc-accept-encoding', 'identity', 'content-length', len, 'set-cookie', 'a=1'];
    const first = enc.encode(head('100'));
    const second = enc.encode(head('7'));
    assert.deepEqual(decodeAll(dec, first), head('100'));
    assert.deepEqual(decodeAll(dec, second), head('7'));
    // :status 200 static (0x88); content-type, server, grpc-accept-encoding as dynamic indices 64, 63, 62;
    // content-length: without indexing (0000), static name 28 = 15 + 13; set-cookie: never indexed (0001), static name 55 = 15 + 40.
    assert.deepEqual([...second], [0x88, 0xc0, 0xbf, 0xbe, 0x0f, 13, 1, 0x37, 0x1f, 40, 3, 0x61, 0x3d, 0x31]);
  });

  test('table size changes between blocks: the lowest, then the current size (§4.2); none when nothing changed', () => {
    const enc = new HpackEncoder();
    enc.setPeerMaxTableSize(8192); // above our own 4096: the table stays as the peer knows it
    assert.deepEqual([...enc.encode([':method', 'GET'])], [0x82]);
    enc.setPeerMaxTableSize(0);
    enc.setPeerMaxTableSize(4096);
    assert.deepEqual([...enc.encode([':method', 'GET'])], [0x20, 0x3f, 0xe1, 0x1f, 0x82]);
    enc.setPeerMaxTableSize(1000);
    assert.deepEqual([...enc.encode([':method', 'GET'])], [0x3f, 0xc9, 0x07, 0x82]);
    assert.deepEqual([...enc.encode([':method', 'GET'])], [0x82]);
  });

  test('a block written after `headroom` bytes', () => {
    const enc = new HpackEncoder();
    const b = enc.encode([':status', '404'], 9);
    assert.equal(b.length, 10);
    assert.equal(b[9], 0x8d);
  });
});

// ---- 2. python hpack ----

/** python's hpack Encoder/Decoder sessions and its Huffman coder behind JSON lines (non-ASCII escaped both ways). */
const PY_ORACLE = String.raw`
import json, sys
import hpack
from hpack.huffman import HuffmanEncoder
from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH
encoders, decoders = {}, {}
huff = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH)
b = lambda s: s.encode('latin1')
s = lambda x: x.decode('latin1')
for line in sys.stdin:
    req = json.loads(line)
    try:
        if req['op'] == 'encode':
            e = encoders.setdefault(req['session'], hpack.Encoder())
            blocks = []
            for item in req['items']:
                if 'tableSize' in item:
                    e.header_table_size = item['tableSize']
                f = item['fields']
                blocks.append(e.encode([(b(f[i]), b(f[i + 1]), i // 2 in item['sensitive']) for i in range(0, len(f), 2)], huffman=item['huffman']).hex())
            out = {'blocks': blocks}
        elif req['op'] == 'decode':
            d = decoders.get(req['session'])
            if d is None:
                d = decoders[req['session']] = hpack.Decoder(max_header_list_size=1 << 30)
            lists = []
            for item in req['items']:
                d.max_allowed_table_size = item['maxTableSize']
                fields = d.decode(bytes.fromhex(item['block']), raw=True)
                lists.append([[s(h[0]), s(h[1]), not h.indexable] for h in fields])
            out = {'lists': lists}
        elif req['op'] == 'huffman':
            out = {'coded': [huff.encode(b(x)).hex() for x in req['strings']]}
        else:
            out = {'error': 'unknown op'}
    except Exception as err:
        out = {'error': type(err).__name__ + ': ' + str(err)}
    print(json.dumps(out), flush=True)
`;

class PyHpack {
  private buf = '';
  private stderr = '';
  private waiting: { resolve: (v: any) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }[] = [];

  private constructor(private readonly child: ChildProcessWithoutNullStreams) {
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      this.buf += d;
      for (let i = this.buf.indexOf('\n'); i >= 0; i = this.buf.indexOf('\n')) {
        const line = this.buf.slice(0, i);
        this.buf = this.buf.slice(i + 1);
        const w = this.waiting.shift();
        if (!w) continue;
        clearTimeout(w.timer);
        const res = JSON.parse(line);
        if (res.error) w.reject(new Error(`python hpack: ${res.error}`));
        else w.resolve(res);
      }
    });
    child.stderr.on('data', (d) => (this.stderr += d));
    child.on('close', () => {
      for (const w of this.waiting.splice(0)) {
        clearTimeout(w.timer);
        w.reject(new Error(`python exited; stderr: ${this.stderr}`));
      }
    });
  }

  static start(): PyHpack {
    return new PyHpack(spawn(PYTHON, ['-c', PY_ORACLE], { stdio: ['pipe', 'pipe', 'pipe'] }));
  }

  call(req: object, timeoutMs = 20_000): Promise<any> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`python hpack gave no answer within ${timeoutMs} ms; stderr: ${this.stderr}`)), timeoutMs);
      this.waiting.push({ resolve, reject, timer });
      // ASCII-only JSON: the child's stdin encoding does not matter.
      this.child.stdin.write(JSON.stringify(req).replace(/[\u007f-\uffff]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0')) + '\n');
    });
  }

  close(): void {
    this.child.kill();
  }
}

describe('differential: python hpack', () => {
  let py: PyHpack | undefined;
  before(() => {
    if (!toolMissing('python3-h2')) py = PyHpack.start();
  });
  after(() => py?.close());

  test('the static table equals python decoding each index', async (t) => {
    if (!needTool(t, 'python3-h2')) return;
    const items = STATIC_TABLE.map((_, i) => ({ block: Buffer.from([0x80 | (i + 1)]).toString('hex'), maxTableSize: 4096 }));
    const { lists } = await py!.call({ op: 'decode', session: 'static', items });
    assert.deepEqual(lists.map((l: string[][]) => [l[0][0], l[0][1]]), STATIC_TABLE);
  });

  test('python encodes (huffman on and off, its indexing, table size changes), our decoder reads exactly its input', { timeout: 60_000 }, async (t) => {
    if (!needTool(t, 'python3-h2')) return;
    const rnd = seeded(21);
    const items: { fields: string[]; huffman: boolean; sensitive: number[]; tableSize?: number }[] = [];
    for (let i = 0; i < 2000; i++) {
      const fields = i === 0 ? allBytesFields() : rnd() < 0.5 ? anyFields(rnd) : requestFields(rnd, { any: true });
      const sensitive = [];
      for (let k = 0; k < fields.length / 2; k++) if (rnd() < 0.1) sensitive.push(k);
      items.push({ fields, huffman: rnd() < 0.6, sensitive, ...(rnd() < 0.02 ? { tableSize: pick(rnd, [0, 100, 1000, 4096, 8192]) } : {}) });
    }
    const { blocks } = await py!.call({ op: 'encode', session: 'a', items });
    const dec = new HpackDecoder({ maxTableSize: 8192, maxHeaderListSize: 1 << 30 });
    let updates = 0;
    blocks.forEach((hex: string, i: number) => {
      const block = Buffer.from(hex, 'hex');
      if (block.length > 0 && (block[0] & 0xe0) === 0x20) updates++;
      assert.deepEqual(decodeAll(dec, block), items[i].fields, `block ${i}`);
    });
    assert.ok(updates > 20, `python sent ${updates} size updates`);
  });

  for (const huffman of [false, true]) {
    test(`our encoder (huffman ${huffman}), python's decoder reads exactly our input; sensitive fields never indexed`, { timeout: 60_000 }, async (t) => {
      if (!needTool(t, 'python3-h2')) return;
      const rnd = seeded(huffman ? 33 : 31);
      const enc = new HpackEncoder({ huffman, maxTableSize: huffman ? 16384 : 4096 });
      const fields: string[][] = [];
      const items: { block: string; maxTableSize: number }[] = [];
      let peer = 4096;
      for (let i = 0; i < 2000; i++) {
        if (rnd() < 0.02) enc.setPeerMaxTableSize((peer = pick(rnd, [0, 100, 1000, 4096, 8192, 16384])));
        const f = i === 0 ? allBytesFields() : rnd() < 0.5 ? anyFields(rnd) : requestFields(rnd, { any: true });
        fields.push(f);
        items.push({ block: enc.encode(f).toString('hex'), maxTableSize: peer });
      }
      const { lists } = await py!.call({ op: 'decode', session: `ours-${huffman}`, items });
      lists.forEach((l: [string, string, boolean][], i: number) => {
        assert.deepEqual(l.flatMap(([n, v]) => [n, v]), fields[i], `block ${i}`);
        // (a sensitive name with an empty value is its static entry, sent as an index: nothing to hide)
        for (const [n, v, never] of l) assert.equal(never, SENSITIVE.has(n) && v !== '', `block ${i}: ${n} ${never ? 'is' : 'is not'} never-indexed`);
      });
    });
  }
});

// ---- 3. nghttp2 (node:http2) over real sockets ----

/** Frames from a byte stream: the 9-byte header, HEADERS padding and priority stripped, CONTINUATION joined into one block. */
class FrameReader {
  private buf: Buffer = Buffer.alloc(0);
  private pending: { streamId: number; parts: Buffer[] } | undefined;
  flagsSeen = 0;
  continuations = 0;

  constructor(private readonly onFrame: (type: number, flags: number, streamId: number, payload: Buffer) => void, private readonly onBlock: (streamId: number, block: Buffer) => void) {}

  push(chunk: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    while (this.buf.length >= 9) {
      const len = this.buf.readUIntBE(0, 3);
      if (this.buf.length < 9 + len) break;
      const type = this.buf[3];
      const flags = this.buf[4];
      const streamId = this.buf.readUInt32BE(5) & 0x7fffffff;
      let p = this.buf.subarray(9, 9 + len);
      this.buf = this.buf.subarray(9 + len);
      if (type === FrameType.HEADERS) {
        this.flagsSeen |= flags;
        if (flags & Flag.PADDED) p = p.subarray(1, p.length - p[0]);
        if (flags & Flag.PRIORITY) p = p.subarray(5);
        this.pending = { streamId, parts: [p] };
      } else if (type === FrameType.CONTINUATION) {
        assert.ok(this.pending && this.pending.streamId === streamId, 'CONTINUATION follows HEADERS of its stream');
        this.pending.parts.push(p);
        this.continuations++;
      } else this.onFrame(type, flags, streamId, p);
      if ((type === FrameType.HEADERS || type === FrameType.CONTINUATION) && flags & Flag.END_HEADERS) {
        const { parts } = this.pending!;
        this.pending = undefined;
        this.onBlock(streamId, parts.length === 1 ? parts[0] : Buffer.concat(parts));
      }
    }
  }
}

const settings = (pairs: [number, number][], ack = false): Buffer => {
  const p = Buffer.alloc(pairs.length * 6);
  pairs.forEach(([k, v], i) => {
    p.writeUInt16BE(k, i * 6);
    p.writeUInt32BE(v, i * 6 + 2);
  });
  return frame(FrameType.SETTINGS, ack ? Flag.ACK : 0, 0, p);
};

describe('differential: nghttp2 (node:http2) over real sockets', () => {
  test('a node:http2 client sends 200 requests on one connection; our decoder reads exactly what it sent', { timeout: 30_000 }, async () => {
    const rnd = seeded(41);
    const dec = new HpackDecoder({ maxTableSize: 4096, maxHeaderListSize: 1 << 20 });
    const received = new Map<number, string[]>();
    const sockets = new Set<net.Socket>();
    let sizeUpdates = 0;
    let setTableSize: ((n: number) => void) | undefined;
    const readers: FrameReader[] = [];
    const server = net.createServer((sock) => {
      sockets.add(sock);
      sock.on('error', () => {});
      sock.write(settings([]));
      let preface = false;
      let head = Buffer.alloc(0);
      const reader = new FrameReader(
        (type, flags) => {
          if (type === FrameType.SETTINGS && !(flags & Flag.ACK)) sock.write(settings([], true));
        },
        (streamId, block) => {
          if (block.length && (block[0] & 0xe0) === 0x20) sizeUpdates++;
          received.set(streamId, decodeAll(dec, block));
          sock.write(frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, streamId, Buffer.from([0x88]))); // :status 200
        },
      );
      setTableSize = (n) => sock.write(settings([[Setting.HEADER_TABLE_SIZE, n]]));
      readers.push(reader);
      sock.on('data', (d: Buffer) => {
        if (!preface) {
          head = Buffer.concat([head, d]);
          if (head.length < 24) return;
          preface = true;
          d = head.subarray(24);
        }
        reader.push(d);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    const session = http2.connect(`http://127.0.0.1:${port}`, { paddingStrategy: http2.constants.PADDING_STRATEGY_MAX });
    session.on('error', () => {});
    try {
      for (let i = 0; i < 200; i++) {
        if (i === 70) setTableSize!(256);
        if (i === 140) setTableSize!(4096);
        const fields = requestFields(rnd, { any: false, unique: true });
        if (i % 50 === 25) fields.push('x-big', chars(rnd, 30_000, () => int(rnd, 0x21, 0x7e))); // more than one frame (16 KB) even Huffman-coded: CONTINUATION
        const headers: http2.OutgoingHttpHeaders = {};
        for (let k = 0; k < fields.length; k += 2) headers[fields[k]] = fields[k + 1];
        const req = session.request(headers, { endStream: true, ...(i % 3 === 0 ? { weight: 1 + (i % 256), exclusive: false } : {}) });
        const streamId = await new Promise<number>((resolve, reject) => {
          req.on('response', () => resolve(req.id!));
          req.on('error', reject);
        });
        req.resume();
        assert.deepEqual(received.get(streamId), fields, `request ${i} (stream ${streamId})`);
      }
    } finally {
      session.destroy();
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
    assert.equal(received.size, 200);
    assert.ok(sizeUpdates >= 2, `nghttp2 signalled the table size changes (${sizeUpdates} blocks began with a size update)`);
    const r = readers[0];
    assert.ok(r.continuations > 0, 'some blocks came in CONTINUATION frames');
    assert.ok(r.flagsSeen & Flag.PADDED && r.flagsSeen & Flag.PRIORITY, `HEADERS with PADDED and PRIORITY were stripped (flags seen ${r.flagsSeen.toString(16)})`);
  });

  test('our encoder into a node:http2 server: it sees exactly our fields on 200 streams of one connection, through table size changes', { timeout: 30_000 }, async () => {
    const rnd = seeded(43);
    const seen = new Map<number, string[]>();
    let session: http2.ServerHttp2Session | undefined;
    const server = http2.createServer();
    server.on('session', (s) => (session = s));
    server.on('stream', (stream: http2.ServerHttp2Stream, _headers: http2.IncomingHttpHeaders, _flags: number, rawHeaders: string[]) => {
      seen.set(stream.id!, rawHeaders);
      stream.respond({ ':status': 200 }, { endStream: true });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    const c = await RawH2.connect(port);
    const enc = new HpackEncoder();
    const sent = new Map<number, string[]>();
    try {
      await c.until(() => session !== undefined && c.frames.some((f) => f.type === FrameType.SETTINGS), 5000, "the server's SETTINGS");
      let streamId = 1;
      for (let batch = 0; batch < 10; batch++) {
        // [100, 4096]: shrunk then grown between two blocks, so both must be signalled (§4.2)
        for (const size of [[4096], [4096], [256], [256], [0], [4096], [1000], [100, 4096], [4096], [4096]][batch]) {
          if (size === (c.serverSettings.get(Setting.HEADER_TABLE_SIZE) ?? 4096)) continue;
          session!.settings({ headerTableSize: size });
          await c.until(() => c.serverSettings.get(Setting.HEADER_TABLE_SIZE) === size, 5000, `SETTINGS_HEADER_TABLE_SIZE ${size}`);
          enc.setPeerMaxTableSize(size); // after our ACK (written as the frame arrived): nghttp2 now expects a size update
        }
        for (let i = 0; i < 20; i++, streamId += 2) {
          const fields = requestFields(rnd, { any: false, unique: true, max: 12 }); // unique: nghttp2 refuses a repeated content-length
          sent.set(streamId, fields);
          c.write(frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, streamId, enc.encode(fields)));
        }
        await c.until(() => seen.size === sent.size || c.rst.size > 0 || c.goaway !== undefined, 10_000, `the server's streams up to ${streamId - 2}`);
        assert.equal(c.goaway, undefined, `the server ended the connection (GOAWAY ${JSON.stringify(c.goaway)})`);
        assert.deepEqual([...c.rst].map(([id, code]) => [id, code, sent.get(id)]), [], 'the server reset streams');
      }
      for (const [id, fields] of sent) assert.deepEqual(seen.get(id), fields, `stream ${id}`);
      assert.equal(seen.size, 200);
    } finally {
      c.destroy();
      session?.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

// ---- 4. every decoding error ----

describe('decoding errors: each a block valid but for one thing', () => {
  const opts = { maxTableSize: 4096, maxHeaderListSize: 1 << 20 };
  /** `valid` decodes (after `setup`, on a fresh decoder) and `invalid` throws an HpackError matching `message`. */
  function twin(valid: Buffer, invalid: Buffer, message: RegExp, setup: Buffer[] = [], decoderOpts = opts): void {
    const fresh = (): HpackDecoder => {
      const d = new HpackDecoder(decoderOpts);
      for (const b of setup) decodeAll(d, b);
      return d;
    };
    decodeAll(fresh(), valid);
    assert.throws(() => fresh().decode(invalid, []), (err: unknown) => err instanceof HpackError && message.test(err.message), `${invalid.toString('hex')} must throw ${message}`);
  }
  // A literal with incremental indexing and a new name: one entry of 32 + 1 + 1 bytes.
  const addEntry = bytes(0x40, 1, 'a', 1, 'b');

  test('index 0', () => twin(bytes(0x82), bytes(0x80), /index 0/));
  test('indexed field beyond the static and dynamic tables', () => twin(bytes(0xbe), bytes(0xbf), /index 63 beyond/, [addEntry]));
  test('indexed field beyond the static table, dynamic table empty', () => twin(bytes(0xbd), bytes(0xbe), /index 62 beyond/));
  test('literal whose name index is beyond the tables', () => twin(bytes(0x7e, 1, 'v'), bytes(0x7f, 0x00, 1, 'v'), /index 63 beyond/, [addEntry]));
  test('integer above 2^31-1', () =>
    twin(bytes(hpackInt(2 ** 31 - 1, 5, 0x20), 0x82), bytes(hpackInt(2 ** 31, 5, 0x20), 0x82), /integer 2147483648 above 2\^31-1/, [], { maxTableSize: 2 ** 31 - 1, maxHeaderListSize: 1 << 20 }));
  // Five continuation bytes (35 bits) hold any value up to 2^31-1, so five redundant ones are read, six are not.
  test('integer with more continuation bytes than 2^31-1 needs', () => twin(bytes(0x3f, 0x80, 0x80, 0x80, 0x80, 0x00, 0x82), bytes(0x3f, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00, 0x82), /more continuation bytes/));
  test('string length past the end of the block', () => twin(bytes(0x00, 1, 'a', 3, 'xyz'), bytes(0x00, 1, 'a', 4, 'xyz'), /runs past the end/));
  test('dynamic table size update above the advertised limit', () => twin(bytes(0x3f, 0xe1, 0x1f, 0x82), bytes(0x3f, 0xe2, 0x1f, 0x82), /size update to 4097 above/));
  test('dynamic table size update after a field', () => twin(bytes(0x20, 0x82), bytes(0x82, 0x20), /size update after a header field/));
  test('two size updates at the start are allowed, one after a field is not', () => twin(bytes(0x20, 0x3f, 0xe1, 0x1f, 0x82, 0x84), bytes(0x20, 0x82, 0x3f, 0xe1, 0x1f, 0x84), /size update after/));

  test('truncated block: every cut inside a field throws', () => {
    const f1 = bytes(0x0f, 0x01, 0x7f, 0x01, 'v'.repeat(128)); // without indexing, name accept-encoding (16 = 15 + 1), 128-byte value
    const f2 = bytes(0x00, 0x7f, 0x01, 'n'.repeat(128), 2, 'vv'); // without indexing, a 128-byte new name
    const whole = Buffer.concat([f1, f2, bytes(0x82)]);
    decodeAll(new HpackDecoder(opts), whole);
    const boundaries = new Set([0, f1.length, f1.length + f2.length, whole.length]);
    for (let cut = 1; cut < whole.length; cut++) {
      if (boundaries.has(cut)) continue;
      assert.throws(() => new HpackDecoder(opts).decode(whole.subarray(0, cut), []), (err: unknown) => err instanceof HpackError && /truncated|past the end/.test(err.message), `cut at ${cut}`);
    }
  });

  // Huffman strings (§5.2): 'a' is 00011, EOS 30 ones, '\n' 30 bits 111…1100.
  test('Huffman padding longer than 7 bits', () => twin(bytes(0x00, 1, 'x', 0x81, 0x1f), bytes(0x00, 1, 'x', 0x82, 0x1f, 0xff), /padding longer than 7 bits/));
  test('Huffman padding that is not the most significant bits of EOS', () => twin(bytes(0x00, 1, 'x', 0x81, 0x1f), bytes(0x00, 1, 'x', 0x81, 0x1e), /not a prefix of EOS/));
  test('EOS symbol inside a Huffman string', () => twin(bytes(0x00, 1, 'x', 0x84, 0xff, 0xff, 0xff, 0xf3), bytes(0x00, 1, 'x', 0x84, 0xff, 0xff, 0xff, 0xff), /EOS symbol/));
});

describe('dynamic table and header list size', () => {
  test('eviction (§4.4): oldest first; an entry larger than the table empties it', () => {
    const dec = new HpackDecoder({ maxTableSize: 100, maxHeaderListSize: 1 << 20 });
    decodeAll(dec, bytes(0x40, 1, 'a', 10, 'x'.repeat(10))); // 43 bytes
    decodeAll(dec, bytes(0x40, 1, 'b', 10, 'y'.repeat(10))); // 86
    assert.deepEqual(decodeAll(dec, bytes(0xbe, 0xbf)), ['b', 'y'.repeat(10), 'a', 'x'.repeat(10)]);
    decodeAll(dec, bytes(0x40, 1, 'c', 10, 'z'.repeat(10))); // evicts a
    assert.deepEqual([dec.tableLength, dec.tableSize], [2, 86]);
    assert.throws(() => dec.decode(bytes(0xc0), []), HpackError);
    // name from entry 62 (c), entry of 101 bytes: larger than the table, which ends empty (and the name was read first)
    assert.deepEqual(decodeAll(dec, bytes(0x7e, 68, 'w'.repeat(68))), ['c', 'w'.repeat(68)]);
    assert.deepEqual([dec.tableLength, dec.tableSize], [0, 0]);
    assert.throws(() => dec.decode(bytes(0xbe), []), /index 62 beyond/);
  });

  test('a size update evicts; the table can grow back to the advertised size', () => {
    const dec = new HpackDecoder({ maxTableSize: 200, maxHeaderListSize: 1 << 20 });
    for (const c of 'abcd') decodeAll(dec, bytes(0x40, 1, c, 10, c.repeat(10)));
    assert.equal(dec.tableLength, 4);
    decodeAll(dec, bytes(0x3f, 60, 0x82)); // size update to 31 + 60 = 91: two entries of 43 remain
    assert.deepEqual(decodeAll(dec, bytes(0xbe, 0xbf)), ['d', 'd'.repeat(10), 'c', 'c'.repeat(10)]);
    assert.equal(dec.tableLength, 2);
    decodeAll(dec, bytes(0x3f, 0xa9, 0x01, 0x82)); // back to 31 + 169 = 200
    for (const c of 'ef') decodeAll(dec, bytes(0x40, 1, c, 10, c.repeat(10)));
    assert.equal(dec.tableLength, 4);
  });

  test('above maxHeaderListSize: -1, the fields that fit, and the table stays in sync', () => {
    const dec = new HpackDecoder({ maxHeaderListSize: 140 });
    const out: string[] = [];
    // 34 + (indexed :method GET) 42 + 34 = 110, then 64 more: 174
    const size = dec.decode(bytes(0x40, 1, 'a', 1, 'b', 0x82, 0x40, 1, 'c', 1, 'd', 0x40, 1, 'e', 31, 'f'.repeat(31)), out);
    assert.equal(size, -1);
    assert.deepEqual(out, ['a', 'b', ':method', 'GET', 'c', 'd']);
    assert.deepEqual(decodeAll(dec, bytes(0xbe, 0xbf, 0xc0)), ['e', 'f'.repeat(31), 'c', 'd', 'a', 'b']);
  });
});

// ---- 5. Huffman ----

function huff(s: string): Buffer {
  const b = Buffer.alloc(huffmanEncodedLength(s));
  assert.equal(huffmanEncode(s, b, 0), b.length);
  return b;
}

describe('Huffman code (RFC 7541 Appendix B)', () => {
  let py: PyHpack | undefined;
  before(() => {
    if (!toolMissing('python3-h2')) py = PyHpack.start();
  });
  after(() => py?.close());

  test('RFC 7541 C.4.1: www.example.com', () => {
    assert.equal(huff('www.example.com').toString('hex'), 'f1e3c2e5f23a6ba0ab90f4ff');
  });

  test('all 256 byte values, alone and all together, match python byte for byte and decode back', async (t) => {
    if (!needTool(t, 'python3-h2')) return;
    const strings = Array.from({ length: 256 }, (_, b) => String.fromCharCode(b));
    strings.push(strings.join(''), strings.slice().reverse().join(''), '');
    const { coded } = await py!.call({ op: 'huffman', strings });
    strings.forEach((s, i) => {
      const ours = huff(s);
      assert.equal(ours.toString('hex'), coded[i], `byte string ${i}`);
      assert.equal(huffmanDecode(ours, 0, ours.length), s);
    });
  });

  test('random strings of random lengths match python and decode back', async (t) => {
    if (!needTool(t, 'python3-h2')) return;
    const rnd = seeded(51);
    const strings = Array.from({ length: 2000 }, () => chars(rnd, int(rnd, 0, rnd() < 0.9 ? 40 : 600), rnd() < 0.5 ? () => int(rnd, 0x20, 0x7e) : () => int(rnd, 0, 255)));
    const { coded } = await py!.call({ op: 'huffman', strings });
    strings.forEach((s, i) => {
      const ours = huff(s);
      assert.equal(ours.toString('hex'), coded[i], `string ${i}`);
      const padded = Buffer.concat([Buffer.from([7]), ours, Buffer.from([9])]);
      assert.equal(huffmanDecode(padded, 1, 1 + ours.length), s, `string ${i} decoded from the middle of a buffer`);
    });
  });
});
