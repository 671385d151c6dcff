// Integration harness for the sidecar on real loopback sockets: a control
// plane on a temporary config directory (YAML written, replaced and removed
// as files, as a user would), sidecars started in-process on free ports,
// upstream servers (node:http, and raw `net` servers that misbehave on
// purpose) that count what reaches them, and raw-socket clients that see
// exactly the bytes the proxy writes.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import { startControlPlane, type ControlPlane, type ControlPlaneOptions } from '../../src/control/control-plane';
import { silentLogger, type Logger } from '../../src/observe/log';
import type { ProxyConfig } from '../../src/proxy/config/types';
import { startProxy, type Proxy, type ProxyOptions } from '../../src/proxy/proxy';
import { uncaughtErrors } from '../../src/proxy/last-resort';
import type { TracingOptions } from '../../src/observe/tracing/proxy-tracer';
import type { Runtime } from '../../src/proxy/runtime';
import { tempDir, waitFor } from './tmp';

export { waitFor } from './tmp';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Options for every integration test: bounded in time. */
export const T = { timeout: 15_000 };

/**
 * Call first in a file's `after`: if something still holds the event loop
 * 30 s later (a connection nobody closed), the file fails instead of
 * hanging the suite. The timer is unref'd, so a clean exit never waits.
 * 30 s, not less: the teardown itself runs in that time (sidecars drain,
 * etcd members stop), and on a loaded CI machine it took over 10 s.
 */
export function exitGuard(): void {
  setTimeout(() => {
    process.stderr.write(`proxy-harness: handles still open 30 s after teardown began (${process.getActiveResourcesInfo().join(', ')}); failing the file\n`);
    process.exit(1);
  }, 30_000).unref();
}

import { freePort } from './ports';
export { freePort };

// ---- YAML ----

export interface ServiceYaml {
  name: string;
  namespace?: string;
  port?: number;
  protocol?: 'http' | 'http2' | 'grpc' | 'tcp';
  /** Endpoint ports on 127.0.0.1. */
  endpoints?: number[];
  dependsOn?: string[];
}

/** A weft.dev/v1 Service with static endpoints on 127.0.0.1. */
export function serviceYaml(s: ServiceYaml): string {
  const ns = s.namespace ? `, namespace: ${s.namespace}` : '';
  const endpoints = s.endpoints ? `\n  endpoints: [${s.endpoints.map((p) => `{ address: 127.0.0.1, port: ${p} }`).join(', ')}]` : '';
  const deps = s.dependsOn ? `\n  dependsOn: [${s.dependsOn.map((d) => `{ name: ${d} }`).join(', ')}]` : '';
  return `apiVersion: weft.dev/v1
kind: Service
metadata: { name: ${s.name}${ns} }
spec:
  ports: [{ name: p, port: ${s.port ?? 80}, protocol: ${s.protocol ?? 'http'} }]${endpoints}${deps}
`;
}

export const docs = (...parts: string[]) => parts.join('---\n');

// ---- control plane and sidecars ----

export interface SidecarOptions {
  nodeId?: string;
  service?: string;
  namespace?: string;
  /** Defaults to a free port. */
  outboundPort?: number;
  inboundPort?: number;
  appPort?: number;
  log?: Logger;
  /** Tracing on, to this collector. */
  tracing?: TracingOptions;
  /** More ProxyOptions (access log, recent requests, metrics). */
  proxy?: Partial<ProxyOptions>;
}

export class Sidecar {
  constructor(
    readonly proxy: Proxy,
    readonly outboundPort: number,
    readonly inboundPort: number,
  ) {}

  get adminPort(): number {
    return this.proxy.adminPort;
  }

  /** The runtime the data plane uses right now (what new requests see). */
  runtime(): Runtime {
    return this.proxy['runtime'];
  }

  config(): ProxyConfig {
    return this.runtime().config;
  }

  /** Waits until the data plane runs a config for which `pred` holds and every listener is bound. */
  async waitConfig(pred: (c: ProxyConfig) => boolean, timeoutMs = 3000, what = 'the config'): Promise<void> {
    await waitFor(() => this.proxy.ready() && pred(this.config()), timeoutMs, what);
  }

