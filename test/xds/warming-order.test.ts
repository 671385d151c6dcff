// Envoy's warming order on a real control plane's xDS port, with raw ADS
// clients (SotW and delta) that ACK each response as Envoy does: when an
// HTTPRoute moves traffic from one backend to another and the first backend's
// Service is deleted in the same apply, every stream must receive the RDS
// that no longer references the old cluster before the CDS (SotW: a CDS
// without it; delta: removed_resources naming it) that drops it.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startControlPlane } from '../../src/control/control-plane';
import { silentLogger } from '../../src/observe/log';
import { decodeMessage } from '../../src/xds/protos';
import { TYPE_URL } from '../../src/xds/type-urls';
import { tempDir } from '../helpers/tmp';
import { ack, deltaResourcesOf, resourcesOf, TestStream, type Response } from './fixtures';

const service = (name: string, port: number) => `
apiVersion: weft.dev/v1
kind: Service
metadata: { name: ${name} }
spec: { ports: [{ name: http, port: 80, protocol: http }], endpoints: [{ address: 127.0.0.1, port: ${port} }] }
`;

const route = (backend: string) => `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: api-split }
spec:
  parentRefs: [{ kind: Service, name: api, port: 80 }]
  rules: [{ backendRefs: [{ name: ${backend}, port: 80 }] }]
`;

const BEFORE = [service('web', 18080), service('api', 18081), service('api-v1', 18082), service('api-v2', 18083), route('api-v1')].join('---');
const AFTER = [service('web', 18080), service('api', 18081), service('api-v2', 18083), route('api-v2')].join('---');
const OLD = 'outbound|80||api-v1.default';

const NODE = {
  id: 'web-1',
  user_agent_name: 'envoy',
  metadata: {
    fields: {
      WEFT_SERVICE: { stringValue: 'web' },
      WEFT_NAMESPACE: { stringValue: 'default' },
      WEFT_ROLE: { stringValue: 'sidecar' },
    },
  },
};

/** Writes the config file in one step (rename), so both changes are one apply. */
function writeConfig(dir: string, yaml: string): void {
  const tmp = path.join(dir, '.services.yaml.tmp');
  fs.writeFileSync(tmp, yaml);
  fs.renameSync(tmp, path.join(dir, 'services.yaml'));
}

const short: Record<string, string> = {
  [TYPE_URL.Cluster]: 'CDS',
  [TYPE_URL.ClusterLoadAssignment]: 'EDS',
  [TYPE_URL.Listener]: 'LDS',
  [TYPE_URL.RouteConfiguration]: 'RDS',
};

/** Names of the route configs the listeners refer to through RDS (HCM filters). */
function rdsNames(listeners: Record<string, any>[]): string[] {
  const names = new Set<string>();
  for (const l of listeners) {
    for (const chain of [...(l.filter_chains ?? []), ...(l.default_filter_chain ? [l.default_filter_chain] : [])]) {
      for (const f of chain.filters ?? []) {
        if (f.typed_config?.type_url !== TYPE_URL.HttpConnectionManager) continue;
        const hcm = decodeMessage(TYPE_URL.HttpConnectionManager, f.typed_config.value);
        if (hcm.rds?.route_config_name) names.add(hcm.rds.route_config_name);
      }
    }
  }
  return [...names].sort();
}

async function startMesh() {
  const dir = tempDir();
  const configDir = path.join(dir, 'config');
  fs.mkdirSync(configDir);
  writeConfig(configDir, BEFORE);
  // A long grace: the removal must be released by the streams' ACKs, not by the clock (CI runs beside a CPU hog).
  const cp = await startControlPlane({ configDir, dataDir: path.join(dir, 'data'), xdsPort: 0, apiPort: 0, log: silentLogger, dev: true, xdsRemovalGraceMs: 20_000 });
  return { cp, configDir };
}

/** One step of a stream's history after the change: what arrived and whether it still knows/uses the old cluster. */
interface Seen {
  type: string;
  /** CDS: the old cluster is (still) present; RDS: the old cluster is (still) referenced. */
  old: boolean;
}

test('SotW: after a route moves off a cluster and its Service is deleted, RDS without it comes before CDS without it', async () => {
  const { cp, configDir } = await startMesh();
  const s = new TestStream(cp.xdsPort, 'sotw');
  try {
    s.send({ node: NODE, type_url: TYPE_URL.Cluster });
    const cds = await s.next(5000);
    const clusters = resourcesOf(cds);
    assert.ok(clusters.some((c) => c.name === OLD), `${OLD} is served before the change`);
    const edsNames = clusters.filter((c) => c.type === 'EDS' || c.type === 3).map((c) => c.eds_cluster_config?.service_name || c.name);
    s.send(ack(cds));
    s.send({ type_url: TYPE_URL.ClusterLoadAssignment, resource_names: edsNames });
    s.send(ack(await s.next(5000), edsNames));
    s.send({ type_url: TYPE_URL.Listener });
    const lds = await s.next(5000);
    s.send(ack(lds));
    const routeNames = rdsNames(resourcesOf(lds));
    assert.ok(routeNames.length > 0, 'listeners use RDS');
    s.send({ type_url: TYPE_URL.RouteConfiguration, resource_names: routeNames });
    const rds = await s.next(5000);
    assert.ok(JSON.stringify(resourcesOf(rds)).includes(OLD), 'the route sends to api-v1 before the change');
    s.send(ack(rds, routeNames));
    assert.ok(await s.quiet(200), 'in sync before the change');

    writeConfig(configDir, AFTER);
    const seen: Seen[] = [];
    let cdsGone = false;
    let rdsMoved = false;
    while (!cdsGone || !rdsMoved) {
      const r: Response = await s.next(5000);
      const type = short[r.type_url];
      const text = JSON.stringify(resourcesOf(r));
      const old = r.type_url === TYPE_URL.Cluster ? resourcesOf(r).some((c) => c.name === OLD) : text.includes(OLD);
      seen.push({ type, old });
      if (type === 'CDS' && !old) cdsGone = true;
      if (type === 'RDS' && !old) rdsMoved = true;
      const names = r.type_url === TYPE_URL.RouteConfiguration ? routeNames : r.type_url === TYPE_URL.ClusterLoadAssignment ? edsNames : undefined;
      s.send(ack(r, names));
    }
    const firstCdsWithout = seen.findIndex((x) => x.type === 'CDS' && !x.old);
    const firstRdsWithout = seen.findIndex((x) => x.type === 'RDS' && !x.old);
    assert.ok(firstRdsWithout < firstCdsWithout, `RDS moved off ${OLD} before CDS dropped it: ${JSON.stringify(seen)}`);
  } finally {
    s.close();
    await cp.close();
  }
});

