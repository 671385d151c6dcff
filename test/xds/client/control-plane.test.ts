// The client against a real weft control plane on 127.0.0.1: the initial
// config, edits of the config directory, a policy, an outage and a
// restart on the same port.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startControlPlane, type ControlPlane } from '../../../src/control/control-plane';
import { silentLogger } from '../../../src/observe/log';
import type { ProxyConfig } from '../../../src/proxy/config/types';
import { XdsClient } from '../../../src/xds/client/ads-client';
import { tempDir, waitFor } from '../../helpers/tmp';

const SERVICES = `
apiVersion: weft.dev/v1
kind: Service
metadata: { name: web }
spec: { ports: [{ name: http, port: 8080, protocol: http }] }
---
apiVersion: weft.dev/v1
kind: Service
metadata: { name: api }
spec: { ports: [{ name: http, port: 80, protocol: http }], endpoints: [{ address: 127.0.0.1, port: 18081 }] }
---
apiVersion: weft.dev/v1
kind: Service
metadata: { name: pay }
spec: { ports: [{ name: grpc, port: 50051, protocol: grpc }], endpoints: [{ address: 127.0.0.1, port: 18082 }] }
`;

const serviceYaml = (name: string, port: number, endpointPort: number) => `
apiVersion: weft.dev/v1
kind: Service
metadata: { name: ${name} }
spec: { ports: [{ name: http, port: ${port}, protocol: http }], endpoints: [{ address: 127.0.0.1, port: ${endpointPort} }] }
`;

const OUTLIER_POLICY = `
apiVersion: weft.dev/v1
kind: TrafficPolicy
metadata: { name: api }
spec: { targetRef: { name: api }, outlierDetection: { consecutive5xx: 5 } }
`;

const API = 'outbound|80||api.default';

interface Setup {
  configDir: string;
  dataDir: string;
  cp: ControlPlane;
  client: XdsClient;
  configs: ProxyConfig[];
  done(): Promise<void>;
}

async function setup(): Promise<Setup> {
  const dir = tempDir();
  const configDir = path.join(dir, 'config');
  const dataDir = path.join(dir, 'data');
  fs.mkdirSync(configDir);
  fs.writeFileSync(path.join(configDir, 'services.yaml'), SERVICES);
  const cp = await startControlPlane({ configDir, dataDir, xdsPort: 0, apiPort: 0, log: silentLogger, dev: true });
  const client = new XdsClient({
    server: `127.0.0.1:${cp.xdsPort}`,
    node: {
      id: 'web-1',
      metadata: { WEFT_SERVICE: 'web', WEFT_NAMESPACE: 'default', WEFT_ROLE: 'sidecar', WEFT_OUTBOUND_PORT: '15101', WEFT_INBOUND_PORT: '15106', WEFT_APP_PORT: '18080' },
    },
    log: silentLogger,
    backoff: { initialMs: 50, maxMs: 400 },
  });
  const configs: ProxyConfig[] = [];
  client.onConfig((c) => configs.push(c));
  client.start();
  const s: Setup = {
    configDir,
    dataDir,
    cp,
    client,
    configs,
    async done() {
      client.stop();
      await s.cp.close();
    },
  };
  await waitFor(() => configs.length > 0, 5000, 'the first config');
  return s;
}

/** The server's view of the node's stream: type → sync state. */
function serverStates(cp: ControlPlane): Record<string, string> {
  const node = cp.xds.status().find((n) => n.nodeId === 'web-1');
  return Object.fromEntries((node?.types ?? []).map((t) => [t.type, t.state]));
}

const allSynced = (cp: ControlPlane) => JSON.stringify(serverStates(cp)) === JSON.stringify({ CDS: 'SYNCED', EDS: 'SYNCED', LDS: 'SYNCED', RDS: 'SYNCED' });

test('control plane: the initial config carries listeners, routes, clusters and endpoints', async () => {
  const t = await setup();
  try {
    const c = t.client.current()!;
    const outbound = c.listeners.get('outbound')!;
    assert.deepEqual([outbound.address, outbound.port], ['127.0.0.1', 15101], 'ports from node metadata');
    assert.equal(c.listeners.get('inbound')?.port, 15106);
    const vhosts = c.routeTables.get('outbound')!.virtualHosts.map((v) => v.name);
    assert.deepEqual(vhosts, ['api.default:80', 'pay.default:50051', 'web.default:8080']);
    assert.deepEqual([...c.clusters.keys()].sort(), ['inbound|8080||', API, 'outbound|50051||pay.default', 'outbound|8080||web.default'].sort());
    assert.equal(c.clusters.get('outbound|50051||pay.default')?.protocol, 'http2');
    assert.equal(c.endpoints.get(API)?.localities[0].endpoints[0].key, '127.0.0.1:18081');
    assert.equal(c.endpoints.get('inbound|8080||')?.localities[0].endpoints[0].port, 18080, 'the app port');
    assert.deepEqual(c.endpoints.get('outbound|8080||web.default')?.localities, [], 'a service with no endpoints');
    assert.ok(Object.values(c.versions).every((v) => v !== ''));
    await waitFor(() => allSynced(t.cp), 2000, 'the server sees every type ACKed');
    assert.equal(t.client.status().connected, true);
  } finally {
    await t.done();
  }
});

