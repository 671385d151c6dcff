// Request mirroring (Envoy's request_mirror_policies): a sampled copy of a
// request goes to another cluster, fire and forget. Its response is read and
// dropped, and it never slows the primary: a shadow is never waited for,
// never pauses the downstream, and is dropped when it cannot keep up (more
// than MAX_SHADOW_BUFFER bytes unwritten), when its cluster has no healthy
// endpoint or is at its request limit, or after SHADOW_TIMEOUT_MS. As in
// Envoy, the shadow's Host/:authority gets "-shadow" appended to the host
// name so the mirror can tell shadows from live traffic.
//
// Shadows to HTTP/1.1 clusters use a fresh connection each ("connection:
// close"), so a shadow response never has to be framed to reuse the
// connection; shadows to HTTP/2 clusters are streams on the cluster's
// session. An HTTP/1.1 request with a chunked body is not mirrored to an
// HTTP/2 cluster (its body would have to be de-chunked).
import * as net from 'node:net';
import type * as http2 from 'node:http2';
import type { Endpoint, RouteAction } from './config/types';
import { buildHead } from './http1/head-writer';
import { isH2Forbidden } from './http2/session-pool';
import type { ClusterRuntime, Runtime } from './runtime';
import type { MirrorStats } from './stats';
import type { H2ClientStream } from './http2/codec/client-stream';

/** Unwritten bytes a shadow may hold before it is dropped. */
const MAX_SHADOW_BUFFER = 1 << 20;
/** A shadow that has not finished by then is cut. */
const SHADOW_TIMEOUT_MS = 30_000;

/** A request as the mirror needs it. */
export interface MirroredRequest {
  method: string;
  path: string;
  /** Host (HTTP/1.1) or :authority (HTTP/2). */
  host: string;
  /** Regular header fields, flat name/value pairs. */
  headers: string[];
  /**
   * How the body bytes the shadow is given are framed: `raw-chunked` (an
   * HTTP/1.1 chunked body, forwarded as received), `length` (Content-Length,
   * or unframed HTTP/2 DATA of a known length), `stream` (unframed, length
   * unknown) or `none`.
   */
  body: 'none' | 'length' | 'raw-chunked' | 'stream';
  contentLength?: number;
}

export interface Shadow {
  write(chunk: Buffer): void;
  end(): void;
  /** The client went away mid-request: the shadow is cut too. */
  abort(): void;
}

/** Host name with "-shadow" appended, before any port. */
export function shadowHost(host: string): string {
  const m = /^(.*?)(:\d+)?$/.exec(host)!;
  return `${m[1]}-shadow${m[2] ?? ''}`;
}

/** Shadows for the route's sampled mirror policies; undefined when none samples in. */
export function startShadows(runtime: Runtime, mirrors: RouteAction['mirrors'], req: MirroredRequest, stats: MirrorStats): Shadow[] | undefined {
  let out: Shadow[] | undefined;
  for (const m of mirrors) {
    if (m.percent < 100 && Math.random() * 100 >= m.percent) continue;
    const cluster = runtime.cluster(m.cluster);
    const endpoint = cluster?.lb.pick(undefined);
    if (!cluster || !endpoint || cluster.load.active >= cluster.config.limits.maxRequests) {
      stats.count(stats.dropped, m.cluster);
      continue;
    }
    let shadow: Shadow | undefined;
    if (cluster.config.protocol === 'http1') shadow = new H1Shadow(cluster, endpoint, req, stats);
    else if (req.body !== 'raw-chunked') shadow = new H2Shadow(cluster, endpoint, req, stats);
    if (!shadow) {
      stats.count(stats.dropped, m.cluster);
      continue;
    }
    stats.count(stats.sent, m.cluster);
    (out ??= []).push(shadow);
  }
  return out;
}

/** Bookkeeping shared by both kinds: the cluster's request count, the timeout, one ending. */
abstract class ShadowBase implements Shadow {
  private done = false;
  private readonly timer: NodeJS.Timeout;

  constructor(
    protected readonly cluster: ClusterRuntime,
    private readonly endpoint: Endpoint,
    private readonly stats: MirrorStats,
  ) {
    cluster.load.started(endpoint);
    this.timer = setTimeout(() => this.drop(), SHADOW_TIMEOUT_MS);
    this.timer.unref();
  }

  abstract write(chunk: Buffer): void;
  abstract end(): void;
  protected abstract destroy(): void;

