// Active health checks of sidecars whose MeshTLS is strict: a check goes over
// the cluster's transport socket (mTLS), as Envoy's do, so tcp, http and grpc
// checks pass and the checked sidecar neither refuses nor warns; a caller
// without its certificate yet waits instead of probing in plaintext. On the
// inbound side, a connection closed before its first byte (a probe from
// outside the mesh) is counted as "empty" and logged at debug only, while a
// real plaintext request is still refused, counted and warned about (at most
// once a minute).
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as net from 'node:net';
import { X509Certificate } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { createIntermediate, createRoot, issueKeyedLeaf, spiffeId, type KeyedCertificate } from '../../../src/ca/pki';
import type { Logger, LogLevel } from '../../../src/observe/log';
import { admin, docs, exitGuard, freePort, HttpUpstream, Mesh, parsePrometheus, request, serviceYaml, T, waitFor, type Sidecar } from '../../helpers/proxy-harness';

const HOUR = 3600_000;
const GRPC_PORT = 50051;
let root: KeyedCertificate;
let mid: KeyedCertificate;
let mesh: Mesh;
let payApp: HttpUpstream;
let ledgerApp: HttpUpstream;
let plainApp: HttpUpstream;
let ratesApp: grpc.Server;
let shop: Sidecar;
const sidecars: Record<string, Sidecar> = {};
const ports: Record<string, number> = {};
/** Every log line of every sidecar, with the sidecar's service. */
const lines: { service: string; level: LogLevel; msg: string; fields: Record<string, unknown> }[] = [];

const capture =
  (service: string): Logger =>
  (level, msg, fields = {}) =>
    void lines.push({ service, level, msg, fields });
const loud = () => lines.filter((l) => l.level === 'warn' || l.level === 'error');

async function giveIdentity(sc: Sidecar, service: string): Promise<void> {
  const uri = spiffeId('cluster.local', 'default', service);
  const l = await issueKeyedLeaf(mid, { uri, ttlMs: HOUR });
  const cert = new X509Certificate(l.certPem);
  sc.proxy.secrets.setCertificate('default', {
    certificateChainPem: l.certPem + mid.certPem,
    privateKeyPem: l.keyPem,
    spiffeId: uri,
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
  });
  sc.proxy.secrets.setTrustBundle('ROOTCA', { trustedCaPem: root.certPem });
}

/** grpc.health.v1.Health answering SERVING (field 1 = 1, encoded by hand). */
async function startHealthServer(): Promise<grpc.Server> {
  const server = new grpc.Server();
  const id = (b: Buffer) => b;
  server.addService(
    {
      Check: {
        path: '/grpc.health.v1.Health/Check',
        requestStream: false,
        responseStream: false,
        requestSerialize: id,
        requestDeserialize: id,
        responseSerialize: (status: number) => Buffer.from([0x08, status]),
        responseDeserialize: id,
      },
    },
    { Check: (_call: unknown, cb: (err: null, status: number) => void) => cb(null, 1) },
  );
  ports.ratesApp = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))));
  return server;
}

const strict = (name: string) => `apiVersion: weft.dev/v1
kind: MeshTLS
metadata: { name: ${name}-strict }
spec: { targetRef: { kind: Service, name: ${name} }, mode: strict }
`;
const checked = (name: string, check: string) => `apiVersion: weft.dev/v1
kind: TrafficPolicy
metadata: { name: ${name} }
spec:
  targetRef: { name: ${name} }
  healthCheck: { ${check}, interval: 1s, timeout: 1s, unhealthyThreshold: 2, healthyThreshold: 1 }
`;

