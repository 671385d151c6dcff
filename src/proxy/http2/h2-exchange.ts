// One downstream HTTP/2 request (a stream): routed like an HTTP/1 request,
// through the HTTP filters, then forwarded to an HTTP/2 upstream as a stream
// (trailers and grpc-status preserved) or translated to HTTP/1.1, with the
// route's retries and timeouts. h2-server.ts owns the sessions it comes from.
import * as http from 'node:http';
import * as http2 from 'node:http2';
import type { Endpoint, RetryPolicy, Route, RouteAction } from '../config/types';
import type { HttpChainContext } from '../http1/connection';
import { RESPONSE_FLAGS_HEADER } from '../http1/head-writer';
import { requestHash, sourceIp } from '../router/hash';
import { rewritePath } from '../router/rewrite';
import { pickWeightedCluster } from '../router/weighted';
import { admitRetry, backoffMs, failedAttemptReply, MAX_REPLAY_BODY, repickEndpoint, retryOnFailure, retryOnGrpc, retryOnStatus, type LocalFailure, type RetryDenial } from '../retry';
import { runEncodeHooks, runRequestFilters, type EncodeHeadersHook, type FilterHost, type FilterRequest, type FilterRun, type LocalReplySpec } from '../filters/http-filter';
import { appendHeaderValue, ObjectResponseHead } from '../filters/header-edits';
import { startShadows } from '../mirror';
import type { RequestTrace } from '../../observe/tracing/proxy-tracer';
import { setTraceHeaders } from '../../observe/tracing/trace-headers';
import type { ClusterRuntime, Runtime } from '../runtime';
import type { RequestStats } from '../stats';
import type { RequestRecord } from '../../observe/request-record';
import { effectiveStatus } from '../upstream/outlier-detector';
import { grpcStatusFor, isH2Forbidden } from './session-pool';
import { peerOf, type PeerIdentity } from '../tls/peer';
import { onBodyEnd, resetStream } from './stream-reset';
import type { H2ServerStream } from './codec/server-stream';
import type { H2ClientStream } from './codec/client-stream';
import type { StreamEventHandler, StreamEvents } from './codec/stream-base';

const { NGHTTP2_REFUSED_STREAM, NGHTTP2_FLAG_END_STREAM } = http2.constants;

export class H2Exchange implements FilterRequest, FilterHost, StreamEventHandler {
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

  // ---- the route's retry policy (HTTP/2 clusters) ----
  private retry: RetryPolicy | undefined;
  private attempt = 1;
  /** The upstream stream of the current attempt; the others' events are ignored (handleEvent). */
  private currentUp: H2ClientStream | undefined;
  /** The current HTTP/2 attempt's response status, whether it began, and its trailers. */
  private upStatus = 0;
  private upResponded = false;
  private upTrailers: http2.OutgoingHttpHeaders | undefined;
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
  /** Filters that asked to see the response head (encodeHeaders); unset on the fast path. */
  private encodeHooks: EncodeHeadersHook[] | undefined;
  /** What the router needs once the filters let the request go on. */
  private held: { runtime: Runtime; route: Route } | undefined;
  /** This request's span and the context for the next hop; unset when tracing is off. */
  trace: RequestTrace | undefined;
  private route: Route | undefined;
  /** DATA bytes either way, and the grpc-status seen (-1: none), for metrics and records. */
  private responseBytes = 0;
  private grpcStatus = -1;
  /** The request's trailers (a HEADERS frame after its DATA), forwarded to every attempt. */
  private requestTrailers: http2.OutgoingHttpHeaders | undefined;