test('delta: after a route moves off a cluster and its Service is deleted, RDS without it comes before removed_resources naming it', async () => {
  const { cp, configDir } = await startMesh();
  const s = new TestStream(cp.xdsPort, 'delta');
  const deltaAck = (r: Response) => ({ type_url: r.type_url, response_nonce: r.nonce });
  try {
    s.send({ node: NODE, type_url: TYPE_URL.Cluster });
    const cds = await s.next(5000);
    const clusters = deltaResourcesOf(cds).map((r) => r.resource);
    assert.ok(clusters.some((c) => c.name === OLD));
    const edsNames = clusters.filter((c) => c.type === 'EDS' || c.type === 3).map((c) => c.eds_cluster_config?.service_name || c.name);
    s.send(deltaAck(cds));
    s.send({ type_url: TYPE_URL.ClusterLoadAssignment, resource_names_subscribe: edsNames });
    s.send(deltaAck(await s.next(5000)));
    s.send({ type_url: TYPE_URL.Listener });
    const lds = await s.next(5000);
    s.send(deltaAck(lds));
    const routeNames = rdsNames(deltaResourcesOf(lds).map((r) => r.resource));
    s.send({ type_url: TYPE_URL.RouteConfiguration, resource_names_subscribe: routeNames });
    const rds = await s.next(5000);
    assert.ok(JSON.stringify(deltaResourcesOf(rds)).includes(OLD));
    s.send(deltaAck(rds));
    assert.ok(await s.quiet(200), 'in sync before the change');

    writeConfig(configDir, AFTER);
    const seen: (Seen & { removed: string[] })[] = [];
    let cdsGone = false;
    let rdsMoved = false;
    while (!cdsGone || !rdsMoved) {
      const r: Response = await s.next(5000);
      const type = short[r.type_url];
      const removed: string[] = r.removed_resources;
      const old = type === 'CDS' ? !removed.includes(OLD) : JSON.stringify(deltaResourcesOf(r)).includes(OLD);
      seen.push({ type, old, removed });
      if (type === 'CDS' && removed.includes(OLD)) cdsGone = true;
      if (type === 'RDS' && !old) rdsMoved = true;
      s.send(deltaAck(r));
    }
    const cdsRemoval = seen.findIndex((x) => x.type === 'CDS' && x.removed.includes(OLD));
    const edsRemoval = seen.findIndex((x) => x.type === 'EDS' && x.removed.includes(OLD));
    const firstRdsWithout = seen.findIndex((x) => x.type === 'RDS' && !x.old);
    assert.ok(firstRdsWithout < cdsRemoval, `RDS moved off ${OLD} before CDS removed it: ${JSON.stringify(seen)}`);
    if (edsRemoval >= 0) assert.ok(firstRdsWithout < edsRemoval, `EDS removal after RDS: ${JSON.stringify(seen)}`);
  } finally {
    s.close();
    await cp.close();
  }
});

test('SotW: a stream that has not ACKed its RDS yet gets the new RDS before the CDS removal (the removal waits for it)', async () => {
  const { cp, configDir } = await startMesh();
  const s = new TestStream(cp.xdsPort, 'sotw');
  try {
    s.send({ node: NODE, type_url: TYPE_URL.Cluster });
    const cds = await s.next(5000);
    s.send(ack(cds));
    s.send({ type_url: TYPE_URL.Listener });
    const lds = await s.next(5000);
    s.send(ack(lds));
    const routeNames = rdsNames(resourcesOf(lds));
    s.send({ type_url: TYPE_URL.RouteConfiguration, resource_names: routeNames });
    const rds = await s.next(5000); // not ACKed yet, as an Envoy busy warming would
    assert.ok(await s.quiet(200), 'in sync before the change');

    writeConfig(configDir, AFTER);
    const rdsStatus = () => cp.xds.status().find((n) => n.nodeId === 'web-1')?.types.find((t) => t.type === 'RDS');
    await waitUntil(() => rdsStatus()?.snapshotVersion !== rds.version_info, 5000);
    s.send(ack(rds, routeNames));
    const first = await s.next(5000);
    assert.equal(short[first.type_url], 'RDS', 'the new routes first');
    assert.ok(!JSON.stringify(resourcesOf(first)).includes(OLD));
    s.send(ack(first, routeNames));
    const second = await s.next(5000);
    assert.equal(short[second.type_url], 'CDS', 'then the removal');
    assert.ok(!resourcesOf(second).some((c) => c.name === OLD));
  } finally {
    s.close();
    await cp.close();
  }
});

async function waitUntil(check: () => boolean, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}
