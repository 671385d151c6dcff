// The one place that knows the sidecars' metric names: reads a sidecar's
// /stats/prometheus text, or the metric families of its MetricsService
// report, and returns cumulative counters per edge
// (direction, source, destination). Two generations are understood:
//   new: weft_requests_total{direction,source,destination,route,code,flags}
//        weft_request_duration_seconds_bucket{direction,source,destination,route,le}
//   old: weft_requests_total{direction,cluster}, weft_responses_total{…,class},
//        weft_request_duration_ms_bucket{direction,cluster,le}
// (old: the destination is the cluster's service; the source of an inbound
// request is unknown, "-"). A missing family is no data, never an error.

import type { MetricFamily } from './telemetry/telemetry-protocol';

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Prometheus text exposition → samples (comments and malformed lines skipped). */
export function parsePrometheus(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    if (m[2]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
      let l: RegExpExecArray | null;
      while ((l = re.exec(m[2]))) labels[l[1]] = l[2].replace(/\\n/g, '\n').replace(/\\(["\\])/g, '$1');
    }
    const value = m[3] === '+Inf' ? Infinity : Number(m[3]);
    if (!Number.isNaN(value)) out.push({ name: m[1], labels, value });
  }
  return out;
}

/** Cumulative counters of one edge as one sidecar saw them. */
export interface EdgeCounters {
  direction: string;
  source: string;
  destination: string;
  requests: number;
  /** Requests answered 5xx (or with no status: a reset). */
  errors: number;
  /** Latency histogram: upper bound in ms → cumulative count. */
  buckets: Map<number, number>;
}

/** "outbound|8081||product.default" → "product.default"; inbound clusters → the sidecar's own service. */
export function serviceOfCluster(cluster: string, self: string): string {
  const m = /^outbound\|\d+\|[^|]*\|(.+)$/.exec(cluster);
  if (m) return m[1];
  if (cluster.startsWith('inbound|')) return self;
  return cluster || '-';
}

/** A service name with its namespace: "product" → "product.default". */
function qualify(name: string | undefined, namespace: string): string {
  if (!name || name === '-' || name === 'unknown') return '-';
  return name.includes('.') ? name : `${name}.${namespace}`;
}

/**
 * The edges in one sidecar's metrics. `self`: the sidecar's service as
 * "<name>.<namespace>" (the source of its outbound requests, the destination
 * of its inbound ones).
 */
export function edgeCounters(text: string, self: string): EdgeCounters[] {
  return edgeCountersOf(parsePrometheus(text), self);
}

/** A sample, or a whole histogram: its buckets as [upper bound, cumulative count] in place of an `le` label. */
type Series = Sample & { buckets?: [number, number][] };

/**
 * The same from the metric families of a MetricsService report. A histogram
 * stays one series with its buckets (the text format's `_bucket` samples, one
 * per bound, would each copy the labels and look up the edge again: the
 * control plane reads hundreds of reports a second).
 */
export function edgeCountersFromFamilies(families: MetricFamily[], self: string): EdgeCounters[] {
  const samples: Series[] = [];
  for (const f of families) {
    for (const m of f.metric ?? []) {
      const labels: Record<string, string> = {};
      for (const l of m.label ?? []) labels[l.name] = l.value;
      const value = m.counter?.value ?? m.gauge?.value ?? m.untyped?.value;
      if (value !== undefined) samples.push({ name: f.name, labels, value });
      const buckets = m.histogram?.bucket;
      if (buckets?.length) {
        // protobufjs's JSON and a peer's may spell +Inf as null.
        const bounds = buckets.map((b): [number, number] => [b.upper_bound === undefined || b.upper_bound === null || (b.upper_bound as unknown) === '+Inf' ? Infinity : Number(b.upper_bound), b.cumulative_count ?? 0]);
        samples.push({ name: `${f.name}_bucket`, labels, value: 0, buckets: bounds });
      }
    }
  }
  return edgeCountersOf(envoyAsWeft(samples), self);
}

/**
 * An Envoy's metrics_service sink with `emit_tags_as_labels: true` names its
 * stats by their tag-extracted names: `cluster.upstream_rq{envoy_cluster_name,
 * envoy_response_code}` and the histogram `cluster.upstream_rq_time` (ms).
 * They become weft's names, so an Envoy in the mesh counts like a sidecar
 * (its outbound calls per cluster; an Envoy does not know an inbound caller).
 */
function envoyAsWeft(samples: Series[]): Series[] {
  if (!samples.some((s) => s.name.startsWith('cluster.upstream_rq'))) return samples;
  return samples.map((s) => {
    const cluster = s.labels.envoy_cluster_name;
    if (cluster === undefined) return s;
    const direction = cluster.startsWith('inbound|') ? 'inbound' : 'outbound';
    if (s.name === 'cluster.upstream_rq' && s.labels.envoy_response_code !== undefined) {
      return { name: 'weft_requests_total', labels: { direction, cluster, code: s.labels.envoy_response_code }, value: s.value };
    }
    // From a report, the histogram's buckets come whole (s.buckets) and there is no `le` label.
    if (s.name === 'cluster.upstream_rq_time_bucket') return { ...s, name: 'weft_request_duration_ms_bucket', labels: { direction, cluster, ...(s.labels.le !== undefined ? { le: s.labels.le } : {}) } };
    return s;
  });
}

function edgeCountersOf(samples: Series[], self: string): EdgeCounters[] {
  const namespace = self.split('.').slice(1).join('.') || 'default';
  const edges = new Map<string, EdgeCounters>();
  const edge = (direction: string, source: string, destination: string) => {
    const key = `${direction}\u0000${source}\u0000${destination}`;
    let e = edges.get(key);
    if (!e) edges.set(key, (e = { direction, source, destination, requests: 0, errors: 0, buckets: new Map() }));
    return e;
  };
  const ends = (l: Record<string, string>) => {
    const direction = l.direction ?? 'outbound';
    if ('source' in l || 'destination' in l) {
      return {
        direction,
        source: direction === 'outbound' ? self : qualify(l.source, namespace),
        destination: direction === 'inbound' ? self : qualify(l.destination, namespace),
      };
    }
    const destination = direction === 'inbound' ? self : serviceOfCluster(l.cluster ?? '', self);
    return { direction, source: direction === 'inbound' ? '-' : self, destination };
  };
  const newStyle = samples.some((s) => s.name === 'weft_requests_total' && ('destination' in s.labels || 'code' in s.labels));
  for (const s of samples) {
    const l = s.labels;
    if (s.name === 'weft_requests_total') {
      const { direction, source, destination } = ends(l);
      if (destination === '-' && !newStyle) continue; // no cluster: a local reply counted under its flag
      const e = edge(direction, source, destination);
      e.requests += s.value;
      if (newStyle) {
        const code = Number(l.code);
        if (!(code >= 100 && code < 500)) e.errors += s.value;
      }
    } else if (s.name === 'weft_responses_total' && !newStyle) {
      const { direction, source, destination } = ends(l);
      if (l.class === '5xx') edge(direction, source, destination).errors += s.value;
    } else if (s.name === 'weft_request_duration_seconds_bucket' || s.name === 'weft_request_duration_ms_bucket') {
      const { direction, source, destination } = ends(l);
      if (destination === '-' && !newStyle) continue;
      const scale = s.name.includes('seconds') ? 1000 : 1;
      const b = edge(direction, source, destination).buckets;
      const add = (le: number, n: number) => b.set(le, (b.get(le) ?? 0) + n);
      if (s.buckets) for (const [bound, n] of s.buckets) add(bound * scale, n);
      else add(l.le === '+Inf' ? Infinity : Number(l.le) * scale, s.value);
    }
  }
  return [...edges.values()];
}

/** The q-quantile (0..1) of a histogram of bucket deltas, interpolated within its bucket, in ms. */
export function quantile(q: number, buckets: Map<number, number>): number | undefined {
  const bounds = [...buckets.keys()].sort((a, b) => a - b);
  const total = bounds.length ? buckets.get(bounds[bounds.length - 1])! : 0;
  if (!(total > 0)) return undefined;
  const rank = q * total;
  let prevBound = 0;
  let prevCount = 0;
  for (const b of bounds) {
    const c = buckets.get(b)!;
    if (c >= rank) {
      if (b === Infinity) return prevBound;
      return prevBound + ((b - prevBound) * (rank - prevCount)) / Math.max(c - prevCount, 1e-9);
    }
    prevBound = b;
    prevCount = c;
  }
  return prevBound;
}
