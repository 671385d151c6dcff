// One downstream HTTP/1.1 connection: reads request heads, runs one exchange
// at a time (pipelined requests wait their turn in the buffer, so responses
// can never be reordered), and hands HTTP/2 prior-knowledge connections to
// the h2 server. Anything malformed gets 400 and the connection is closed
// before a byte of it reaches an upstream.
import type * as net from 'node:net';
import type { Logger } from '../../observe/log';
import type { ProxyTracer } from '../../observe/tracing/proxy-tracer';
import type { HttpFilter } from '../filters/http-filter';
import type { CompiledRouteTable } from '../router/route-table';
import type { Runtime } from '../runtime';
import type { ProxyStats } from '../stats';
import { activityClock, idleFor } from '../listener/activity-clock';
import { writesFinishLater } from '../upstream/pool';
import { HttpParseError } from './errors';
import { Exchange } from './exchange';
import { parseRequestHead } from './head-parser';
import { localReply } from './head-writer';

export interface ResolvedChain {
  runtime: Runtime;
  table: CompiledRouteTable | undefined;
  /** HTTP filters before the router; empty on the fast path. */
  filters: readonly HttpFilter[];
}

export interface HttpChainContext {
  /** "inbound" or "outbound": a label for stats and logs. */
  direction: string;
  /** The runtime, this chain's route table and HTTP filters as of now (a config change swaps them). */
  resolve(): ResolvedChain;
  stats: ProxyStats;
  log: Logger;
  /** Takes over a connection that opened with the HTTP/2 preface. */
  h2?: (socket: net.Socket, firstBytes: Buffer) => void;
  /** The listener's stream idle timeout (a route may override it) and downstream connection idle timeout; 0 = never. */
  streamIdleTimeoutMs: number;
  idleTimeoutMs: number;
  /** Set when tracing is on (a collector was given); unset, requests pass with their heads untouched. */
  tracer?: ProxyTracer;
}

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
/** Bytes of pipelined requests held while one is in flight; reading pauses beyond. */
const MAX_BUFFERED = 1 << 20;

export class Http1Connection {
  /** Received bytes not consumed yet: a partial head, or pipelined requests. */
  private buf: Buffer | undefined;
  private exchange: Exchange | undefined;
  private sawFirstBytes = false;
  private clientEnded = false;
  closed = false;
  /** The proxy is stopping: the connection closes after the exchange in flight. */
  draining = false;
  private peerText: string | undefined;
  /** The caller's SPIFFE ID when the connection is mTLS (set once, at accept). */
  peerPrincipal: string | undefined = undefined;
  /** The caller's "<service>.<namespace>" from that ID, for metrics and records (undefined: plaintext). */
  peerSource: string | undefined = undefined;

  /** The client's address:port, for request records (made once per connection). */
  get peer(): string {
    return (this.peerText ??= `${this.socket.remoteAddress}:${this.socket.remotePort}`);
  }

  /** Last bytes from the client (activity-clock.ts). */
  private lastActivity = activityClock.now;

  /** A TLS client: the exchange gives it copies of upstream reads (pool.ts, writesFinishLater; Exchange.ownBytes). */
  readonly writesFinishLater: boolean;
  /** Writes wait for the end of this turn (turn-writes.ts): what goes out meanwhile is copied (Exchange.ownBytes). */
  writesHeld = false;

