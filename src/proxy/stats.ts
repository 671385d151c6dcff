// The proxy's counters, kept as plain numbers on the hot path and rendered
// in Prometheus text format by the admin port. One RequestStats per
// (listener direction, cluster), found once per request by the router; its
// source and destination services and escaped labels are computed when it
// is created. A finished request then costs one lookup by route name, one by
// (status, grpc-status) number, a few increments and one bucket search: no
// string is built per request. Label sets are rendered only at scrape time.

import { clusterService, RequestObservers } from '../observe/request-record';
import { uncaughtErrors } from './last-resort';

/** Latency bucket bounds, in milliseconds (rendered in seconds: 0.5 ms … 10 s). */
export const LATENCY_BOUNDS_MS = [0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];
export const LE_SECONDS = LATENCY_BOUNDS_MS.map((ms) => String(ms / 1000)).concat('+Inf');

export class Histogram {
  readonly counts = new Array<number>(LATENCY_BOUNDS_MS.length + 1).fill(0);
  sum = 0;
  count = 0;

  observe(ms: number): void {
    let i = 0;
    while (i < LATENCY_BOUNDS_MS.length && ms > LATENCY_BOUNDS_MS[i]) i++;
    this.counts[i]++;
    this.sum += ms;
    this.count++;
  }
}

/** Responses of one (status, grpc-status): those without response flags, and the others by their flags. */
class CodeCell {
  plain = 0;
  flagged: Map<string, number> | undefined;

  constructor(
    readonly status: number,
    /** -1: not gRPC or no grpc-status seen. */
    readonly grpc: number,
  ) {}
}

/** The series of one route of one (direction, cluster). */
export class RouteSeries {
  readonly latency = new Histogram();
  /** Key: status * 32 + grpc-status + 1 (grpc-status is -1…16). */
  readonly codes = new Map<number, CodeCell>();
}

/** Who this sidecar is, for the source/destination labels. */
export interface StatsIdentity {
  /** <service>.<namespace>, or 'unknown'. */
  service: string;
  /** false: a finished request is not counted (bench: the cost of metrics). */
  enabled: boolean;
}

export class RequestStats {
  /** Requests that reached the router or a local reply (counted when they start). */
  requests = 0;
  /** Attempts after the first. */
  retries = 0;
  /** Retries the policy wanted and max_retries or the retry budget refused. */
  retryOverflow = 0;
  requestBytes = 0;
  responseBytes = 0;
  /** Route name → series. */
  readonly routes = new Map<string, RouteSeries>();
  readonly source: string;
  readonly destination: string;
  /** direction, source, destination and cluster, escaped once. */
  readonly labels: string;

  constructor(
    readonly direction: string,
    readonly cluster: string,
    private readonly identity: StatsIdentity,
    /** The caller's service, known from its mTLS certificate (inbound). */
    peerSource?: string,
  ) {
    const own = identity.service;
    const remote = clusterService(cluster) || 'unknown';
    this.source = peerSource ?? (direction === 'inbound' ? 'unknown' : own);
    this.destination = direction === 'inbound' ? own : remote;
    this.labels = `direction="${escapeLabel(direction)}",source="${escapeLabel(this.source)}",destination="${escapeLabel(this.destination)}",cluster="${escapeLabel(cluster)}"`;
  }

  /** A finished request: its status (0: none sent), time, response flags, route, grpc-status (-1: none) and bytes. */
  response(status: number, ms: number, flag?: string, route = '', grpc = -1, requestBytes = 0, responseBytes = 0): void {
    if (!this.identity.enabled) return;
    let series = this.routes.get(route);
    if (series === undefined) this.routes.set(route, (series = new RouteSeries()));
    series.latency.observe(ms);
    const key = status * 32 + grpc + 1;
    let cell = series.codes.get(key);
    if (cell === undefined) series.codes.set(key, (cell = new CodeCell(status, grpc)));
    if (flag) (cell.flagged ??= new Map()).set(flag, (cell.flagged.get(flag) ?? 0) + 1);
    else cell.plain++;
    this.requestBytes += requestBytes;
    this.responseBytes += responseBytes;
  }
}

