// One request through the proxy: route → cluster → endpoint → pooled
// upstream connection, then the response back. Bodies are forwarded as
// slices with the framing they came with (Content-Length counted, chunked
// scanned), with backpressure both ways. Every local reply carries a
// response flag saying why. A route's retry policy (HTTP/1.1 clusters) tries
// again what failed before any response byte went downstream (see retry.ts);
// without one, none of that code runs.
import type { Endpoint, RetryPolicy, Route, RouteAction } from '../config/types';
import type { RouteMatchResult } from '../router/route-table';
import { requestHash, sourceIp } from '../router/hash';
import { rewritePath } from '../router/rewrite';
import { pickWeightedCluster } from '../router/weighted';
import { admitRetry, backoffMs, failedAttemptReply, MAX_REPLAY_BODY, repickEndpoint, retryOnFailure, retryOnGrpc, retryOnStatus, type LocalFailure, type RetryDenial } from '../retry';
import { runEncodeHooks, runRequestFilters, type EncodeHeadersHook, type FilterHost, type FilterRequest, type FilterRun, type LocalReplySpec } from '../filters/http-filter';
import { FlatResponseHead, ObjectResponseHead } from '../filters/header-edits';
import { startShadows, type Shadow } from '../mirror';
import { PROPAGATION_FIELDS } from '../../observe/tracing/propagation';
import type { RequestTrace } from '../../observe/tracing/proxy-tracer';
import type { ClusterRuntime, Runtime } from '../runtime';
import type { RequestStats } from '../stats';
import type { RequestRecord } from '../../observe/request-record';
import { effectiveStatus } from '../upstream/outlier-detector';
import { ConnectError, PoolOverflowError, type UpstreamConnection, type UpstreamHandler } from '../upstream/pool';
import { activityClock } from '../listener/activity-clock';
import { holdFor, releaseWrites, writeOwnBytes } from '../turn-writes';
import { ChunkedScanner } from './chunked';
import { H2Bridge, type BridgeHost } from './h2-bridge';
import type { Http1Connection } from './connection';
import { HttpParseError } from './errors';
import { parseResponseHead, type RequestHead, type ResponseHead } from './head-parser';
import { buildHead, forwardableAsIs, localReply, type HeadChanges } from './head-writer';

/** Bytes of request body held while the upstream connection is being made; reading pauses beyond. */
const MAX_QUEUED_BODY = 256 * 1024;

type Framing = { kind: 'none' } | { kind: 'length'; remaining: number } | { kind: 'chunked'; scanner: ChunkedScanner } | { kind: 'eof' };

export class Exchange implements UpstreamHandler, FilterRequest, FilterHost, BridgeHost {
  readonly method: string;
  readonly host: string;
  readonly path: string;
  private readonly started = performance.now();
  private stats: RequestStats | undefined;
  /** FilterRequest: dynamic metadata the filters leave for each other. */
  filterMetadata: Record<string, Record<string, unknown>> | undefined = undefined;
  private route: Route | undefined;
  private cluster: ClusterRuntime | undefined;
  private endpoint: Endpoint | undefined;
  private upstream: UpstreamConnection | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Set when the cluster speaks HTTP/2: the request goes out as an h2 stream. */
  private bridge: H2Bridge | undefined;

  /** Request body still expected from downstream. */
  private reqFraming: Framing;
  /** Body bytes that arrived before the upstream connection was ready. */
  private queued: Buffer[] | undefined;
  private queuedBytes = 0;
  private headSent = false;

  /** Response head bytes gathered until the head is complete. */
  private resBuf: Buffer | undefined;
  private resHead: ResponseHead | undefined;
  private resFraming: Framing | undefined;
  private responseStarted = false;
  private finished = false;
  /** A retry is allowed once, when a reused connection closes before any response byte. */
  private retried = false;

  // ---- the route's retry policy (HTTP/1.1 clusters); all unset on the fast path ----
  private retry: RetryPolicy | undefined;
  /** 1 for the first try; sent upstream as x-envoy-attempt-count. */
  private attempt = 1;
  /** The request body so far, for a retry to send again; undefined once it outgrew MAX_REPLAY_BODY. */
  private replay: Buffer[] | undefined;
  private replayBytes = 0;
  private tryTimer: NodeJS.Timeout | undefined;
  private backoffTimer: NodeJS.Timeout | undefined;
  /** This request holds one of the cluster's retry slots (max_retries / retry budget). */
  private retrySlot = false;
  private hash: number | undefined;
  /** The HTTP filters' run of this request (cancelled if the client leaves during a delay); unset when none runs. */
  private filterRun: FilterRun | undefined;
  /** Last bytes either way (activity-clock.ts), for the stream idle timeout. */
  lastActivity = activityClock.now;
  /** The route's stream idle timeout, else the listener's; until a route matched, the listener's. */
  streamIdleTimeoutMs: number;
  /** Mirror copies still receiving the request body. */
  private shadows: Shadow[] | undefined;
  /** The runtime the request started on, kept while filters hold it. */
  private runtime: Runtime | undefined;
  /** Flags the filters noted without answering (FI for an injected delay). */
  private filterFlags = '';
  /** A filter changed the request's headers: its received head bytes cannot be sent as they are. */
  private headersEdited = false;
  /** Filters that asked to see the response head (encodeHeaders); unset on the fast path. */
  private encodeHooks: EncodeHeadersHook[] | undefined;
  /** This request's span and the context for the next hop; unset when tracing is off. */
  trace: RequestTrace | undefined;
  /** Bytes from and to downstream, heads included (metrics and records). */
  private requestBytes: number;
  private responseBytes = 0;

