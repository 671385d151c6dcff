// Downstream HTTP/2 (h2c with prior knowledge): the HTTP/1 connection hands
// over a socket that opened with the h2 preface. Each stream is routed like
// an HTTP/1 request, then forwarded to an HTTP/2 upstream as a stream
// (trailers and grpc-status preserved) or translated to HTTP/1.1.
import * as http from 'node:http';
import * as http2 from 'node:http2';
import type * as net from 'node:net';
import { addAbortSignal } from 'node:stream';
import type { Endpoint, RetryPolicy, Route, RouteAction } from '../config/types';
import type { HttpChainContext } from '../http1/connection';
import { RESPONSE_FLAGS_HEADER } from '../http1/head-writer';
import { requestHash, sourceIp } from '../router/hash';
import { rewritePath } from '../router/rewrite';
import { pickWeightedCluster } from '../router/weighted';
import { admitRetry, backoffMs, failedAttemptReply, MAX_REPLAY_BODY, repickEndpoint, retryOnFailure, retryOnGrpc, retryOnStatus, type LocalFailure, type RetryDenial } from '../retry';
import { runRequestFilters, type FilterHost, type FilterRequest, type FilterRun, type LocalReplySpec } from '../filters/http-filter';
import { startShadows } from '../mirror';
import { setTraceHeaders, type RequestTrace } from '../../observe/tracing/proxy-tracer';
import type { ClusterRuntime, Runtime } from '../runtime';
import type { RequestStats } from '../stats';
import type { RequestRecord } from '../../observe/request-record';
import { effectiveStatus } from '../upstream/outlier-detector';
import { grpcStatusFor, isH2Forbidden } from './session-pool';
import { peerOf, setPeer, type PeerIdentity } from '../tls/peer';
import { TARGET_CHAR } from '../http1/tokens';

const { NGHTTP2_CANCEL, NGHTTP2_REFUSED_STREAM, NGHTTP2_FLAG_END_STREAM, NGHTTP2_ENHANCE_YOUR_CALM, NGHTTP2_PROTOCOL_ERROR, NGHTTP2_FLOW_CONTROL_ERROR, NGHTTP2_STREAM_CLOSED } = http2.constants;

/**
 * Limits of a downstream session, below Node's defaults where those invite abuse:
 * HAProxy and nginx advertise 100 and 128 concurrent streams; Node advertises 2^32-1.
 * nghttp2 itself bounds the rest (rapid reset, CONTINUATION floods, queued SETTINGS/PING acks).
 */
const SESSION_OPTIONS: http2.ServerOptions = {
  maxSessionMemory: 64,
  settings: { maxConcurrentStreams: 100, maxHeaderListSize: 65536 },
  // A peer whose streams keep being refused, or which sends frames nghttp2 rejects, is cut off.
  maxSessionRejectedStreams: 100,
  maxSessionInvalidFrames: 100,
};

/**
 * nghttp2's library error codes (nghttp2.h) that Node passes to session.destroy() from its
 * invalid-frame callback, each with the RFC 9113 code nghttp2 itself sends for it.
 */
const DEFERRED_LIB_ERRORS = new Map<number, number>([
  [-505, NGHTTP2_PROTOCOL_ERROR], // NGHTTP2_ERR_PROTO
  [-510, NGHTTP2_STREAM_CLOSED], // NGHTTP2_ERR_STREAM_CLOSED
  [-524, NGHTTP2_FLOW_CONTROL_ERROR], // NGHTTP2_ERR_FLOW_CONTROL
]);
/** NGHTTP2_ERR_FLOODED: the peer queued more SETTINGS/PING ACKs or RST_STREAMs than it reads. */
const NGHTTP2_ERR_FLOODED = -904;
/** NGHTTP2_ERR_TOO_MANY_CONTINUATIONS: a header block in more CONTINUATION frames than nghttp2 takes (CVE-2024-27316). */
const NGHTTP2_ERR_TOO_MANY_CONTINUATIONS = -905;

/**
 * How long a liveness probe (a PING) waits for its ACK before the session is destroyed. nghttp2
 * stops reading once it has sent a GOAWAY for a connection error, so a session it ended never
 * ACKs; a live peer on loopback or a LAN answers in well under a millisecond.
 */
const PROBE_MS = 1000;
/** With the downstream idle timeout off (0), how long a quiet session goes before a liveness probe. */
const LIVENESS_MS = 300_000;

/** One downstream session: its chain, the streams still open, the liveness probe in flight. */
interface DownstreamSession {
  readonly session: http2.ServerHttp2Session;
  readonly ctx: HttpChainContext;
  /** The TCP (or TLS) socket the session runs on. */
  readonly socket: net.Socket;
  readonly streams: Set<http2.ServerHttp2Stream>;
  /** The probe's timer while one is in flight. */
  probe: NodeJS.Timeout | undefined;
  /** Why the probe runs: the GOAWAY reason counted if the peer never answers. */
  probeReason: string;
}

export class H2Downstream {
  private readonly server = http2.createServer(SESSION_OPTIONS);
  private readonly sessions = new Set<http2.Http2Session>();
  private handing: HttpChainContext | undefined;
  private handingPeer: PeerIdentity | undefined;
  private handingSocket: net.Socket | undefined;

  constructor() {
    // 'session' is emitted synchronously inside emit('connection'): that is how a session learns its chain.
    this.server.on('session', (session) => {
      const ctx = this.handing;
      // Every emitter gets its error listener before anything can fail: an 'error' with no
      // listener is thrown at the process's top level and would end every connection of the host.
      session.on('error', (err) => ctx && h2Failure(ctx, 'session', errorReason(err)));
      if (!ctx) return session.destroy();
      if (this.handingPeer) setPeer(session, this.handingPeer);
      const socket = this.handingSocket!;
      const s: DownstreamSession = { session, ctx, socket, streams: new Set(), probe: undefined, probeReason: '' };
      this.sessions.add(session);
      session.once('close', () => {
        this.sessions.delete(session);
        clearTimeout(s.probe);
      });
      interceptInvalidFrames(s, watchTermination(s));
      session.on('frameError', (_type: number, code: number) => h2Failure(ctx, 'session', `frame_error_${codeName(code)}`));
      // The stream's session, not a lookup by stream.session: nghttp2 may already have reset the
      // stream (a DATA length that contradicts content-length) when 'stream' is delivered, and a
      // closed stream no longer knows its session.
      session.on('stream', (stream, headers) => this.onStream(stream, headers, s));
      socket.once('end', () => clientEnded(s));
      // The downstream idle timeout: a session with no stream open and no frames for that long
      // gets GOAWAY. One with streams open that went quiet that long is probed (see onQuiet).
      session.setTimeout(ctx.idleTimeoutMs > 0 ? ctx.idleTimeoutMs : LIVENESS_MS);
      session.on('timeout', () => onQuiet(s));
    });
  }

