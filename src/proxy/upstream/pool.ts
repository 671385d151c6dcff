// Upstream HTTP/1.1 connections of one cluster, pooled per endpoint and
// reused across requests (LIFO, so a few warm connections carry the load).
// Envoy's circuit-breaker limits apply per cluster: connections beyond
// maxConnections wait in a bounded pending queue; past that, overflow.
import * as net from 'node:net';
import * as tls from 'node:tls';
import { TlsContexts } from '../tls/tls-contexts';
import type { ClusterConfig, Endpoint } from '../config/types';

/** What the request currently using a connection receives from it. */
export interface UpstreamHandler {
  /**
   * Bytes read from the upstream. `chunk` lies in a read buffer that the
   * next read reuses: return true when anything still refers to it after
   * this call (kept for later, or a write that has not finished), and the
   * next read gets a fresh buffer.
   */
  onData(chunk: Buffer): boolean;
  /** The connection closed or failed while this handler owned it. */
  onClose(error: Error | undefined): void;
  onDrain(): void;
}

/** Bytes of one read from an upstream (HAProxy reads into 16 KiB buffers). */
const READ_BUFFER_BYTES = 32 * 1024;

/**
 * Whether writes to `down` finish later than write() returns: a TLS socket's do (once encrypted
 * and sent), and its stream keeps each chunk until then. Such a socket is given copies of what an
 * upstream read, so that the read buffer is reused at once instead of replaced by a new 32 KiB one
 * per write, which V8 counts against the old generation (BENCHMARKS.md, mTLS).
 */
export function writesFinishLater(down: net.Socket): boolean {
  return (down as { encrypted?: boolean }).encrypted === true;
}

/**
 * The read buffer of an upstream connection (net.connect's and tls.connect's `onread`):
 * reads land in one buffer, reused until a handler holds on to what it read.
 * This skips the readable stream's per-read allocation, push and 'data' event,
 * the largest share of the proxy's user CPU per request after the syscalls.
 */
class ReadBuffer {
  private buf = Buffer.allocUnsafe(READ_BUFFER_BYTES);
  held = false;

  next(): Buffer {
    if (this.held) {
      this.buf = Buffer.allocUnsafe(READ_BUFFER_BYTES);
      this.held = false;
    }
    return this.buf;
  }
}

export class UpstreamConnection {
  handler: UpstreamHandler | undefined;
  /** Requests this connection has carried. */
  requests = 0;
  idleSince = 0;
  closed = false;
  /** Plaintext to an endpoint that wants mTLS (no workload certificate yet): used once, never pooled. */
  plaintextFallback = false;
  /** Writes wait for the end of this turn (turn-writes.ts). */
  writesHeld = false;

  constructor(
    readonly socket: net.Socket,
    readonly endpoint: Endpoint,
    private readonly pool: UpstreamPool,
    /** Where the socket reads (net.connect and tls.connect's `onread`): it emits no 'data'. */
    private readonly readBuffer: ReadBuffer,
  ) {
    socket.on('drain', () => this.handler?.onDrain());
    socket.on('error', () => {}); // 'close' follows with hadError
    socket.on('close', (hadError) => {
      this.closed = true;
      const h = this.handler;
      this.handler = undefined;
      pool.connectionClosed(this);
      h?.onClose(hadError ? new Error('upstream connection reset') : undefined);
    });
  }

  /** Bytes from the upstream, for the request using the connection. */
  received(chunk: Buffer): void {
    if (!this.handler) {
      this.socket.destroy(); // bytes nobody asked for: the connection is unusable
      return;
    }
    if (this.handler.onData(chunk)) this.readBuffer.held = true;
  }

  /** After 101 Switching Protocols: everything the upstream sends goes to `down` as it is, with backpressure. */
  tunnelTo(down: net.Socket): void {
    this.socket.removeAllListeners('drain');
    const copies = writesFinishLater(down);
    this.handler = {
      onData: (chunk) => {
        if (!down.write(copies ? Buffer.from(chunk) : chunk)) this.socket.pause();
        return !copies && down.writableLength > 0;
      },
      onDrain: () => {},
      onClose: () => {},
    };
    down.on('drain', () => this.socket.resume());
    this.socket.once('end', () => down.end());
  }
}