  endpointPorts(cluster: string): number[] {
    return (this.config().endpoints.get(cluster)?.localities ?? []).flatMap((l) => l.endpoints.map((e) => e.port)).sort((a, b) => a - b);
  }

  close(): Promise<void> {
    return this.proxy.close();
  }
}

export class Mesh {
  readonly sidecars: Sidecar[] = [];
  private xdsPort = 0;

  private constructor(
    readonly configDir: string,
    readonly dataDir: string,
    public cp: ControlPlane | undefined,
    /** Extra control plane options (e.g. a short certificate TTL); dev mode unless they say otherwise. */
    readonly cpOptions: Partial<ControlPlaneOptions> = {},
  ) {
    this.xdsPort = cp?.xdsPort ?? 0;
  }

  /** A control plane on a new config directory holding `files` (name → YAML). */
  static async start(files: Record<string, string> = {}, cpOptions: Partial<ControlPlaneOptions> = {}): Promise<Mesh> {
    const dir = tempDir(undefined, 'weft-proxy-it-');
    const configDir = path.join(dir, 'config');
    const dataDir = path.join(dir, 'data');
    fs.mkdirSync(configDir);
    const mesh = new Mesh(configDir, dataDir, undefined, cpOptions);
    for (const [name, yaml] of Object.entries(files)) mesh.write(name, yaml);
    await mesh.startControlPlane();
    return mesh;
  }

  get xdsAddress(): string {
    return `127.0.0.1:${this.xdsPort}`;
  }

  /** Writes (or replaces) a config file the way editors save: a temporary file renamed over it. */
  write(name: string, yaml: string): void {
    const file = path.join(this.configDir, name);
    const tmp = path.join(this.configDir, `.${name}.${process.pid}.tmp`);
    fs.writeFileSync(tmp, yaml);
    fs.renameSync(tmp, file);
  }

  remove(name: string): void {
    fs.rmSync(path.join(this.configDir, name), { force: true });
  }

  /** Starts the control plane (again), on the port it had before if it ran already. */
  async startControlPlane(): Promise<ControlPlane> {
    this.cp = await startControlPlane({ configDir: this.configDir, dataDir: this.dataDir, xdsPort: this.xdsPort, apiPort: 0, log: silentLogger, dev: true, ...this.cpOptions });
    this.xdsPort = this.cp.xdsPort;
    return this.cp;
  }

  async stopControlPlane(): Promise<void> {
    const cp = this.cp;
    this.cp = undefined;
    await cp?.close();
  }

  /** Starts a sidecar; `ready` (default) waits for its first config and bound listeners. */
  async sidecar(opts: SidecarOptions = {}, ready = true): Promise<Sidecar> {
    const outboundPort = opts.outboundPort ?? (await freePort());
    const inboundPort = opts.inboundPort ?? (await freePort());
    const proxy = await startProxy({
      xds: this.xdsAddress,
      nodeId: opts.nodeId ?? `sidecar-${this.sidecars.length + 1}`,
      service: opts.service,
      namespace: opts.namespace ?? 'default',
      outboundPort,
      inboundPort,
      appPort: opts.appPort,
      adminPort: 0,
      log: opts.log ?? silentLogger,
      tracing: opts.tracing,
      ...opts.proxy,
    });
    const sc = new Sidecar(proxy, outboundPort, inboundPort);
    this.sidecars.push(sc);
    if (ready) await proxy.waitReady(5000);
    return sc;
  }

  /** The control plane's view of a node: xDS type → SYNCED | STALE | NACKED. */
  nodeStates(nodeId: string): Record<string, string> {
    const node = this.cp?.xds.status().find((n) => n.nodeId === nodeId);
    return Object.fromEntries((node?.types ?? []).map((t) => [t.type, t.state]));
  }