  private onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, s: DownstreamSession): void {
    const ctx = s.ctx;
    stream.on('error', noop); // 'close' follows, with rstCode
    s.streams.add(stream);
    stream.once('close', () => {
      s.streams.delete(stream);
      const code = stream.rstCode;
      // CANCEL is a client giving up (or the proxy cancelling); anything else ended the stream in error.
      if (code !== undefined && code !== 0 && code !== NGHTTP2_CANCEL) h2Failure(ctx, 'stream', codeName(code));
    });
    if (stream.destroyed || stream.closed) return; // reset before it could be routed: counted on 'close'
    const problem = malformedRequest(headers);
    if (problem) return refuseMalformed(stream, ctx, problem);
    // Routed once the rest of this read is processed. Node calls into JavaScript once per frame,
    // each call a top-level callback that runs the nextTick queue, so 'stream' arrives before
    // nghttp2 has even looked at an RST_STREAM right behind the HEADERS: rapid reset (CVE-2023-44487)
    // sent every cancelled GET upstream, complete (its HEADERS carry END_STREAM). setImmediate runs
    // after the whole read; a stream reset by then is dropped.
    setImmediate(startExchange, stream, headers, ctx);
  }

  /** The proxy is stopping: every session gets GOAWAY; streams in flight may finish. */
  drain(): void {
    for (const session of this.sessions) session.close();
  }

  take(socket: net.Socket, firstBytes: Buffer, ctx: HttpChainContext): void {
    // Paused first: a flowing socket would emit the unshifted bytes as 'data' that nobody
    // listens to any more, and the session (which reads what is buffered on its first tick)
    // would never see the preface.
    socket.pause();
    socket.unshift(firstBytes);
    this.handing = ctx;
    this.handingPeer = peerOf(socket);
    this.handingSocket = socket;
    try {
      this.server.emit('connection', socket);
    } finally {
      this.handing = undefined;
      this.handingPeer = undefined;
      this.handingSocket = undefined;
    }
  }
}

function noop(): void {}

function startExchange(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, ctx: HttpChainContext): void {
  if (stream.destroyed || stream.closed) return; // reset in the same read: counted on 'close'
  new H2Exchange(stream, headers, ctx).start();
}

/** Already aborted: addAbortSignal(ABORTED, stream) destroys the stream at once with an AbortError. */
const ABORTED = AbortSignal.abort();
const PEER_FAILED = new Error('the other side of the exchange failed');

/**
 * Resets an h2 stream with nothing that could read as its end. Http2Stream.close(code) first
 * ends the writable side (closeStream() calls end(), whose _final queues END_STREAM) and Node
 * flushes pending frames before an RST_STREAM, so the peer saw a complete message, then the
 * reset: a cut request body arrived upstream as a complete shorter request. destroy() never
 * runs _final: with an AbortError (Node's documented way to cancel a stream) it sends
 * RST_STREAM(CANCEL), with another error RST_STREAM(INTERNAL_ERROR). A stream not yet sent
 * (its session still connecting) is dropped without a frame.
 */
function resetStream(stream: http2.Http2Stream, code: 'cancel' | 'internal'): void {
  if (stream.destroyed) return;
  if (code === 'cancel') addAbortSignal(ABORTED, stream);
  else stream.destroy(PEER_FAILED);
}

/**
 * Calls `then` when a stream's body really ended. Node emits 'end' also on a stream the peer
 * reset (Http2Stream._destroy pushes EOF), already destroyed: that 'end' is no end of message,
 * and a pipe() that took it for one ended the other side (END_STREAM, or a chunked request's
 * last chunk) with the body cut short.
 */
function onBodyEnd(stream: http2.Http2Stream, then: () => void): void {
  stream.on('end', () => stream.destroyed || then());
}

/**
 * Node answers the invalid frames nghttp2 reports with ERR_PROTO, ERR_FLOW_CONTROL or
 * ERR_STREAM_CLOSED by destroying the whole session from inside nghttp2's callback: before
 * nghttp2 can act, so every such frame became GOAWAY(INTERNAL_ERROR), stream errors included
 * (a WINDOW_UPDATE overflowing one stream's window killed the connection). Node has no option
 * for it; its call goes through the session's destroy(), so that one session's destroy() lets
 * nghttp2 decide instead: RST_STREAM for a stream error, the connection going on; GOAWAY with
 * the right code for a connection error, after which watchTermination() closes the socket.
 * nghttp2's fatal errors (floods, CONTINUATION floods) and Node's invalid-frame limit still
 * destroy the session, with ENHANCE_YOUR_CALM instead of INTERNAL_ERROR.
 */
function interceptInvalidFrames(s: DownstreamSession, watched: boolean): void {
  const session = s.session;
  const destroy = session.destroy;
  session.destroy = function (this: http2.ServerHttp2Session, error?: Error, code?: number): void {
    if (code === undefined && error instanceof Error) {
      const e = error as NodeJS.ErrnoException;
      if (e.code === 'ERR_HTTP2_ERROR' && typeof e.errno === 'number') {
        const rfcCode = DEFERRED_LIB_ERRORS.get(e.errno);
        if (rfcCode !== undefined) {
          // A connection error: nghttp2 writes its GOAWAY next; a stream error: nothing more.
          s.probeReason ||= codeName(rfcCode);
          if (!watched) probe(s, codeName(rfcCode));
          return;
        }
        if (e.errno === NGHTTP2_ERR_FLOODED || e.errno === NGHTTP2_ERR_TOO_MANY_CONTINUATIONS) code = NGHTTP2_ENHANCE_YOUR_CALM;
      } else if (e.code === 'ERR_HTTP2_TOO_MANY_INVALID_FRAMES') {
        code = NGHTTP2_ENHANCE_YOUR_CALM;
      }
    }
    return destroy.call(this, error, code);
  } as typeof session.destroy;
}

/** The symbol under which node:http2 keeps a session's native handle (looked up once). */
let handleSymbol: symbol | null | undefined;

