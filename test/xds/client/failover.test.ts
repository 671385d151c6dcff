// The ADS client against two scripted replicas on loopback: a stream that
// ends moves to the other replica at once (the backoff here is far longer
// than the test waits) and announces what the client holds; a replica that
// refuses connections, or accepts TCP and never speaks HTTP/2, is skipped.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as net from 'node:net';
import type { ProxyConfig } from '../../../src/proxy/config/types';
import { XdsClient } from '../../../src/xds/client/ads-client';
import { ControlPlaneAddresses } from '../../../src/xds/client/control-plane-addresses';
import { anyOf } from '../../../src/xds/protos';
import { TYPE_URL } from '../../../src/xds/type-urls';
import { waitFor } from '../../helpers/tmp';
import { FakeAdsServer, resource } from './fake-ads-server';
import { freePort } from '../../helpers/ports';

const { Cluster: CDS, ClusterLoadAssignment: EDS, Listener: LDS, RouteConfiguration: RDS } = TYPE_URL;
const ADS = { ads: {}, resource_api_version: 'V3' };
const router = { name: 'envoy.filters.http.router', typed_config: anyOf(TYPE_URL.Router, {}) };
/** Far longer than any wait below: a test passes only if failing over does not wait for it. */
const SLOW_BACKOFF = { initialMs: 30_000, maxMs: 60_000 };

const cluster = { name: 'c1', type: 'EDS', eds_cluster_config: { eds_config: ADS } };
const cla = { cluster_name: 'c1', endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: 9001 } } } }] }] };
const listener = {
  name: 'l1',
  address: { socket_address: { address: '127.0.0.1', port_value: 15001 } },
  filter_chains: [
    {
      filters: [
        {
          name: 'envoy.filters.network.http_connection_manager',
          typed_config: anyOf(TYPE_URL.HttpConnectionManager, { stat_prefix: 'l1', rds: { config_source: ADS, route_config_name: 'r1' }, http_filters: [router] }),
        },
      ],
    },
  ],
};
const routes = { name: 'r1', virtual_hosts: [{ name: 'vh', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'c1' } }] }] };

function client(servers: string[], extra: { connectTimeoutMs?: number } = {}): { client: XdsClient; configs: ProxyConfig[] } {
  const c = new XdsClient({
    // The order given, so the test knows which replica comes first.
    server: new ControlPlaneAddresses(servers, { start: 'first' }),
    node: { id: 'node-1', metadata: { WEFT_SERVICE: 'web', WEFT_ROLE: 'sidecar' } },
    log: () => {},
    backoff: SLOW_BACKOFF,
    ...extra,
  });
  const configs: ProxyConfig[] = [];
  c.onConfig((cfg) => configs.push(cfg));
  c.start();
  return { client: c, configs };
}

/** Serves c1 and l1 → r1 on the server's latest stream and waits for the first config. */
async function establish(s: FakeAdsServer, configs: ProxyConfig[]): Promise<void> {
  const acked = (nonce: string) => s.next((m) => m.response_nonce === nonce);
  await s.next((m) => m.type_url === CDS);
  await s.next((m) => m.type_url === LDS);
  await acked(s.push(CDS, [resource(CDS, 'c1', cluster)]));
  await acked(s.push(LDS, [resource(LDS, 'l1', listener)]));
  await s.next((m) => m.type_url === EDS && m.resource_names_subscribe.length > 0);
  await s.next((m) => m.type_url === RDS && m.resource_names_subscribe.length > 0);
  await acked(s.push(EDS, [resource(EDS, 'c1', cla)]));
  await acked(s.push(RDS, [resource(RDS, 'r1', routes)]));
  await waitFor(() => configs.length === 1, 2000, 'the first config');
}

const addr = (port: number) => `127.0.0.1:${port}`;

test('failover: the stream to A ends; the client is on B at once, announcing what it holds, and keeps its config', async () => {
  const a = await FakeAdsServer.start();
  const b = await FakeAdsServer.start();
  const { client: c, configs } = client([addr(a.port), addr(b.port)]);
  try {
    await establish(a, configs);
    await waitFor(() => c.status().connected, 2000, 'connected to A');
    assert.equal(c.status().server, addr(a.port));
    assert.deepEqual(c.status().servers, [addr(a.port), addr(b.port)]);
    const config = c.current();

    await a.close();
    const cds = await b.next((m) => m.type_url === CDS);
    assert.equal(cds.node.id, 'node-1', 'the new stream names the node');
    assert.deepEqual(cds.initial_resource_versions, { c1: '1' }, 'B learns what is held, so it sends only what changed');
    assert.deepEqual((await b.next((m) => m.type_url === LDS)).initial_resource_versions, { l1: '1' });
    const eds = await b.next((m) => m.type_url === EDS);
    assert.deepEqual([eds.resource_names_subscribe, eds.initial_resource_versions], [['c1'], { c1: '1' }]);
    const rds = await b.next((m) => m.type_url === RDS);
    assert.deepEqual([rds.resource_names_subscribe, rds.initial_resource_versions], [['r1'], { r1: '1' }]);
    await waitFor(() => c.status().connected && c.status().server === addr(b.port), 2000, 'connected to B');
    assert.equal(c.current(), config, 'the config kept serving');

    // B's answer is applied like any other.
    const nonce = b.push(EDS, [resource(EDS, 'c1', { ...cla, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: 9002 } } } }] }] }, '2')]);
    await b.next((m) => m.response_nonce === nonce && !m.error_detail);
    await waitFor(() => configs.length === 2, 2000, 'the config from B');
  } finally {
    c.stop();
    await Promise.all([a.close(), b.close()]);
  }
});

test('failover: a replica that refuses connections is skipped without waiting for the backoff', async () => {
  // A port nobody listens on.
  const dead = await freePort();
  const b = await FakeAdsServer.start();
  const { client: c, configs } = client([addr(dead), addr(b.port)]);
  try {
    await establish(b, configs);
    await waitFor(() => c.status().connected, 2000, 'connected to B');
    assert.equal(c.status().server, addr(b.port));
  } finally {
    c.stop();
    await b.close();
  }
});

test('failover: a replica that accepts TCP and never answers is left after connectTimeoutMs', async () => {
  const sockets = new Set<net.Socket>();
  const silent = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
  });
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const silentPort = (silent.address() as net.AddressInfo).port;
  const b = await FakeAdsServer.start();
  const { client: c, configs } = client([addr(silentPort), addr(b.port)], { connectTimeoutMs: 300 });
  try {
    await waitFor(() => sockets.size > 0, 2000, 'a TCP connection to the silent replica');
    assert.equal(c.status().server, addr(silentPort));
    assert.equal(c.status().connected, false);
    await establish(b, configs);
    await waitFor(() => c.status().connected, 2000, 'connected to B');
    assert.equal(c.status().server, addr(b.port));
  } finally {
    c.stop();
    for (const s of sockets) s.destroy();
    await new Promise((r) => silent.close(r));
    await b.close();
  }
});

test('failover: options take a comma-separated list; a bad entry is named', () => {
  const node = { id: 'n', metadata: {} };
  const c = new XdsClient({ server: '127.0.0.1:1, 127.0.0.1:2', node });
  assert.deepEqual(c.status().servers, ['127.0.0.1:1', '127.0.0.1:2']);
  c.stop();
  assert.throws(() => new XdsClient({ server: '127.0.0.1:1,nohost', node }), /"nohost" is not host:port/);
});