/** TCP connections of one (direction, cluster). */
export class TcpStats {
  connections = 0;
  active = 0;
  received = 0;
  sent = 0;
  readonly labels: string;
  readonly source: string;
  readonly destination: string;

  constructor(direction: string, cluster: string, identity: StatsIdentity, peerSource?: string) {
    this.source = peerSource ?? (direction === 'inbound' ? 'unknown' : identity.service);
    this.destination = direction === 'inbound' ? identity.service : clusterService(cluster) || 'unknown';
    this.labels = `direction="${escapeLabel(direction)}",source="${escapeLabel(this.source)}",destination="${escapeLabel(this.destination)}",cluster="${escapeLabel(cluster)}"`;
  }
}

/** What a mirror policy sent or dropped, per mirror cluster, for /stats/prometheus. */
export class MirrorStats {
  readonly sent = new Map<string, number>();
  readonly dropped = new Map<string, number>();

  count(map: Map<string, number>, cluster: string): void {
    map.set(cluster, (map.get(cluster) ?? 0) + 1);
  }

  render(): string[] {
    const out = [
      '# HELP weft_mirror_requests_total Shadow requests sent to mirror clusters.',
      '# TYPE weft_mirror_requests_total counter',
    ];
    for (const [c, n] of this.sent) out.push(`weft_mirror_requests_total{cluster="${c}"} ${n}`);
    out.push('# HELP weft_mirror_dropped_total Shadow requests dropped (no endpoint, limit, too slow, failed).', '# TYPE weft_mirror_dropped_total counter');
    for (const [c, n] of this.dropped) out.push(`weft_mirror_dropped_total{cluster="${c}"} ${n}`);
    return out;
  }
}

function inner<V>(outer: Map<string, Map<string, V>>, key: string): Map<string, V> {
  let m = outer.get(key);
  if (!m) outer.set(key, (m = new Map()));
  return m;
}

export class ProxyStats implements StatsIdentity {
  readonly mirrors = new MirrorStats();
  /** Finished requests for the access log, tap clients and the ring of recent requests. */
  readonly records: RequestObservers;
  service = 'unknown';
  enabled = true;
  /** direction → cluster → stats: two lookups and no string building per request. */
  private readonly byDirection = new Map<string, Map<string, RequestStats>>();
  private readonly tcp = new Map<string, Map<string, TcpStats>>();
  /** The same, per caller identified by mTLS: source → direction → cluster (plaintext stays on the maps above). */
  private readonly bySource = new Map<string, Map<string, Map<string, RequestStats>>>();
  private readonly tcpBySource = new Map<string, Map<string, Map<string, TcpStats>>>();
  downstreamConnectionsTotal = 0;
  downstreamConnectionsActive = 0;
  downstreamProtocolErrors = 0;
  /** Access log lines dropped because the sink was slow. */
  accessLogDropped = 0;
  /** Records dropped for tap clients that did not read fast enough. */
  tapDropped = 0;
  /** Inbound mTLS handshakes completed, and connections refused before carrying anything, by reason (tls/tls-contexts.ts). */
  tlsHandshakes = 0;
  /** Of those, handshakes that resumed a session (no certificate exchange). */
  tlsResumed = 0;
  readonly tlsRefused = new Map<string, number>();
  /** Downstream HTTP/2 errors by scope (stream: RST_STREAM or a refused request; session: GOAWAY) and reason, NUL-separated. */
  private readonly h2Errors = new Map<string, number>();
  /** Rate-limited requests by filter, stat_prefix and enforced (NUL-separated: prefixes hold '|'). */
  private readonly rateLimits = new Map<string, number>();
  /** RBAC denials by filter (http, network), action of the filter that denied, stat prefix. */
  private readonly rbacDenials = new Map<string, number>();
  /** Requests an http-filter plugin's module failed (answered 500 FE), by plugin and stage, NUL-separated. */
  private readonly filterErrors = new Map<string, number>();
  /** Rate limit service failures by stat_prefix and allowed/denied. */
  private readonly rateLimitFailures = new Map<string, number>();

