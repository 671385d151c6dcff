// The client's side of the delta ADS protocol, against a scripted server:
// first requests, subscriptions that follow references, ACK/NACK, partial
// apply, removals, warming (and its timeout), reconnection with
// initial_resource_versions.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import type { LogLevel } from '../../../src/observe/log';
import type { ProxyConfig } from '../../../src/proxy/config/types';
import { XdsClient, type XdsClientOptions } from '../../../src/xds/client/ads-client';
import { XdsClientError } from '../../../src/xds/client/errors';
import { anyOf } from '../../../src/xds/protos';
import { TYPE_URL } from '../../../src/xds/type-urls';
import { waitFor } from '../../helpers/tmp';
import { FakeAdsServer, resource, type Obj } from './fake-ads-server';

const { Cluster: CDS, ClusterLoadAssignment: EDS, Listener: LDS, RouteConfiguration: RDS } = TYPE_URL;
const ADS = { ads: {}, resource_api_version: 'V3' };
const router = { name: 'envoy.filters.http.router', typed_config: anyOf(TYPE_URL.Router, {}) };

const cluster = (name: string, extra: Obj = {}) => ({ name, type: 'EDS', eds_cluster_config: { eds_config: ADS }, ...extra });
const cla = (name: string, port: number) => ({
  cluster_name: name,
  endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } }] }],
});
const listener = (name: string, rds: string) => ({
  name,
  address: { socket_address: { address: '127.0.0.1', port_value: 15001 } },
  filter_chains: [
    {
      filters: [
        {
          name: 'envoy.filters.network.http_connection_manager',
          typed_config: anyOf(TYPE_URL.HttpConnectionManager, { stat_prefix: name, rds: { config_source: ADS, route_config_name: rds }, http_filters: [router] }),
        },
      ],
    },
  ],
});
const routes = (name: string, to: string) => ({
  name,
  virtual_hosts: [{ name: 'vh', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: to } }] }],
});

interface Setup {
  s: FakeAdsServer;
  client: XdsClient;
  configs: ProxyConfig[];
  logs: { level: LogLevel; msg: string; fields?: Record<string, unknown> }[];
  done(): Promise<void>;
}

async function setup(extra: Partial<XdsClientOptions> = {}): Promise<Setup> {
  const s = await FakeAdsServer.start();
  const logs: Setup['logs'] = [];
  const client = new XdsClient({
    server: `127.0.0.1:${s.port}`,
    node: { id: 'node-1', metadata: { WEFT_SERVICE: 'web', WEFT_ROLE: 'sidecar' }, zone: 'z1' },
    log: (level, msg, fields) => logs.push({ level, msg, fields }),
    backoff: { initialMs: 20, maxMs: 100 },
    ...extra,
  });
  const configs: ProxyConfig[] = [];
  client.onConfig((c) => configs.push(c));
  client.start();
  return {
    s,
    client,
    configs,
    logs,
    async done() {
      client.stop();
      await s.close();
    },
  };
}

const ofType = (typeUrl: string) => (m: Obj) => m.type_url === typeUrl;

/** Answers the first requests with c1 (EDS) and l1 → r1, waits for every ACK and the first config. */
async function establish(t: Setup): Promise<void> {
  const { s } = t;
  const acked = (nonce: string) => s.next((m) => m.response_nonce === nonce);
  await s.next(ofType(CDS));
  await s.next(ofType(LDS));
  await acked(s.push(CDS, [resource(CDS, 'c1', cluster('c1'))]));
  await acked(s.push(LDS, [resource(LDS, 'l1', listener('l1', 'r1'))]));
  await s.next((m) => m.type_url === EDS && m.resource_names_subscribe.length > 0);
  await s.next((m) => m.type_url === RDS && m.resource_names_subscribe.length > 0);
  await acked(s.push(EDS, [resource(EDS, 'c1', cla('c1', 9001))]));
  await acked(s.push(RDS, [resource(RDS, 'r1', routes('r1', 'c1'))]));
  await waitFor(() => t.configs.length === 1, 2000, 'the first config');
  assert.deepEqual(s.pending(), []);
}

