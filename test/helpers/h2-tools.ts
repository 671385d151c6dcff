// HTTP/2 test tools: the python hand-crafted-frame client (h2-frames.py) as
// a long-lived process that runs one case per request, nghttp and h2load as
// child processes (always spawned asynchronously: the sidecar under test runs
// in this process's event loop), a counting h2c upstream, and a raw-socket
// HTTP/2 client that writes frames exactly as given.
import * as assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as fs from 'node:fs';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import * as path from 'node:path';
import * as tls from 'node:tls';
import type { TestContext } from 'node:test';

/** The repository root (the directory holding package.json), from src or from dist. */
export const ROOT = (() => {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`no package.json above ${__dirname}`);
  }
})();

/** Debian's python3: it has the h2/hpack modules (python3-h2); the `python3` on PATH may not. */
export const PYTHON = '/usr/bin/python3';
export const FRAMES_PY = path.join(ROOT, 'test/helpers/h2-frames.py');

// ---- external tools ----

export type Tool = 'python3-h2' | 'nghttp' | 'h2load' | 'haproxy';
const APT: Record<Tool, string> = { 'python3-h2': 'python3-h2', nghttp: 'nghttp2-client', h2load: 'nghttp2-client', haproxy: 'haproxy' };
const missingCache = new Map<Tool, string | undefined>();

/** Why `tool` cannot run here, or undefined when it can. Cached; checked once per process. */
export function toolMissing(tool: Tool): string | undefined {
  if (missingCache.has(tool)) return missingCache.get(tool);
  let why: string | undefined;
  if (tool === 'python3-h2') {
    const r = spawnSync(PYTHON, ['-c', 'import h2, hpack'], { encoding: 'utf8' });
    if (r.error || r.status !== 0) why = `${PYTHON} with the h2 module is not available (${r.error?.message ?? r.stderr.trim()})`;
  } else {
    const bin = tool === 'haproxy' ? '/usr/sbin/haproxy' : tool;
    const r = spawnSync('sh', ['-c', `command -v ${bin}`], { encoding: 'utf8' });
    if (r.status !== 0) why = `${tool} is not installed`;
  }
  if (why) why += ` (apt-get install ${APT[tool]})`;
  missingCache.set(tool, why);
  return why;
}

/**
 * True when `tool` is there. Otherwise, under CI (CI=true) the test fails;
 * elsewhere it is skipped with the reason.
 */
export function needTool(t: TestContext, tool: Tool): boolean {
  const why = toolMissing(tool);
  if (!why) return true;
  if (process.env.CI === 'true') throw new Error(`${why}: CI must install it (.ci/run)`);
  t.skip(why);
  return false;
}