  constructor(
    readonly socket: net.Socket,
    readonly ctx: HttpChainContext,
  ) {
    this.writesFinishLater = writesFinishLater(socket);
    socket.setNoDelay(true);
    ctx.stats.downstreamConnectionsTotal++;
    ctx.stats.downstreamConnectionsActive++;
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.exchange?.downstreamDrained());
    socket.on('end', () => {
      // The client finished sending; answer what it asked, then close.
      this.clientEnded = true;
      // Not once ended: end() again makes (and drops) an ERR_STREAM_ALREADY_FINISHED, stack and all,
      // which was ~5% of a connection-per-request load's CPU.
      if (!this.exchange && !this.buf && !socket.writableEnded) socket.end();
    });
    socket.on('error', () => {}); // 'close' follows
    socket.on('close', () => {
      this.closed = true;
      ctx.stats.downstreamConnectionsActive--;
      this.exchange?.downstreamClosed();
      this.exchange = undefined;
      this.buf = undefined;
    });
  }

  private onData(chunk: Buffer): void {
    // Closing: what the client still sends (the rest of a refused body, a request after
    // "connection: close") is never read as a request.
    if (this.closed) return;
    this.lastActivity = activityClock.now;
    if (!this.sawFirstBytes && this.ctx.h2) {
      const data = this.buf ? Buffer.concat([this.buf, chunk]) : chunk;
      const n = Math.min(data.length, H2_PREFACE.length);
      if (data.compare(H2_PREFACE, 0, n, 0, n) === 0) {
        if (data.length < H2_PREFACE.length) {
          this.buf = data; // could still be the preface
          return;
        }
        this.socket.removeAllListeners('data');
        this.socket.removeAllListeners('end');
        this.socket.removeAllListeners('drain');
        this.closed = true; // the h2 server owns the socket now
        // Still a downstream connection: the 'close' listener counts it out once.
        this.ctx.h2(this.socket, data);
        return;
      }
      this.buf = undefined;
      chunk = data;
    }
    this.sawFirstBytes = true;
    const ex = this.exchange;
    if (ex && ex.wantsRequestBody) {
      const end = ex.requestBody(chunk, 0);
      if (end < 0 || end === chunk.length) return;
      chunk = chunk.subarray(end); // the next pipelined request begins here
    }
    this.buf = this.buf ? Buffer.concat([this.buf, chunk]) : chunk;
    if (this.exchange) {
      if (this.buf.length > MAX_BUFFERED) this.socket.pause();
      return;
    }
    this.processBuffered();
  }

  /** Starts the next buffered request, if a whole head is there. */
  private processBuffered(): void {
    while (!this.exchange && this.buf && !this.closed) {
      let head;
      try {
        head = parseRequestHead(this.buf, 0);
      } catch (err) {
        this.protocolError(err);
        return;
      }
      if (!head) return; // wait for the rest of the head
      const buf = this.buf;
      this.buf = undefined;
      const ex = new Exchange(this, head, buf.subarray(0, head.headLength));
      this.exchange = ex;
      const rest = buf.length > head.headLength ? buf.subarray(head.headLength) : undefined;
      // Body bytes already here are checked (and queued) before the exchange starts: a malformed
      // chunked body in the same read as its head is refused before the head goes upstream.
      const end = rest && ex.wantsRequestBody ? ex.requestBody(rest, 0) : 0;
      ex.start();
      if (rest && end >= 0 && end < rest.length) this.buf = rest.subarray(end);
    }
    if (!this.exchange && !this.buf && this.clientEnded && !this.socket.writableEnded) this.socket.end();
  }

  /** The exchange finished and the connection stays open: go on with pipelined requests. */
  exchangeDone(ex: Exchange, keepOpen: boolean): void {
    if (this.exchange !== ex) return;
    this.exchange = undefined;
    if (!keepOpen || this.closed || this.draining) {
      this.closed = true;
      this.buf = undefined;
      this.socket.end();
      return;
    }
    if (this.socket.isPaused()) this.socket.resume();
    this.processBuffered();
  }

  /** The proxy is stopping: close now when idle, else once the exchange in flight is done. */
  drain(): void {
    this.draining = true;
    if (this.exchange || this.closed) return;
    this.closed = true;
    this.buf = undefined;
    this.socket.end();
  }

  /**
   * The sweep: a request idle past its stream idle timeout ends; a connection
   * with no request in flight (or half a head) idle past the idle timeout closes.
   */
  sweepIdle(now: number): void {
    if (this.closed) return;
    const ex = this.exchange;
    if (ex) {
      if (idleFor(now, Math.max(this.lastActivity, ex.lastActivity), ex.streamIdleTimeoutMs)) ex.streamIdleTimedOut();
      return;
    }
    if (!idleFor(now, this.lastActivity, this.ctx.idleTimeoutMs)) return;
    this.closed = true;
    this.buf = undefined;
    this.socket.end();
    this.socket.destroySoon();
  }

  /** Replaces the socket's listeners with a raw tunnel (after 101 Switching Protocols). */
  detach(): void {
    this.closed = true; // a tunnel now: nothing here reads or drains it
    this.exchange = undefined;
    this.socket.removeAllListeners('data');
    this.socket.removeAllListeners('drain');
    this.socket.removeAllListeners('end');
  }

  private protocolError(err: unknown): void {
    const status = err instanceof HttpParseError ? err.status : 400;
    const message = err instanceof Error ? err.message : String(err);
    this.ctx.stats.downstreamProtocolErrors++;
    this.ctx.log('debug', 'malformed request refused', { direction: this.ctx.direction, error: message, peer: this.socket.remoteAddress });
    this.buf = undefined;
    this.closed = true;
    this.socket.end(localReply(status, 'DPE', `malformed request: ${message}`, { close: true }));
    this.socket.destroySoon();
  }
}
