// Downstream HTTP/2 sessions (h2c with prior knowledge, h2 over mTLS): the
// HTTP/1 connection hands over a socket that opened with the h2 preface. This
// file owns the sessions: limits, protocol errors and floods (each counted),
// the socket's close after nghttp2's GOAWAY, malformed requests refused before
// routing; each stream then becomes an H2Exchange (h2-exchange.ts).
import * as http2 from 'node:http2';
import type * as net from 'node:net';
import type { HttpChainContext } from '../http1/connection';
import { RESPONSE_FLAGS_HEADER } from '../http1/head-writer';
import { TARGET_CHAR } from '../http1/tokens';
import { setPeer, peerOf, type PeerIdentity } from '../tls/peer';
import { H2Exchange } from './h2-exchange';

const { NGHTTP2_CANCEL, NGHTTP2_ENHANCE_YOUR_CALM, NGHTTP2_PROTOCOL_ERROR, NGHTTP2_FLOW_CONTROL_ERROR, NGHTTP2_STREAM_CLOSED } = http2.constants;

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