  constructor(
    private readonly conn: Http1Connection,
    private readonly head: RequestHead,
    private readonly headBytes: Buffer,
  ) {
    this.method = head.method;
    this.host = head.host;
    this.path = head.path;
    this.reqFraming = toFraming(head.body);
    this.streamIdleTimeoutMs = conn.ctx.streamIdleTimeoutMs;
    this.requestBytes = headBytes.length;
  }

  /** RequestInfo for the router and hash policies. */
  header(lowerName: string): string | undefined {
    const h = this.head.headers;
    for (let i = 0; i < h.length; i += 2) {
      if (h[i].length === lowerName.length && h[i].toLowerCase() === lowerName) return h[i + 1];
    }
    return undefined;
  }

  /** FilterRequest: a filter removed a header (the head is rebuilt without it). */
  removeRequestHeader(lowerName: string): void {
    const h = this.head.headers;
    for (let i = h.length - 2; i >= 0; i -= 2) {
      if (h[i].toLowerCase() === lowerName) h.splice(i, 2);
    }
    this.headersEdited = true;
  }

  /** FilterRequest: a filter set a header (every field of that name is replaced). */
  setRequestHeader(name: string, value: string): void {
    this.removeRequestHeader(name.toLowerCase());
    this.head.headers.push(name, value);
  }

  /** FilterRequest: a filter added a header. */
  addRequestHeader(name: string, value: string): void {
    this.head.headers.push(name, value);
    this.headersEdited = true;
  }

  /** FilterRequest: a filter wants the response head. */
  onResponseHeaders(hook: EncodeHeadersHook): void {
    (this.encodeHooks ??= []).push(hook);
  }

  get wantsRequestBody(): boolean {
    return this.reqFraming.kind === 'length' || this.reqFraming.kind === 'chunked';
  }

  // ---- request side ----

  start(): void {
    if (this.finished) return; // the body bytes that came with the head were malformed: refused already
    const tracer = this.conn.ctx.tracer;
    if (tracer) this.trace = tracer.start(this.conn.ctx.direction, this, `1.${this.head.minor}`, this.sourceAddress);
    const { runtime, table, filters } = this.conn.ctx.resolve();
    if (this.head.method === 'CONNECT') {
      return this.reply(501, 'NR', 'CONNECT tunnels are not supported by this listener', '');
    }
    const match: RouteMatchResult | undefined = table?.match(this);
    if (!match) return this.reply(404, 'NR', `no route for ${this.head.host}${this.head.path}`, '');
    this.route = match.route;
    if (filters.length === 0) return this.routeRequest(runtime, match.route);
    this.runtime = runtime;
    this.filterRun = runRequestFilters(filters, this, match.route, this);
  }

  /** FilterHost: the filters let the request go on, or answered it. */
  filtersDone(reply: LocalReplySpec | undefined, run: FilterRun): void {
    this.filterFlags = run.flags;
    if (this.finished) return;
    if (reply) return this.reply(reply.status, reply.flag, reply.detail, '', false, reply.headers);
    this.routeRequest(this.runtime!, this.route!);
  }

  /** The router: the route's action, then cluster, circuit breaker, endpoint. */
  private routeRequest(runtime: Runtime, route: Route): void {
    const direction = this.conn.ctx.direction;
    const action = route.action;
    if (action.kind === 'direct') return this.reply(action.status, '', action.body ?? '', '');
    if (action.kind === 'redirect') return this.redirect(action);
    if (action.idleTimeoutMs !== undefined) this.streamIdleTimeoutMs = action.idleTimeoutMs;
    this.lastActivity = activityClock.now; // a filter may have held the request

    const clusterName = action.clusters.length === 1 ? action.clusters[0].name : pickWeightedCluster(action.clusters, action.totalWeight, Math.random);
    this.stats = this.conn.ctx.stats.forCluster(direction, clusterName, this.conn.peerSource);
    this.stats.requests++;
    const cluster = runtime.cluster(clusterName);
    if (!cluster) return this.reply(503, 'NC', `cluster ${clusterName} is not configured`, clusterName);
    this.cluster = cluster;
    if (cluster.load.active >= cluster.config.limits.maxRequests) {
      return this.reply(503, 'UO', `cluster ${clusterName} is at its limit of ${cluster.config.limits.maxRequests} requests`, clusterName);
    }
    const hash = action.hashPolicies.length > 0 ? requestHash(action.hashPolicies, this, sourceIp(this.conn.socket.remoteAddress)) : undefined;
    this.hash = hash;
    const endpoint = cluster.lb.pick(hash === undefined ? undefined : { hash });
    if (!endpoint) return this.reply(503, 'UH', `no healthy endpoint in cluster ${clusterName}`, clusterName);
    this.endpoint = endpoint;
    cluster.load.started(endpoint);
    if (action.mirrors.length > 0) this.startShadows(runtime, route, action);
    if (action.timeoutMs > 0) this.timer = setTimeout(() => this.timedOut(action.timeoutMs), action.timeoutMs);
    if (cluster.config.protocol === 'http2') return this.startBridge(action, cluster, endpoint);
    if (action.retry) this.startRetries(action.retry);
    this.acquire();
  }

