// Binds the sockets the Listener resources ask for and keeps them in step
// with config changes: a listener whose address is unchanged keeps its
// socket (new connections use the new filter chains, open ones finish on the
// old), a removed one stops accepting and lets its connections drain.
import * as net from 'node:net';
import type { Logger } from '../../observe/log';
import type { ProxyTracer } from '../../observe/tracing/proxy-tracer';
import type { FilterChain, HttpNetworkFilter, ListenerConfig } from '../config/types';
import { Http1Connection, type HttpChainContext, type ResolvedChain } from '../http1/connection';
import type { Runtime } from '../runtime';
import type { ProxyStats } from '../stats';
import { proxyTcp } from '../tcp/tcp-proxy';
import { activityClock, SWEEP_MS } from './activity-clock';
import { OpenSet } from './open-set';
import { readThroughBuffer } from './accepted-reads';
import { setPeer, type PeerIdentity } from '../tls/peer';
import type { TlsContexts } from '../tls/tls-contexts';

export interface ListenerDeps {
  runtime(): Runtime;
  stats: ProxyStats;
  log: Logger;
  /** Takes over a downstream connection that opened with the HTTP/2 preface. */
  h2?: (socket: net.Socket, firstBytes: Buffer, chain: HttpChainContext) => void;
  tracer?: ProxyTracer;
  /** mTLS termination for chains with a DownstreamTlsContext; absent: such connections are refused. */
  tls?: TlsContexts;
}

interface BoundListener {
  config: ListenerConfig;
  /** Absent for a virtual listener (bind_to_port false): it serves hand-overs only. */
  server?: net.Server;
  state: 'binding' | 'bound' | 'failed';
  error?: string;
}

/** How long close() lets connections finish before it cuts them. */
export const DEFAULT_DRAIN_MS = 5000;

export class ListenerManager {
  private readonly listeners = new Map<string, BoundListener>();
  /** Accepted connections, and the HTTP/1 ones among them, until they close (for close()). */
  private readonly sockets = new OpenSet<net.Socket>();
  private readonly http = new OpenSet<Http1Connection>();
  private readonly contexts = new WeakMap<FilterChain, HttpChainContext>();

  private readonly sweep: NodeJS.Timeout;

  constructor(private readonly deps: ListenerDeps) {
    this.sweep = setInterval(() => {
      const now = (activityClock.now = performance.now());
      for (const conn of this.http.values()) conn.sweepIdle(now);
    }, SWEEP_MS);
    this.sweep.unref();
  }

  /** Makes the bound listeners match `configs`. Resolves when every new bind has succeeded or failed. */
  async apply(configs: Map<string, ListenerConfig>): Promise<void> {
    const binds: Promise<void>[] = [];
    for (const [name, bound] of this.listeners) {
      const next = configs.get(name);
      if (next && next.address === bound.config.address && next.port === bound.config.port && next.bindToPort === bound.config.bindToPort && bound.state !== 'failed') continue;
      this.listeners.delete(name);
      bound.server?.close(); // open connections finish on their own
    }
    for (const [name, config] of configs) {
      const bound = this.listeners.get(name);
      if (bound) {
        bound.config = config;
        continue;
      }
      binds.push(this.bind(config));
    }
    await Promise.all(binds);
  }

  /**
   * Serves a connection accepted elsewhere as if `listener` had accepted it
   * (transparent capture's per-VIP sockets). False when no such listener is bound.
   */
  handOver(listener: string, socket: net.Socket): boolean {
    const bound = this.listeners.get(listener);
    if (!bound || bound.state !== 'bound') return false;
    this.accept(bound, socket);
    return true;
  }

  status(): { name: string; address: string; port: number; state: string; error?: string }[] {
    return [...this.listeners.values()].map((l) => ({ name: l.config.name, address: l.config.address, port: l.config.port, state: l.state, error: l.error }));
  }

  /** True when every listener is bound. */
  allBound(): boolean {
    return [...this.listeners.values()].every((l) => l.state === 'bound');
  }