export class PoolOverflowError extends Error {
  readonly code = 'E_POOL_OVERFLOW';
}

export class ConnectError extends Error {
  readonly code = 'E_UPSTREAM_CONNECT';
}

type Waiter = { endpoint: Endpoint; cb: (err: Error | undefined, conn?: UpstreamConnection) => void };

export interface PoolCounters {
  connectionsTotal: number;
  connectFailures: number;
  pendingOverflow: number;
}

export class UpstreamPool {
  private readonly idle = new Map<string, UpstreamConnection[]>();
  private readonly pending: Waiter[] = [];
  /** Open connections, idle or busy, plus those connecting. */
  private open = 0;
  private sweepTimer: NodeJS.Timeout | undefined;
  private closedPool = false;
  /** Endpoints still in the cluster (set by retainEndpoints); a connection to another is closed on release. */
  private retained: Set<string> | undefined;
  readonly counters: PoolCounters = { connectionsTotal: 0, connectFailures: 0, pendingOverflow: 0 };

  constructor(
    readonly cluster: ClusterConfig,
    /** Auto mTLS (transport_socket_matches): endpoints with a sidecar get TLS connections. */
    private readonly tls?: TlsContexts,
  ) {
    if (cluster.idleTimeoutMs > 0) {
      this.sweepTimer = setInterval(() => this.sweepIdle(), Math.min(1000, cluster.idleTimeoutMs));
      this.sweepTimer.unref();
    }
  }

  get openConnections(): number {
    return this.open;
  }

  get pendingRequests(): number {
    return this.pending.length;
  }

  /** Calls back with an idle or new connection to `endpoint`, or an error (overflow, connect failure). */
  acquire(endpoint: Endpoint, cb: (err: Error | undefined, conn?: UpstreamConnection) => void): void {
    const conn = this.takeIdle(endpoint.key);
    if (conn) return cb(undefined, conn);
    if (this.open < this.cluster.limits.maxConnections) return this.connect(endpoint, cb);
    if (this.pending.length >= this.cluster.limits.maxPendingRequests) {
      this.counters.pendingOverflow++;
      return cb(new PoolOverflowError(`cluster ${this.cluster.name}: ${this.open} connections and ${this.pending.length} pending requests (limits)`));
    }
    this.pending.push({ endpoint, cb });
  }

  /** Gives a connection back after a complete exchange; `reusable` false closes it. */
  release(conn: UpstreamConnection, reusable: boolean): void {
    conn.handler = undefined;
    const max = this.cluster.maxRequestsPerConnection;
    const removed = this.retained !== undefined && !this.retained.has(conn.endpoint.key);
    if (!reusable || conn.plaintextFallback || removed || conn.closed || this.closedPool || (max > 0 && conn.requests >= max)) {
      conn.socket.destroy();
      return;
    }
    // The last write of the response may have pushed back and paused reading: the next request must hear its answer.
    if (conn.socket.isPaused()) conn.socket.resume();
    // Checked first: findIndex would make its closure for every released connection.
    const i = this.pending.length === 0 ? -1 : this.pending.findIndex((w) => w.endpoint.key === conn.endpoint.key);
    if (i >= 0) {
      const [waiter] = this.pending.splice(i, 1);
      waiter.cb(undefined, conn);
      return;
    }
    conn.idleSince = performance.now();
    let list = this.idle.get(conn.endpoint.key);
    if (!list) this.idle.set(conn.endpoint.key, (list = []));
    list.push(conn);
  }