  /** `recentRequests`: size of the ring of recent requests (0: none). */
  constructor(recentRequests = 0) {
    this.records = new RequestObservers(recentRequests);
  }

  /** The sidecar's own service, the source of outbound and destination of inbound requests. */
  identify(service: string | undefined, namespace: string): void {
    this.service = service ? `${service}.${namespace}` : 'unknown';
  }

  rateLimited(filter: string, statPrefix: string, enforced: boolean): void {
    const key = `${filter}\u0000${statPrefix}\u0000${enforced}`;
    this.rateLimits.set(key, (this.rateLimits.get(key) ?? 0) + 1);
  }

  h2Error(scope: 'stream' | 'session', reason: string): void {
    const key = `${scope}\u0000${reason}`;
    this.h2Errors.set(key, (this.h2Errors.get(key) ?? 0) + 1);
  }

  rbacDenied(filter: 'http' | 'network', action: string, statPrefix: string): void {
    const key = `${filter}\u0000${action}\u0000${statPrefix}`;
    this.rbacDenials.set(key, (this.rbacDenials.get(key) ?? 0) + 1);
  }

  filterError(plugin: string, stage: string): void {
    const key = `${plugin}\u0000${stage}`;
    this.filterErrors.set(key, (this.filterErrors.get(key) ?? 0) + 1);
  }

  rateLimitFailure(statPrefix: string, denied: boolean): void {
    const key = `${statPrefix}\u0000${denied ? 'denied' : 'allowed'}`;
    this.rateLimitFailures.set(key, (this.rateLimitFailures.get(key) ?? 0) + 1);
  }

  /**
   * Stats of one (direction, cluster); cluster "" for requests no cluster took (no route, local
   * replies). `source`: the caller's service when its mTLS certificate said it.
   */
  forCluster(direction: string, cluster: string, source?: string): RequestStats {
    const byDirection = source === undefined ? this.byDirection : inner(this.bySource, source);
    let clusters = byDirection.get(direction);
    if (!clusters) byDirection.set(direction, (clusters = new Map()));
    let s = clusters.get(cluster);
    if (!s) clusters.set(cluster, (s = new RequestStats(direction, cluster, this, source)));
    return s;
  }

  /** TCP stats of one (direction, cluster), and caller when known from mTLS. */
  forTcp(direction: string, cluster: string, source?: string): TcpStats {
    const byDirection = source === undefined ? this.tcp : inner(this.tcpBySource, source);
    let clusters = byDirection.get(direction);
    if (!clusters) byDirection.set(direction, (clusters = new Map()));
    let s = clusters.get(cluster);
    if (!s) clusters.set(cluster, (s = new TcpStats(direction, cluster, this, source)));
    return s;
  }

  /** Every TcpStats so far. */
  private get tcpAll(): TcpStats[] {
    return [this.tcp, ...this.tcpBySource.values()].flatMap((d) => [...d.values()].flatMap((m) => [...m.values()]));
  }

  /** TCP connections of every listener so far. */
  get tcpConnectionsTotal(): number {
    let n = 0;
    for (const t of this.tcpAll) n += t.connections;
    return n;
  }

  /** Every (direction, cluster[, caller]) seen so far. */
  get requests(): RequestStats[] {
    return [this.byDirection, ...this.bySource.values()].flatMap((d) => [...d.values()].flatMap((m) => [...m.values()]));
  }

  /** Uncaught errors of other processes (`--concurrency`: the workers'), added to this one's in the exposition. */
  uncaughtElsewhere = 0;