before(async () => {
  root = await createRoot({ commonName: 'weft test root', ttlMs: 24 * HOUR, organization: 'cluster.local' });
  mid = await createIntermediate(root, { commonName: 'weft test intermediate', ttlMs: 24 * HOUR });
  payApp = await HttpUpstream.start('pay-app');
  ledgerApp = await HttpUpstream.start('ledger-app');
  plainApp = await HttpUpstream.start('plain-app');
  ratesApp = await startHealthServer();
  for (const name of ['pay', 'ledger', 'rates']) ports[name] = await freePort();
  mesh = await Mesh.start({
    'services.yaml': docs(
      serviceYaml({ name: 'pay', port: 80, dependsOn: [] }),
      serviceYaml({ name: 'ledger', port: 81, dependsOn: [] }),
      serviceYaml({ name: 'rates', port: GRPC_PORT, protocol: 'grpc', dependsOn: [] }),
      // No sidecar: checked in plaintext.
      serviceYaml({ name: 'plain', port: 82, endpoints: [plainApp.port], dependsOn: [] }),
      serviceYaml({ name: 'shop', dependsOn: ['pay', 'ledger', 'rates', 'plain'] }),
    ),
    'mtls.yaml': docs(strict('pay'), strict('ledger'), strict('rates')),
    'health-checks.yaml': docs(checked('pay', 'type: tcp'), checked('ledger', 'type: http, path: /healthz'), checked('rates', 'type: grpc'), checked('plain', 'type: tcp')),
  });
  for (const name of ['pay', 'ledger', 'rates']) {
    await mesh.cp!.registry.register({ service: name, address: '127.0.0.1', port: ports[name], sidecar: true, ttlSeconds: 3600 });
  }
  const apps: Record<string, number> = { pay: payApp.port, ledger: ledgerApp.port, rates: ports.ratesApp };
  for (const name of ['pay', 'ledger', 'rates']) {
    sidecars[name] = await mesh.sidecar({ nodeId: `${name}-1`, service: name, proxy: { sds: false }, inboundPort: ports[name], appPort: apps[name], log: capture(name) });
    await giveIdentity(sidecars[name], name);
  }
  // The caller gets its identity in the first test.
  shop = await mesh.sidecar({ nodeId: 'shop-1', service: 'shop', proxy: { sds: false }, log: capture('shop') });
  await shop.waitConfig((c) => [...c.clusters.values()].filter((x) => x.healthCheck).length === 4, 5000, 'the four checked clusters');
}, { timeout: 30_000 });

after(async () => {
  exitGuard();
  await mesh.close();
  await Promise.all([payApp.close(), ledgerApp.close(), plainApp.close()]);
  ratesApp.forceShutdown();
}, T);

async function metrics(sc: Sidecar) {
  const samples = parsePrometheus((await admin(sc, '/stats/prometheus')).text);
  return (name: string, labels: Record<string, string> = {}) =>
    samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((n, s) => n + s.value, 0);
}

const clusterOf = (service: string, port: number) => `outbound|${port}||${service}.default`;
const checkedClusters = { pay: clusterOf('pay', 80), ledger: clusterOf('ledger', 81), rates: clusterOf('rates', GRPC_PORT) };

async function healthCheckStates(): Promise<Record<string, unknown>> {
  const view = JSON.parse((await admin(shop, '/clusters?format=json')).text) as { name: string; endpoints: { address: string; healthCheck?: { state: string; lastFailure?: string } }[] }[];
  return Object.fromEntries(
    Object.entries(checkedClusters).map(([service, cluster]) => [service, view.find((c) => c.name === cluster)?.endpoints.find((e) => e.address === `127.0.0.1:${ports[service]}`)?.healthCheck]),
  );
}

test('a caller without its certificate yet does not probe mTLS endpoints in plaintext: their checks wait', T, async () => {
  // Three rounds of the plaintext check: the mTLS ones were due as often.
  await waitFor(async () => (await metrics(shop))('weft_health_checks_total', { cluster: clusterOf('plain', 82) }) >= 3, 10_000, 'three checks of the plaintext cluster');
  const m = await metrics(shop);
  for (const cluster of Object.values(checkedClusters)) assert.equal(m('weft_health_checks_total', { cluster }), 0, `no check of ${cluster} yet`);
  assert.deepEqual(await healthCheckStates(), { pay: { state: 'pending' }, ledger: { state: 'pending' }, rates: { state: 'pending' } });
  for (const service of ['pay', 'ledger', 'rates']) assert.equal((await metrics(sidecars[service]))('weft_downstream_tls_refused_total'), 0, `${service} saw no probe`);
  assert.deepEqual(loud(), []);
});