  connectionClosed(conn: UpstreamConnection): void {
    this.open--;
    const list = this.idle.get(conn.endpoint.key);
    if (list) {
      const i = list.indexOf(conn);
      if (i >= 0) list.splice(i, 1);
    }
    // A slot is free: the oldest waiter may connect.
    const waiter = this.pending.shift();
    if (waiter) this.acquire(waiter.endpoint, waiter.cb);
  }

  /** Closes idle connections to endpoints no longer in `keep`, e.g. after an EDS update. */
  retainEndpoints(keep: Set<string>): void {
    this.retained = keep;
    for (const [key, list] of this.idle) {
      if (keep.has(key)) continue;
      for (const conn of list.splice(0)) conn.socket.destroy();
      this.idle.delete(key);
    }
  }

  close(): void {
    this.closedPool = true;
    clearInterval(this.sweepTimer);
    for (const list of this.idle.values()) for (const conn of list.splice(0)) conn.socket.destroy();
    for (const w of this.pending.splice(0)) w.cb(new PoolOverflowError(`cluster ${this.cluster.name} was removed`));
  }

  private takeIdle(key: string): UpstreamConnection | undefined {
    const list = this.idle.get(key);
    while (list && list.length > 0) {
      const conn = list.pop()!;
      if (!conn.closed && !conn.socket.destroyed) return conn;
    }
    return undefined;
  }

  private connect(endpoint: Endpoint, cb: (err: Error | undefined, conn?: UpstreamConnection) => void): void {
    this.open++;
    this.counters.connectionsTotal++;
    // Plaintext unless the cluster has transport_socket_matches and one picks this endpoint.
    const tlsOptions = this.cluster.transportSocketMatches && this.tls?.upstream(this.cluster, endpoint);
    let conn: UpstreamConnection | undefined;
    const readBuffer = new ReadBuffer();
    const onread = {
      buffer: () => readBuffer.next(),
      callback: (n: number, buf: Uint8Array): boolean => {
        if (conn) conn.received((buf as Buffer).subarray(0, n));
        else socket.destroy();
        return true; // backpressure pauses the socket instead
      },
    };
    const socket: net.Socket = tlsOptions
      ? // tls.connect documents `onread` (used when it makes the socket itself); @types/node lacks it.
        this.tls!.connect({ ...tlsOptions, onread } as tls.ConnectionOptions)
      : net.connect({ host: endpoint.address, port: endpoint.port, noDelay: true, onread });
    if (tlsOptions) socket.setNoDelay(true);
    let settled = false;
    const fail = (reason: string) => {
      if (settled) return;
      settled = true;
      this.counters.connectFailures++;
      socket.destroy();
      this.open--;
      cb(new ConnectError(`connect to ${endpoint.key}: ${reason}`));
      const waiter = this.pending.shift();
      if (waiter) this.acquire(waiter.endpoint, waiter.cb);
    };
    socket.setTimeout(this.cluster.connectTimeoutMs, () => fail(`timed out after ${this.cluster.connectTimeoutMs} ms`));
    socket.once('error', (err) => fail(err.message));
    // Over TLS the connection is usable once the handshake is done and the peer's identity checked.
    socket.once(tlsOptions ? 'secureConnect' : 'connect', () => {
      if (settled) return;
      settled = true;
      socket.setTimeout(0);
      socket.removeAllListeners('error');
      socket.setKeepAlive(true, 30_000);
      conn = new UpstreamConnection(socket, endpoint, this, readBuffer);
      // Without a certificate yet the connection went out in plaintext: once the certificate is here, callers must not keep riding it.
      conn.plaintextFallback = !tlsOptions && !!this.cluster.transportSocketMatches && TlsContexts.upstreamConfig(this.cluster, endpoint) !== undefined;
      cb(undefined, conn);
    });
  }

  private sweepIdle(): void {
    const deadline = performance.now() - this.cluster.idleTimeoutMs;
    for (const list of this.idle.values()) {
      // LIFO: the oldest idle connections are at the front.
      while (list.length > 0 && list[0].idleSince < deadline) list.shift()!.socket.destroy();
    }
  }
}