  /** Every count, as plain data that crosses process boundaries (a worker's answer to its primary). */
  snapshot(): StatsSnapshot {
    const requests: RequestSnapshot[] = [];
    const tcp: TcpSnapshot[] = [];
    const walk = <V>(byDirection: Map<string, Map<string, V>>, source: string | undefined, fn: (direction: string, cluster: string, source: string | undefined, v: V) => void) => {
      for (const [direction, clusters] of byDirection) for (const [cluster, v] of clusters) fn(direction, cluster, source, v);
    };
    const request = (direction: string, cluster: string, source: string | undefined, s: RequestStats) =>
      requests.push({
        direction,
        cluster,
        source,
        counts: [s.requests, s.retries, s.retryOverflow, s.requestBytes, s.responseBytes],
        routes: [...s.routes].map(([route, r]) => ({
          route,
          latency: [r.latency.sum, r.latency.count, ...r.latency.counts],
          codes: [...r.codes.values()].map((c) => ({ status: c.status, grpc: c.grpc, plain: c.plain, flagged: c.flagged ? [...c.flagged] : [] })),
        })),
      });
    const connections = (direction: string, cluster: string, source: string | undefined, t: TcpStats) =>
      tcp.push({ direction, cluster, source, counts: [t.connections, t.active, t.received, t.sent] });
    walk(this.byDirection, undefined, request);
    for (const [source, d] of this.bySource) walk(d, source, request);
    walk(this.tcp, undefined, connections);
    for (const [source, d] of this.tcpBySource) walk(d, source, connections);
    return {
      scalars: {
        downstreamConnectionsTotal: this.downstreamConnectionsTotal,
        downstreamConnectionsActive: this.downstreamConnectionsActive,
        downstreamProtocolErrors: this.downstreamProtocolErrors,
        accessLogDropped: this.accessLogDropped,
        tapDropped: this.tapDropped,
        tlsHandshakes: this.tlsHandshakes,
        tlsResumed: this.tlsResumed,
        uncaught: uncaughtErrors() + this.uncaughtElsewhere,
      },
      keyed: {
        tlsRefused: [...this.tlsRefused],
        h2Errors: [...this.h2Errors],
        rateLimits: [...this.rateLimits],
        rbacDenials: [...this.rbacDenials],
        filterErrors: [...this.filterErrors],
        rateLimitFailures: [...this.rateLimitFailures],
        mirrorsSent: [...this.mirrors.sent],
        mirrorsDropped: [...this.mirrors.dropped],
      },
      requests,
      tcp,
    };
  }

  /**
   * Adds another process's snapshot to these counts. `gauges` false: only what
   * only grows (a worker that is gone: its counts stay in the totals, its open
   * connections do not).
   */
  add(snap: StatsSnapshot, gauges = true): void {
    const sc = snap.scalars;
    this.downstreamConnectionsTotal += sc.downstreamConnectionsTotal;
    if (gauges) this.downstreamConnectionsActive += sc.downstreamConnectionsActive;
    this.downstreamProtocolErrors += sc.downstreamProtocolErrors;
    this.accessLogDropped += sc.accessLogDropped;
    this.tapDropped += sc.tapDropped;
    this.tlsHandshakes += sc.tlsHandshakes;
    this.tlsResumed += sc.tlsResumed;
    this.uncaughtElsewhere += sc.uncaught;
    const k = snap.keyed;
    const sum = (into: Map<string, number>, from: [string, number][]) => {
      for (const [key, n] of from) into.set(key, (into.get(key) ?? 0) + n);
    };
    sum(this.tlsRefused, k.tlsRefused);
    sum(this.h2Errors, k.h2Errors);
    sum(this.rateLimits, k.rateLimits);
    sum(this.rbacDenials, k.rbacDenials);
    sum(this.filterErrors, k.filterErrors);
    sum(this.rateLimitFailures, k.rateLimitFailures);
    sum(this.mirrors.sent, k.mirrorsSent);
    sum(this.mirrors.dropped, k.mirrorsDropped);
    for (const r of snap.requests) {
      const s = this.forCluster(r.direction, r.cluster, r.source);
      s.requests += r.counts[0];
      s.retries += r.counts[1];
      s.retryOverflow += r.counts[2];
      s.requestBytes += r.counts[3];
      s.responseBytes += r.counts[4];
      for (const rs of r.routes) {
        let series = s.routes.get(rs.route);
        if (series === undefined) s.routes.set(rs.route, (series = new RouteSeries()));
        series.latency.sum += rs.latency[0];
        series.latency.count += rs.latency[1];
        for (let i = 0; i < series.latency.counts.length; i++) series.latency.counts[i] += rs.latency[2 + i] ?? 0;
        for (const c of rs.codes) {
          const key = c.status * 32 + c.grpc + 1;
          let cell = series.codes.get(key);
          if (cell === undefined) series.codes.set(key, (cell = new CodeCell(c.status, c.grpc)));
          cell.plain += c.plain;
          if (c.flagged.length) sum((cell.flagged ??= new Map()), c.flagged);
        }
      }
    }
    for (const t of snap.tcp) {
      const s = this.forTcp(t.direction, t.cluster, t.source);
      s.connections += t.counts[0];
      if (gauges) s.active += t.counts[1];
      s.received += t.counts[2];
      s.sent += t.counts[3];
    }
  }