test('tcp, http and grpc health checks of strict sidecars are mTLS: they pass, and nothing is refused or warned about', { timeout: 20_000 }, async () => {
  await giveIdentity(shop, 'shop');
  // Three rounds of every check, and each checked sidecar has answered them.
  await waitFor(
    async () => {
      const m = await metrics(shop);
      return Object.values(checkedClusters).every((cluster) => m('weft_health_checks_total', { cluster }) >= 3);
    },
    10_000,
    'three health checks of each cluster',
  );
  const m = await metrics(shop);
  assert.deepEqual(await healthCheckStates(), { pay: { state: 'healthy' }, ledger: { state: 'healthy' }, rates: { state: 'healthy' } });
  for (const cluster of Object.values(checkedClusters)) assert.equal(m('weft_health_check_failures_total', { cluster }), 0, `no failed check of ${cluster}`);
  for (const service of ['pay', 'ledger', 'rates']) {
    const seen = await metrics(sidecars[service]);
    assert.equal(seen('weft_downstream_tls_refused_total'), 0, `${service} refused no connection`);
    // A tcp or http check is a connection each; the grpc one keeps its channel.
    assert.ok(seen('weft_downstream_tls_handshakes_total') >= (service === 'rates' ? 1 : 3), `${service} completed the checks' handshakes`);
  }
  assert.ok(ledgerApp.seen.some((r) => r.url === '/healthz' && r.headers['user-agent'] === 'weft-health-check'), 'the http check reached the app through the sidecar');
  // Traffic still flows over the same clusters.
  assert.equal((await request(shop.outboundPort, { host: 'pay', path: '/charge' })).status, 200);
  assert.deepEqual(loud(), []);
});

test('on a strict port, a connection closed before its first byte is "empty" (debug); a plaintext request is still refused and warned about once', T, async () => {
  const pay = sidecars.pay;
  const m0 = await metrics(pay);
  const refusedDelta = async (reason: string) => (await metrics(pay))('weft_downstream_tls_refused_total', { reason }) - m0('weft_downstream_tls_refused_total', { reason });

  // A TCP probe from outside the mesh: connect, close, no byte.
  await new Promise<void>((resolve, reject) => {
    const s = net.connect(ports.pay, '127.0.0.1', () => s.end());
    s.on('error', reject);
    s.once('close', () => resolve());
  });
  await waitFor(async () => (await refusedDelta('empty')) === 1, 3000, 'the probe counted as empty');
  assert.equal(await refusedDelta('plaintext'), 0);
  assert.deepEqual(loud(), []);
  assert.ok(lines.some((l) => l.service === 'pay' && l.level === 'debug' && l.fields.reason === 'empty'), 'logged at debug');

  // Plaintext HTTP, twice: refused and counted each time, warned about once (rate-limited).
  const before = payApp.requests;
  await assert.rejects(request(ports.pay, { host: 'pay', path: '/plain' }));
  await assert.rejects(request(ports.pay, { host: 'pay', path: '/plain-again' }));
  await waitFor(async () => (await refusedDelta('plaintext')) === 2, 3000, 'both plaintext requests counted');
  assert.equal(payApp.requests, before, 'nothing reached the app');
  const warned = loud();
  assert.equal(warned.length, 1, JSON.stringify(warned));
  assert.equal(warned[0].service, 'pay');
  assert.equal(warned[0].msg, 'inbound connection refused');
  assert.equal(warned[0].fields.reason, 'plaintext');
});
