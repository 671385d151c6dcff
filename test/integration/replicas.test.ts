// Control-plane replicas on a real 3-member etcd cluster (loopback): config
// written through one replica reaches sidecars of another; tokens,
// registrations, the CA and rate-limit counters are one mesh-wide state;
// losing an etcd member changes nothing, losing the majority freezes writes
// with a clear error while sidecars keep serving, and everything resumes.
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startControlPlane, type ControlPlane, type ControlPlaneOptions } from '../../src/control/control-plane';
import { silentLogger } from '../../src/observe/log';
import { startProxy, type Proxy } from '../../src/proxy/proxy';
import { uncaughtErrors } from '../../src/proxy/last-resort';
import { createRoot } from '../../src/ca/pki';
import { Registry } from '../../src/registry/registry';
import { connectEtcd } from '../../src/store/etcd/etcd-connection';
import { EtcdDocumentSet } from '../../src/store/etcd/etcd-document-set';
import { EtcdStore } from '../../src/store/etcd/etcd-store';
import type { Registration } from '../../src/registry/registry';
import { EtcdCluster, etcdctl, etcdMissing } from '../helpers/etcd-cluster';
import { exitGuard, freePort, HttpUpstream, request, serviceYaml, T } from '../helpers/proxy-harness';
import { tempDir, waitFor } from '../helpers/tmp';

const missing = etcdMissing();
const LONG = { timeout: 60_000 };

let etcd: EtcdCluster;
const planes: ControlPlane[] = [];
const proxies: Proxy[] = [];
let app: HttpUpstream;

async function replica(name: string, extra: Partial<ControlPlaneOptions> = {}): Promise<ControlPlane> {
  const cp = await startControlPlane({ etcd: { url: etcd.url }, dataDir: tempDir(undefined, `weft-replica-${name}-`), xdsPort: 0, apiPort: 0, dev: true, log: silentLogger, replicaId: name, ...extra });
  planes.push(cp);
  return cp;
}

async function api(cp: ControlPlane, method: string, route: string, body?: string): Promise<{ status: number; json: any }> {
  const res = await fetch(`http://127.0.0.1:${cp.apiPort}${route}`, { method, body, headers: body ? { 'content-type': 'application/yaml' } : {} });
  return { status: res.status, json: await res.json().catch(() => undefined) };
}

before(async () => {
  if (missing) return;
  etcd = await EtcdCluster.start(3);
  app = await HttpUpstream.start('app');
}, LONG);

after(async () => {
  exitGuard();
  for (const p of proxies.splice(0)) await p.close().catch(() => {});
  for (const cp of planes.splice(0)) await cp.close().catch(() => {});
  await app?.close();
  await etcd?.stop();
  assert.equal(uncaughtErrors(), 0);
}, LONG);

test('config applied through replica B reaches a sidecar connected to replica A within 1 s', { ...LONG, skip: missing }, async () => {
  const a = await replica('a');
  const b = await replica('b');
  assert.equal(a.ca.bundlePem(), b.ca.bundlePem(), 'one CA for the mesh');
  const outbound = await freePort();
  const proxy = await startProxy({ xds: `127.0.0.1:${a.xdsPort}`, nodeId: 'client-1', service: 'client', namespace: 'default', outboundPort: outbound, adminPort: 0, log: silentLogger, sds: false });
  proxies.push(proxy);
  const yaml = serviceYaml({ name: 'web', port: 80, endpoints: [app.port] });
  const started = Date.now();
  assert.equal((await api(b, 'POST', '/api/v1/resources', yaml)).status, 200);
  await waitFor(async () => (await request(outbound, { host: 'web' }).catch(() => ({ status: 0 }))).status === 200, 1000, 'the route to web on the sidecar of replica A');
  const took = Date.now() - started;
  assert.ok(took < 1000, `took ${took} ms`);
  // Both replicas serve the same snapshot version: a sidecar that moves receives nothing it has.
  assert.equal(a.cache.errors().length, 0);
});

test('tokens, registrations and certificate records are one state across replicas', { ...LONG, skip: missing }, async () => {
  const [a, b] = planes;
  const created = await api(a, 'POST', '/api/v1/tokens', JSON.stringify({ service: 'web' }));
  assert.equal(created.status, 200);
  await waitFor(() => b.tokens.list().some((t) => t.id === created.json.id), 1000, 'the token on replica B');
  assert.deepEqual(b.tokens.verify(created.json.token), { namespace: 'default', service: 'web' });
  assert.equal((await api(b, 'DELETE', `/api/v1/tokens/${created.json.id}`)).status, 200);
  await waitFor(() => !a.tokens.list().some((t) => t.id === created.json.id), 1000, 'the revocation on replica A');
  assert.throws(() => a.tokens.verify(created.json.token), /unknown or revoked/);

  const reg = await api(b, 'POST', '/api/v1/registrations', JSON.stringify({ service: 'web', address: '127.0.0.1', port: app.port, ttlSeconds: 30 }));
  assert.equal(reg.status, 201);
  await waitFor(() => a.registry.list().some((r) => r.id === reg.json.id), 1000, 'the registration on replica A');
  // A renewal through the other replica keeps the same lease.
  assert.equal((await api(a, 'PUT', `/api/v1/registrations/${reg.json.id}`, '{}')).status, 200);
  assert.equal((await api(a, 'DELETE', `/api/v1/registrations/${reg.json.id}`)).status, 200);
  await waitFor(() => b.registry.list().length === 0, 1000, 'the deregistration on replica B');
});