  /** Prometheus text exposition (version 0.0.4). */
  render(extra: string[] = []): string {
    const out: string[] = [];
    const family = (name: string, type: string, help: string) => out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    const all = this.requests;

    family('weft_downstream_connections_total', 'counter', 'Connections accepted by HTTP listeners.');
    out.push(`weft_downstream_connections_total ${this.downstreamConnectionsTotal}`);
    family('weft_downstream_connections_active', 'gauge', 'Open downstream connections.');
    out.push(`weft_downstream_connections_active ${this.downstreamConnectionsActive}`);
    family('weft_downstream_protocol_errors_total', 'counter', 'Malformed requests answered 400 and closed.');
    out.push(`weft_downstream_protocol_errors_total ${this.downstreamProtocolErrors}`);

    family('weft_requests_total', 'counter', 'Finished requests by direction, source, destination, cluster, route, status code (0: none sent), response flags and grpc-status.');
    const classes = new Map<string, number>();
    const flagTotals = new Map<string, number>();
    const add = (m: Map<string, number>, k: string, n: number) => m.set(k, (m.get(k) ?? 0) + n);
    for (const s of all) {
      for (const [route, series] of s.routes) {
        const base = `${s.labels},route="${escapeLabel(route)}"`;
        for (const cell of series.codes.values()) {
          const code = `${base},code="${cell.status}"${cell.grpc >= 0 ? `,grpc_code="${cell.grpc}"` : ''}`;
          const cls = `${s.labels},class="${(cell.status / 100) | 0}xx"`;
          if (cell.plain > 0) {
            out.push(`weft_requests_total{${code},flags=""} ${cell.plain}`);
            add(classes, cls, cell.plain);
          }
          for (const [flags, n] of cell.flagged ?? []) {
            out.push(`weft_requests_total{${code},flags="${escapeLabel(flags)}"} ${n}`);
            add(classes, cls, n);
            add(flagTotals, `${s.labels},flag="${escapeLabel(flags)}"`, n);
          }
        }
      }
    }
    family('weft_requests_started_total', 'counter', 'Requests that reached the router or got a local reply, counted when they start.');
    for (const s of all) out.push(`weft_requests_started_total{${s.labels}} ${s.requests}`);
    family('weft_responses_total', 'counter', 'Finished requests by status class (0xx: the client left before a response).');
    for (const [labels, n] of classes) out.push(`weft_responses_total{${labels}} ${n}`);
    family('weft_response_flags_total', 'counter', 'Finished requests by response flags (local replies and notes such as DI).');
    for (const [labels, n] of flagTotals) out.push(`weft_response_flags_total{${labels}} ${n}`);

    family('weft_request_duration_seconds', 'histogram', 'Time from request head to response end.');
    for (const s of all) {
      for (const [route, series] of s.routes) {
        const labels = `${s.labels},route="${escapeLabel(route)}"`;
        let cumulative = 0;
        series.latency.counts.forEach((n, i) => {
          cumulative += n;
          out.push(`weft_request_duration_seconds_bucket{${labels},le="${LE_SECONDS[i]}"} ${cumulative}`);
        });
        out.push(`weft_request_duration_seconds_sum{${labels}} ${series.latency.sum / 1000}`, `weft_request_duration_seconds_count{${labels}} ${series.latency.count}`);
      }
    }
    family('weft_request_bytes_total', 'counter', 'Bytes received from downstream (HTTP/1: heads and framing included; HTTP/2: DATA).');
    for (const s of all) if (s.routes.size > 0) out.push(`weft_request_bytes_total{${s.labels}} ${s.requestBytes}`);
    family('weft_response_bytes_total', 'counter', 'Bytes sent back downstream (HTTP/1: heads and framing included; HTTP/2: DATA).');
    for (const s of all) if (s.routes.size > 0) out.push(`weft_response_bytes_total{${s.labels}} ${s.responseBytes}`);

    family('weft_retries_total', 'counter', 'Retried attempts (after the first) by direction and cluster.');
    for (const s of all) if (s.retries > 0) out.push(`weft_retries_total{${s.labels}} ${s.retries}`);
    family('weft_retry_overflow_total', 'counter', 'Retries refused by max_retries or the retry budget.');
    for (const s of all) if (s.retryOverflow > 0) out.push(`weft_retry_overflow_total{${s.labels}} ${s.retryOverflow}`);
    family('weft_ratelimited_total', 'counter', 'Requests over a rate limit, by filter (local, global) and stat_prefix; enforced="false" were let through.');
    for (const [key, n] of this.rateLimits) {
      const [filter, prefix, enforced] = key.split('\u0000');
      out.push(`weft_ratelimited_total{filter="${filter}",stat_prefix="${escapeLabel(prefix)}",enforced="${enforced}"} ${n}`);
    }
    family('weft_ratelimit_service_errors_total', 'counter', 'Calls to the rate limit service that failed or timed out, by what the request got (allowed: failure_mode_deny false).');
    for (const [key, n] of this.rateLimitFailures) {
      const [prefix, mode] = key.split('\u0000');
      out.push(`weft_ratelimit_service_errors_total{stat_prefix="${escapeLabel(prefix)}",mode="${mode}"} ${n}`);
    }

    family('weft_rbac_denied_total', 'counter', 'Requests (filter="http") and connections (filter="network") RBAC denied, by the action of the filter that denied and its stat prefix.');
    for (const [key, n] of this.rbacDenials) {
      const [filter, action, prefix] = key.split('\u0000');
      out.push(`weft_rbac_denied_total{filter="${filter}",action="${action}",stat_prefix="${escapeLabel(prefix)}"} ${n}`);
    }

    family('weft_http_filter_errors_total', 'counter', 'Requests an http-filter plugin failed with 500 (flag FE), by plugin and stage: load (the module or its factory failed), decode, encode, timeout (decodeHeaders did not settle).');
    for (const [key, n] of this.filterErrors) {
      const [plugin, stage] = key.split('\u0000');
      out.push(`weft_http_filter_errors_total{plugin="${escapeLabel(plugin)}",stage="${stage}"} ${n}`);
    }

    const tcp = this.tcpAll;
    family('weft_tcp_connections_total', 'counter', 'Connections proxied by TCP listeners.');
    for (const t of tcp) out.push(`weft_tcp_connections_total{${t.labels}} ${t.connections}`);
    family('weft_tcp_connections_active', 'gauge', 'Open connections of TCP listeners.');
    for (const t of tcp) out.push(`weft_tcp_connections_active{${t.labels}} ${t.active}`);
    family('weft_tcp_received_bytes_total', 'counter', 'Bytes TCP listeners received from downstream.');
    for (const t of tcp) out.push(`weft_tcp_received_bytes_total{${t.labels}} ${t.received}`);
    family('weft_tcp_sent_bytes_total', 'counter', 'Bytes TCP listeners sent back downstream.');
    for (const t of tcp) out.push(`weft_tcp_sent_bytes_total{${t.labels}} ${t.sent}`);

    family('weft_access_log_dropped_total', 'counter', 'Access log lines dropped because the sink was slow.');
    out.push(`weft_access_log_dropped_total ${this.accessLogDropped}`);
    family('weft_tap_dropped_total', 'counter', 'Records not sent to tap clients that read too slowly.');
    out.push(`weft_tap_dropped_total ${this.tapDropped}`);
    family('weft_downstream_tls_handshakes_total', 'counter', 'Inbound mTLS handshakes completed with a verified caller.');
    out.push(`weft_downstream_tls_handshakes_total ${this.tlsHandshakes}`);
    family('weft_downstream_tls_resumed_total', 'counter', 'Of the inbound mTLS handshakes, those that resumed a session (an abbreviated handshake, the caller identified by its session).');
    out.push(`weft_downstream_tls_resumed_total ${this.tlsResumed}`);
    family('weft_downstream_tls_refused_total', 'counter', 'Inbound connections closed before carrying anything, by reason (plaintext on a strict port, failed handshake, caller certificate missing or rejected, no workload certificate yet).');
    for (const [reason, n] of this.tlsRefused) out.push(`weft_downstream_tls_refused_total{reason="${reason}"} ${n}`);
    family('weft_proxy_uncaught_errors_total', 'counter', 'Errors no handler caught, kept from ending the process by the last-resort guard (each one is a bug).');
    out.push(`weft_proxy_uncaught_errors_total ${uncaughtErrors() + this.uncaughtElsewhere}`);
    family('weft_downstream_h2_errors_total', 'counter', 'Downstream HTTP/2 streams ended in error (scope="stream": RST_STREAM code, or malformed_* for a request refused with 400) and sessions ended by a protocol error or flood (scope="session").');
    for (const [key, n] of this.h2Errors) {
      const [scope, reason] = key.split('\u0000');
      out.push(`weft_downstream_h2_errors_total{scope="${scope}",reason="${escapeLabel(reason)}"} ${n}`);
    }
    out.push(...this.mirrors.render());
    return [...out, ...extra].join('\n') + '\n';
  }
}

/** One (direction, cluster[, caller]) of a snapshot; counts: requests, retries, retryOverflow, requestBytes, responseBytes. */
export interface RequestSnapshot {
  direction: string;
  cluster: string;
  source: string | undefined;
  counts: number[];
  /** latency: sum, count, then the bucket counts. */
  routes: { route: string; latency: number[]; codes: { status: number; grpc: number; plain: number; flagged: [string, number][] }[] }[];
}

/** counts: connections, active, received, sent. */
export interface TcpSnapshot {
  direction: string;
  cluster: string;
  source: string | undefined;
  counts: number[];
}

export interface StatsSnapshot {
  scalars: Record<'downstreamConnectionsTotal' | 'downstreamConnectionsActive' | 'downstreamProtocolErrors' | 'accessLogDropped' | 'tapDropped' | 'tlsHandshakes' | 'tlsResumed' | 'uncaught', number>;
  keyed: Record<'tlsRefused' | 'h2Errors' | 'rateLimits' | 'rbacDenials' | 'filterErrors' | 'rateLimitFailures' | 'mirrorsSent' | 'mirrorsDropped', [string, number][]>;
  requests: RequestSnapshot[];
  tcp: TcpSnapshot[];
}

export function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}
