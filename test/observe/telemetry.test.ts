// Mesh-wide telemetry, piece by piece: the sidecar's metrics report says the
// same as its /stats/prometheus once it has crossed the wire; the intake
// keeps one bounded report per node and forgets it with its stream; the
// observer turns reports into rates (an idle sidecar, which sends nothing,
// counts as idle, not as stale) and adds other replicas' shares; the relay
// answers, times out and is refused as the protocol says.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { edgeCounters, edgeCountersFromFamilies } from '../../src/observe/mesh-metrics';
import { MeshObserver, type ReplicaTelemetry } from '../../src/observe/mesh-observer';
import { AdminRelay, RelayError } from '../../src/observe/telemetry/admin-relay';
import { MAX_SERIES, MetricsIntake, type NodeReport } from '../../src/observe/telemetry/metrics-intake';
import { adminRelayDefinition, metricsServiceDefinition, type MetricFamily, type RelayDown, type RelayUp } from '../../src/observe/telemetry/telemetry-protocol';
import { silentLogger } from '../../src/observe/log';
import { metricsReport } from '../../src/proxy/telemetry/metrics-report';
import { ProxyStats } from '../../src/proxy/stats';
import { XdsAccessError } from '../../src/xds/server/errors';
import { waitFor } from '../helpers/tmp';

function busyStats(): ProxyStats {
  const stats = new ProxyStats(0);
  stats.identify('web', 'default');
  const out = stats.forCluster('outbound', 'outbound|80||order.default');
  for (let i = 0; i < 40; i++) out.response(200, 3 + i, undefined, 'r1');
  for (let i = 0; i < 5; i++) out.response(503, 40, 'UF', 'r2');
  out.response(0, 900, 'DC', 'r1');
  const inbound = stats.forCluster('inbound', 'inbound|8080||', 'storefront.default');
  for (let i = 0; i < 7; i++) inbound.response(200, 1.2, undefined, 'in');
  return stats;
}

test('the report carries what /stats/prometheus says: edges, errors and latency buckets survive the wire', () => {
  const stats = busyStats();
  const report = metricsReport(stats, [{ cluster: 'outbound|80||order.default', endpoint: '10.0.0.9:80', reason: 'outlier', detail: 'ejected until … (1× ejected)' }]);
  // Through the MetricsService message's own encoding, as the control plane receives it.
  const def = metricsServiceDefinition().StreamMetrics;
  const bytes = def.requestSerialize({ identifier: { node: { id: 'n' } }, envoy_metrics: report.families });
  const decoded = def.requestDeserialize(bytes) as { envoy_metrics: MetricFamily[] };
  const fromReport = edgeCountersFromFamilies(decoded.envoy_metrics, 'web.default');
  const fromText = edgeCounters(stats.render(), 'web.default');
  const norm = (list: typeof fromText) => list.map((e) => ({ ...e, buckets: [...e.buckets].sort((a, b) => a[0] - b[0]) })).sort((a, b) => a.direction.localeCompare(b.direction));
  assert.deepEqual(norm(fromReport), norm(fromText));
  const out = fromReport.find((e) => e.direction === 'outbound')!;
  assert.deepEqual([out.requests, out.errors], [46, 6], '5xx and no-response count as errors');
  assert.ok(bytes.length < 4096, `a report of 2 edges is small: ${bytes.length} bytes`);
  // Nothing finished since: the same signature, so the sidecar need not send it again.
  assert.equal(metricsReport(stats, [{ cluster: 'outbound|80||order.default', endpoint: '10.0.0.9:80', reason: 'outlier', detail: 'x' }]).signature, report.signature);
  stats.forCluster('outbound', 'outbound|80||order.default').response(200, 1, undefined, 'r1');
  assert.notEqual(metricsReport(stats, []).signature, report.signature);
});

// ---- the intake and the relay, on a real gRPC server ----

let server: grpc.Server;
let address: string;
let intake: MetricsIntake;
let relay: AdminRelay;
const TOKEN = 'good-token';

before(async () => {
  // A stand-in for xdsAccess: the token must be right, and a token is for "web" only.
  const authorize = (md: grpc.Metadata, node: { service?: string }) => {
    const auth = md.get('authorization')[0];
    if (auth !== `Bearer ${TOKEN}`) throw new XdsAccessError(false, 'no token');
    if (node.service !== 'web') throw new XdsAccessError(true, 'not yours');
  };
  intake = new MetricsIntake({ authorize, log: silentLogger });
  relay = new AdminRelay({ authorize, log: silentLogger });
  server = new grpc.Server();
  for (const s of [intake.service(), relay.service()]) server.addService(s.definition, s.handlers);
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  address = `127.0.0.1:${port}`;
});

after(() => server.forceShutdown());

const node = (id: string, service = 'web') => ({ id, metadata: { fields: { WEFT_SERVICE: { stringValue: service }, WEFT_NAMESPACE: { stringValue: 'default' } } } });