  /** Copies of the request for the route's mirror clusters (see mirror.ts), fed the body as it comes. */
  private startShadows(runtime: Runtime, route: Route, action: RouteAction): void {
    const h = this.head;
    const body = h.body.kind === 'chunked' ? 'raw-chunked' : h.body.kind === 'length' && h.body.length > 0 ? 'length' : 'none';
    const path = action.prefixRewrite !== undefined || action.regexRewrite ? rewritePath(h.path, action, route.match) : h.path;
    const shadows = startShadows(runtime, action.mirrors, { method: h.method, path, host: action.hostRewrite ?? h.host, headers: h.headers, body }, this.conn.ctx.stats.mirrors);
    if (!shadows) return;
    for (const chunk of this.queued ?? []) for (const s of shadows) s.write(chunk);
    if (this.reqFraming.kind === 'none') for (const s of shadows) s.end();
    else this.shadows = shadows;
  }

  /** FilterRequest: the peer's address, for per-source limits. */
  get sourceAddress(): string | undefined {
    return sourceIp(this.conn.socket.remoteAddress);
  }

  /** FilterRequest: the connection's local port. */
  get destinationPort(): number | undefined {
    return this.conn.socket.localPort;
  }

  /** FilterRequest: the mTLS caller's identity (one per connection). */
  get peerPrincipal(): string | undefined {
    return this.conn.peerPrincipal;
  }

  get grpc(): boolean {
    return (this.header('content-type') ?? '').startsWith('application/grpc');
  }

  // ---- retries ----

  private startRetries(retry: RetryPolicy): void {
    this.retry = retry;
    if (this.head.body.kind !== 'none' && !(this.head.body.kind === 'length' && this.head.body.length === 0)) {
      // A body announced larger than the replay buffer (or one of unknown length, grown past it) is never retried.
      if (this.head.body.kind !== 'length' || this.head.body.length <= MAX_REPLAY_BODY) {
        // Body bytes that came with the head are queued already.
        this.replay = this.queued ? this.queued.map((c) => Buffer.from(c)) : [];
        this.replayBytes = this.queuedBytes;
        if (this.replayBytes > MAX_REPLAY_BODY) this.replay = undefined;
      }
    }
    if (retry.perTryTimeoutMs > 0) this.armTryTimer();
  }

  private armTryTimer(): void {
    const ms = this.retry!.perTryTimeoutMs;
    this.tryTimer = setTimeout(() => this.tryTimedOut(ms), ms);
  }

  private tryTimedOut(ms: number): void {
    if (this.finished || this.responseStarted) return;
    this.failed('timeout');
    if (this.retryOn('timeout') && this.scheduleRetry('UT')) return;
    this.bridge?.cancel();
    this.failAttempt(504, 'UT', `upstream did not answer within the per-try timeout of ${ms} ms`);
  }

  /** Whether the retry policy covers an outcome: a response status, or a local failure. */
  private retryOn(outcome: number | LocalFailure): boolean {
    const retry = this.retry;
    if (!retry) return false;
    return typeof outcome === 'number' ? retryOnStatus(retry, outcome) : retryOnFailure(retry, outcome);
  }

  /** Whether the request can be sent again: its body fully received and kept (or it has none). */
  private replayable(): boolean {
    if (this.reqFraming.kind !== 'none') return false;
    return this.head.body.kind === 'none' || (this.head.body.kind === 'length' && this.head.body.length === 0) || this.replay !== undefined;
  }

  /**
   * After a failed attempt whose outcome the policy covers: schedules the next
   * one (true), or says why not by leaving `denied` set (URX: retries used up
   * or the body cannot be replayed; UO: the cluster's retry limit or budget).
   */
  private denied: RetryDenial = '';
  private scheduleRetry(_outcome: string): boolean {
    const retry = this.retry!;
    const cluster = this.cluster!;
    this.denied = admitRetry(retry, this.attempt, this.replayable(), this.retrySlot, cluster, this.stats!);
    if (this.denied) return false;
    this.retrySlot = true;
    this.bridge?.abandon();
    this.bridge = undefined;
    const up = this.upstream;
    this.upstream = undefined;
    if (up) cluster.pool.release(up, false);
    clearTimeout(this.tryTimer);
    this.tryTimer = undefined;
    this.resBuf = undefined;
    this.resHead = undefined;
    this.resFraming = undefined;
    this.headSent = false;
    const delay = backoffMs(retry, this.attempt - 1);
    this.attempt++;
    this.backoffTimer = setTimeout(() => this.nextAttempt(), delay);
    return true;
  }

  private nextAttempt(): void {
    this.backoffTimer = undefined;
    if (this.finished) return;
    const cluster = this.cluster!;
    const endpoint = repickEndpoint(cluster, this.endpoint!, this.hash);
    this.endpoint = endpoint;
    if (!endpoint) return this.reply(503, 'UH', `no healthy endpoint in cluster ${cluster.config.name}`, cluster.config.name);
    if (this.replay && this.replay.length > 0) {
      this.queued = this.replay.slice();
      this.queuedBytes = this.replayBytes;
    }
    if (this.retry!.perTryTimeoutMs > 0) this.armTryTimer();
    if (cluster.config.protocol === 'http2') {
      const route = this.route!;
      const action = route.action as RouteAction;
      const path = action.prefixRewrite !== undefined || action.regexRewrite ? rewritePath(this.head.path, action, route.match) : this.head.path;
      const hasBody = this.head.body.kind === 'length' && this.head.body.length > 0;
      this.queued = undefined;
      this.queuedBytes = 0;
      this.bridge = new H2Bridge(this, this.head, path, route, action, cluster, endpoint, hasBody, this.attempt, this.trace);
      if (hasBody) {
        for (const chunk of this.replay ?? []) this.bridge.write(chunk);
        this.bridge.end();
      }
      return;
    }
    this.acquire();
  }