/**
 * nghttp2 ends a session on its own for most connection errors (DATA on an idle stream, a header
 * block it cannot decompress, rapid reset, a stream over the concurrency limit…): it writes
 * GOAWAY, then neither reads nor writes, and Node tells JavaScript nothing, so the socket stayed
 * open (RFC 9113 §5.4.1 wants it closed) and a client's later FIN or RST went unseen. Node's
 * native handle calls `ongracefulclosecomplete` after a write once the session is in graceful
 * close and nghttp2_session_want_read() and want_write() are both 0 — exactly "nghttp2 is done
 * with this connection". Setting that mode changes nothing else (a live session always wants
 * to read), so every session gets it and the notification destroys the session, which closes
 * the socket. This is Node's internal API (Node ≥ 20.19): when a Node lacks it, the function
 * returns false and the liveness probe (probe(), onQuiet()) is the bound instead.
 */
function watchTermination(s: DownstreamSession): boolean {
  const session = s.session;
  if (handleSymbol === undefined) handleSymbol = Object.getOwnPropertySymbols(session).find((k) => k.description === 'kHandle') ?? null;
  const handle = handleSymbol ? (session as unknown as Record<symbol, NativeSessionHandle | undefined>)[handleSymbol] : undefined;
  if (!handle || typeof handle.setGracefulClose !== 'function' || !('ongracefulclosecomplete' in handle)) return false;
  handle.setGracefulClose();
  handle.ongracefulclosecomplete = () => {
    if (session.destroyed) return;
    if (session.closed) return session.destroy(); // a graceful close, ours or the client's, is complete
    // nghttp2 ended the session for an error and its GOAWAY is written: end the TCP connection
    // without a frame of ours. session.destroy() would terminate the session once more, and where
    // nghttp2 queued its GOAWAY without marking the session terminated (rapid reset) that sent a
    // second GOAWAY, NO_ERROR. The socket's close destroys the session (Node's socketOnClose).
    h2Failure(s.ctx, 'session', s.probeReason || 'nghttp2_goaway');
    s.socket.destroySoon();
  };
  return true;
}

/** What watchTermination() uses of node:http2's native session handle. */
interface NativeSessionHandle {
  setGracefulClose(): void;
  ongracefulclosecomplete: (() => void) | null;
}

/**
 * A PING the peer must ACK within PROBE_MS, or the session is destroyed (its socket closed).
 * Sent after an invalid frame (nghttp2 may have ended the session with GOAWAY: it then neither
 * sends the PING nor reads the ACK) and when a session with streams open went quiet.
 */
function probe(s: DownstreamSession, reason: string): void {
  const session = s.session;
  if (session.destroyed) return;
  s.probeReason ||= reason;
  if (s.probe) return;
  const timer = setTimeout(() => {
    s.probe = undefined;
    if (session.destroyed) return;
    h2Failure(s.ctx, 'session', s.probeReason);
    session.destroy();
  }, PROBE_MS);
  timer.unref();
  s.probe = timer;
  // No ACK (the PING cancelled: the session is closing, or gone) leaves the decision to the timer.
  const answered = (err: Error | null) => {
    if (err || s.probe !== timer || session.destroyed) return;
    clearTimeout(timer);
    s.probe = undefined;
    s.probeReason = '';
    // Alive. The session's timer does not run again before the next frame: quiet stays watched.
    session.setTimeout(s.ctx.idleTimeoutMs > 0 ? s.ctx.idleTimeoutMs : LIVENESS_MS);
  };
  try {
    session.ping(answered);
  } catch {
    // Destroyed meanwhile, or too many PINGs outstanding: the timer decides.
  }
}

/**
 * No frame either way for the idle timeout (or LIVENESS_MS when that is off). With no stream
 * open, the idle timeout closes the session (GOAWAY, then the TCP close). With streams open,
 * a PING: a session nghttp2 ended on its own (a connection error it reports to nobody, e.g.
 * DATA on an idle stream or a header block it cannot decompress) fails it and is destroyed.
 */
function onQuiet(s: DownstreamSession): void {
  if (s.ctx.idleTimeoutMs > 0 && s.streams.size === 0) return s.session.close();
  probe(s, 'unresponsive');
}

/**
 * The client's FIN. HTTP/2 has no half-closed connection: a client that sent FIN can no longer
 * send WINDOW_UPDATE, SETTINGS or PING ACKs. GOAWAY, the streams in flight may finish, and the
 * probe (its PING cannot be answered) ends whatever is left after PROBE_MS: a response stuck on
 * flow control, a request still waiting for its body.
 */
function clientEnded(s: DownstreamSession): void {
  const session = s.session;
  if (session.destroyed) return;
  session.close();
  if (!session.destroyed) probe(s, 'client_fin');
}

/** Counts an HTTP/2 error of the downstream side, by scope and reason (weft_downstream_h2_errors_total). */
function h2Failure(ctx: HttpChainContext, scope: 'stream' | 'session', reason: string): void {
  ctx.stats.h2Error(scope, reason);
}

/** The reason label of a session error: nghttp2's code name when it carries one. */
function errorReason(err: NodeJS.ErrnoException & { errno?: number }): string {
  const m = /code (\d+)/.exec(err.message);
  if (err.code === 'ERR_HTTP2_SESSION_ERROR' && m) return codeName(Number(m[1]));
  return (err.code ?? 'error').toLowerCase().replace(/^err_http2_/, '');
}

const ERROR_CODE_NAMES = ['NO_ERROR', 'PROTOCOL_ERROR', 'INTERNAL_ERROR', 'FLOW_CONTROL_ERROR', 'SETTINGS_TIMEOUT', 'STREAM_CLOSED', 'FRAME_SIZE_ERROR', 'REFUSED_STREAM', 'CANCEL', 'COMPRESSION_ERROR', 'CONNECT_ERROR', 'ENHANCE_YOUR_CALM', 'INADEQUATE_SECURITY', 'HTTP_1_1_REQUIRED'];

/** RFC 9113 error code → its name (unknown codes by number). */
export function codeName(code: number): string {
  return ERROR_CODE_NAMES[code] ?? `code_${code}`;
}

/**
 * What nghttp2 leaves to the application (it already refuses missing, duplicate, unknown and
 * misplaced pseudo-headers, uppercase and connection-specific fields, bad characters, and DATA
 * that contradicts content-length): a request weft would have to guess about. Returns the reason,
 * or undefined for a well-formed request.
 */