test('client: options are validated', () => {
  const node = { id: 'n', metadata: {} };
  for (const opts of [
    { server: 'nohost', node },
    { server: '127.0.0.1:1', node: { id: '', metadata: {} } },
    { server: '127.0.0.1:1', node, backoff: { initialMs: 0, maxMs: 1 } },
    { server: '127.0.0.1:1', node, backoff: { initialMs: 10, maxMs: 1 } },
  ]) {
    assert.throws(() => new XdsClient(opts), (e: unknown) => e instanceof XdsClientError && e.code === 'E_XDS_CLIENT_OPTIONS');
  }
  const c = new XdsClient({ server: '[::1]:15010', node });
  c.stop();
  assert.throws(() => c.start(), (e: unknown) => e instanceof XdsClientError && e.code === 'E_XDS_CLIENT_STOPPED');
});

test('client: first requests, subscriptions follow references, ACKs, warming until RDS and EDS arrive', async () => {
  const t = await setup();
  const { s, client, configs } = t;
  try {
    const cds = await s.next(ofType(CDS));
    assert.equal(cds.node.id, 'node-1');
    assert.equal(cds.node.user_agent_name, 'weft-proxy');
    assert.equal(cds.node.metadata.fields.WEFT_SERVICE.stringValue, 'web');
    assert.equal(cds.node.locality.zone, 'z1');
    assert.deepEqual([cds.resource_names_subscribe, cds.initial_resource_versions], [[], {}], 'wildcard');
    const lds = await s.next(ofType(LDS));
    assert.equal(lds.node, null, 'the node goes on the first request only');
    assert.deepEqual(s.pending(), [], 'no RDS or EDS before anything references a name');

    const cdsNonce = s.push(CDS, [resource(CDS, 'c1', cluster('c1')), resource(CDS, 'static', { name: 'static', load_assignment: cla('static', 9100) })]);
    const ack = await s.next(ofType(CDS));
    assert.deepEqual([ack.response_nonce, ack.error_detail], [cdsNonce, null]);
    const eds = await s.next(ofType(EDS));
    assert.deepEqual([eds.resource_names_subscribe, eds.resource_names_unsubscribe], [['c1'], []], 'only EDS clusters');

    s.push(LDS, [resource(LDS, 'l1', listener('l1', 'r1'))]);
    await s.next(ofType(LDS));
    assert.deepEqual((await s.next(ofType(RDS))).resource_names_subscribe, ['r1']);
    await waitFor(() => client.status().warming.length === 2, 1000, 'warming');
    assert.deepEqual(client.status().warming, ['RDS r1', 'EDS c1']);
    assert.equal(configs.length, 0, 'not warm yet');

    s.push(EDS, [resource(EDS, 'c1', cla('c1', 9001))]);
    await s.next(ofType(EDS));
    assert.deepEqual(client.status().warming, ['RDS r1']);
    assert.equal(configs.length, 0);
    s.push(RDS, [resource(RDS, 'r1', routes('r1', 'c1'))], { version: 'rv' });
    await waitFor(() => configs.length === 1, 1000, 'config');
    const c = configs[0];
    assert.equal(client.current(), c);
    assert.deepEqual([...c.listeners.keys()], ['l1']);
    assert.deepEqual([...c.routeTables.keys()], ['r1']);
    assert.deepEqual([...c.clusters.keys()].sort(), ['c1', 'static']);
    assert.deepEqual([...c.endpoints.keys()].sort(), ['c1', 'static']);
    assert.equal(c.endpoints.get('static')?.localities[0].endpoints[0].port, 9100);
    assert.equal(c.versions.RDS, 'rv');

    const st = client.status();
    assert.equal(st.connected, true);
    assert.deepEqual(st.warming, []);
    assert.deepEqual(st.types.EDS.subscription, ['c1']);
    assert.equal(st.types.CDS.subscription, '*');
    assert.ok(Object.values(st.types).every((x) => !x.nacked && x.version));
    const dump = client.configDump();
    const l1 = dump.LDS.resources[0].resource as Obj;
    assert.equal(l1.filter_chains[0].filters[0].typed_config['@type'], TYPE_URL.HttpConnectionManager);
    assert.equal(dump.RDS.version, 'rv');
  } finally {
    await t.done();
  }
});