  /** An attempt failed locally: retries are over or not allowed; answer with the failure. */
  private failAttempt(status: number, flag: string, message: string, forceClose = false): void {
    const [replyFlag, text] = failedAttemptReply(this.denied, this.attempt, flag, message);
    return this.reply(status, replyFlag, text, this.cluster!.config.name, forceClose);
  }

  private startBridge(action: RouteAction, cluster: ClusterRuntime, endpoint: Endpoint): void {
    if (this.head.body.kind === 'chunked') {
      return this.reply(501, 'DPE', 'a chunked request body cannot be sent to an HTTP/2 upstream; send Content-Length', cluster.config.name, true);
    }
    const route = this.route!;
    const path = action.prefixRewrite !== undefined || action.regexRewrite ? rewritePath(this.head.path, action, route.match) : this.head.path;
    const hasBody = this.head.body.kind === 'length' && this.head.body.length > 0;
    if (action.retry) this.startRetries(action.retry);
    this.bridge = new H2Bridge(this, this.head, path, route, action, cluster, endpoint, hasBody, this.retry ? this.attempt : undefined, this.trace);
    if (this.queued) for (const chunk of this.queued.splice(0)) this.bridge.write(chunk);
    this.queuedBytes = 0;
    // The whole body may have come with the head, before the bridge existed.
    if (hasBody && this.reqFraming.kind === 'none') this.bridge.end();
  }

  // ---- BridgeHost: the HTTP/2 upstream's answers ----

  writeDownstream(chunk: Buffer): void {
    this.responseStarted = true;
    this.responseBytes += chunk.length;
    this.lastActivity = activityClock.now;
    holdFor(this.conn, chunk.length); // held: ownBytes copies it; too large: not held, written as it is
    if (!this.conn.socket.write(this.ownBytes(chunk))) this.upstream?.socket.pause();
  }

  /**
   * Bytes of an upstream read as the client's socket may keep them: a copy for a TLS client
   * (pool.ts, writesFinishLater), so that the read buffer is reused at once. Holding it instead
   * cost a new 32 KiB buffer per response: ~300 MB/s of ArrayBuffers at 10k req/s. Writes held
   * to the end of the turn (turn-writes.ts) are copies too.
   */
  private ownBytes(read: Buffer): Buffer {
    return this.conn.writesFinishLater || this.conn.writesHeld ? Buffer.from(read) : read;
  }

  pauseDownstream(): void {
    this.conn.socket.pause();
  }

  resumeDownstream(): void {
    if (this.conn.socket.isPaused()) this.conn.socket.resume();
  }

  bridgeDone(status: number, close: boolean): void {
    if (this.finished) return;
    this.finish('', status);
    this.conn.exchangeDone(this, !close && this.head.keepAlive && this.reqFraming.kind === 'none');
  }

  bridgeFailed(status: number, flag: string, message: string, failure: LocalFailure): void {
    if (!this.finished) this.failed(failure);
    if (this.retry && !this.responseStarted) {
      if (this.retryOn(failure) && this.scheduleRetry(flag)) return;
      return this.failAttempt(status, flag, message, true);
    }
    this.reply(status, flag, message, this.cluster?.config.name ?? '', true);
  }

  bridgeRetries(status: number, headers: Record<string, string | string[] | undefined>, trailersOnly: boolean): boolean {
    const outcomes = this.cluster!.outcomes;
    if (outcomes !== undefined) outcomes.response(this.endpoint!, trailersOnly ? effectiveStatus(status, headers['grpc-status']) : status);
    const retry = this.retry;
    if (retry) {
      const grpcStatus = trailersOnly && headers['grpc-status'] !== undefined ? Number(headers['grpc-status']) : undefined;
      if ((retryOnStatus(retry, status) || (grpcStatus !== undefined && retryOnGrpc(retry, grpcStatus))) && this.scheduleRetry(String(status))) return true;
      clearTimeout(this.tryTimer);
    }
    // Filters' encode hooks edit the head the bridge is about to write, or answer instead of it.
    if (this.encodeHooks !== undefined) {
      const reply = runEncodeHooks(this.encodeHooks, new ObjectResponseHead(status, headers));
      if (reply) {
        this.bridge?.abandon();
        this.bridge = undefined;
        this.reply(reply.status, reply.flag, reply.detail, this.cluster?.config.name ?? '', false, reply.headers);
        return true;
      }
    }
    return false;
  }

  bridgeAborted(): void {
    if (!this.finished) this.abortDownstream();
  }

  private acquire(): void {
    const attempt = this.attempt;
    this.cluster!.pool.acquire(this.endpoint!, (err, upstream) => {
      if (this.finished || attempt !== this.attempt) {
        if (upstream) this.cluster!.pool.release(upstream, true);
        return;
      }
      if (err || !upstream) {
        if (err instanceof PoolOverflowError) return this.reply(503, 'UO', err.message, this.cluster!.config.name);
        const detail = err instanceof ConnectError ? err.message : String(err);
        this.failed('connect');
        if (this.retry) {
          if (this.retryOn('connect') && this.scheduleRetry('UF')) return;
          return this.failAttempt(503, 'UF', `upstream connect failure: ${detail}`);
        }
        return this.reply(503, 'UF', `upstream connect failure: ${detail}`, this.cluster!.config.name);
      }
      this.attach(upstream);
    });
  }