// The store applies an edit within 1 s (its own test); through translation, xDS and
// decoding on a loaded CI machine, the bound is the 2 s users are promised.
test('control plane: an edit of the config directory reaches the client within 2 s; a deletion removes it', async () => {
  const t = await setup();
  try {
    const file = path.join(t.configDir, 'search.yaml');
    const started = Date.now();
    fs.writeFileSync(file, serviceYaml('search', 9200, 19200));
    const has = () => t.client.current()!.clusters.has('outbound|9200||search.default');
    await waitFor(has, 2000, 'the new service');
    const c = t.client.current()!;
    assert.equal(c.endpoints.get('outbound|9200||search.default')?.localities[0].endpoints[0].port, 19200);
    assert.ok(c.routeTables.get('outbound')!.virtualHosts.some((v) => v.name === 'search.default:9200'));
    const elapsed = Date.now() - started;
    assert.ok(elapsed < 2000, `took ${elapsed} ms`);

    fs.rmSync(file);
    // CDS and RDS are separate responses: wait for the removal to reach both.
    const inRoutes = () => t.client.current()!.routeTables.get('outbound')!.virtualHosts.some((v) => v.name === 'search.default:9200');
    await waitFor(() => !has() && !inRoutes(), 2000, 'the service removed');
    const after = t.client.current()!;
    assert.equal(after.endpoints.has('outbound|9200||search.default'), false);
    assert.ok(!after.routeTables.get('outbound')!.virtualHosts.some((v) => v.name === 'search.default:9200'));
  } finally {
    await t.done();
  }
});

test('control plane: a TrafficPolicy with outlierDetection reaches the client as the cluster outlier_detection, ACKed', async () => {
  const t = await setup();
  try {
    fs.writeFileSync(path.join(t.configDir, 'policy.yaml'), OUTLIER_POLICY);
    await waitFor(() => t.client.current()?.clusters.get(API)?.outlierDetection?.consecutive5xx === 5, 2000, 'the policy');
    await waitFor(() => !t.client.status().types.CDS.nacked && allSynced(t.cp), 2000, 'converged');
    fs.rmSync(path.join(t.configDir, 'policy.yaml'));
    await waitFor(() => t.client.current()?.clusters.get(API)?.outlierDetection === undefined && allSynced(t.cp), 2000, 'converged without it');
  } finally {
    await t.done();
  }
});

test('control plane: an outage keeps the config; a restart on the same port reconnects and converges', async () => {
  const t = await setup();
  try {
    await waitFor(() => allSynced(t.cp), 2000, 'synced');
    const before = t.client.current()!;
    const port = t.cp.xdsPort;
    await t.cp.close();
    await waitFor(() => !t.client.status().connected, 2000, 'disconnected');
    // An attempt is counted when its back-off timer fires: wait until one has failed and the next began.
    await waitFor(() => t.client.status().reconnectAttempts >= 2, 3000, 'reconnection attempts');
    assert.equal(t.client.current(), before, 'the last config keeps serving');
    assert.ok(t.client.status().reconnectAttempts >= 1, 'retrying with backoff');

    // Changed while the control plane was away.
    fs.writeFileSync(path.join(t.configDir, 'late.yaml'), serviceYaml('late', 7000, 17000));
    t.cp = await startControlPlane({ configDir: t.configDir, dataDir: t.dataDir, xdsPort: port, apiPort: 0, log: silentLogger, dev: true });
    await waitFor(() => t.client.current()!.clusters.has('outbound|7000||late.default'), 3000, 'the change made during the outage');
    await waitFor(() => allSynced(t.cp) && t.client.status().connected, 2000, 'synced again');
    const after = t.client.current()!;
    assert.equal(after.endpoints.get('outbound|7000||late.default')?.localities[0].endpoints[0].port, 17000);
    // initial_resource_versions: what did not change was not sent again.
    assert.equal(after.clusters.get(API), before.clusters.get(API));
    assert.equal(after.listeners.get('inbound'), before.listeners.get('inbound'));
    assert.equal(t.client.status().reconnectAttempts, 0);
  } finally {
    await t.done();
  }
});