test('client: a partly invalid update applies what is valid, NACKs the rest, keeps the previous versions serving', async () => {
  const t = await setup();
  const { s, client, configs } = t;
  try {
    await establish(t);
    const before = client.current()!;
    const tls = { name: 'tls', typed_config: anyOf(TYPE_URL.Secret, {}) };
    const nonce = s.push(CDS, [
      resource(CDS, 'c2', cluster('c2')),
      resource(CDS, 'c3', cluster('c3', { lb_subset_config: {} })),
      resource(CDS, 'c1', cluster('c1', { transport_socket: tls }), '2'),
    ]);
    const nack = await s.next(ofType(CDS));
    assert.equal(nack.response_nonce, nonce);
    assert.equal(nack.error_detail.code, 3);
    assert.equal(
      nack.error_detail.message,
      'Cluster "c3": lb_subset_config is not supported by weft proxy yet; Cluster "c1": transport_socket is not supported by weft proxy yet',
    );
    assert.deepEqual((await s.next(ofType(EDS))).resource_names_subscribe, ['c2'], 'the valid cluster was applied');
    s.push(EDS, [resource(EDS, 'c2', cla('c2', 9002))]);
    await waitFor(() => configs.length === 2, 1000, 'config with c2');
    const after = configs[1];
    assert.deepEqual([...after.clusters.keys()].sort(), ['c1', 'c2']);
    assert.equal(after.clusters.get('c1'), before.clusters.get('c1'), "c1's previous version keeps serving");
    assert.notEqual(after, before, 'a new snapshot object');
    assert.equal(before.clusters.has('c2'), false, 'snapshots are not mutated');
    const cdsStatus = client.status().types.CDS;
    assert.equal(cdsStatus.nacked, true);
    assert.match(cdsStatus.lastNack!.message, /lb_subset_config/);
    assert.equal(cdsStatus.version, before.versions.CDS, 'the version stays the last fully applied one');

    // A removal: the cluster and its endpoints leave, EDS unsubscribes.
    s.push(CDS, [], { removed: ['c2'] });
    assert.equal((await s.next(ofType(CDS))).error_detail, null);
    assert.deepEqual((await s.next((m) => m.type_url === EDS && m.resource_names_unsubscribe.length > 0)).resource_names_unsubscribe, ['c2']);
    await waitFor(() => configs.length === 3, 1000, 'config without c2');
    assert.deepEqual([...configs[2].clusters.keys()], ['c1']);
    assert.deepEqual([...configs[2].endpoints.keys()], ['c1']);
    assert.equal(client.status().types.CDS.nacked, false);
  } finally {
    await t.done();
  }
});

test('client: resources that are not what they claim, and types never asked for, are NACKed', async () => {
  const t = await setup();
  const { s } = t;
  try {
    await establish(t);
    s.push(CDS, [{ name: 'x', version: '1', resource: anyOf(CDS, cluster('y')) }]);
    assert.equal((await s.next(ofType(CDS))).error_detail.message, 'Cluster "x": is named "y" in its message');
    s.push(CDS, [{ name: 'x', version: '1', resource: anyOf(LDS, listener('x', 'r')) }]);
    assert.equal((await s.next(ofType(CDS))).error_detail.message, `Cluster "x": is a ${LDS}, expected ${CDS}`);
    s.push(CDS, [{ name: 'x', version: '1', resource: { type_url: CDS, value: Buffer.from([0xff, 0xff]) } }]);
    assert.match((await s.next(ofType(CDS))).error_detail.message, /^Cluster "x": does not decode/);
    s.push(TYPE_URL.Secret, []);
    assert.equal((await s.next(ofType(TYPE_URL.Secret))).error_detail.message, `weft proxy did not subscribe to ${TYPE_URL.Secret}`);
    assert.equal(t.configs.length, 1, 'nothing changed');
  } finally {
    await t.done();
  }
});