export interface ToolResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end without blocking the event loop; killed (and rejected) after `timeoutMs`. */
export function runTool(cmd: string, args: string[], timeoutMs: number): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${cmd} ${args.join(' ').slice(0, 200)} did not finish within ${timeoutMs} ms; stdout: ${stdout.slice(-2000)} stderr: ${stderr.slice(-2000)}`));
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

// ---- the python frame client ----

/** What h2-frames.py saw for one case (see the docstring there). */
export interface CaseOutcome {
  case: string;
  status: number | null;
  rst: string | null;
  goaway: string | null;
  goaway_last_stream: number | null;
  goaway_debug: string | null;
  goaways: string[];
  closed: boolean;
  followup: number | null;
  ok: number;
  timeout: boolean;
  info: Record<string, any>;
  ms: number;
  error: string | null;
}

export interface FramesTarget {
  port: number;
  host?: string;
  authority: string;
  /** PEM file paths: the client certificate chain, its key, and the CA to verify the server with. */
  tls?: { cert: string; key: string; ca?: string; servername?: string };
  /** Seconds each wait of a case may take before the case reports a timeout. */
  timeout?: number;
  /** Seconds to wait for the TCP close after an error GOAWAY (default 1). */
  linger?: number;
  /** :authority of the case's well-formed requests (default: authority). */
  followup_authority?: string;
}

/** One line of the table: how the server answered a case. */
export function describeOutcome(o: CaseOutcome): string {
  if (o.error) return `error (${o.error})`;
  const parts: string[] = [];
  if (o.status !== null) parts.push(String(o.status));
  if (o.rst) parts.push(`RST ${o.rst}`);
  if (o.goaway) parts.push(`GOAWAY ${o.goaway}`);
  if (o.closed) parts.push('closed');
  if (o.info.ignored) parts.push('ignored');
  if (o.timeout) parts.push('timeout');
  return parts.join(' + ') || 'no reaction';
}

/**
 * h2-frames.py in --serve mode: one process for a whole test file, one case
 * at a time (each on its own connection), each result a JSON line.
 */
export class H2Frames {
  readonly cases: string[] = [];
  private lines: string[] = [];
  private waiter: ((line: string | undefined) => void) | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private exited = false;
  private stderr = '';

  private constructor(private readonly child: ChildProcessWithoutNullStreams) {
    let buf = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      buf += d;
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        this.lines.push(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
      this.wake();
    });
    child.stderr.on('data', (d) => (this.stderr = (this.stderr + d).slice(-4000)));
    child.on('exit', () => {
      this.exited = true;
      this.wake();
    });
  }

  static async start(): Promise<H2Frames> {
    const child = spawn(PYTHON, [FRAMES_PY, '--serve'], { stdio: ['pipe', 'pipe', 'pipe'] });
    const f = new H2Frames(child);
    const ready = JSON.parse(await f.nextLine(10_000));
    assert.ok(ready.ready, `h2-frames.py did not start: ${JSON.stringify(ready)}`);
    f.cases.push(...ready.cases);
    return f;
  }

  private wake(): void {
    const w = this.waiter;
    if (!w) return;
    if (this.lines.length > 0) {
      this.waiter = undefined;
      w(this.lines.shift());
    } else if (this.exited) {
      this.waiter = undefined;
      w(undefined);
    }
  }

  private nextLine(timeoutMs: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        reject(new Error(`h2-frames.py gave no answer within ${timeoutMs} ms; stderr: ${this.stderr}`));
      }, timeoutMs);
      this.waiter = (line) => {
        clearTimeout(timer);
        if (line === undefined) reject(new Error(`h2-frames.py exited; stderr: ${this.stderr}`));
        else resolve(line);
      };
      this.wake();
    });
  }

  /** Runs one case; cases never overlap (a queue), so counters read between them belong to one case. */
  run(name: string, target: FramesTarget, timeoutMs = 60_000): Promise<CaseOutcome> {
    assert.ok(this.cases.includes(name), `h2-frames.py has no case ${name}`);
    const next = this.queue.then(async () => {
      this.child.stdin.write(JSON.stringify({ case: name, ...target }) + '\n');
      return JSON.parse(await this.nextLine(timeoutMs)) as CaseOutcome;
    });
    this.queue = next.catch(() => {});
    return next;
  }

  close(): Promise<void> {
    if (this.exited) return Promise.resolve();
    return new Promise((resolve) => {
      this.child.once('exit', () => resolve());
      this.child.stdin.end();
      setTimeout(() => this.child.kill('SIGKILL'), 3000).unref();
    });
  }
}

// ---- a counting h2c upstream ----

export interface H2Seen {
  headers: http2.IncomingHttpHeaders;
  /** The fields as received, names and values in order (what the sidecar sent, after the upstream's nghttp2). */
  rawHeaders: string[];
  body: Buffer;
  trailers: http2.IncomingHttpHeaders | undefined;
}

type H2Handler = (stream: http2.ServerHttp2Stream, seen: H2Seen) => void;

/**
 * A node:http2 (h2c) upstream that counts sessions, streams that arrive and
 * requests that complete (END_STREAM reached it: the request stream's 'end'
 * on a stream not reset), by their `x-case` header too, and how each stream
 * closed. By default it answers 200 with JSON.
 *
 * Node emits 'end' on a stream the peer reset too (Http2Stream._destroy pushes
 * EOF, after the 'aborted' event), so 'end' on a destroyed stream is no
 * complete request: it is counted in `resetBy`, not `completed`.
 */
export class H2Upstream {
  sessions = 0;
  arrived = 0;
  completed = 0;
  /** Streams that arrived and are not closed yet. */
  openStreams = 0;
  readonly arrivedBy = new Map<string, number>();
  readonly completedBy = new Map<string, number>();
  /** Streams closed with an RST_STREAM code (either side's), by x-case and code name. */
  readonly resetBy = new Map<string, Map<string, number>>();
  /** The x-case of every stream that closed with PROTOCOL_ERROR before its request ended: this upstream's nghttp2 found it malformed. */
  readonly malformed: string[] = [];
  readonly seen: H2Seen[] = [];
  handler: H2Handler | undefined;
  /** Sends GOAWAY and closes each session once its first response is written. */
  goawayAfterResponse = false;
  port = 0;
  private readonly live = new Set<http2.ServerHttp2Session>();
  readonly server: http2.Http2Server;

  constructor(readonly name: string) {
    this.server = http2.createServer();
    this.server.on('session', (s) => {
      this.sessions++;
      this.live.add(s);
      s.on('error', () => {});
      s.on('close', () => this.live.delete(s));
    });
    this.server.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, _flags: number, rawHeaders: string[] = []) => {
      stream.on('error', () => {});
      const session = stream.session; // a closed stream no longer knows it
      const tag = String(headers['x-case'] ?? '');
      this.arrived++;
      this.openStreams++;
      let ended = false;
      stream.once('close', () => {
        this.openStreams--;
        const code = stream.rstCode;
        if (code === undefined || code === 0) return;
        // PROTOCOL_ERROR on a stream whose request had not ended: this side's nghttp2 found what
        // it received malformed (e.g. END_STREAM after fewer DATA bytes than content-length).
        if (code === http2.constants.NGHTTP2_PROTOCOL_ERROR && !ended) this.malformed.push(tag || '(no x-case)');
        if (!tag) return;
        const codes = this.resetBy.get(tag) ?? new Map<string, number>();
        const name = ERROR_NAMES[code] ?? `code ${code}`;
        codes.set(name, (codes.get(name) ?? 0) + 1);
        this.resetBy.set(tag, codes);
      });
      if (tag) this.arrivedBy.set(tag, (this.arrivedBy.get(tag) ?? 0) + 1);
      const seen: H2Seen = { headers, rawHeaders, body: Buffer.alloc(0), trailers: undefined };
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('trailers', (t: http2.IncomingHttpHeaders) => (seen.trailers = t));
      const complete = (): boolean => {
        if (ended) return false;
        ended = true;
        seen.body = Buffer.concat(chunks);
        this.completed++;
        if (tag) this.completedBy.set(tag, (this.completedBy.get(tag) ?? 0) + 1);
        this.seen.push(seen);
        return true;
      };
      // END_STREAM followed by RST_STREAM in the same read: Node pushes the EOF, then emits 'aborted'
      // as it processes the reset, and 'end' only once the stream is destroyed. The request did
      // reach this upstream complete: count it so, whatever came after. (_readableState.ended: the
      // EOF was pushed; the stream is flowing, so Node delivers it as it arrives.)
      stream.once('aborted', () => {
        if ((stream as unknown as { _readableState?: { ended?: boolean } })._readableState?.ended) complete();
      });
      stream.on('end', () => {
        if (stream.destroyed || !complete()) return; // reset: see the class comment
        if (stream.closed) return;
        if (this.handler) return this.handler(stream, seen);
        const out = JSON.stringify({ name: this.name, method: headers[':method'], path: headers[':path'], bodyLength: seen.body.length });
        stream.respond({ ':status': 200, 'content-type': 'application/json', 'x-upstream': this.name });
        stream.end(out);
        if (this.goawayAfterResponse) stream.once('close', () => session?.close());
      });
    });
  }

  static async start(name: string): Promise<H2Upstream> {
    const u = new H2Upstream(name);
    await new Promise<void>((resolve, reject) => {
      u.server.once('error', reject);
      u.server.listen(0, '127.0.0.1', () => resolve());
    });
    u.port = (u.server.address() as net.AddressInfo).port;
    return u;
  }

  get openSessions(): number {
    return this.live.size;
  }

  close(): Promise<void> {
    for (const s of this.live) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

// ---- a raw HTTP/2 client: frames written exactly as given ----

export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
export const FrameType = { DATA: 0, HEADERS: 1, PRIORITY: 2, RST_STREAM: 3, SETTINGS: 4, PUSH_PROMISE: 5, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 } as const;
export const Flag = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4, PADDED: 0x8, PRIORITY: 0x20 } as const;
export const Setting = { HEADER_TABLE_SIZE: 1, ENABLE_PUSH: 2, MAX_CONCURRENT_STREAMS: 3, INITIAL_WINDOW_SIZE: 4, MAX_FRAME_SIZE: 5, MAX_HEADER_LIST_SIZE: 6 } as const;
export const ERROR_NAMES = ['NO_ERROR', 'PROTOCOL_ERROR', 'INTERNAL_ERROR', 'FLOW_CONTROL_ERROR', 'SETTINGS_TIMEOUT', 'STREAM_CLOSED', 'FRAME_SIZE_ERROR', 'REFUSED_STREAM', 'CANCEL', 'COMPRESSION_ERROR', 'CONNECT_ERROR', 'ENHANCE_YOUR_CALM', 'INADEQUATE_SECURITY', 'HTTP_1_1_REQUIRED'];

export function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length & 0xffffff, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId >>> 0, 5);
  return Buffer.concat([head, payload]);
}

export function settingsFrame(pairs: [number, number][], ack = false): Buffer {
  const p = Buffer.alloc(pairs.length * 6);
  pairs.forEach(([k, v], i) => {
    p.writeUInt16BE(k, i * 6);
    p.writeUInt32BE(v >>> 0, i * 6 + 2);
  });
  return frame(FrameType.SETTINGS, ack ? Flag.ACK : 0, 0, p);
}

export function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

function hpackInt(value: number, prefixBits: number, first = 0): number[] {
  const limit = (1 << prefixBits) - 1;
  if (value < limit) return [first | value];
  const out = [first | limit];
  value -= limit;
  while (value >= 128) {
    out.push((value & 0x7f) | 0x80);
    value = Math.floor(value / 128);
  }
  out.push(value);
  return out;
}

/** A header block of literal fields without indexing, new names, no Huffman: bytes exactly as given. */
export function literalBlock(fields: [string, string][]): Buffer {
  const parts: Buffer[] = [];
  for (const [n, v] of fields) {
    const name = Buffer.from(n, 'latin1');
    const value = Buffer.from(v, 'latin1');
    parts.push(Buffer.from([0, ...hpackInt(name.length, 7)]), name, Buffer.from(hpackInt(value.length, 7)), value);
  }
  return Buffer.concat(parts);
}

const STATIC_STATUS: Record<number, number> = { 8: 200, 9: 204, 10: 206, 11: 304, 12: 400, 13: 404, 14: 500 };
const HUFFMAN_DIGITS: [number, number, string][] = [
  [0b00000, 5, '0'], [0b00001, 5, '1'], [0b00010, 5, '2'], [0b011001, 6, '3'], [0b011010, 6, '4'],
  [0b011011, 6, '5'], [0b011100, 6, '6'], [0b011101, 6, '7'], [0b011110, 6, '8'], [0b011111, 6, '9'],
];

/**
 * The :status of a response header block, for a client that set
 * SETTINGS_HEADER_TABLE_SIZE=0 (so no dynamic table is referenced): servers
 * put :status first, as a static index or a literal with name index 8.
 * Returns undefined for anything else.
 */
export function statusOf(block: Buffer): number | undefined {
  let i = 0;
  const int = (prefix: number): number => {
    const limit = (1 << prefix) - 1;
    let v = block[i++] & limit;
    if (v < limit) return v;
    for (let m = 0; ; m += 7) {
      const b = block[i++];
      v += (b & 0x7f) * 2 ** m;
      if ((b & 0x80) === 0) return v;
    }
  };
  while (i < block.length && (block[i] & 0xe0) === 0x20) int(5); // dynamic table size updates
  if (i >= block.length) return undefined;
  const first = block[i];
  if (first & 0x80) return STATIC_STATUS[int(7)];
  const prefix = (first & 0xc0) === 0x40 ? 6 : 4;
  if (int(prefix) !== 8) return undefined;
  const huffman = (block[i] & 0x80) !== 0;
  const len = int(7);
  const bytes = block.subarray(i, i + len);
  if (!huffman) return Number(bytes.toString('latin1'));
  let bits = '';
  for (const b of bytes) bits += b.toString(2).padStart(8, '0');
  let out = '';
  for (let p = 0; p < bits.length; ) {
    const hit = HUFFMAN_DIGITS.find(([code, n]) => p + n <= bits.length && parseInt(bits.slice(p, p + n), 2) === code);
    if (!hit) break; // the rest is EOS padding (all ones)
    out += hit[2];
    p += hit[1];
  }
  return out.length === 3 ? Number(out) : undefined;
}

export interface RawFrame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
}

/**
 * An HTTP/2 client on a raw socket (net or TLS with ALPN h2): writes bytes
 * as given, parses every frame the server sends, ACKs SETTINGS and PING
 * (unless told not to), and records per stream the :status (see statusOf),
 * DATA bytes, END_STREAM and RST_STREAM, and the GOAWAY.
 */
export class RawH2 {
  static readonly open = new Set<RawH2>();
  readonly frames: RawFrame[] = [];
  readonly status = new Map<number, number | undefined>();
  readonly dataBytes = new Map<number, number>();
  readonly ended = new Set<number>();
  readonly rst = new Map<number, string>();
  goaway: { code: string; lastStreamId: number } | undefined;
  serverSettings = new Map<number, number>();
  closed = false;
  autoAck = true;
  /** Keep at most this many frames in `frames` (floods would fill memory otherwise). */
  keepFrames = 1000;
  private buf: Buffer = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  private pingSeq = 0;
  private acked = new Set<string>();

  private constructor(readonly socket: net.Socket) {
    RawH2.open.add(this);
    socket.on('data', (c: Buffer) => this.onData(c));
    socket.on('error', () => {});
    socket.on('close', () => {
      this.closed = true;
      RawH2.open.delete(this);
      this.wake();
    });
  }

  /** Connects, then (unless `preface: false`) writes the preface and a SETTINGS frame with `settings`. */
  static connect(port: number, opts: { tls?: tls.ConnectionOptions; settings?: [number, number][]; preface?: boolean } = {}): Promise<RawH2> {
    return new Promise((resolve, reject) => {
      const socket = opts.tls
        ? tls.connect({ host: '127.0.0.1', port, ALPNProtocols: ['h2'], ...opts.tls })
        : net.connect({ host: '127.0.0.1', port });
      socket.setNoDelay(true);
      socket.once('error', reject);
      socket.once(opts.tls ? 'secureConnect' : 'connect', () => {
        socket.removeListener('error', reject);
        const c = new RawH2(socket);
        if (opts.preface !== false) c.write(Buffer.concat([PREFACE, settingsFrame([[Setting.ENABLE_PUSH, 0], ...(opts.settings ?? [])])]));
        resolve(c);
      });
    });
  }

  write(data: Buffer): void {
    if (!this.socket.destroyed && this.socket.writable) this.socket.write(data);
  }

  /** A GET (or any request) with literal fields on `streamId`. */
  request(streamId: number, fields: [string, string][], endStream = true): void {
    this.write(frame(FrameType.HEADERS, Flag.END_HEADERS | (endStream ? Flag.END_STREAM : 0), streamId, literalBlock(fields)));
  }

  private onData(chunk: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    while (this.buf.length >= 9) {
      const len = this.buf.readUIntBE(0, 3);
      if (this.buf.length < 9 + len) break;
      const f: RawFrame = { type: this.buf[3], flags: this.buf[4], streamId: this.buf.readUInt32BE(5) & 0x7fffffff, payload: this.buf.subarray(9, 9 + len) };
      this.buf = this.buf.subarray(9 + len);
      this.onFrame(f);
    }
    this.wake();
  }

  private onFrame(f: RawFrame): void {
    if (this.frames.length < this.keepFrames) this.frames.push(f);
    switch (f.type) {
      case FrameType.SETTINGS:
        if (f.flags & Flag.ACK) break;
        for (let i = 0; i + 6 <= f.payload.length; i += 6) this.serverSettings.set(f.payload.readUInt16BE(i), f.payload.readUInt32BE(i + 2));
        if (this.autoAck) this.write(settingsFrame([], true));
        break;
      case FrameType.PING:
        if (f.flags & Flag.ACK) this.acked.add(f.payload.toString('hex'));
        else if (this.autoAck) this.write(frame(FrameType.PING, Flag.ACK, 0, f.payload));
        break;
      case FrameType.HEADERS: {
        let p = f.payload;
        if (f.flags & Flag.PADDED) p = p.subarray(1, p.length - p[0]);
        if (f.flags & Flag.PRIORITY) p = p.subarray(5);
        if (!this.status.has(f.streamId)) this.status.set(f.streamId, statusOf(p));
        if (f.flags & Flag.END_STREAM) this.ended.add(f.streamId);
        break;
      }
      case FrameType.DATA:
        this.dataBytes.set(f.streamId, (this.dataBytes.get(f.streamId) ?? 0) + f.payload.length);
        if (f.flags & Flag.END_STREAM) this.ended.add(f.streamId);
        break;
      case FrameType.RST_STREAM:
        this.rst.set(f.streamId, ERROR_NAMES[f.payload.readUInt32BE(0)] ?? `code ${f.payload.readUInt32BE(0)}`);
        break;
      case FrameType.GOAWAY:
        this.goaway ??= { lastStreamId: f.payload.readUInt32BE(0) & 0x7fffffff, code: ERROR_NAMES[f.payload.readUInt32BE(4)] ?? `code ${f.payload.readUInt32BE(4)}` };
        break;
    }
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Waits (on frames and the close, no polling) until `check` holds; rejects at the deadline. */
  async until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!check()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** A PING round trip: every frame written before it has been handled by the server. False if the connection ended first. */
  async ping(timeoutMs = 3000): Promise<boolean> {
    const payload = Buffer.alloc(8);
    payload.writeUInt32BE(0x7e57, 0);
    payload.writeUInt32BE(++this.pingSeq, 4);
    const key = payload.toString('hex');
    this.write(frame(FrameType.PING, 0, 0, payload));
    await this.until(() => this.acked.has(key) || this.closed || this.goaway !== undefined, timeoutMs, 'a PING ACK');
    return this.acked.has(key);
  }

  destroy(): void {
    this.socket.destroy();
  }

  /** Closes with a TCP RST, as a vanished client would. */
  reset(): void {
    if (!this.socket.destroyed) this.socket.resetAndDestroy();
  }

  /** Resolves once the socket is closed (after destroy() or the server's close). */
  whenClosed(timeoutMs = 3000): Promise<void> {
    return this.until(() => this.closed, timeoutMs, 'the connection to close');
  }
}

// ---- a well-formed request through node:http2 ----

export interface H2Response {
  status: number;
  headers: http2.IncomingHttpHeaders;
  body: string;
  trailers: http2.IncomingHttpHeaders | undefined;
}

export interface H2RequestOptions {
  /** TLS options for an https:// URL (client certificate, CA). */
  connect?: http2.SecureClientSessionOptions;
  body?: string;
  /** Request trailers, sent after the body. */
  trailers?: http2.OutgoingHttpHeaders;
  timeoutMs?: number;
}

/** One request on a new h2 session (h2c, or TLS for https://); the session is closed after. */
export function h2Request(url: string, headers: http2.OutgoingHttpHeaders, opts: H2RequestOptions = {}): Promise<H2Response> {
  const timeoutMs = opts.timeoutMs ?? 5000;
  return new Promise((resolve, reject) => {
    const session = http2.connect(url, opts.connect ?? {});
    const timer = setTimeout(() => {
      session.destroy();
      reject(new Error(`h2 request to ${url} ${headers[':authority']}${headers[':path'] ?? '/'} timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    session.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    const withBody = opts.body !== undefined || opts.trailers !== undefined;
    const req = session.request(headers, { endStream: !withBody, waitForTrailers: opts.trailers !== undefined });
    if (opts.trailers) req.on('wantTrailers', () => req.sendTrailers(opts.trailers!));
    if (withBody) req.end(opts.body ?? '');
    let res: http2.IncomingHttpHeaders = {};
    let body = '';
    let trailers: http2.IncomingHttpHeaders | undefined;
    req.setEncoding('utf8');
    req.on('response', (h) => (res = h));
    req.on('data', (d: string) => (body += d));
    req.on('trailers', (t) => (trailers = t));
    req.on('error', (err) => {
      clearTimeout(timer);
      session.destroy();
      reject(err);
    });
    req.on('end', () => {
      clearTimeout(timer);
      session.close();
      resolve({ status: Number(res[':status']), headers: res, body, trailers });
    });
  });
}
