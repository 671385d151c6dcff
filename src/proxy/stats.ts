// The proxy's counters, kept as plain numbers on the hot path and rendered
// in Prometheus text format by the admin port. One RequestStats per
// (listener direction, cluster): a request costs a few increments and one
// histogram bucket search.

/** Latency bucket bounds, in milliseconds. */
const LATENCY_BOUNDS_MS = [0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];

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

export class RequestStats {
  requests = 0;
  /** Responses by status class: index 1..5 for 1xx..5xx. */
  readonly byClass = [0, 0, 0, 0, 0, 0];
  /** Local replies by response flag (UF, UO, NR, UT, …). */
  readonly flags = new Map<string, number>();
  readonly latency = new Histogram();
  bytesIn = 0;
  bytesOut = 0;
  /** Attempts after the first. */
  retries = 0;
  /** Retries the policy wanted and max_retries or the retry budget refused. */
  retryOverflow = 0;

  constructor(
    readonly direction: string,
    readonly cluster: string,
  ) {}

  response(status: number, ms: number, flag?: string): void {
    this.byClass[(status / 100) | 0]++;
    this.latency.observe(ms);
    if (flag) this.flags.set(flag, (this.flags.get(flag) ?? 0) + 1);
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

export class ProxyStats {
  readonly mirrors = new MirrorStats();
  /** direction → cluster → stats: two lookups and no string building per request. */
  private readonly byDirection = new Map<string, Map<string, RequestStats>>();
  downstreamConnectionsTotal = 0;
  downstreamConnectionsActive = 0;
  downstreamProtocolErrors = 0;
  tcpConnectionsTotal = 0;
  tcpBytesIn = 0;
  tcpBytesOut = 0;
  /** Rate-limited requests by filter, stat_prefix and enforced (NUL-separated: prefixes hold '|'). */
  private readonly rateLimits = new Map<string, number>();
  /** Rate limit service failures by stat_prefix and allowed/denied. */
  private readonly rateLimitFailures = new Map<string, number>();

  rateLimited(filter: string, statPrefix: string, enforced: boolean): void {
    const key = `${filter}\u0000${statPrefix}\u0000${enforced}`;
    this.rateLimits.set(key, (this.rateLimits.get(key) ?? 0) + 1);
  }

  rateLimitFailure(statPrefix: string, denied: boolean): void {
    const key = `${statPrefix}\u0000${denied ? 'denied' : 'allowed'}`;
    this.rateLimitFailures.set(key, (this.rateLimitFailures.get(key) ?? 0) + 1);
  }

  /** Stats of one (direction, cluster); cluster "" for requests no cluster took (no route, local replies). */
  forCluster(direction: string, cluster: string): RequestStats {
    let clusters = this.byDirection.get(direction);
    if (!clusters) this.byDirection.set(direction, (clusters = new Map()));
    let s = clusters.get(cluster);
    if (!s) clusters.set(cluster, (s = new RequestStats(direction, cluster)));
    return s;
  }

  /** Every (direction, cluster) seen so far. */
  get requests(): RequestStats[] {
    return [...this.byDirection.values()].flatMap((m) => [...m.values()]);
  }

  /** Prometheus text exposition (version 0.0.4). */
  render(extra: string[] = []): string {
    const out: string[] = [];
    const family = (name: string, type: string, help: string) => out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    const labels = (s: RequestStats, more = '') => `direction="${s.direction}",cluster="${escapeLabel(s.cluster)}"${more}`;

    family('weft_downstream_connections_total', 'counter', 'Connections accepted by HTTP listeners.');
    out.push(`weft_downstream_connections_total ${this.downstreamConnectionsTotal}`);
    family('weft_downstream_connections_active', 'gauge', 'Open downstream connections.');
    out.push(`weft_downstream_connections_active ${this.downstreamConnectionsActive}`);
    family('weft_downstream_protocol_errors_total', 'counter', 'Malformed requests answered 400 and closed.');
    out.push(`weft_downstream_protocol_errors_total ${this.downstreamProtocolErrors}`);
    family('weft_requests_total', 'counter', 'Requests by direction and cluster.');
    for (const s of this.requests) out.push(`weft_requests_total{${labels(s)}} ${s.requests}`);
    family('weft_responses_total', 'counter', 'Responses by status class.');
    for (const s of this.requests) {
      s.byClass.forEach((n, i) => n > 0 && out.push(`weft_responses_total{${labels(s, `,class="${i}xx"`)}} ${n}`));
    }
    family('weft_response_flags_total', 'counter', 'Local replies by response flag.');
    for (const s of this.requests) {
      for (const [flag, n] of s.flags) out.push(`weft_response_flags_total{${labels(s, `,flag="${flag}"`)}} ${n}`);
    }
    family('weft_retries_total', 'counter', 'Retried attempts (after the first) by direction and cluster.');
    for (const s of this.requests) if (s.retries > 0) out.push(`weft_retries_total{${labels(s)}} ${s.retries}`);
    family('weft_retry_overflow_total', 'counter', 'Retries refused by max_retries or the retry budget.');
    for (const s of this.requests) if (s.retryOverflow > 0) out.push(`weft_retry_overflow_total{${labels(s)}} ${s.retryOverflow}`);
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
    family('weft_request_duration_ms', 'histogram', 'Time from request head to response end, in milliseconds.');
    for (const s of this.requests) {
      let cumulative = 0;
      s.latency.counts.forEach((n, i) => {
        cumulative += n;
        const le = i < LATENCY_BOUNDS_MS.length ? String(LATENCY_BOUNDS_MS[i]) : '+Inf';
        out.push(`weft_request_duration_ms_bucket{${labels(s, `,le="${le}"`)}} ${cumulative}`);
      });
      out.push(`weft_request_duration_ms_sum{${labels(s)}} ${s.latency.sum}`, `weft_request_duration_ms_count{${labels(s)}} ${s.latency.count}`);
    }
    family('weft_tcp_connections_total', 'counter', 'Connections proxied by TCP listeners.');
    out.push(`weft_tcp_connections_total ${this.tcpConnectionsTotal}`);
    family('weft_tcp_bytes_total', 'counter', 'Bytes proxied by TCP listeners.');
    out.push(`weft_tcp_bytes_total{direction="received"} ${this.tcpBytesIn}`, `weft_tcp_bytes_total{direction="sent"} ${this.tcpBytesOut}`);
    out.push(...this.mirrors.render());
    return [...out, ...extra].join('\n') + '\n';
  }
}

export function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}