test('a registration expires with its instance, not with the replica, even on a replica whose clock is skewed', { ...LONG, skip: missing }, async () => {
  const conn = await connectEtcd({ url: etcd.url });
  const store = await EtcdStore.open({ conn });
  const docs = await EtcdDocumentSet.open<Registration>(conn, 'registrations/', 'registrations');
  // An hour ahead: leases are etcd's (TTLs counted by the etcd leader), so the skew changes nothing.
  const skewed = new Registry({ store, documents: docs, now: () => Date.now() + 3_600_000 });
  try {
    const reg = await skewed.register({ service: 'web', address: '127.0.0.9', port: 1, ttlSeconds: 2 });
    const [a] = planes;
    await waitFor(() => a.registry.list().some((r) => r.id === reg.id), 1000, 'the registration on replica A');
    await skewed.renew(reg.id);
    // Each replica hears the expiry on its own watch: wait for both.
    await waitFor(() => !a.registry.list().some((r) => r.id === reg.id) && !skewed.list().some((r) => r.id === reg.id), 6000, 'the lease to expire on every replica');
  } finally {
    await skewed.close();
    await store.close();
    conn.close();
  }
});

test('a value written into etcd behind weft\'s back that does not validate is held back; the last good version serves', { ...LONG, skip: missing }, async () => {
  const [a, b] = planes;
  const key = '/weft/resources/Service/default/web';
  const good = etcdctl(etcd.endpoint(0), ['get', key, '--print-value-only']).trim();
  etcdctl(etcd.endpoint(0), ['put', key], JSON.stringify({ resource: { apiVersion: 'weft.dev/v1', kind: 'Service', metadata: { name: 'web' }, spec: { ports: [{ name: 'http', port: 'eighty' }] } }, source: { type: 'api' } }));
  for (const cp of [a, b]) {
    await waitFor(() => cp.store.configErrors().some((e) => e.file === `etcd:${key}`), 2000, 'the error on every replica');
    const e = cp.store.configErrors().find((x) => x.file === `etcd:${key}`)!;
    assert.match(e.message, /spec\.ports\[0\]\.port/);
    assert.equal(cp.store.get('Service', 'default', 'web')?.resource.spec.ports[0].port, 80, 'the last good version keeps serving');
  }
  etcdctl(etcd.endpoint(0), ['put', key], good);
  await waitFor(() => planes.every((cp) => cp.store.configErrors().length === 0), 2000, 'the error to clear');
});

test('a replica started with another root than the store holds is refused, naming why', { ...LONG, skip: missing }, async () => {
  const dir = tempDir(undefined, 'weft-other-root-');
  const root = await createRoot({ commonName: 'another root', organization: 'cluster.local', ttlMs: 86_400_000 });
  fs.writeFileSync(path.join(dir, 'root.pem'), root.certPem);
  fs.writeFileSync(path.join(dir, 'root.key'), root.keyPem);
  await assert.rejects(replica('c', { rootCertFile: path.join(dir, 'root.pem'), rootKeyFile: path.join(dir, 'root.key') }), /the store already holds a CA whose root differs/);
});

test('the global rate limit is one limit whatever replica counts it', { ...LONG, skip: missing }, async () => {
  const [a, b] = planes;
  const policy = `apiVersion: weft.dev/v1
kind: TrafficPolicy
metadata: { name: web-limit }
spec:
  targetRef: { name: web }
  rateLimit: { global: { requests: 10, per: 1m } }
`;
  assert.equal((await api(a, 'POST', '/api/v1/resources', policy)).status, 200);
  await waitFor(() => b.store.get('TrafficPolicy', 'default', 'web-limit') !== undefined, 1000, 'the policy on B');
  const ask = (cp: ControlPlane) => cp.rateLimiter.shouldRateLimitShared({ domain: 'weft', descriptors: [{ entries: [{ key: 'weft.service', value: 'web.default' }, { key: 'caller', value: 'x' }] }] }, (cp.rateLimiter as any).shared);
  const answers = await Promise.all(Array.from({ length: 16 }, (_, i) => ask(i % 2 ? a : b)));
  const over = answers.filter((r) => r.overall_code === 'OVER_LIMIT').length;
  assert.equal(over, 6, '16 hits on two replicas against one limit of 10');
});