  private attach(upstream: UpstreamConnection): void {
    this.upstream = upstream;
    upstream.handler = this;
    upstream.requests++;
    this.headSent = true;
    if (!this.queued) {
      if (!writeOwnBytes(upstream, this.requestHeadBytes())) this.conn.socket.pause();
      return;
    }
    // Head and the body bytes that arrived meanwhile leave in one writev.
    upstream.socket.cork();
    upstream.socket.write(this.requestHeadBytes());
    for (const chunk of this.queued) upstream.socket.write(chunk);
    upstream.socket.uncork();
    this.queued = undefined;
    this.queuedBytes = 0;
    if (upstream.socket.writableNeedDrain) this.conn.socket.pause();
    else if (this.conn.socket.isPaused()) this.conn.socket.resume();
  }

  /** The head to send upstream: the received bytes when nothing must change, else rebuilt. */
  private requestHeadBytes(): Buffer {
    const head = this.head;
    const route = this.route!;
    const action = route.action as RouteAction;
    if (this.retry || (this.trace && this.trace.headers.length > 0)) return this.rebuiltHead(head, route, action);
    const unchanged =
      !this.headersEdited &&
      head.minor === 1 &&
      !head.absoluteForm &&
      head.upgrade === undefined &&
      route.requestHeadersToAdd.length === 0 &&
      route.requestHeadersToRemove.length === 0 &&
      action.prefixRewrite === undefined &&
      action.regexRewrite === undefined &&
      action.hostRewrite === undefined &&
      forwardableAsIs(head.headers, head.keepAlive);
    if (unchanged) return this.headBytes;
    return this.rebuiltHead(head, route, action);
  }

  private rebuiltHead(head: RequestHead, route: Route, action: RouteAction): Buffer {
    const path = action.prefixRewrite !== undefined || action.regexRewrite ? rewritePath(head.path, action, route.match) : head.path;
    const changes: HeadChanges = {
      // With a retry policy the upstream learns which attempt this is.
      add: this.retry ? [...route.requestHeadersToAdd, { name: 'x-envoy-attempt-count', value: String(this.attempt), append: false }] : route.requestHeadersToAdd,
      remove: route.requestHeadersToRemove,
      host: action.hostRewrite ?? (head.absoluteForm ? head.host : undefined),
    };
    // Tracing: the received context gives way to the one whose parent is this sidecar's span.
    if (this.trace && this.trace.headers.length > 0) traceChanges(changes, this.trace);
    return buildHead(`${head.method} ${path} HTTP/1.${head.minor}`, head.headers, {
      changes,
      chunked: head.body.kind === 'chunked',
      close: head.minor === 0 && !head.keepAlive,
      upgrade: head.upgrade,
    });
  }

  /**
   * Request body bytes from downstream, buf[start…]. Returns the offset just
   * past the body's end when it ends in this chunk (what follows is the next
   * pipelined request), or -1 when all of it was body.
   */
  requestBody(buf: Buffer, start: number): number {
    const f = this.reqFraming;
    let end: number;
    if (f.kind === 'length') {
      const n = Math.min(f.remaining, buf.length - start);
      f.remaining -= n;
      end = start + n;
      if (f.remaining === 0) this.reqFraming = { kind: 'none' };
    } else if (f.kind === 'chunked') {
      try {
        end = f.scanner.scan(buf, start, buf.length);
      } catch (err) {
        this.requestBodyError(err);
        return -1;
      }
      if (end >= 0) this.reqFraming = { kind: 'none' };
      else end = buf.length;
    } else {
      return start;
    }
    if (end > start) this.forwardRequestBytes(start === 0 && end === buf.length ? buf : buf.subarray(start, end));
    if (this.reqFraming.kind !== 'none') return -1;
    this.bridge?.end();
    if (this.shadows) {
      for (const s of this.shadows) s.end();
      this.shadows = undefined;
    }
    return end;
  }

  private forwardRequestBytes(chunk: Buffer): void {
    this.lastActivity = activityClock.now;
    this.requestBytes += chunk.length;
    if (this.shadows) for (const s of this.shadows) s.write(chunk);
    if (this.finished) return;
    if (this.replay) {
      this.replayBytes += chunk.length;
      if (this.replayBytes > MAX_REPLAY_BODY) this.replay = undefined;
      else this.replay.push(Buffer.from(chunk));
    }
    if (this.bridge) return this.bridge.write(chunk);
    if (this.upstream && this.headSent) {
      // The chunk is the request's own (copied out of the listener's read buffer): it can wait for the turn's end.
      if (!writeOwnBytes(this.upstream, chunk)) this.conn.socket.pause();
      return;
    }
    (this.queued ??= []).push(chunk);
    this.queuedBytes += chunk.length;
    if (this.queuedBytes > MAX_QUEUED_BODY) this.conn.socket.pause();
  }

  private requestBodyError(err: unknown): void {
    this.conn.ctx.stats.downstreamProtocolErrors++;
    const message = err instanceof Error ? err.message : String(err);
    // Whatever reached the upstream is cut off with the connection.
    this.upstream?.socket.destroy();
    this.upstream = undefined;
    if (!this.responseStarted) this.reply(400, 'DPE', `malformed request body: ${message}`, this.cluster?.config.name ?? '', true);
    else this.abortDownstream();
  }