export function malformedRequest(headers: http2.IncomingHttpHeaders): string | undefined {
  const method = headers[':method'];
  // weft does not tunnel: a CONNECT would otherwise be routed like a request without a path.
  if (method === 'CONNECT') return 'connect';
  const path = headers[':path'];
  if (typeof path !== 'string' || path.length === 0) return 'path';
  if (path === '*') return method === 'OPTIONS' ? undefined : 'path';
  if (path.charCodeAt(0) !== 0x2f /* / */) return 'path';
  for (let i = 1; i < path.length; i++) if (TARGET_CHAR[path.charCodeAt(i)] !== 1) return 'path';
  // RFC 9113 8.3.1: a Host that names another authority than :authority is malformed; routing on
  // one while the upstream reads the other is how requests are smuggled past route rules.
  const host = headers.host;
  const authority = headers[':authority'];
  if (host !== undefined && authority !== undefined && String(host).toLowerCase() !== String(authority).toLowerCase()) return 'authority_mismatch';
  return undefined;
}

const MALFORMED_TEXT: Record<string, string> = {
  connect: 'CONNECT is not supported (weft does not tunnel)',
  path: ':path must be an absolute path ("/…"), or "*" for OPTIONS',
  authority_mismatch: 'the host header names another authority than :authority',
};

/**
 * A malformed request: 400 (405 for CONNECT) with flag DPE, counted; the stream then ends,
 * and a request body still on its way is cut off with RST_STREAM(NO_ERROR) (RFC 9113 8.1).
 */
function refuseMalformed(stream: http2.ServerHttp2Stream, ctx: HttpChainContext, problem: string): void {
  h2Failure(ctx, 'stream', `malformed_${problem}`);
  ctx.stats.downstreamProtocolErrors++;
  const status = problem === 'connect' ? 405 : 400;
  const text = `malformed request: ${MALFORMED_TEXT[problem]}\n`;
  stream.respond({ ':status': status, [RESPONSE_FLAGS_HEADER]: 'DPE', 'content-type': 'text/plain; charset=utf-8' });
  stream.end(text);
  if (!stream.endAfterHeaders) stream.close(http2.constants.NGHTTP2_NO_ERROR);
}

class H2Exchange implements FilterRequest, FilterHost {
  readonly method: string;
  readonly host: string;
  readonly path: string;
  readonly grpc: boolean;
  private readonly started = performance.now();
  private stats: RequestStats | undefined;
  /** FilterRequest: dynamic metadata the filters leave for each other. */
  filterMetadata: Record<string, Record<string, unknown>> | undefined = undefined;
  private cluster: ClusterRuntime | undefined;
  private endpoint: import('../config/types').Endpoint | undefined;
  private timer: NodeJS.Timeout | undefined;
  private done = false;
  private retriedRefused = false;
  /** Cancels the upstream stream or request, when the proxy gives up on it (route timeout). */
  private abortUpstream: (() => void) | undefined;

  // ---- the route's retry policy (HTTP/2 clusters) ----
  private retry: RetryPolicy | undefined;
  private attempt = 1;
  /** The upstream stream of the current attempt; the others' events are ignored. */
  private currentUp: http2.ClientHttp2Stream | undefined;
  /** The same for an HTTP/1.1 upstream. */
  private currentReq: http.ClientRequest | undefined;
  /** The request body so far, for a retry; undefined once it outgrew MAX_REPLAY_BODY. */
  private replay: Buffer[] | undefined;
  private replayBytes = 0;
  private bodyEnded = false;
  private tryTimer: NodeJS.Timeout | undefined;
  private backoffTimer: NodeJS.Timeout | undefined;
  private retrySlot = false;
  private denied: RetryDenial = '';
  private hash: number | undefined;
  /** The HTTP filters' run of this request (cancelled if the client leaves during a delay); unset when none runs. */
  private filterRun: FilterRun | undefined;
  private filterFlags = '';
  /** What the router needs once the filters let the request go on. */
  private held: { runtime: Runtime; route: Route } | undefined;
  /** This request's span and the context for the next hop; unset when tracing is off. */
  trace: RequestTrace | undefined;
  private route: Route | undefined;
  /** DATA bytes either way, and the grpc-status seen (-1: none), for metrics and records. */
  private requestBytes = 0;
  private responseBytes = 0;
  private grpcStatus = -1;
  /** The request's trailers (a HEADERS frame after its DATA), forwarded to every attempt. */
  private requestTrailers: http2.OutgoingHttpHeaders | undefined;

  constructor(
    private readonly stream: http2.ServerHttp2Stream,
    private readonly headers: http2.IncomingHttpHeaders,
    private readonly ctx: HttpChainContext,
  ) {
    this.method = String(headers[':method']);
    this.host = String(headers[':authority'] ?? headers.host ?? '').toLowerCase();
    this.path = String(headers[':path'] ?? '/');
    this.grpc = String(headers['content-type'] ?? '').startsWith('application/grpc');
  }

  header(lowerName: string): string | undefined {
    if (lowerName === ':authority') return this.host;
    const v = this.headers[lowerName];
    return Array.isArray(v) ? v[0] : v;
  }

  /** FilterRequest: a filter removed a header from what goes upstream. */
  removeRequestHeader(lowerName: string): void {
    delete this.headers[lowerName];
  }

  start(): void {
    if (this.ctx.tracer) this.trace = this.ctx.tracer.start(this.ctx.direction, this, '2', this.sourceAddress);
    const { runtime, table, filters } = this.ctx.resolve();
    const match = table?.match(this);
    if (!match) return this.reply(404, 'NR', `no route for ${this.host}${this.path}`, '');
    this.route = match.route;
    if (filters.length === 0) return this.routeRequest(runtime, match.route);
    this.held = { runtime, route: match.route };
    this.filterRun = runRequestFilters(filters, this, match.route, this);
    // The client may go away while a filter holds the request.
    if (!this.done) this.stream.once('close', () => this.filterRun?.cancel());
  }

  /** FilterHost: the filters let the request go on, or answered it. */
  filtersDone(reply: LocalReplySpec | undefined, run: FilterRun): void {
    this.filterFlags = run.flags;
    if (this.done || this.stream.destroyed) return;
    if (reply) return this.reply(reply.status, reply.flag, reply.detail, '', reply.headers ?? [], reply.grpcStatus);
    this.routeRequest(this.held!.runtime, this.held!.route);
  }

  get sourceAddress(): string | undefined {
    return sourceIp(this.stream.session?.socket?.remoteAddress);
  }

  /** FilterRequest: the connection's local port. */
  get destinationPort(): number | undefined {
    return this.stream.session?.socket?.localPort;
  }

  /** The mTLS caller (undefined over plaintext), kept per session. */
  private get peer(): PeerIdentity | undefined {
    return peerOf(this.stream.session);
  }

  /** FilterRequest: the mTLS caller's identity. */
  get peerPrincipal(): string | undefined {
    return this.peer?.principal;
  }