test('one etcd member down changes nothing; a majority down freezes writes with a clear error while sidecars serve; all resumes', { ...LONG, skip: missing }, async () => {
  const [a, b] = planes;
  const outbound = (proxies[0].opts.outboundPort)!;
  await etcd.stopMember(0);
  const yaml2 = serviceYaml({ name: 'web2', port: 80, endpoints: [app.port] });
  assert.equal((await api(a, 'POST', '/api/v1/resources', yaml2)).status, 200, 'writes work with one member down');
  const tok = await api(b, 'POST', '/api/v1/tokens', JSON.stringify({ service: 'web' }));
  assert.equal(tok.status, 200);

  await etcd.stopMember(1);
  const refused = await api(a, 'POST', '/api/v1/resources', serviceYaml({ name: 'web3', port: 80, endpoints: [app.port] }));
  assert.equal(refused.status, 503, JSON.stringify(refused.json));
  assert.match(refused.json.error, /store is unreachable \(etcd at .*\).*last good config/);
  // The data plane does not depend on etcd: the sidecar keeps serving its last config.
  for (let i = 0; i < 20; i++) assert.equal((await request(outbound, { host: 'web' })).status, 200);
  assert.ok(a.store.get('Service', 'default', 'web2'), 'reads are served from the replica\'s copy');

  etcd.startMember(0);
  etcd.startMember(1);
  await etcd.waitHealthy(0);
  await etcd.waitHealthy(1);
  await waitFor(async () => (await api(b, 'POST', '/api/v1/resources', serviceYaml({ name: 'web3', port: 80, endpoints: [app.port] }))).status === 200, 15_000, 'writes to resume');
  await waitFor(() => a.store.get('Service', 'default', 'web3') !== undefined, 5000, 'replica A to catch up');
  await waitFor(async () => (await request(outbound, { host: 'web3' }).catch(() => ({ status: 0 }))).status === 200, 5000, 'the sidecar to get the change');
});

test('two replicas given a config directory each: one elected writer, the other takes over when it goes', { ...LONG, skip: missing }, async () => {
  const dirs = ['x', 'y'].map((n) => {
    const dir = tempDir(undefined, `weft-gitops-${n}-`);
    fs.writeFileSync(path.join(dir, 'svc.yaml'), serviceYaml({ name: 'gitops', port: 80, endpoints: [app.port] }));
    return dir;
  });
  const x = await replica('x', { configDir: dirs[0] });
  const y = await replica('y', { configDir: dirs[1] });
  const [a] = planes;
  await waitFor(() => a.store.get('Service', 'default', 'gitops')?.source.type === 'file', 5000, 'the directory synced into the store');
  const leaders = () => [x, y].filter((cp) => cp.configSync?.leading);
  await waitFor(() => leaders().length === 1, 5000, 'one elected writer');
  const [leader] = leaders();
  const leaderDir = dirs[leader === x ? 0 : 1];
  const otherDir = dirs[leader === x ? 1 : 0];
  // The API refuses to overwrite what the directory owns, on any replica.
  const overwrite = await api(a, 'POST', '/api/v1/resources', serviceYaml({ name: 'gitops', port: 81, endpoints: [app.port] }));
  assert.equal(overwrite.status, 400);
  assert.match(JSON.stringify(overwrite.json), /is defined in .*svc\.yaml/);
  fs.writeFileSync(path.join(leaderDir, 'svc.yaml'), serviceYaml({ name: 'gitops', port: 82, endpoints: [app.port] }));
  await waitFor(() => a.store.get('Service', 'default', 'gitops')?.resource.spec.ports[0].port === 82, 5000, 'the edit on every replica');
  // The stand-by's copy catches up (a git pull), then the writer goes away.
  fs.writeFileSync(path.join(otherDir, 'svc.yaml'), serviceYaml({ name: 'gitops', port: 83, endpoints: [app.port] }));
  await leader.close();
  planes.splice(planes.indexOf(leader), 1);
  const standby = leader === x ? y : x;
  await waitFor(() => standby.configSync?.leading === true, 10_000, 'the stand-by elected');
  await waitFor(() => a.store.get('Service', 'default', 'gitops')?.resource.spec.ports[0].port === 83, 5000, "the new writer's directory in the store");
});

test('etcd unreachable at start: a clear error naming the endpoints', { ...T, skip: missing }, async () => {
  const dead = `etcd://127.0.0.1:${await freePort()}`;
  await assert.rejects(
    startControlPlane({ etcd: { url: dead, callTimeoutMs: 1000 }, dataDir: tempDir(), xdsPort: 0, apiPort: 0, dev: true, log: silentLogger }),
    (err: Error) => err.message.startsWith(`cannot reach etcd at ${dead.slice('etcd://'.length)}`),
  );
});