  // ---- UpstreamHandler: the response side ----

  onData(chunk: Buffer): boolean {
    if (this.finished) return false;
    this.lastActivity = activityClock.now;
    if (!this.resFraming) this.responseHeadBytes(chunk);
    else this.responseBody(chunk, 0);
    // The chunk is still referred to by a partial head kept for the next read, or by a write not yet done
    // (a TLS downstream, or one whose writes are held, was given a copy).
    return this.resBuf !== undefined || (!this.conn.writesFinishLater && !this.conn.writesHeld && this.conn.socket.writableLength > 0);
  }

  onDrain(): void {
    if (this.conn.socket.isPaused()) this.conn.socket.resume();
  }

  onClose(error: Error | undefined): void {
    if (this.finished) return;
    const reused = (this.upstream?.requests ?? 0) > 1;
    this.upstream = undefined;
    if (this.resFraming?.kind === 'eof') return this.complete(false);
    if (!this.responseStarted) this.failed('reset');
    if (this.retry && !this.responseStarted) {
      if (this.retryOn('reset') && this.scheduleRetry('UC')) return;
      // A reused keep-alive connection closed as we sent, and the policy does not cover resets:
      // once more on a new connection, as without a policy.
      if (reused && !this.resBuf && !this.retried && this.denied === '' && this.replayable()) {
        this.retried = true;
        this.headSent = false;
        if (this.replay && this.replay.length > 0) {
          this.queued = this.replay.slice();
          this.queuedBytes = this.replayBytes;
        }
        return this.acquire();
      }
      const message = `upstream connection closed before a response${error ? ` (${error.message})` : ''}`;
      if (this.resBuf) return this.failAttempt(502, 'UPE', 'upstream closed in the middle of the response head');
      return this.failAttempt(503, 'UC', message);
    }
    if (!this.responseStarted && !this.resBuf) {
      // A reused keep-alive connection the server closed as we sent: safe to try once more
      // when nothing of a body went out.
      if (!this.retried && this.head.body.kind === 'none') {
        this.retried = true;
        this.headSent = false;
        return this.acquire();
      }
      return this.reply(503, 'UC', `upstream connection closed before a response${error ? ` (${error.message})` : ''}`, this.cluster!.config.name);
    }
    if (!this.responseStarted) return this.reply(502, 'UPE', 'upstream closed in the middle of the response head', this.cluster!.config.name);
    this.abortDownstream();
  }

  downstreamDrained(): void {
    this.upstream?.socket.resume();
  }

  downstreamClosed(): void {
    this.filterRun?.cancel();
    if (this.shadows) for (const s of this.shadows) s.abort();
    this.bridge?.cancel();
    if (this.finished) return;
    this.finish('DC', 0);
    this.upstream?.socket.destroy();
    this.upstream = undefined;
  }

  private responseHeadBytes(chunk: Buffer): void {
    const buf = this.resBuf ? Buffer.concat([this.resBuf, chunk]) : chunk;
    let head: ResponseHead | null;
    try {
      head = parseResponseHead(buf, this.head.method, 0);
    } catch (err) {
      this.upstream?.socket.destroy();
      this.upstream = undefined;
      const message = err instanceof HttpParseError ? err.message : String(err);
      this.failed('reset');
      return this.reply(502, 'UPE', `upstream sent a malformed response: ${message}`, this.cluster!.config.name);
    }
    if (!head) {
      this.resBuf = buf;
      return;
    }
    this.resBuf = undefined;
    const rest = buf.length > head.headLength ? buf.subarray(head.headLength) : undefined;
    if (head.status >= 100 && head.status < 200 && !head.upgrade) {
      // 100 Continue and other interim responses go through; the final one follows.
      if (this.head.minor === 1) this.conn.socket.write(this.ownBytes(buf.subarray(0, head.headLength)));
      if (rest) this.responseHeadBytes(rest);
      return;
    }
    const outcomes = this.cluster!.outcomes;
    if (outcomes !== undefined) outcomes.response(this.endpoint!, head.status);
    if (this.retry && !head.upgrade && this.retryOn(head.status) && this.scheduleRetry(String(head.status))) return;
    let edited = false;
    if (this.encodeHooks !== undefined && !head.upgrade) {
      // Filters' encode hooks: edit the head in place, or answer instead of the upstream.
      const res = new FlatResponseHead(head.status, head.headers);
      const reply = runEncodeHooks(this.encodeHooks, res);
      if (reply) return this.reply(reply.status, reply.flag, reply.detail, this.cluster!.config.name, false, reply.headers);
      edited = res.edited;
    }
    this.resHead = head;
    if (head.upgrade) return this.tunnel(buf.subarray(0, head.headLength), rest);
    this.responseStarted = true;
    if (this.tryTimer) clearTimeout(this.tryTimer);
    const keepOpen = this.keepDownstreamOpen(head);
    const route = this.route!;
    // An HTTP/1.0 client keeps the connection only when told so: its responses are rebuilt to say keep-alive.
    const asIs =
      keepOpen &&
      head.minor === 1 &&
      this.head.minor === 1 &&
      !edited &&
      route.responseHeadersToAdd.length === 0 &&
      route.responseHeadersToRemove.length === 0 &&
      forwardableAsIs(head.headers, true);
    const out = asIs
      ? buf.subarray(0, head.headLength)
      : buildHead(`HTTP/1.1 ${head.status} ${head.reason}`, head.headers, {
          changes: { add: route.responseHeadersToAdd, remove: route.responseHeadersToRemove },
          chunked: head.body.kind === 'chunked',
          close: !keepOpen,
          keepAlive: this.head.minor === 0,
        });
    this.resFraming = toFraming(head.body);
    if (this.resFraming.kind === 'none') {
      this.writeDownstream(out);
      if (rest) this.unusable(); // bytes after a bodiless response: the upstream misbehaves
      return this.complete(keepOpen);
    }
    if (!rest) return this.writeDownstream(out);
    // One write for head and body when the head goes out as received: one syscall per response.
    if (asIs) return this.responseBody(buf, head.headLength, 0);
    const socket = this.conn.socket;
    socket.cork();
    this.writeDownstream(out);
    this.responseBody(rest, 0);
    socket.uncork();
  }