  async close(): Promise<void> {
    for (const c of RawClient.open) c.reset(); // a FIN would read as a half-close and keep the sidecar's connection
    for (const sc of this.sidecars.splice(0)) await sc.close().catch(() => {});
    await this.stopControlPlane();
    // The sidecars' last-resort guard kept the process alive through an error no handler caught: that is a bug.
    assert.equal(uncaughtErrors(), 0, 'an error escaped every handler and reached the last-resort guard (see the error log line)');
  }
}

// ---- upstreams ----

export interface SeenRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  body: Buffer;
  httpVersion: string;
}

/**
 * A node:http upstream that counts connections and requests. The default
 * handler answers 200 with JSON: its name, and the request's method, url,
 * headers and body length.
 */
export class HttpUpstream {
  connections = 0;
  requests = 0;
  readonly seen: SeenRequest[] = [];
  port = 0;
  handler: ((req: http.IncomingMessage, res: http.ServerResponse, body: Buffer) => void) | undefined;
  private readonly sockets = new Set<net.Socket>();
  readonly server: http.Server;

  constructor(readonly name: string) {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        this.requests++;
        this.seen.push({ method: req.method!, url: req.url!, headers: req.headers, rawHeaders: req.rawHeaders, body, httpVersion: req.httpVersion });
        if (this.handler) return this.handler(req, res, body);
        const out = JSON.stringify({ name: this.name, method: req.method, url: req.url, headers: req.headers, bodyLength: body.length });
        res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': this.name, 'content-length': Buffer.byteLength(out) });
        res.end(out);
      });
    });
    this.server.keepAliveTimeout = 30_000;
    this.server.on('connection', (s: net.Socket) => {
      this.connections++;
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
  }

  static async start(name: string, port = 0): Promise<HttpUpstream> {
    const u = new HttpUpstream(name);
    await new Promise<void>((resolve, reject) => {
      u.server.once('error', reject);
      u.server.listen(port, '127.0.0.1', () => resolve());
    });
    u.port = (u.server.address() as net.AddressInfo).port;
    return u;
  }

  get openConnections(): number {
    return this.sockets.size;
  }

  reset(): void {
    this.connections = 0;
    this.requests = 0;
    this.seen.length = 0;
    this.handler = undefined;
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** A raw TCP upstream whose behaviour per connection is a function: for servers that misbehave. */
export class RawUpstream {
  connections = 0;
  bytes = 0;
  port = 0;
  readonly received: Buffer[] = [];
  private readonly sockets = new Set<net.Socket>();
  readonly server: net.Server;

  constructor(public onConnection: (socket: net.Socket, upstream: RawUpstream) => void) {
    this.server = net.createServer({ allowHalfOpen: true }, (socket) => {
      this.connections++;
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      socket.on('error', () => {});
      socket.on('data', (c: Buffer) => {
        this.bytes += c.length;
        this.received.push(c);
      });
      this.onConnection(socket, this);
    });
  }

  static async start(onConnection: (socket: net.Socket, upstream: RawUpstream) => void, port = 0): Promise<RawUpstream> {
    const u = new RawUpstream(onConnection);
    await new Promise<void>((resolve, reject) => {
      u.server.once('error', reject);
      u.server.listen(port, '127.0.0.1', () => resolve());
    });
    u.port = (u.server.address() as net.AddressInfo).port;
    return u;
  }

  text(): string {
    return Buffer.concat(this.received).toString('latin1');
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** Calls `cb` once per complete request head received on `socket` (bodies are not expected). */
export function onRequestHeads(socket: net.Socket, cb: (head: string) => void): void {
  let buf = '';
  socket.on('data', (c: Buffer) => {
    buf += c.toString('latin1');
    for (let i = buf.indexOf('\r\n\r\n'); i >= 0; i = buf.indexOf('\r\n\r\n')) {
      const head = buf.slice(0, i + 4);
      buf = buf.slice(i + 4);
      cb(head);
    }
  });
}

// ---- clients ----

export interface HttpResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  text: string;
  json<T = any>(): T;
}

export interface RequestOptions {
  host: string;
  path?: string;
  method?: string;
  headers?: http.OutgoingHttpHeaders;
  body?: string | Buffer;
  agent?: http.Agent | false;
  timeoutMs?: number;
}

/** One request through a sidecar's outbound listener with node:http. */
export function request(port: number, opts: RequestOptions): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1',
      port,
      method: opts.method ?? 'GET',
      path: opts.path ?? '/',
      headers: { host: opts.host, ...opts.headers },
      agent: opts.agent ?? false,
      timeout: opts.timeoutMs ?? 5000,
    });
    req.on('timeout', () => req.destroy(new Error(`request to ${opts.host}${opts.path ?? '/'} timed out`)));
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        const text = body.toString('utf8');
        resolve({ status: res.statusCode!, headers: res.headers, body, text, json: () => JSON.parse(text) });
      });
    });
    req.end(opts.body);
  });
}