test('client: names the server says do not exist end warming; what never comes is given up after the timeout', async () => {
  const t = await setup({ warmingTimeoutMs: 300 });
  const { s, client, configs, logs } = t;
  try {
    await s.next(ofType(CDS));
    s.push(CDS, [resource(CDS, 'c1', cluster('c1'))]);
    s.push(LDS, [resource(LDS, 'l1', listener('l1', 'r1'))]);
    await s.next((m) => m.type_url === EDS && m.resource_names_subscribe.length > 0);
    s.push(EDS, [], { removed: ['c1'] });
    await waitFor(() => JSON.stringify(client.status().warming) === '["RDS r1"]', 1000, 'only r1 missing');
    const start = Date.now();
    await waitFor(() => configs.length === 1, 2000, 'config after the timeout');
    assert.ok(Date.now() - start >= 200, 'not before the timeout');
    assert.deepEqual([...configs[0].listeners.keys()], ['l1']);
    assert.equal(configs[0].routeTables.size, 0);
    assert.equal(configs[0].endpoints.has('c1'), false, 'a cluster the server has no endpoints for');
    const warn = logs.find((l) => l.msg.includes('warming timeout'));
    assert.deepEqual(warn?.fields?.missing, ['RDS r1']);
    assert.deepEqual(client.status().warming, [], 'given up');

    await s.next((m) => m.type_url === RDS && m.resource_names_subscribe.length > 0);
    s.push(RDS, [resource(RDS, 'r1', routes('r1', 'c1'))]);
    await waitFor(() => configs.length === 2, 1000, 'config with r1');
    assert.deepEqual([...configs[1].routeTables.keys()], ['r1']);
  } finally {
    await t.done();
  }
});

test('client: a broken stream keeps the config; the reconnect announces what is held', async () => {
  const t = await setup();
  const { s, client } = t;
  try {
    await establish(t);
    const config = client.current();
    s.breakStream();
    const fromSecond = (typeUrl: string) => (m: Obj, stream: number) => stream === 1 && m.type_url === typeUrl;
    const cds = await s.next(fromSecond(CDS));
    assert.equal(cds.node.id, 'node-1', 'a new stream names the node again');
    assert.deepEqual(cds.initial_resource_versions, { c1: '1' });
    const eds = await s.next(fromSecond(EDS));
    assert.deepEqual([eds.resource_names_subscribe, eds.initial_resource_versions], [['c1'], { c1: '1' }]);
    assert.deepEqual((await s.next(fromSecond(LDS))).initial_resource_versions, { l1: '1' });
    const rds = await s.next(fromSecond(RDS));
    assert.deepEqual([rds.resource_names_subscribe, rds.initial_resource_versions], [['r1'], { r1: '1' }]);
    assert.equal(client.current(), config, 'the config kept serving');
    assert.ok(t.logs.some((l) => l.level === 'warn' && l.msg.includes('reconnecting')));
    await waitFor(() => client.status().connected, 1000, 'connected again');
    client.stop();
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(s.streamCount, 2, 'no reconnection after stop()');
    assert.equal(client.current(), config);
  } finally {
    await t.done();
  }
});

test('client: a route table rejected before one was held does not hold the config back', async () => {
  const t = await setup({ warmingTimeoutMs: 10_000 });
  const { s, configs } = t;
  try {
    await s.next(ofType(CDS));
    s.push(CDS, [resource(CDS, 'c1', { name: 'c1', load_assignment: cla('c1', 9001) })]);
    s.push(LDS, [resource(LDS, 'l1', listener('l1', 'r1'))]);
    await s.next((m) => m.type_url === RDS && m.resource_names_subscribe.length > 0);
    const bad = routes('r1', 'c1');
    (bad.virtual_hosts[0].routes[0].route as Obj).hedge_policy = { hedge_on_per_try_timeout: true };
    s.push(RDS, [resource(RDS, 'r1', bad)]);
    assert.match((await s.next(ofType(RDS))).error_detail.message, /hedge_policy is not supported/);
    await waitFor(() => configs.length === 1, 1000, 'a config without r1, long before the warming timeout');
    assert.equal(configs[0].routeTables.size, 0);
    s.push(RDS, [resource(RDS, 'r1', routes('r1', 'c1'), '2')]);
    await waitFor(() => configs.length === 2, 1000, 'the fixed route table');
    assert.deepEqual([...configs[1].routeTables.keys()], ['r1']);
  } finally {
    await t.done();
  }
});