  /** Forwards the response body bytes in buf[start…], writing buf[writeFrom…end) (writeFrom < start carries the head along). */
  private responseBody(buf: Buffer, start: number, writeFrom = start): void {
    const f = this.resFraming!;
    let end = buf.length;
    let done = false;
    if (f.kind === 'length') {
      const n = Math.min(f.remaining, buf.length - start);
      f.remaining -= n;
      end = start + n;
      done = f.remaining === 0;
    } else if (f.kind === 'chunked') {
      try {
        const e = f.scanner.scan(buf, start, buf.length);
        if (e >= 0) {
          end = e;
          done = true;
        }
      } catch (err) {
        this.upstream?.socket.destroy();
        this.upstream = undefined;
        this.conn.ctx.log('debug', 'malformed upstream chunked body', { error: String(err) });
        return this.abortDownstream();
      }
    }
    if (end > writeFrom) this.writeDownstream(writeFrom === 0 && end === buf.length ? buf : buf.subarray(writeFrom, end));
    if (!done) return;
    if (end < buf.length) this.unusable();
    this.complete(this.keepDownstreamOpen(this.resHead!));
  }

  /** Whether the downstream connection can carry another request after this response. */
  private keepDownstreamOpen(res: ResponseHead): boolean {
    return this.head.keepAlive && this.reqFraming.kind === 'none' && res.body.kind !== 'eof' && !this.conn.closed && !this.conn.draining;
  }

  private unusable(): void {
    this.upstream?.socket.destroy();
    this.upstream = undefined;
  }

  /** A 101 response: from here on both sides are raw byte streams. */
  private tunnel(headBytes: Buffer, rest: Buffer | undefined): void {
    const up = this.upstream!;
    const down = this.conn.socket;
    this.finished = true;
    clearTimeout(this.timer);
    this.stats?.response(101, performance.now() - this.started);
    if (this.trace) this.endTrace(101, this.filterFlags);
    this.cluster?.load.ended(this.endpoint!);
    up.handler = undefined;
    this.conn.detach();
    releaseWrites(this.conn); // headBytes is the upstream's read buffer: written now, not held
    down.write(headBytes);
    if (rest) down.write(rest);
    up.tunnelTo(down);
    down.pipe(up.socket);
    up.socket.on('close', () => down.destroy());
    down.on('close', () => up.socket.destroy());
  }

  /** Nothing moved either way for the stream idle timeout: 408 SI before the response, else the connection is cut. */
  streamIdleTimedOut(): void {
    if (this.finished) return;
    this.filterRun?.cancel();
    this.unusable();
    this.bridge?.cancel();
    if (this.shadows) for (const s of this.shadows) s.abort();
    const ms = this.streamIdleTimeoutMs;
    if (!this.responseStarted) this.reply(408, 'SI', `no activity on the request for ${ms} ms (stream idle timeout)`, this.cluster?.config.name ?? '', true);
    else {
      this.finish('SI', this.resHead?.status ?? 0);
      releaseWrites(this.conn);
      this.conn.socket.destroy();
    }
  }

  private timedOut(ms: number): void {
    if (this.finished) return;
    if (!this.responseStarted) this.failed('timeout');
    this.unusable();
    this.bridge?.cancel();
    if (!this.responseStarted) this.reply(504, 'UT', `upstream did not answer within the route timeout of ${ms} ms`, this.cluster?.config.name ?? '', true);
    else this.abortDownstream();
  }

  /** Outlier detection hears of an attempt that failed locally. */
  private failed(failure: LocalFailure): void {
    const outcomes = this.cluster?.outcomes;
    if (outcomes !== undefined && this.endpoint !== undefined) outcomes.failure(this.endpoint, failure);
  }

  // ---- endings ----

  private complete(keepOpen: boolean): void {
    const status = this.resHead?.status ?? 0;
    if (this.upstream) {
      const reusable = this.resHead!.keepAlive && this.reqFraming.kind === 'none' && this.resFraming?.kind !== 'eof';
      const up = this.upstream;
      this.upstream = undefined;
      up.handler = undefined;
      this.cluster!.pool.release(up, reusable);
    }
    this.finish('', status);
    this.conn.exchangeDone(this, keepOpen);
  }