  /** The router: the route's action, then cluster, circuit breaker, endpoint. */
  private routeRequest(runtime: Runtime, route: Route): void {
    const match = { route };
    const action = route.action;
    if (action.kind === 'direct') return this.reply(action.status, '', action.body ?? '', '');
    if (action.kind === 'redirect') return this.reply(action.status, '', 'redirect', '', ['location', `${action.scheme ?? 'http'}://${action.host ?? this.host}${action.path ?? this.path}`]);
    const idleMs = action.idleTimeoutMs ?? this.ctx.streamIdleTimeoutMs;
    if (idleMs > 0) this.stream.setTimeout(idleMs, () => this.streamIdleTimedOut(idleMs));
    const name = action.clusters.length === 1 ? action.clusters[0].name : pickWeightedCluster(action.clusters, action.totalWeight, Math.random);
    this.stats = this.ctx.stats.forCluster(this.ctx.direction, name, this.peer?.source);
    this.stats.requests++;
    const cluster = runtime.cluster(name);
    if (!cluster) return this.reply(503, 'NC', `cluster ${name} is not configured`, name);
    if (cluster.load.active >= cluster.config.limits.maxRequests) return this.reply(503, 'UO', `cluster ${name} is at its request limit`, name);
    const hash = action.hashPolicies.length > 0 ? requestHash(action.hashPolicies, this, sourceIp(this.stream.session?.socket?.remoteAddress)) : undefined;
    this.hash = hash;
    const endpoint = cluster.lb.pick(hash === undefined ? undefined : { hash });
    if (!endpoint) return this.reply(503, 'UH', `no healthy endpoint in cluster ${name}`, name);
    this.cluster = cluster;
    this.endpoint = endpoint;
    cluster.load.started(endpoint);
    if (action.mirrors.length > 0) this.startShadows(runtime, route, action);
    if (action.timeoutMs > 0) this.timer = setTimeout(() => this.timedOut(action.timeoutMs), action.timeoutMs);
    if (!this.stream.endAfterHeaders) this.stream.once('trailers', (t) => this.receivedTrailers(t));
    if (cluster.config.protocol === 'http2') {
      if (action.retry) this.startRetries(action.retry);
      this.toH2(match.route, action, cluster, endpoint);
    } else {
      if (action.retry) this.startRetries(action.retry);
      this.toH1(match.route, action, cluster, endpoint);
    }
  }

  /** Copies of the request for the route's mirror clusters (see mirror.ts), fed the body as it comes. */
  private startShadows(runtime: Runtime, route: Route, action: RouteAction): void {
    const headers: string[] = [];
    for (const [name, value] of Object.entries(this.headers)) {
      if (name.charCodeAt(0) === 0x3a || value === undefined) continue;
      for (const v of Array.isArray(value) ? value : [value]) headers.push(name, v);
    }
    const length = this.headers['content-length'];
    const body = this.stream.endAfterHeaders ? 'none' : length !== undefined ? 'length' : 'stream';
    const req = { method: this.method, path: this.upstreamPath(route, action), host: action.hostRewrite ?? this.host, headers, body, contentLength: length === undefined ? undefined : Number(length) } as const;
    const shadows = startShadows(runtime, action.mirrors, req, this.ctx.stats.mirrors);
    if (!shadows) return;
    if (body === 'none') return shadows.forEach((s) => s.end());
    let ended = false;
    this.stream.on('data', (chunk: Buffer) => shadows.forEach((s) => s.write(chunk)));
    onBodyEnd(this.stream, () => {
      ended = true;
      shadows.forEach((s) => s.end());
    });
    this.stream.on('close', () => ended || shadows.forEach((s) => s.abort()));
  }

  // ---- retries (HTTP/2 upstreams) ----

  private startRetries(retry: RetryPolicy): void {
    this.retry = retry;
    this.stream.on('close', () => {
      if (!this.done) {
        this.finish(0, 'DC');
        if (this.currentUp) resetStream(this.currentUp, 'cancel');
        this.currentReq?.destroy();
      }
    });
    if (this.stream.endAfterHeaders) {
      this.bodyEnded = true;
      return;
    }
    // One reader for the whole exchange: the body goes to the current attempt and is kept for the next.
    this.replay = [];
    this.stream.on('data', (chunk: Buffer) => {
      this.requestBytes += chunk.length;
      if (this.replay) {
        this.replayBytes += chunk.length;
        if (this.replayBytes > MAX_REPLAY_BODY) this.replay = undefined;
        else this.replay.push(chunk);
      }
      const up = this.currentUp ?? this.currentReq;
      if (up && !up.destroyed && !up.write(chunk)) {
        this.stream.pause();
        up.once('drain', () => this.stream.resume());
      }
    });
    onBodyEnd(this.stream, () => {
      this.bodyEnded = true;
      const up = this.currentUp ?? this.currentReq;
      if (up && !up.destroyed) up.end();
    });
  }

  private replayable(): boolean {
    return this.bodyEnded && (this.stream.endAfterHeaders || this.replay !== undefined);
  }

  /** After a failed attempt the policy covers: schedules the next one, or sets `denied` (URX, UO) and returns false. */
  private scheduleRetry(route: Route, action: RouteAction): boolean {
    const retry = this.retry!;
    const cluster = this.cluster!;
    this.denied = admitRetry(retry, this.attempt, this.replayable(), this.retrySlot, cluster, this.stats!);
    if (this.denied) return false;
    this.retrySlot = true;
    const up = this.currentUp;
    this.currentUp = undefined;
    if (up) resetStream(up, 'cancel');
    this.currentReq?.destroy();
    this.currentReq = undefined;
    clearTimeout(this.tryTimer);
    const delay = backoffMs(retry, this.attempt - 1);
    this.attempt++;
    this.backoffTimer = setTimeout(() => {
      if (this.done) return;
      const endpoint = repickEndpoint(cluster, this.endpoint!, this.hash);
      this.endpoint = endpoint;
      if (!endpoint) return this.reply(503, 'UH', `no healthy endpoint in cluster ${cluster.config.name}`, cluster.config.name);
      if (cluster.config.protocol === 'http2') this.toH2(route, action, cluster, endpoint);
      else this.toH1(route, action, cluster, endpoint);
    }, delay);
    return true;
  }

  /**
   * A request body may end with trailers, which an h2 upstream stream must wait for (receivedTrailers
   * keeps them). gRPC clients never send request trailers, so their calls skip the wait.
   */
  private get mayHaveTrailers(): boolean {
    return !this.stream.endAfterHeaders && !this.grpc;
  }