function metricsCall(client: grpc.Client, token = TOKEN): { call: grpc.ClientWritableStream<unknown>; status: Promise<grpc.status> } {
  const def = metricsServiceDefinition().StreamMetrics;
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${token}`);
  let call!: grpc.ClientWritableStream<unknown>;
  const status = new Promise<grpc.status>((resolve) => {
    call = client.makeClientStreamRequest(def.path, def.requestSerialize, def.responseDeserialize, md, {}, (err) => resolve(err ? err.code : grpc.status.OK));
  });
  return { call, status };
}

test('the intake keeps the latest report per node, forgets it when the stream ends, and refuses oversized reports', async () => {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  try {
    const { call, status } = metricsCall(client);
    call.write({ identifier: { node: node('web-1') }, envoy_metrics: metricsReport(busyStats(), []).families });
    await waitFor(() => intake.get('web-1') !== undefined, 3000, 'the first report');
    assert.equal(intake.get('web-1')!.edges.find((e) => e.direction === 'outbound')!.requests, 46);
    call.write({ envoy_metrics: [] }); // later messages need not name the node again
    await waitFor(() => intake.get('web-1')!.edges.length === 0, 3000, 'the second report');
    call.end();
    assert.equal(await status, grpc.status.OK);
    await waitFor(() => intake.get('web-1') === undefined, 3000, 'the report gone with its stream');

    const big = metricsCall(client);
    big.call.write({ identifier: { node: node('web-2') }, envoy_metrics: [{ name: 'x', type: 'GAUGE', metric: Array.from({ length: MAX_SERIES + 1 }, () => ({ gauge: { value: 1 } })) }] });
    assert.equal(await big.status, grpc.status.RESOURCE_EXHAUSTED);
    assert.equal(intake.get('web-2'), undefined);

    const outsider = metricsCall(client, 'wrong');
    outsider.call.write({ identifier: { node: node('web-3') } });
    assert.equal(await outsider.status, grpc.status.UNAUTHENTICATED);
    const other = metricsCall(client);
    other.call.write({ identifier: { node: node('db-1', 'db') } });
    assert.equal(await other.status, grpc.status.PERMISSION_DENIED);
    assert.equal(intake.all().length, 0);
  } finally {
    client.close();
  }
});

test('the relay: a get is answered, an unanswered one times out, a node without a stream is said so', async () => {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${TOKEN}`);
  const def = adminRelayDefinition().Connect;
  const call = client.makeBidiStreamRequest(def.path, def.requestSerialize, def.responseDeserialize, md) as grpc.ClientDuplexStream<RelayUp, RelayDown>;
  let silent = false;
  call.on('data', (msg: RelayDown) => {
    if ('get' in msg && !silent) call.write({ id: msg.id, body: { view: msg.get, query: msg.query } });
    if ('tap' in msg) call.write({ id: msg.id, records: [{ path: '/tapped' } as never] });
  });
  call.on('error', () => {});
  try {
    call.write({ hello: { node: node('web-9') } });
    await waitFor(() => relay.has('web-9'), 3000, 'the relay session');
    assert.deepEqual(await relay.get('web-9', '/clusters', 'a=1'), { view: '/clusters', query: 'a=1' });
    const got: string[] = [];
    const stop = relay.tap('web-9', '', (records) => got.push(...records.map((r) => r.path)), () => {});
    await waitFor(() => got.includes('/tapped'), 3000, 'the tapped record');
    stop();
    silent = true;
    await assert.rejects(relay.get('web-9', '/clusters', '', 200), (err: RelayError) => err.code === 'E_RELAY_TIMEOUT');
    await assert.rejects(relay.get('nobody', '/clusters'), (err: RelayError) => err.code === 'E_RELAY_NO_STREAM');
    call.end();
    await waitFor(() => !relay.has('web-9'), 3000, 'the session gone with its stream');
  } finally {
    client.close();
  }
});

// ---- the observer ----

function report(id: string, receivedAt: number, requests: number): NodeReport {
  return {
    node: { id, role: 'sidecar', service: 'web', namespace: 'default' },
    receivedAt,
    edges: [{ direction: 'outbound', source: 'web.default', destination: 'order.default', requests, errors: 0, buckets: new Map([[10, requests], [Infinity, requests]]) }],
    unhealthy: [],
  };
}

test('the observer: rates from report times; an idle sidecar (no reports) decays to zero; other replicas add up', async () => {
  let reports: NodeReport[] = [];
  let peer: ReplicaTelemetry[] = [];
  const observer = new MeshObserver({ nodes: () => [], reports: () => reports, services: () => [], errors: () => ({}), peers: async () => peer, reportIntervalMs: 2000, windowMs: 10_000 });
  const t0 = Date.now() - 60_000;
  // Reports every 2 s at 10 rps (20 requests each).
  for (let i = 0; i <= 5; i++) {
    reports = [report('w1', t0 + i * 2000, i * 20)];
    await observer.tick();
  }
  const edge = () => observer.topology().edges.find((e) => e.destination === 'order.default')!;
  assert.equal(edge().rps, 10);
  // The sidecar went idle at t0 + 10 s and, checking every 2 s, sent nothing since (now is 50 s later).
  await observer.tick();
  await observer.tick();
  assert.equal(edge().rps, 0, 'no report for longer than the report interval: no change, so no traffic');
  // Another replica's share adds to this one's.
  peer = [{ replica: 'other', windows: [{ direction: 'outbound', source: 'web.default', destination: 'order.default', requests: 50, errors: 5, buckets: { '10': 50, '+Inf': 50 }, rps: 5, seconds: 10 }], instances: [], unreachable: [] }];
  await observer.tick();
  assert.equal(edge().rps, 5);
  assert.equal(edge().successRate, 0.9);
  assert.deepEqual(observer.topology().replicas, ['', 'other']);
  observer.stop();
});
