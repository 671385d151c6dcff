// The sidecar's admin port: /ready before and after the first config (and
// with a listener that cannot bind), /stats/prometheus as valid exposition
// text counting requests by cluster and response flag, /config_dump with the
// four xDS types, /clusters with endpoints, /listeners.
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as net from 'node:net';
import { admin, docs, exitGuard, HttpUpstream, Mesh, parsePrometheus, request, serviceYaml, T, waitFor, type Sidecar } from '../../helpers/proxy-harness';

let mesh: Mesh;
let alpha: HttpUpstream;

const ALPHA = 'outbound|80||alpha.default';
const EMPTY = 'outbound|80||empty.default';

before(async () => {
  alpha = await HttpUpstream.start('alpha');
  mesh = await Mesh.start({ 'services.yaml': docs(serviceYaml({ name: 'alpha', endpoints: [alpha.port] }), serviceYaml({ name: 'empty' })) });
}, T);

after(async () => {
  exitGuard();
  await mesh.close();
  await alpha.close();
}, T);

test('admin: /ready is 503 before the first config and 200 after', T, async () => {
  await mesh.stopControlPlane();
  const sc = await mesh.sidecar({ nodeId: 'early' }, false);
  try {
    const early = await admin(sc, '/ready');
    assert.equal(early.status, 503);
    assert.match(early.text, /no config/);
    await mesh.startControlPlane();
    await waitFor(async () => (await admin(sc, '/ready')).status === 200, 5000, '/ready 200');
    assert.equal((await request(sc.outboundPort, { host: 'alpha' })).status, 200);
  } finally {
    await sc.close();
    mesh.sidecars.splice(mesh.sidecars.indexOf(sc), 1);
  }
});

test('admin: /ready is 503 naming the listener that could not bind', T, async () => {
  const squatter = net.createServer();
  await new Promise<void>((resolve) => squatter.listen(0, '127.0.0.1', () => resolve()));
  const taken = (squatter.address() as net.AddressInfo).port;
  const sc = await mesh.sidecar({ nodeId: 'blocked', outboundPort: taken }, false);
  try {
    await waitFor(async () => (await admin(sc, '/ready')).text.includes('listener outbound failed'), 5000, 'the bind failure reported');
    assert.equal((await admin(sc, '/ready')).status, 503);
  } finally {
    await sc.close();
    mesh.sidecars.splice(mesh.sidecars.indexOf(sc), 1);
    squatter.close();
  }
});

test('admin: /stats/prometheus parses and counts requests by cluster and response flag', T, async () => {
  const sc = await mesh.sidecar({ nodeId: 'stats' });
  for (let i = 0; i < 7; i++) assert.equal((await request(sc.outboundPort, { host: 'alpha' })).status, 200);
  for (let i = 0; i < 3; i++) assert.equal((await request(sc.outboundPort, { host: 'nope.example' })).status, 404);
  for (let i = 0; i < 2; i++) assert.equal((await request(sc.outboundPort, { host: 'empty' })).status, 503);
  const res = await admin(sc, '/stats/prometheus');
  assert.equal(res.status, 200);
  assert.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4/);
  const samples = parsePrometheus(res.text);
  const value = (name: string, labels: Record<string, string>) =>
    samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((n, s) => n + s.value, 0);
  assert.equal(value('weft_requests_total', { direction: 'outbound', cluster: ALPHA }), 7);
  assert.equal(value('weft_responses_total', { cluster: ALPHA, class: '2xx' }), 7);
  assert.equal(value('weft_requests_total', { direction: 'outbound', cluster: EMPTY }), 2);
  assert.equal(value('weft_response_flags_total', { cluster: EMPTY, flag: 'UH' }), 2);
  assert.equal(value('weft_response_flags_total', { flag: 'NR' }), 3);
  assert.equal(value('weft_request_duration_seconds_count', { cluster: ALPHA }), 7);
  const inf = samples.find((s) => s.name === 'weft_request_duration_seconds_bucket' && s.labels.cluster === ALPHA && s.labels.le === '+Inf');
  assert.equal(inf?.value, 7);
  assert.ok(value('weft_downstream_connections_total', {}) >= 12);
  assert.equal(value('weft_xds_connected', {}), 1);
  assert.equal(value('weft_upstream_connections_open', { cluster: ALPHA }), 1, 'keep-alive: one pooled connection');
});

test('admin: /config_dump has the four types, /clusters the endpoints, /listeners the bound listeners', T, async () => {
  const sc: Sidecar = await mesh.sidecar({ nodeId: 'dump' });
  const dump = (await admin(sc, '/config_dump')).json();
  assert.equal(dump.node, 'dump');
  for (const kind of ['LDS', 'RDS', 'CDS', 'EDS']) {
    assert.ok(dump.resources[kind], `${kind} in the dump`);
    assert.ok(dump.resources[kind].resources.length > 0, `${kind} has resources`);
    assert.ok(dump.resources[kind].version, `${kind} has a version`);
  }
  assert.ok(dump.resources.CDS.resources.some((r: { name: string }) => r.name === ALPHA));
  assert.ok(dump.resources.LDS.resources.some((r: { name: string }) => r.name === 'outbound'));
  assert.equal(dump.xds.connected, true);

  const clusters = (await admin(sc, '/clusters')).json() as { name: string; endpoints: { address: string; health: string }[] }[];
  const a = clusters.find((c) => c.name === ALPHA);
  assert.ok(a, JSON.stringify(clusters.map((c) => c.name)));
  assert.deepEqual(a.endpoints.map((e) => e.address), [`127.0.0.1:${alpha.port}`]);
  assert.deepEqual(clusters.find((c) => c.name === EMPTY)?.endpoints, []);

  const listeners = (await admin(sc, '/listeners')).json() as { name: string; port: number; state: string }[];
  assert.deepEqual(listeners.find((l) => l.name === 'outbound'), { name: 'outbound', address: '127.0.0.1', port: sc.outboundPort, state: 'bound' });
  assert.equal((await admin(sc, '/nope')).status, 404);
});