  /**
   * Stops accepting; idle HTTP/1 connections close now, busy ones after their
   * exchange; whatever is still open after `drainMs` (a request that never
   * ends, TCP, HTTP/2) is cut, so this always resolves.
   */
  async close(drainMs = DEFAULT_DRAIN_MS): Promise<void> {
    clearInterval(this.sweep);
    const closing = [...this.listeners.values()].map((l) => new Promise<void>((resolve) => (l.server ? l.server.close(() => resolve()) : resolve())));
    this.listeners.clear();
    for (const conn of this.http.values()) conn.drain();
    const cut = setTimeout(() => {
      for (const socket of this.sockets.values()) socket.destroy();
    }, drainMs);
    await Promise.all(closing);
    clearTimeout(cut);
  }

  private bind(config: ListenerConfig): Promise<void> {
    if (config.bindToPort === false) {
      this.listeners.set(config.name, { config, state: 'bound' });
      return Promise.resolve();
    }
    // allowHalfOpen: a client that half-closes after its request still gets the response.
    const server = net.createServer({ allowHalfOpen: true, noDelay: true });
    const bound: BoundListener = { config, server, state: 'binding' };
    this.listeners.set(config.name, bound);
    server.on('connection', (socket) => this.accept(bound, socket));
    return new Promise((resolve) => {
      server.once('error', (err) => {
        bound.state = 'failed';
        bound.error = err.message;
        this.deps.log('error', 'listener could not bind', { listener: config.name, address: `${config.address}:${config.port}`, error: err.message });
        resolve();
      });
      server.listen(config.port, config.address, () => {
        bound.state = 'bound';
        this.deps.log('info', 'listener bound', { listener: config.name, address: `${config.address}:${config.port}` });
        resolve();
      });
    });
  }

  private accept(bound: BoundListener, socket: net.Socket): void {
    const config = bound.config;
    if (config.tlsInspector) return this.inspect(config, socket);
    const chain = selectChain(config, socket);
    if (!chain) {
      socket.destroy();
      return;
    }
    // Reads into one reused buffer (accepted-reads.ts). Under tls_inspector, a TLS chain's
    // socket does instead, once secured: node:tls reads the raw socket's handle itself.
    readThroughBuffer(socket);
    socket.on('error', () => {});
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    this.serve(config, chain, socket);
  }

  /** Hands an accepted (or TLS-terminated) connection to its chain's network filter. */
  private serve(config: ListenerConfig, chain: FilterChain, socket: net.Socket, peer?: PeerIdentity): void {
    if (chain.network.kind === 'tcp') return proxyTcp(socket, chain.network, this.deps.runtime(), this.deps.stats, this.deps.log, config.direction, peer?.source, peer?.principal);
    const conn = new Http1Connection(socket, this.chainContext(config, chain));
    if (peer) {
      conn.peerPrincipal = peer.principal;
      conn.peerSource = peer.source;
    }
    this.http.add(conn);
    socket.once('close', () => this.http.delete(conn));
  }