  private finish(flag: string, status: number): void {
    this.finished = true;
    clearTimeout(this.timer);
    if (this.retry) {
      clearTimeout(this.tryTimer);
      clearTimeout(this.backoffTimer);
      if (this.retrySlot) this.cluster!.load.retries--;
      this.retrySlot = false;
    }
    if (this.filterFlags) flag = flag ? `${this.filterFlags},${flag}` : this.filterFlags;
    if (this.trace) this.endTrace(status, flag);
    const endpoint = this.endpoint;
    if (endpoint) this.cluster!.load.ended(endpoint);
    this.endpoint = undefined;
    const ms = performance.now() - this.started;
    this.stats?.response(status, ms, flag || undefined, this.route?.name, -1, this.requestBytes, this.responseBytes);
    const records = this.conn.ctx.stats.records;
    if (records.active) records.emit(this.record(status, flag, ms, endpoint));
  }

  /** The RequestRecord of this exchange (built only when an observer wants it). */
  private record(status: number, flags: string, durationMs: number, endpoint: Endpoint | undefined): RequestRecord {
    const ctx = this.conn.ctx;
    const cluster = this.cluster?.config.name ?? this.stats?.cluster ?? '';
    const stats = this.stats ?? ctx.stats.forCluster(ctx.direction, cluster, this.conn.peerSource);
    return {
      time: performance.timeOrigin + this.started,
      durationMs,
      direction: ctx.direction,
      protocol: 'http1',
      method: this.method,
      authority: this.host,
      path: this.path,
      route: this.route?.name ?? '',
      cluster,
      upstream: endpoint?.key ?? '',
      status,
      flags,
      requestBytes: this.requestBytes,
      responseBytes: this.responseBytes,
      sourceAddress: this.conn.peer,
      source: stats.source,
      destination: stats.destination,
      attempts: this.attempt,
      // Always present (undefined without a trace): one object shape for every record.
      traceId: this.trace?.traceId,
    };
  }

  /** `flag`: every response flag of the request, the filters' included. */
  private endTrace(status: number, flag: string): void {
    this.conn.ctx.tracer!.end(this.trace!, { status, flag, cluster: this.cluster?.config.name, endpoint: this.endpoint?.key, route: this.route?.name });
  }

  /** Answers locally. The connection stays open only when no request body is pending and nothing was sent. */
  private reply(status: number, flag: string, body: string, cluster: string, forceClose = false, extraHeaders?: string[]): void {
    if (this.finished) return;
    if (!this.stats) {
      this.stats = this.conn.ctx.stats.forCluster(this.conn.ctx.direction, cluster, this.conn.peerSource);
      this.stats.requests++;
    }
    if (this.upstream) this.unusable();
    const keepOpen = !forceClose && this.head.keepAlive && this.reqFraming.kind === 'none';
    const bytes = localReply(status, flag, body, { close: !keepOpen, headOnly: this.head.method === 'HEAD', keepAlive: this.head.minor === 0, extraHeaders });
    this.responseBytes += bytes.length;
    this.conn.socket.write(bytes);
    this.finish(flag, status);
    this.conn.exchangeDone(this, keepOpen);
  }

  private redirect(action: Extract<Route['action'], { kind: 'redirect' }>): void {
    const [pathOnly, query] = splitQuery(this.head.path);
    let path = action.path ?? pathOnly;
    if (action.prefixRewrite !== undefined && this.route && this.route.match.path.kind !== 'regex') {
      path = action.prefixRewrite + pathOnly.slice(this.route.match.path.value.length);
    } else if (action.regexRewrite) {
      path = pathOnly.replace(action.regexRewrite.regex, action.regexRewrite.substitution);
    }
    const host = (action.host ?? this.head.host.replace(/:\d+$/, '')) + (action.port ? `:${action.port}` : '');
    const location = `${action.scheme ?? 'http'}://${host}${path}${query}`;
    if (!this.stats) {
      this.stats = this.conn.ctx.stats.forCluster(this.conn.ctx.direction, '', this.conn.peerSource);
      this.stats.requests++;
    }
    const keepOpen = this.head.keepAlive && this.reqFraming.kind === 'none';
    const bytes = localReply(action.status, '', `redirect to ${location}`, { close: !keepOpen, extraHeaders: ['location', location], keepAlive: this.head.minor === 0 });
    this.responseBytes += bytes.length;
    this.conn.socket.write(bytes);
    this.finish('', action.status);
    this.conn.exchangeDone(this, keepOpen);
  }

  /** The response cannot be finished: cut the downstream connection so the client sees it. */
  private abortDownstream(): void {
    this.finish('UPE', this.resHead?.status ?? 0);
    releaseWrites(this.conn); // the client sees what came of the response, then the cut
    this.conn.socket.destroy();
  }
}

function toFraming(body: RequestHead['body'] | ResponseHead['body']): Framing {
  switch (body.kind) {
    case 'length':
      return body.length === 0 ? { kind: 'none' } : { kind: 'length', remaining: body.length };
    case 'chunked':
      return { kind: 'chunked', scanner: new ChunkedScanner() };
    default:
      return body;
  }
}

/** The propagation fields a request came with are replaced by the trace's. */
function traceChanges(changes: HeadChanges, trace: RequestTrace): void {
  const add = changes.add.slice();
  for (let i = 0; i < trace.headers.length; i += 2) add.push({ name: trace.headers[i], value: trace.headers[i + 1], append: false });
  changes.add = add;
  changes.remove = [...changes.remove, ...PROPAGATION_FIELDS];
}

function splitQuery(path: string): [string, string] {
  const q = path.indexOf('?');
  return q < 0 ? [path, ''] : [path.slice(0, q), path.slice(q)];
}