  constructor(
    private readonly stream: H2ServerStream,
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

  /** FilterRequest: a filter set a header (replacing every value it had). */
  setRequestHeader(name: string, value: string): void {
    this.headers[name.toLowerCase()] = value;
  }

  /** FilterRequest: a filter added a header. */
  addRequestHeader(name: string, value: string): void {
    appendHeaderValue(this.headers, name.toLowerCase(), value);
  }

  /** FilterRequest: a filter wants the response head. */
  onResponseHeaders(hook: EncodeHeadersHook): void {
    (this.encodeHooks ??= []).push(hook);
  }

  /** The filters' encode hooks on a response head about to go downstream: a reply to send instead, or undefined. */
  private encodeReply(status: number, headers: http2.OutgoingHttpHeaders): LocalReplySpec | undefined {
    return this.encodeHooks === undefined ? undefined : runEncodeHooks(this.encodeHooks, new ObjectResponseHead(status, headers));
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
    let up: H2ClientStream;
    try {
      // A request whose HEADERS ended the stream (a GET) needs no body pipe.
      up = cluster.h2Pool().session(endpoint).request(out, { endStream: this.stream.endAfterHeaders, waitForTrailers: this.mayHaveTrailers });
    } catch (err) {
      this.failed(endpoint, 'connect');
      if (retry) return this.attemptFailed(route, action, 'connect', 503, 'UF', `upstream connect failure: ${(err as Error).message}`);
      return this.reply(503, 'UF', `upstream connect failure: ${(err as Error).message}`, cluster.config.name);
    }
    // The exchange is the attempt's listener (handleEvent): an earlier attempt's stream is no longer
    // currentUp, and its events do nothing.
    this.currentUp = up;
    this.upResponded = false;
    this.upTrailers = undefined;
    if (this.mayHaveTrailers) up.on('wantTrailers', this);
    if (retry) {
      if (!this.stream.endAfterHeaders && this.attempt > 1) {
        for (const chunk of this.replay ?? []) up.write(chunk);
        if (this.bodyEnded) up.end();
      }
      if (retry.perTryTimeoutMs > 0) {
        const ms = retry.perTryTimeoutMs;
        this.tryTimer = setTimeout(() => {
          if (this.done || up !== this.currentUp || this.upResponded) return;
          this.failed(endpoint, 'timeout');
          this.attemptFailed(route, action, 'timeout', 504, 'UT', `upstream did not answer within the per-try timeout of ${ms} ms`);
          if (this.done) resetStream(up, 'cancel');
        }, ms);
      }
    } else {
      if (!this.stream.endAfterHeaders) {
        this.stream.pipe(up, { end: false });
        onBodyEnd(this.stream, () => up.end());
      }
      this.stream.on('close', () => {
        if (!this.done) {
          this.finish(0, 'DC');
          resetStream(up, 'cancel');
        }
      });
    }
    up.on('response', this);
    up.on('trailers', this);
    up.on('error', this);
    up.on('close', this);
  }

  /**
   * StreamEventHandler: the events of the current attempt's upstream stream, and of the downstream
   * stream while that attempt's response goes out ('drain', 'wantTrailers'). One object for them
   * all: a closure per event and attempt was about a sixth of what a gRPC call allocated.
   */
  handleEvent(event: string, a: unknown, b: unknown, source: StreamEvents): void {
    if (source === this.stream) {
      if (event === 'drain') this.currentUp?.resume();
      else if (event === 'wantTrailers') this.stream.sendTrailers(this.upTrailers ?? {});
      return;
    }
    const up = source as H2ClientStream;
    if (event === 'wantTrailers') return up.sendTrailers(this.requestTrailers ?? {});
    if (up !== this.currentUp) return;
    switch (event) {
      case 'response':
        if (!this.done) this.upstreamResponse(up, a as http2.IncomingHttpHeaders, b as number);
        return;
      case 'data': {
        const chunk = a as Buffer;
        this.responseBytes += chunk.length;
        if (!this.stream.write(chunk)) up.pause();
        return;
      }
      case 'end':
        // An upstream reset mid-response ends `up` too (see onBodyEnd): the client gets a reset, not a cut response.
        if (up.destroyed) {
          this.finish(0, 'UPE');
          return resetStream(this.stream, 'internal');
        }
        this.stream.end();
        return this.finish(this.upStatus, '');
      case 'trailers': {
        const t = a as http2.IncomingHttpHeaders;
        if (t['grpc-status'] !== undefined) {
          this.grpcStatus = Number(t['grpc-status']);
          if (this.trace) this.trace.grpcStatus = this.grpcStatus;
        }
        this.upTrailers = {};
        copyHeaders(t, this.upTrailers, []);
        return;
      }
      case 'error':
        if (!this.done) this.upstreamError(up, a as Error);
        return;
      case 'close':
        if (!this.done && !this.upResponded) this.upstreamClosed(up);
        return;
    }
  }

  /** The current attempt's response head. */
  private upstreamResponse(up: H2ClientStream, headers: http2.IncomingHttpHeaders, flags: number): void {
    const route = this.route!;
    const action = this.forwardAction;
    const cluster = this.cluster!;
    const endpoint = this.endpoint!;
    const retry = this.retry;
    const status = Number(headers[':status']);
    const trailersOnly = up.endAfterHeaders || (flags & NGHTTP2_FLAG_END_STREAM) !== 0;
    const outcomes = cluster.outcomes;
    if (outcomes !== undefined) outcomes.response(endpoint, trailersOnly ? effectiveStatus(status, headers['grpc-status']) : status);
    if (retry) {
      const grpcStatus = trailersOnly && headers['grpc-status'] !== undefined ? Number(headers['grpc-status']) : undefined;
      if ((retryOnStatus(retry, status) || (grpcStatus !== undefined && retryOnGrpc(retry, grpcStatus))) && this.scheduleRetry(route, action)) return;
      clearTimeout(this.tryTimer);
    }
    this.upResponded = true;
    this.upStatus = status;
    const res: http2.OutgoingHttpHeaders = { ':status': status };
    copyHeaders(headers, res, route.responseHeadersToRemove);
    for (const h of route.responseHeadersToAdd) res[h.name] = h.value;
    const replaced = this.encodeReply(status, res);
    if (replaced) {
      resetStream(up, 'cancel');
      return this.reply(replaced.status, replaced.flag, replaced.detail, cluster.config.name, replaced.headers ?? [], replaced.grpcStatus);
    }
    // Node sets endAfterHeaders only after 'response': the frame's END_STREAM flag says it now.
    if (trailersOnly) {
      // Trailers-only (a gRPC error): the status travels in these headers.
      if (headers['grpc-status'] !== undefined) {
        this.grpcStatus = Number(headers['grpc-status']);
        if (this.trace) this.trace.grpcStatus = this.grpcStatus;
      }
      this.stream.respond(res, { endStream: true });
      return this.finish(status, '');
    }
    // Trailers are kept for whoever can expect them (RFC 9110 6.5.1): gRPC, a response that announced
    // them, and a client that said `te: trailers`. Waiting for them keeps the stream open past the
    // last DATA and, with none, costs an empty DATA frame: about a fifth more CPU per h2 request
    // (BENCHMARKS.md), so responses nobody asked trailers of end with their last DATA frame.
    if (this.grpc || headers.trailer !== undefined || this.headers.te === 'trailers' || String(headers['content-type'] ?? '').startsWith('application/grpc')) {
      this.stream.respond(res, { waitForTrailers: true });
      this.stream.on('wantTrailers', this);
    } else {
      this.stream.respond(res);
    }
    up.on('data', this);
    this.stream.on('drain', this);
    up.on('end', this);
  }

  /** The route's action once the request is forwarded (routeRequest answered direct and redirect routes itself). */
  private get forwardAction(): RouteAction {
    return this.route!.action as RouteAction;
  }

  /** The current attempt's stream failed (before its response: retried or answered; after: the client gets a reset). */
  private upstreamError(up: H2ClientStream, err: Error): void {
    const endpoint = this.endpoint!;
    if (this.retry && !this.upResponded) {
      const code = (err as NodeJS.ErrnoException).code ?? '';
      const connect = code === 'ECONNREFUSED' || code === 'ETIMEDOUT' || code === 'EHOSTUNREACH' || /connect/i.test(err.message);
      const failure: LocalFailure = up.rstCode === NGHTTP2_REFUSED_STREAM ? 'refused' : connect ? 'connect' : 'reset';
      this.failed(endpoint, failure);
      return this.attemptFailed(this.route!, this.forwardAction, failure, 503, connect ? 'UF' : 'UC', `upstream stream failed: ${err.message}`);
    }
    if (!this.upResponded) {
      if (up.rstCode === NGHTTP2_REFUSED_STREAM && this.stream.endAfterHeaders && !this.retriedRefused) return; // 'close' retries
      this.failed(endpoint, up.rstCode === NGHTTP2_REFUSED_STREAM ? 'refused' : 'reset');
      return this.reply(503, 'UC', `upstream stream failed: ${err.message}`, this.cluster!.config.name);
    }
    this.finish(0, 'UPE');
    resetStream(this.stream, 'internal');
  }

  /** The current attempt's stream closed before its response. */
  private upstreamClosed(up: H2ClientStream): void {
    const endpoint = this.endpoint!;
    const cluster = this.cluster!;
    const failure: LocalFailure = up.rstCode === NGHTTP2_REFUSED_STREAM ? 'refused' : 'reset';
    this.failed(endpoint, failure);
    if (this.retry) return this.attemptFailed(this.route!, this.forwardAction, failure, 503, 'UC', `upstream reset the stream (code ${up.rstCode})`);
    // REFUSED_STREAM: the upstream never processed it (e.g. it sent GOAWAY); a bodiless request may go again once.
    if (up.rstCode === NGHTTP2_REFUSED_STREAM && this.stream.endAfterHeaders && !this.retriedRefused) {
      this.retriedRefused = true;
      return this.toH2(this.route!, this.forwardAction, cluster, endpoint);
    }
    this.reply(503, 'UC', `upstream reset the stream (code ${up.rstCode})`, cluster.config.name);
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
      this.stream.pipe(req, { end: false });
      onBodyEnd(this.stream, () => req.end());
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
      const replaced = this.encodeReply(status, out);
      if (replaced) {
        res.resume();
        req.destroy();
        return this.reply(replaced.status, replaced.flag, replaced.detail, cluster.config.name, replaced.headers ?? [], replaced.grpcStatus);
      }
      this.stream.respond(out, { waitForTrailers: true });
      this.stream.on('wantTrailers', () => {
        const t: http2.OutgoingHttpHeaders = {};
        copyHeaders(res.trailers, t, []);
        this.stream.sendTrailers(t);
      });
      res.on('data', (chunk: Buffer) => {
        this.responseBytes += chunk.length;
        if (!this.stream.write(chunk)) res.pause();
      });
      this.stream.on('drain', () => res.resume());
      res.on('end', () => {
        this.stream.end();
        this.finish(status, '');
      });
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
    this.abortUpstream();
    if (!this.stream.headersSent) return this.reply(408, 'SI', `no activity on the request for ${ms} ms (stream idle timeout)`, this.cluster?.config.name ?? '');
    this.finish(0, 'SI');
    resetStream(this.stream, 'cancel');
  }

  /** Cancels the current upstream stream or request, when the proxy gives up on it (a timeout). */
  private abortUpstream(): void {
    if (this.currentUp) resetStream(this.currentUp, 'cancel');
    this.currentReq?.destroy();
  }

  /** Outlier detection hears of an attempt that failed locally. */
  private failed(endpoint: Endpoint, failure: LocalFailure): void {
    const outcomes = this.cluster?.outcomes;
    if (outcomes !== undefined) outcomes.failure(endpoint, failure);
  }

  private timedOut(ms: number): void {
    if (this.done) return;
    if (!this.stream.headersSent && this.endpoint) this.failed(this.endpoint, 'timeout');
    this.abortUpstream();
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
    this.stats?.response(status, ms, flag || undefined, this.route?.name, this.grpc ? this.grpcStatus : -1, this.stream.bytesRead, this.responseBytes);
    const records = this.ctx.stats.records;
    if (records.active) records.emit(this.record(status, flag, ms));
  }

  /** The RequestRecord of this exchange (built only when an observer wants it). */
  private record(status: number, flags: string, durationMs: number): RequestRecord {
    const ctx = this.ctx;
    const cluster = this.cluster?.config.name ?? this.stats?.cluster ?? '';
    const stats = this.stats ?? ctx.stats.forCluster(ctx.direction, cluster, this.peer?.source);
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
      requestBytes: this.stream.bytesRead,
      responseBytes: this.responseBytes,
      sourceAddress: this.stream.session.peer,
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
  for (const name in from) {
    if (isH2Forbidden(name) || remove.includes(name)) continue;
    const value = from[name];
    if (value !== undefined) to[name] = value;
  }
}