export interface RawResponse {
  statusLine: string;
  status: number;
  /** Lower-cased names; repeated fields joined with ", ". */
  headers: Record<string, string>;
  rawHead: string;
  body: Buffer;
  /** Trailer fields of a chunked body. */
  trailers: Record<string, string>;
}

/**
 * A client on a raw socket: writes bytes exactly as given and parses the
 * responses itself, so the test sees what the proxy wrote (and whether it
 * closed the connection).
 */
export class RawClient {
  /** Clients not closed yet: Mesh.close() destroys them so a failed test cannot hold a sidecar open. */
  static readonly open = new Set<RawClient>();
  /** Received bytes not taken yet are store[from, to); appends double the store, so taking in a large body stays linear. */
  private store = Buffer.alloc(0);
  private from = 0;
  private to = 0;
  ended = false;
  closed = false;
  private waiters: (() => void)[] = [];

  private constructor(readonly socket: net.Socket) {
    RawClient.open.add(this);
    socket.on('data', (c: Buffer) => {
      this.append(c);
      this.wake();
    });
    socket.on('end', () => {
      this.ended = true;
      this.wake();
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      RawClient.open.delete(this);
      this.closed = true;
      this.ended = true;
      this.wake();
    });
  }

  static connect(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
      s.setNoDelay(true);
      s.once('error', reject);
      s.once('connect', () => {
        s.removeListener('error', reject);
        resolve(new RawClient(s));
      });
    });
  }

  write(data: string | Buffer): void {
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  }

  /** Half-closes: the client sends FIN and keeps reading. */
  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }

  /** Aborts with a TCP RST (a FIN alone reads as a half-close, which the proxy honours). */
  reset(): void {
    this.socket.resetAndDestroy();
  }

  get buffered(): Buffer {
    return this.buf;
  }

  /** The bytes received and not taken yet (a view: taken bytes are never written over). */
  private get buf(): Buffer {
    return this.store.subarray(this.from, this.to);
  }

  private append(c: Buffer): void {
    if (this.to + c.length > this.store.length) {
      const live = this.to - this.from;
      const grown = Buffer.allocUnsafe(Math.max(64 * 1024, 2 * (live + c.length)));
      this.store.copy(grown, 0, this.from, this.to);
      this.store = grown;
      this.from = 0;
      this.to = live;
    }
    c.copy(this.store, this.to);
    this.to += c.length;
  }

  private take(n: number): Buffer {
    const out = this.store.subarray(this.from, this.from + n);
    this.from += n;
    return out;
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Waits until `check` holds on the received bytes, the peer closes, or the timeout. */
  private async until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!check()) {
      if (this.ended) throw new Error(`connection ended while waiting for ${what}; got ${JSON.stringify(this.buf.toString('latin1').slice(0, 300))}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; got ${JSON.stringify(this.buf.toString('latin1').slice(0, 300))}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Takes `n` raw bytes. */
  async readBytes(n: number, timeoutMs = 3000): Promise<Buffer> {
    await this.until(() => this.buf.length >= n, timeoutMs, `${n} bytes`);
    return this.take(n);
  }

  /** Takes bytes up to and including `marker`. */
  async readUntil(marker: string, timeoutMs = 3000): Promise<string> {
    const m = Buffer.from(marker, 'latin1');
    await this.until(() => this.buf.indexOf(m) >= 0, timeoutMs, JSON.stringify(marker));
    const end = this.buf.indexOf(m) + m.length;
    return this.take(end).toString('latin1');
  }

  /** Reads one response; `method` tells whether a body follows (HEAD has none). */
  async readResponse(method = 'GET', timeoutMs = 3000): Promise<RawResponse> {
    const rawHead = await this.readUntil('\r\n\r\n', timeoutMs);
    const lines = rawHead.slice(0, -4).split('\r\n');
    const statusLine = lines[0];
    const status = Number(statusLine.split(' ')[1]);
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const i = line.indexOf(':');
      const name = line.slice(0, i).trim().toLowerCase();
      const value = line.slice(i + 1).trim();
      headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
    }
    const res: RawResponse = { statusLine, status, headers, rawHead, body: Buffer.alloc(0), trailers: {} };
    if (method === 'HEAD' || (status >= 100 && status < 200) || status === 204 || status === 304) return res;
    if (headers['transfer-encoding'] !== undefined) {
      assert.match(headers['transfer-encoding'], /chunked$/i);
      const parts: Buffer[] = [];
      for (;;) {
        const sizeLine = await this.readUntil('\r\n', timeoutMs);
        const size = parseInt(sizeLine, 16);
        assert.ok(Number.isFinite(size), `chunk size line ${JSON.stringify(sizeLine)}`);
        if (size === 0) break;
        parts.push(Buffer.from(await this.readBytes(size, timeoutMs)));
        assert.equal((await this.readBytes(2, timeoutMs)).toString('latin1'), '\r\n');
      }
      for (;;) {
        const line = await this.readUntil('\r\n', timeoutMs);
        if (line === '\r\n') break;
        const i = line.indexOf(':');
        res.trailers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
      }
      res.body = Buffer.concat(parts);
    } else if (headers['content-length'] !== undefined) {
      res.body = Buffer.from(await this.readBytes(Number(headers['content-length']), timeoutMs));
    } else {
      await this.waitEnd(timeoutMs);
      res.body = this.take(this.to - this.from);
    }
    return res;
  }

  /** Waits until the peer has ended its side (FIN) or the socket closed. */
  async waitEnd(timeoutMs = 3000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.ended) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`the connection was not closed within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }
}

