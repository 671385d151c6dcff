// The metrics adapter reads both generations of the sidecar's metric names
// (see src/observe/mesh-metrics.ts), and quantiles come from bucket counts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { edgeCounters, edgeCountersFromFamilies, quantile } from '../../src/observe/mesh-metrics';
import { ProxyStats } from '../../src/proxy/stats';
import { metricsReport } from '../../src/proxy/telemetry/metrics-report';

test('old names: edges by cluster, 5xx by class, latency in ms; local replies without a cluster left out', () => {
  const text = [
    'weft_requests_total{direction="outbound",cluster="outbound|80||product.default"} 10',
    'weft_requests_total{direction="outbound",cluster=""} 3',
    'weft_requests_total{direction="inbound",cluster="inbound|80||"} 4',
    'weft_responses_total{direction="outbound",cluster="outbound|80||product.default",class="2xx"} 8',
    'weft_responses_total{direction="outbound",cluster="outbound|80||product.default",class="5xx"} 2',
    'weft_request_duration_ms_bucket{direction="outbound",cluster="outbound|80||product.default",le="5"} 6',
    'weft_request_duration_ms_bucket{direction="outbound",cluster="outbound|80||product.default",le="+Inf"} 10',
  ].join('\n');
  const edges = edgeCounters(text, 'web.default');
  const out = edges.find((e) => e.direction === 'outbound')!;
  assert.deepEqual([out.source, out.destination, out.requests, out.errors], ['web.default', 'product.default', 10, 2]);
  assert.deepEqual([...out.buckets], [[5, 6], [Infinity, 10]]);
  const inbound = edges.find((e) => e.direction === 'inbound')!;
  assert.deepEqual([inbound.source, inbound.destination, inbound.requests], ['-', 'web.default', 4]);
  assert.equal(edges.length, 2);
});

test('new names: source and destination labels, errors by code, latency in seconds', () => {
  const text = [
    'weft_requests_total{direction="outbound",source="web",destination="order",route="r",code="200",flags="-"} 7',
    'weft_requests_total{direction="outbound",source="web",destination="order",route="r",code="503",flags="UF"} 3',
    'weft_requests_total{direction="inbound",source="storefront",destination="web",route="r",code="200",flags="-"} 5',
    'weft_request_duration_seconds_bucket{direction="outbound",source="web",destination="order",route="r",le="0.01"} 10',
    'weft_request_duration_seconds_bucket{direction="outbound",source="web",destination="order",route="r",le="+Inf"} 10',
  ].join('\n');
  const edges = edgeCounters(text, 'web.default');
  const out = edges.find((e) => e.direction === 'outbound')!;
  assert.deepEqual([out.source, out.destination, out.requests, out.errors], ['web.default', 'order.default', 10, 3]);
  assert.deepEqual([...out.buckets], [[10, 10], [Infinity, 10]]);
  const inbound = edges.find((e) => e.direction === 'inbound')!;
  assert.deepEqual([inbound.source, inbound.destination, inbound.requests], ['storefront.default', 'web.default', 5]);
});

test('quantiles interpolate within the bucket; none without requests; a missing family is no data', () => {
  const b = new Map([[10, 50], [20, 100], [Infinity, 100]]);
  assert.equal(quantile(0.5, b), 10);
  assert.equal(quantile(0.75, b), 15);
  assert.equal(quantile(0.5, new Map([[10, 0], [Infinity, 0]])), undefined);
  assert.deepEqual(edgeCounters('# nothing here\nweft_xds_connected 1\n', 'web.default'), []);
});

test('a MetricsService report gives the same edges as the sidecar\'s /stats/prometheus text of the same stats', () => {
  const stats = new ProxyStats(0);
  stats.identify('web', 'default');
  const out = stats.forCluster('outbound', 'outbound|80||order.default');
  for (let i = 0; i < 200; i++) out.response(i % 10 === 0 ? 503 : 200, (i * 37) % 300, undefined, i % 2 ? 'a' : 'b');
  out.response(0, 12, 'UF', 'a');
  const inbound = stats.forCluster('inbound', 'inbound|80||', 'storefront.default');
  for (let i = 0; i < 30; i++) inbound.response(i % 7 === 0 ? 404 : 200, i * 0.4);
  const fromText = edgeCounters(stats.render(), 'web.default');
  const fromReport = edgeCountersFromFamilies(metricsReport(stats, []).families, 'web.default');
  const byKey = (edges: typeof fromText) => new Map(edges.map((e) => [`${e.direction} ${e.source} ${e.destination}`, { ...e, buckets: [...e.buckets].sort((a, b) => a[0] - b[0]) }]));
  assert.deepEqual(byKey(fromReport), byKey(fromText));
  const order = fromReport.find((e) => e.destination === 'order.default')!;
  assert.deepEqual([order.requests, order.errors, order.buckets.get(Infinity)], [201, 21, 201]);
});

test("an Envoy's metrics_service report (tags as labels) counts its outbound calls like a sidecar's", () => {
  const families = [
    {
      name: 'cluster.upstream_rq',
      type: 'COUNTER' as const,
      metric: [
        { label: [{ name: 'envoy_cluster_name', value: 'outbound|80||order.default' }, { name: 'envoy_response_code', value: '200' }], counter: { value: 9 } },
        { label: [{ name: 'envoy_cluster_name', value: 'outbound|80||order.default' }, { name: 'envoy_response_code', value: '503' }], counter: { value: 1 } },
      ],
    },
    {
      name: 'cluster.upstream_rq_time',
      type: 'HISTOGRAM' as const,
      metric: [{ label: [{ name: 'envoy_cluster_name', value: 'outbound|80||order.default' }], histogram: { sample_count: 10, bucket: [{ cumulative_count: 8, upper_bound: 5 }, { cumulative_count: 10, upper_bound: Infinity }] } }],
    },
  ];
  const [edge] = edgeCountersFromFamilies(families, 'web.default');
  assert.deepEqual([edge.direction, edge.source, edge.destination, edge.requests, edge.errors], ['outbound', 'web.default', 'order.default', 10, 1]);
  assert.deepEqual([...edge.buckets], [[5, 8], [Infinity, 10]]);
});