  abort(): void {
    this.drop();
  }

  /** The shadow failed or fell behind: cut it and count it dropped. */
  protected drop(): void {
    if (this.done) return;
    this.stats.count(this.stats.dropped, this.cluster.config.name);
    this.destroy();
    this.finished();
  }

  protected finished(): void {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.timer);
    this.cluster.load.ended(this.endpoint);
  }

  protected get closed(): boolean {
    return this.done;
  }
}

class H1Shadow extends ShadowBase {
  private readonly socket: net.Socket;
  /** Body framing the shadow adds itself (HTTP/2 DATA of unknown length → chunked). */
  private readonly chunkItself: boolean;

  constructor(cluster: ClusterRuntime, endpoint: Endpoint, req: MirroredRequest, stats: MirrorStats) {
    super(cluster, endpoint, stats);
    this.chunkItself = req.body === 'stream';
    const headers = req.headers.slice();
    if (req.body === 'length' && req.contentLength !== undefined) headers.push('content-length', String(req.contentLength));
    const head = buildHead(`${req.method} ${req.path} HTTP/1.1`, dropFraming(headers, req.body === 'length'), {
      changes: { add: [], remove: [], host: shadowHost(req.host) },
      chunked: req.body === 'raw-chunked' || req.body === 'stream',
      close: true,
    });
    this.socket = net.connect({ host: endpoint.address, port: endpoint.port, timeout: cluster.config.connectTimeoutMs });
    this.socket.setNoDelay(true);
    this.socket.on('timeout', () => {
      if (this.socket.connecting) this.drop();
    });
    this.socket.on('error', () => this.drop());
    this.socket.on('data', () => {}); // the response is read and dropped
    this.socket.on('close', () => this.finished());
    this.socket.write(head);
  }

  write(chunk: Buffer): void {
    if (this.closed) return;
    if (this.chunkItself) this.socket.write(`${chunk.length.toString(16)}\r\n`);
    this.socket.write(chunk);
    if (this.chunkItself) this.socket.write('\r\n');
    if (this.socket.writableLength > MAX_SHADOW_BUFFER) this.drop();
  }

  end(): void {
    if (this.closed) return;
    if (this.chunkItself) this.socket.write('0\r\n\r\n');
    this.socket.setTimeout(0);
  }

  protected destroy(): void {
    this.socket.destroy();
  }
}

class H2Shadow extends ShadowBase {
  private readonly stream: H2ClientStream | undefined;

  constructor(cluster: ClusterRuntime, endpoint: Endpoint, req: MirroredRequest, stats: MirrorStats) {
    super(cluster, endpoint, stats);
    const out: http2.OutgoingHttpHeaders = { ':method': req.method, ':path': req.path, ':authority': shadowHost(req.host), ':scheme': 'http' };
    for (let i = 0; i < req.headers.length; i += 2) {
      const name = req.headers[i].toLowerCase();
      if (isH2Forbidden(name) || name === 'content-length') continue;
      out[name] = req.headers[i + 1];
    }
    if (req.body === 'length' && req.contentLength !== undefined) out['content-length'] = String(req.contentLength);
    try {
      this.stream = cluster.h2Pool().session(endpoint).request(out, { endStream: req.body === 'none' });
    } catch {
      this.drop();
      return;
    }
    this.stream.on('error', () => this.drop());
    this.stream.on('close', () => this.finished());
    this.stream.resume(); // the response is read and dropped
  }

  write(chunk: Buffer): void {
    if (this.closed || !this.stream) return;
    this.stream.write(chunk);
    if (this.stream.writableLength > MAX_SHADOW_BUFFER) this.drop();
  }

  end(): void {
    if (this.closed || !this.stream || this.stream.writableEnded) return;
    this.stream.end();
  }

  protected destroy(): void {
    this.stream?.destroy();
  }
}

/** Without framing fields of the original (the shadow states its own); keeps Content-Length when `keepLength`. */
function dropFraming(headers: string[], keepLength: boolean): string[] {
  const out: string[] = [];
  let lengthSeen = false;
  for (let i = 0; i < headers.length; i += 2) {
    const lower = headers[i].toLowerCase();
    if (lower === 'transfer-encoding') continue;
    if (lower === 'content-length') {
      if (!keepLength || lengthSeen) continue;
      lengthSeen = true;
    }
    out.push(headers[i], headers[i + 1]);
  }
  return out;
}