/** Sends `bytes` on a new connection and returns the one response. */
export async function rawRoundTrip(port: number, bytes: string | Buffer, method = 'GET', timeoutMs = 3000): Promise<RawResponse> {
  const c = await RawClient.connect(port);
  try {
    c.write(bytes);
    return await c.readResponse(method, timeoutMs);
  } finally {
    c.destroy();
  }
}

/** Parses Prometheus text exposition into samples; throws on a malformed line. */
export function parsePrometheus(text: string): { name: string; labels: Record<string, string>; value: number }[] {
  const samples: { name: string; labels: Record<string, string>; value: number }[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('# HELP ')) continue;
    const typeLine = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (typeLine) {
      assert.ok(!types.has(typeLine[1]), `TYPE given twice for ${typeLine[1]}`);
      types.set(typeLine[1], typeLine[2]);
      continue;
    }
    assert.ok(!line.startsWith('#'), `unexpected comment line ${JSON.stringify(line)}`);
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (-?[0-9.e+]+|NaN|\+Inf|-Inf)$/.exec(line);
    assert.ok(m, `malformed sample line ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    if (m[3]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/g;
      let consumed = 0;
      for (let l; (l = re.exec(m[3])); ) {
        labels[l[1]] = l[2].replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
        consumed = re.lastIndex;
      }
      assert.equal(consumed, m[3].length, `malformed labels in ${JSON.stringify(line)}`);
    }
    const base = m[1].replace(/_(bucket|sum|count)$/, '');
    assert.ok(types.has(m[1]) || types.has(base), `sample ${m[1]} without a TYPE line`);
    samples.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return samples;
}

/** GET on a sidecar's admin port. */
export async function admin(sc: Sidecar, p: string): Promise<HttpResult> {
  return request(sc.adminPort, { host: '127.0.0.1', path: p });
}