  /** Request trailers arrived (before the body's end): kept for retries, and given to an HTTP/1.1 attempt now. */
  private receivedTrailers(t: http2.IncomingHttpHeaders): void {
    const trailers: http2.OutgoingHttpHeaders = {};
    copyHeaders(t, trailers, []);
    this.requestTrailers = trailers;
    // HTTP/1.1 carries them in the last chunk, so only a chunked request body (no content-length) can.
    const req = this.currentReq;
    if (req && !req.destroyed) req.addTrailers(trailers as http.OutgoingHttpHeaders);
  }

  /** An attempt failed locally and is not retried: the local reply says why. */
  private failAttempt(status: number, flag: string, message: string): void {
    const [replyFlag, text] = failedAttemptReply(this.denied, this.attempt, flag, message);
    this.reply(status, replyFlag, text, this.cluster!.config.name);
  }

  /** A failed attempt with no response: retried when the policy covers it, else answered locally. */
  private attemptFailed(route: Route, action: RouteAction, failure: LocalFailure, status: number, flag: string, message: string): void {
    if (retryOnFailure(this.retry!, failure) && this.scheduleRetry(route, action)) return;
    this.failAttempt(status, flag, message);
  }

  private upstreamPath(route: Route, action: RouteAction): string {
    return action.prefixRewrite !== undefined || action.regexRewrite ? rewritePath(this.path, action, route.match) : this.path;
  }

  private toH2(route: Route, action: RouteAction, cluster: ClusterRuntime, endpoint: import('../config/types').Endpoint): void {
    const out: http2.OutgoingHttpHeaders = {
      ':method': this.method,
      ':path': this.upstreamPath(route, action),
      ':authority': action.hostRewrite ?? this.host,
      ':scheme': 'http',
    };
    copyHeaders(this.headers, out, route.requestHeadersToRemove);
    if (this.headers.te === 'trailers') out.te = 'trailers'; // gRPC needs it end to end
    for (const h of route.requestHeadersToAdd) out[h.name] = h.value;
    const retry = this.retry;
    if (retry) out['x-envoy-attempt-count'] = String(this.attempt);
    if (this.trace) setTraceHeaders(out, this.trace);
    let up: http2.ClientHttp2Stream;
    try {
      // A request whose HEADERS ended the stream (a GET) needs no body pipe.
      up = cluster.h2Pool().session(endpoint).request(out, { endStream: this.stream.endAfterHeaders, waitForTrailers: this.mayHaveTrailers });
    } catch (err) {
      this.failed(endpoint, 'connect');
      if (retry) return this.attemptFailed(route, action, 'connect', 503, 'UF', `upstream connect failure: ${(err as Error).message}`);
      return this.reply(503, 'UF', `upstream connect failure: ${(err as Error).message}`, cluster.config.name);
    }
    if (this.mayHaveTrailers) up.on('wantTrailers', () => up.sendTrailers(this.requestTrailers ?? {}));
    let trailers: http2.OutgoingHttpHeaders | undefined;
    let responded = false;
    /** An earlier attempt's stream, given up on: its events do nothing. */
    const stale = () => this.done || (retry !== undefined && up !== this.currentUp);
    if (retry) {
      this.currentUp = up;
      this.abortUpstream = () => this.currentUp && resetStream(this.currentUp, 'cancel');
      if (!this.stream.endAfterHeaders && this.attempt > 1) {
        for (const chunk of this.replay ?? []) up.write(chunk);
        if (this.bodyEnded) up.end();
      }
      if (retry.perTryTimeoutMs > 0) {
        const ms = retry.perTryTimeoutMs;
        this.tryTimer = setTimeout(() => {
          if (stale() || responded) return;
          this.failed(endpoint, 'timeout');
          this.attemptFailed(route, action, 'timeout', 504, 'UT', `upstream did not answer within the per-try timeout of ${ms} ms`);
          if (this.done) resetStream(up, 'cancel');
        }, ms);
      }
    } else {
      this.abortUpstream = () => resetStream(up, 'cancel');
      if (!this.stream.endAfterHeaders) {
        this.stream.pipe(up, { end: false });
        onBodyEnd(this.stream, () => up.end());
        this.stream.on('data', (chunk: Buffer) => (this.requestBytes += chunk.length));
      }
      this.stream.on('close', () => {
        if (!this.done) {
          this.finish(0, 'DC');
          resetStream(up, 'cancel');
        }
      });
    }
    up.on('response', (headers, flags) => {
      if (stale()) return;
      const status = Number(headers[':status']);
      const trailersOnly = up.endAfterHeaders || (flags & NGHTTP2_FLAG_END_STREAM) !== 0;
      const outcomes = cluster.outcomes;
      if (outcomes !== undefined) outcomes.response(endpoint, trailersOnly ? effectiveStatus(status, headers['grpc-status']) : status);
      if (retry) {
        const grpcStatus = trailersOnly && headers['grpc-status'] !== undefined ? Number(headers['grpc-status']) : undefined;
        if ((retryOnStatus(retry, status) || (grpcStatus !== undefined && retryOnGrpc(retry, grpcStatus))) && this.scheduleRetry(route, action)) return;
        clearTimeout(this.tryTimer);
      }
      responded = true;
      const res: http2.OutgoingHttpHeaders = { ':status': status };
      copyHeaders(headers, res, route.responseHeadersToRemove);
      for (const h of route.responseHeadersToAdd) res[h.name] = h.value;
      // Node sets endAfterHeaders only after 'response': the frame's END_STREAM flag says it now.
      if (trailersOnly) {
        if (this.trace && headers['grpc-status'] !== undefined) this.trace.grpcStatus = Number(headers['grpc-status']);
        // Trailers-only (a gRPC error): the status travels in these headers.
        if (headers['grpc-status'] !== undefined) this.grpcStatus = Number(headers['grpc-status']);
        this.stream.respond(res, { endStream: true });
        return this.finish(status, '');
      }
      // Trailers are kept for whoever can expect them (RFC 9110 6.5.1): gRPC, a response that announced
      // them, and a client that said `te: trailers`. Waiting for them keeps the stream open past the
      // last DATA and, with none, costs an empty DATA frame: about a fifth more CPU per h2 request
      // (BENCHMARKS.md), so responses nobody asked trailers of end with their last DATA frame.
      if (this.grpc || headers.trailer !== undefined || this.headers.te === 'trailers' || String(headers['content-type'] ?? '').startsWith('application/grpc')) {
        this.stream.respond(res, { waitForTrailers: true });
        this.stream.on('wantTrailers', () => this.stream.sendTrailers(trailers ?? {}));
      } else {
        this.stream.respond(res);
      }
      up.on('data', (chunk: Buffer) => {
        this.responseBytes += chunk.length;
        if (!this.stream.write(chunk)) up.pause();
      });
      this.stream.on('drain', () => up.resume());
      up.on('end', () => {
        // An upstream reset mid-response ends `up` too (see onBodyEnd): the client gets a reset, not a cut response.
        if (up.destroyed) {
          this.finish(0, 'UPE');
          return resetStream(this.stream, 'internal');
        }
        this.stream.end();
        this.finish(status, '');
      });
    });
    up.on('trailers', (t) => {
      if (t['grpc-status'] !== undefined) {
        this.grpcStatus = Number(t['grpc-status']);
        if (this.trace) this.trace.grpcStatus = this.grpcStatus;
      }
      trailers = {};
      copyHeaders(t, trailers, []);
    });
    up.on('error', (err) => {
      if (stale()) return;
      if (retry && !responded) {
        const code = (err as NodeJS.ErrnoException).code ?? '';
        const connect = code === 'ECONNREFUSED' || code === 'ETIMEDOUT' || code === 'EHOSTUNREACH' || /connect/i.test(err.message);
        const failure: LocalFailure = up.rstCode === NGHTTP2_REFUSED_STREAM ? 'refused' : connect ? 'connect' : 'reset';
        this.failed(endpoint, failure);
        return this.attemptFailed(route, action, failure, 503, connect ? 'UF' : 'UC', `upstream stream failed: ${err.message}`);
      }
      if (!responded) {
        if (up.rstCode === NGHTTP2_REFUSED_STREAM && this.stream.endAfterHeaders && !this.retriedRefused) return; // 'close' retries
        this.failed(endpoint, up.rstCode === NGHTTP2_REFUSED_STREAM ? 'refused' : 'reset');
        return this.reply(503, 'UC', `upstream stream failed: ${err.message}`, cluster.config.name);
      }
      this.finish(0, 'UPE');
      resetStream(this.stream, 'internal');
    });
    up.on('close', () => {
      if (stale() || responded) return;
      this.failed(endpoint, up.rstCode === NGHTTP2_REFUSED_STREAM ? 'refused' : 'reset');
      if (retry) {
        const failure: LocalFailure = up.rstCode === NGHTTP2_REFUSED_STREAM ? 'refused' : 'reset';
        return this.attemptFailed(route, action, failure, 503, 'UC', `upstream reset the stream (code ${up.rstCode})`);
      }
      // REFUSED_STREAM: the upstream never processed it (e.g. it sent GOAWAY); a bodiless request may go again once.
      if (up.rstCode === NGHTTP2_REFUSED_STREAM && this.stream.endAfterHeaders && !this.retriedRefused) {
        this.retriedRefused = true;
        return this.toH2(route, action, cluster, endpoint);
      }
      this.reply(503, 'UC', `upstream reset the stream (code ${up.rstCode})`, cluster.config.name);
    });
  }

