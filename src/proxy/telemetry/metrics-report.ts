// What a sidecar reports to the control plane every interval, as Prometheus
// metric families (the MetricsService payload): per edge (direction, source,
// destination, cluster) its finished requests by status code and its latency
// histogram, cumulative since the sidecar started; and the endpoints its
// outlier detection or health checks took out of load balancing now. Routes
// and response flags stay in the sidecar's own /stats/prometheus: the
// control plane's golden signals do not need them.
import type { MetricFamily, PromMetric } from '../../observe/telemetry/telemetry-protocol';
import { LATENCY_BOUNDS_MS, type ProxyStats } from '../stats';

/** An endpoint out of load balancing in one of this sidecar's clusters. */
export interface UnhealthyEndpoint {
  cluster: string;
  endpoint: string;
  reason: 'outlier' | 'health_check';
  /** "ejected until … (2× ejected)", "health check unhealthy: HTTP 503". */
  detail: string;
}

export const REPORTED = {
  requests: 'weft_requests_total',
  duration: 'weft_request_duration_seconds',
  unhealthy: 'weft_endpoint_unhealthy',
} as const;

const BOUNDS_SECONDS = LATENCY_BOUNDS_MS.map((ms) => ms / 1000).concat(Infinity);

export interface MetricsReport {
  families: MetricFamily[];
  /** Changes whenever a request finished or an endpoint's state changed: an equal one need not be sent again. */
  signature: string;
}

export function metricsReport(stats: ProxyStats, unhealthy: UnhealthyEndpoint[]): MetricsReport {
  const requests: PromMetric[] = [];
  const durations: PromMetric[] = [];
  let finished = 0;
  for (const s of stats.requests) {
    if (s.routes.size === 0) continue;
    const labels = [
      { name: 'direction', value: s.direction },
      { name: 'source', value: s.source },
      { name: 'destination', value: s.destination },
      { name: 'cluster', value: s.cluster },
    ];
    const byCode = new Map<number, number>();
    const counts = new Array<number>(BOUNDS_SECONDS.length).fill(0);
    let count = 0;
    let sumMs = 0;
    for (const series of s.routes.values()) {
      for (const cell of series.codes.values()) {
        let n = cell.plain;
        for (const f of cell.flagged?.values() ?? []) n += f;
        byCode.set(cell.status, (byCode.get(cell.status) ?? 0) + n);
      }
      series.latency.counts.forEach((n, i) => (counts[i] += n));
      count += series.latency.count;
      sumMs += series.latency.sum;
    }
    finished += count;
    for (const [code, n] of byCode) requests.push({ label: [...labels, { name: 'code', value: String(code) }], counter: { value: n } });
    let cumulative = 0;
    durations.push({
      label: labels,
      histogram: {
        sample_count: count,
        sample_sum: sumMs / 1000,
        bucket: counts.map((n, i) => ({ cumulative_count: (cumulative += n), upper_bound: BOUNDS_SECONDS[i] })),
      },
    });
  }
  const families: MetricFamily[] = [];
  if (requests.length) families.push({ name: REPORTED.requests, type: 'COUNTER', metric: requests });
  if (durations.length) families.push({ name: REPORTED.duration, type: 'HISTOGRAM', metric: durations });
  if (unhealthy.length) {
    families.push({
      name: REPORTED.unhealthy,
      type: 'GAUGE',
      metric: unhealthy.map((u) => ({
        label: [
          { name: 'cluster', value: u.cluster },
          { name: 'endpoint', value: u.endpoint },
          { name: 'reason', value: u.reason },
          { name: 'detail', value: u.detail },
        ],
        gauge: { value: 1 },
      })),
    });
  }
  const health = unhealthy.map((u) => `${u.cluster} ${u.endpoint} ${u.reason}`).join('\n');
  return { families, signature: `${finished}\n${health}` };
}