  /**
   * tls_inspector: the first byte picks the chain (0x16, a TLS handshake
   * record, or plaintext); a TLS chain terminates mTLS before the filter.
   * The byte is put back, so the chain reads the connection from its start.
   */
  private inspect(config: ListenerConfig, socket: net.Socket): void {
    socket.on('error', () => {});
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    const inspector = config.tlsInspector!;
    const dispatch = (transport: 'tls' | 'raw_buffer') => {
      const chain = selectChain(config, socket, transport);
      if (!chain || (chain.tls && transport !== 'tls')) {
        this.deps.tls?.refused(transport === 'tls' ? 'handshake_failed' : 'plaintext', `no ${transport} filter chain for port ${socket.localPort}`, socket.remoteAddress);
        socket.destroy();
        return;
      }
      if (!chain.tls) {
        this.serve(config, chain, socket);
        socket.resume();
        return;
      }
      if (!this.deps.tls) {
        socket.destroy();
        return;
      }
      this.deps.tls.accept(socket, chain.tls, (secure, peer) => {
        // Called in the handshake's 'secure' event, before the first cleartext read is emitted.
        readThroughBuffer(secure);
        this.sockets.add(secure);
        secure.once('close', () => this.sockets.delete(secure));
        secure.on('error', () => {});
        setPeer(secure, peer);
        this.serve(config, chain, secure, peer);
      });
    };
    const timer = setTimeout(() => {
      socket.removeListener('data', first);
      socket.removeListener('end', empty);
      // A server-first protocol says nothing: plaintext, when the listener allows it.
      if (inspector.continueOnTimeout) {
        socket.pause();
        dispatch('raw_buffer');
      } else socket.destroy();
    }, inspector.timeoutMs);
    const first = (chunk: Buffer) => {
      clearTimeout(timer);
      socket.removeListener('end', empty);
      socket.pause();
      socket.unshift(chunk);
      dispatch(chunk[0] === 0x16 ? 'tls' : 'raw_buffer');
    };
    // Closed before its first byte: a TCP health check or load balancer probe (connect, close),
    // not a plaintext attempt, which sends bytes that are no TLS record (or waits, server-first,
    // for the timeout above); those stay warnings. Closed, as Envoy's listener filters close a
    // connection that ends while they wait; where plaintext is refused it is counted as
    // 'empty' and logged at debug only, so a probe of a strict port does not look like an attack.
    const empty = () => {
      clearTimeout(timer);
      socket.removeListener('data', first);
      const chain = selectChain(config, socket, 'raw_buffer');
      if (!chain || chain.tls) this.deps.tls?.refused('empty', `closed before its first byte on port ${socket.localPort}`, socket.remoteAddress);
      socket.destroy();
    };
    socket.once('data', first);
    socket.once('end', empty);
    socket.once('close', () => clearTimeout(timer));
  }

  /**
   * One context per filter chain of a listener config, shared by its
   * connections: resolving the route table allocates nothing per request and
   * recomputes only when the runtime changes.
   */
  private chainContext(config: ListenerConfig, chain: FilterChain): HttpChainContext {
    let ctx = this.contexts.get(chain);
    if (ctx) return ctx;
    const network = chain.network as HttpNetworkFilter;
    const deps = this.deps;
    let resolved: ResolvedChain | undefined;
    ctx = {
      direction: config.direction,
      stats: deps.stats,
      log: deps.log,
      streamIdleTimeoutMs: network.streamIdleTimeoutMs,
      idleTimeoutMs: network.idleTimeoutMs,
      tracer: deps.tracer,
      resolve() {
        const rt = deps.runtime();
        if (resolved?.runtime !== rt) {
          resolved = {
            runtime: rt,
            table: network.routeTable ? rt.inlineTable(network.routeTable) : rt.routeTable(network.routeTableName ?? ''),
            filters: rt.httpFilters(network),
          };
        }
        return resolved;
      },
    };
    if (deps.h2) {
      const h2 = deps.h2;
      const chainCtx = ctx;
      ctx.h2 = (s, bytes) => h2(s, bytes, chainCtx);
    }
    this.contexts.set(chain, ctx);
    return ctx;
  }
}

/**
 * The chain for a connection, as Envoy matches: the chains of its original
 * destination port if any, else the port-less ones; among those, the one for
 * its transport protocol (tls_inspector), else one for any; else the default chain.
 */
function selectChain(config: ListenerConfig, socket: net.Socket, transport?: 'tls' | 'raw_buffer'): FilterChain | undefined {
  let destinationPort: number | undefined;
  let byPort = false;
  for (const c of config.chains) {
    if (c.destinationPort === undefined) continue;
    // The socket's local port costs a getsockname() per connection: read only when a chain matches on it.
    destinationPort ??= socket.localPort;
    if (c.destinationPort === destinationPort) byPort = true;
  }
  let any: FilterChain | undefined;
  for (const c of config.chains) {
    if (byPort ? c.destinationPort !== destinationPort : c.destinationPort !== undefined) continue;
    if (c.transportProtocol === undefined) any ??= c;
    else if (c.transportProtocol === transport) return c;
  }
  return any ?? config.defaultChain;
}