  private toH1(route: Route, action: RouteAction, cluster: ClusterRuntime, endpoint: import('../config/types').Endpoint): void {
    const headers: http.OutgoingHttpHeaders = {};
    copyHeaders(this.headers, headers, route.requestHeadersToRemove);
    headers.host = action.hostRewrite ?? this.host;
    for (const h of route.requestHeadersToAdd) headers[h.name] = h.value;
    const retry = this.retry;
    if (retry) headers['x-envoy-attempt-count'] = String(this.attempt);
    if (this.trace) setTraceHeaders(headers, this.trace);
    const req = http.request({
      host: endpoint.address,
      port: endpoint.port,
      method: this.method,
      path: this.upstreamPath(route, action),
      headers,
      agent: cluster.h1Agent(),
    });
    let responded = false;
    const stale = () => this.done || (retry !== undefined && req !== this.currentReq);
    this.currentReq = req;
    if (this.requestTrailers) req.addTrailers(this.requestTrailers as http.OutgoingHttpHeaders);
    if (retry) {
      this.abortUpstream = () => this.currentReq?.destroy();
      if (this.attempt > 1) for (const chunk of this.replay ?? []) req.write(chunk);
      if (this.bodyEnded) req.end();
      if (retry.perTryTimeoutMs > 0) {
        const ms = retry.perTryTimeoutMs;
        this.tryTimer = setTimeout(() => {
          if (stale() || responded) return;
          this.failed(endpoint, 'timeout');
          this.attemptFailed(route, action, 'timeout', 504, 'UT', `upstream did not answer within the per-try timeout of ${ms} ms`);
          if (this.done) req.destroy();
        }, ms);
      }
    } else {
      this.abortUpstream = () => req.destroy();
      this.stream.pipe(req, { end: false });
      onBodyEnd(this.stream, () => req.end());
      this.stream.on('data', (chunk: Buffer) => (this.requestBytes += chunk.length));
      this.stream.on('close', () => {
        if (!this.done) {
          req.destroy();
          this.finish(0, 'DC');
        }
      });
    }
    req.on('response', (res) => {
      if (stale()) return res.resume();
      const status = res.statusCode ?? 502;
      const outcomes = cluster.outcomes;
      if (outcomes !== undefined) outcomes.response(endpoint, status);
      if (retry) {
        if (retryOnStatus(retry, status) && this.scheduleRetry(route, action)) return res.resume();
        clearTimeout(this.tryTimer);
      }
      responded = true;
      const out: http2.OutgoingHttpHeaders = { ':status': status };
      copyHeaders(res.headers, out, route.responseHeadersToRemove);
      for (const h of route.responseHeadersToAdd) out[h.name] = h.value;
      this.stream.respond(out, { waitForTrailers: true });
      this.stream.on('wantTrailers', () => {
        const t: http2.OutgoingHttpHeaders = {};
        copyHeaders(res.trailers, t, []);
        this.stream.sendTrailers(t);
      });
      res.on('data', (chunk: Buffer) => (this.responseBytes += chunk.length));
      res.pipe(this.stream);
      res.on('end', () => this.finish(status, ''));
      // The upstream connection closed mid-body (no 'end', and no 'error' on req once a response
      // came): the client gets RST_STREAM, never END_STREAM after a body cut short.
      res.on('close', () => {
        if (res.complete || this.done) return;
        this.finish(0, 'UC');
        resetStream(this.stream, 'internal');
      });
    });
    req.on('error', (err) => {
      if (stale()) return;
      if (retry && !responded) {
        const code = (err as NodeJS.ErrnoException).code ?? '';
        const connect = code === 'ECONNREFUSED' || code === 'ETIMEDOUT' || code === 'EHOSTUNREACH';
        this.failed(endpoint, connect ? 'connect' : 'reset');
        return this.attemptFailed(route, action, connect ? 'connect' : 'reset', 503, connect ? 'UF' : 'UC', `upstream failure: ${err.message}`);
      }
      if (!this.stream.headersSent) {
        this.failed(endpoint, (err as NodeJS.ErrnoException).code === 'ECONNREFUSED' ? 'connect' : 'reset');
        return this.reply(503, 'UF', `upstream failure: ${err.message}`, cluster.config.name);
      }
      this.finish(0, 'UPE');
      resetStream(this.stream, 'internal');
    });
  }

  /** No frames either way for the stream idle timeout: 408 SI (gRPC: UNAVAILABLE) before the response, else a reset. */
  private streamIdleTimedOut(ms: number): void {
    if (this.done) return;
    this.abortUpstream?.();
    if (!this.stream.headersSent) return this.reply(408, 'SI', `no activity on the request for ${ms} ms (stream idle timeout)`, this.cluster?.config.name ?? '');
    this.finish(0, 'SI');
    resetStream(this.stream, 'cancel');
  }

  /** Outlier detection hears of an attempt that failed locally. */
  private failed(endpoint: Endpoint, failure: LocalFailure): void {
    const outcomes = this.cluster?.outcomes;
    if (outcomes !== undefined) outcomes.failure(endpoint, failure);
  }

  private timedOut(ms: number): void {
    if (this.done) return;
    if (!this.stream.headersSent && this.endpoint) this.failed(this.endpoint, 'timeout');
    this.abortUpstream?.();
    if (!this.stream.headersSent) this.reply(504, 'UT', `upstream did not answer within the route timeout of ${ms} ms`, this.cluster?.config.name ?? '');
    else {
      this.finish(0, 'UT');
      resetStream(this.stream, 'cancel');
    }
  }

  /** A local answer; for gRPC, HTTP 200 with grpc-status so the client sees a proper status. */
  private reply(status: number, flag: string, message: string, cluster: string, extra: string[] = [], grpcStatus?: number): void {
    if (this.done || this.stream.destroyed) return;
    if (!this.stats) {
      this.stats = this.ctx.stats.forCluster(this.ctx.direction, cluster, this.peer?.source);
      this.stats.requests++;
    }
    const headers: http2.OutgoingHttpHeaders = {};
    if (flag) headers[RESPONSE_FLAGS_HEADER] = flag;
    for (let i = 0; i < extra.length; i += 2) headers[extra[i]] = extra[i + 1];
    if (this.grpc) {
      headers[':status'] = 200;
      headers['content-type'] = 'application/grpc';
      this.grpcStatus = grpcStatus ?? grpcStatusFor(status);
      headers['grpc-status'] = String(this.grpcStatus);
      headers['grpc-message'] = grpcPercentEncode(`${flag ? `${flag}: ` : ''}${message}`);
      this.stream.respond(headers, { endStream: true });
    } else {
      headers[':status'] = status;
      headers['content-type'] = 'text/plain; charset=utf-8';
      this.stream.respond(headers);
      this.stream.end(message + '\n');
      this.responseBytes += Buffer.byteLength(message) + 1;
    }
    this.finish(status, flag);
  }

  private finish(status: number, flag: string): void {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.timer);
    if (this.retry) {
      clearTimeout(this.tryTimer);
      clearTimeout(this.backoffTimer);
      if (this.retrySlot) this.cluster!.load.retries--;
      this.retrySlot = false;
    }
    if (this.endpoint) this.cluster!.load.ended(this.endpoint);
    if (this.filterFlags) flag = flag ? `${this.filterFlags},${flag}` : this.filterFlags;
    if (this.trace) this.ctx.tracer!.end(this.trace, { status, flag, cluster: this.cluster?.config.name, endpoint: this.endpoint?.key, route: this.route?.name });
    const ms = performance.now() - this.started;
    this.stats?.response(status, ms, flag || undefined, this.route?.name, this.grpc ? this.grpcStatus : -1, this.requestBytes, this.responseBytes);
    const records = this.ctx.stats.records;
    if (records.active) records.emit(this.record(status, flag, ms));
  }

  /** The RequestRecord of this exchange (built only when an observer wants it). */
  private record(status: number, flags: string, durationMs: number): RequestRecord {
    const ctx = this.ctx;
    const cluster = this.cluster?.config.name ?? this.stats?.cluster ?? '';
    const stats = this.stats ?? ctx.stats.forCluster(ctx.direction, cluster, this.peer?.source);
    const socket = this.stream.session?.socket;
    return {
      time: performance.timeOrigin + this.started,
      durationMs,
      direction: ctx.direction,
      protocol: this.grpc ? 'grpc' : 'http2',
      method: this.method,
      authority: this.host,
      path: this.path,
      route: this.route?.name ?? '',
      cluster,
      upstream: this.endpoint?.key ?? '',
      status,
      grpcStatus: this.grpc && this.grpcStatus >= 0 ? this.grpcStatus : undefined,
      flags,
      requestBytes: this.requestBytes,
      responseBytes: this.responseBytes,
      sourceAddress: socket ? `${socket.remoteAddress}:${socket.remotePort}` : '',
      source: stats.source,
      destination: stats.destination,
      attempts: this.attempt,
      traceId: this.trace?.traceId,
    };
  }
}

/**
 * gRPC's Percent-Encoded (PROTOCOL-HTTP2.md): only '%' and bytes outside 0x20-0x7E are
 * encoded. encodeURIComponent encoded ':' and '/' too, which grpc-js (decodeURI) leaves as is.
 */
export function grpcPercentEncode(text: string): string {
  let out = '';
  for (const b of Buffer.from(text, 'utf8')) {
    out += b >= 0x20 && b <= 0x7e && b !== 0x25 ? String.fromCharCode(b) : `%${b < 16 ? '0' : ''}${b.toString(16).toUpperCase()}`;
  }
  return out;
}

/** Copies regular headers, leaving out pseudo-headers, connection-specific ones and `remove`. */
function copyHeaders(from: http.IncomingHttpHeaders | http2.IncomingHttpHeaders | NodeJS.Dict<string | string[]>, to: Record<string, unknown>, remove: string[]): void {
  for (const name of Object.keys(from)) {
    if (isH2Forbidden(name) || remove.includes(name)) continue;
    const value = from[name];
    if (value !== undefined) to[name] = value;
  }
}
