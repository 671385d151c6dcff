// Root rotation without an outage. Retiring a root that live workload
// certificates still chain to would make every new mTLS connection to or from
// their sidecars fail (503 UF, "unable to get local issuer certificate"), so
// `retire-roots` is refused, naming the nodes, until they renewed (or with
// --force); a rotation makes every sidecar renew under the new root within
// seconds, not at its certificate's half life; `weft certs` shows the root
// each certificate chains to. Real sidecars over the control plane's xDS/SDS
// ports, real mTLS between them, one new upstream connection per request.
import { strict as assert } from 'node:assert';
import { X509Certificate } from 'node:crypto';
import { after, before, test } from 'node:test';
import { isSignedBy, shortFingerprint, splitPemCertificates } from '../../src/ca/cert-info';
import { CaError } from '../../src/ca/ca-error';
import { runCerts, runRetireRoots, runRotateRoot } from '../../src/cli/commands/certs';
import { docs, exitGuard, freePort, HttpUpstream, Mesh, request, serviceYaml, waitFor, type Sidecar } from '../helpers/proxy-harness';

const T = { timeout: 60_000 };

let mesh: Mesh;
let ordersApp: HttpUpstream;
let orders: Sidecar;
let shop: Sidecar;
let api: string;

/** Requests from shop to orders, one after another, each on a new mTLS connection, until stopped. */
class Load {
  ok = 0;
  readonly failures: string[] = [];
  private running = true;
  private readonly done: Promise<void>;

  constructor() {
    this.done = this.loop();
  }

  private async loop(): Promise<void> {
    while (this.running) {
      try {
        const r = await request(shop.outboundPort, { host: 'orders', path: `/orders/${this.ok}` });
        if (r.status === 200) this.ok++;
        else this.failures.push(`${r.status} ${r.headers['x-weft-response-flags'] ?? ''} ${r.text.slice(0, 100)}`);
      } catch (err) {
        this.failures.push(String(err));
      }
    }
  }

  /** Waits for `n` more successful requests. */
  async more(n: number, what: string): Promise<void> {
    const target = this.ok + n;
    await waitFor(() => this.ok >= target || this.failures.length > 0, 10_000, `${n} requests ${what}`);
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.done;
  }
}

before(async () => {
  ordersApp = await HttpUpstream.start('orders-app');
  const ordersPort = await freePort();
  mesh = await Mesh.start({
    'services.yaml': docs(
      serviceYaml({ name: 'orders', port: 80, dependsOn: [] }),
      serviceYaml({ name: 'shop', dependsOn: ['orders'] }),
      serviceYaml({ name: 'reports', dependsOn: ['orders'] }),
    ),
    'security.yaml': `apiVersion: weft.dev/v1
kind: MeshTLS
metadata: { name: orders-strict }
spec: { targetRef: { kind: Service, name: orders }, mode: strict }
---
apiVersion: weft.dev/v1
kind: TrafficPolicy
metadata: { name: orders }
# One request per upstream connection: every request is a new mTLS handshake with the certificates and roots of the moment.
spec: { targetRef: { name: orders }, connectionPool: { maxRequestsPerConnection: 1 } }
`,
  });
  api = `http://127.0.0.1:${mesh.cp!.apiPort}`;
  await mesh.cp!.registry.register({ service: 'orders', address: '127.0.0.1', port: ordersPort, sidecar: true, ttlSeconds: 3600 });
  orders = await mesh.sidecar({ nodeId: 'orders-1', service: 'orders', inboundPort: ordersPort, appPort: ordersApp.port });
  shop = await mesh.sidecar({ nodeId: 'shop-1', service: 'shop' });
  for (const sc of [orders, shop]) {
    await sc.proxy.certificateAgent!.waitForCertificate(5000);
    await waitFor(() => sc.proxy.secrets.trustBundle('ROOTCA') !== undefined, 5000, 'the trust bundle');
  }
  await shop.waitConfig((c) => (c.endpoints.get('outbound|80||orders.default')?.localities.length ?? 0) > 0, 5000);
}, T);

after(async () => {
  exitGuard();
  await mesh.close();
  await ordersApp.close();
}, T);

const activeRoot = () => splitPemCertificates(mesh.cp!.ca.bundlePem())[0];
/** Whether the sidecar's certificate chains to `rootPem` (its intermediate is signed by it). */
const chainsTo = (sc: Sidecar, rootPem: string) => isSignedBy(splitPemCertificates(sc.proxy.secrets.certificate('default')!.certificateChainPem)[1], rootPem);
const fingerprint = (pem: string) => new X509Certificate(pem).fingerprint256;
const rootId = (pem: string) => shortFingerprint(fingerprint(pem));

async function certsText(): Promise<string> {
  let text = '';
  await runCerts({ api, out: { write: (s: string) => (text += s) } });
  return text;
}

/** The ROOT column of `weft certs` for a node. */
function rootColumn(text: string, nodeId: string): string {
  const lines = text.split('\n');
  const header = lines.find((l) => l.startsWith('NODE'))!;
  const at = header.indexOf('ROOT');
  assert.ok(at > 0, `weft certs has a ROOT column:\n${text}`);
  const row = lines.find((l) => l.startsWith(`${nodeId} `));
  assert.ok(row, `weft certs lists ${nodeId}:\n${text}`);
  return row.slice(at).split(/\s+/)[0];
}

test('retire-roots right after rotate-root is refused, naming the nodes; the sidecars re-issue under the new root within seconds; then retire succeeds; no new connection fails', T, async (t) => {
  const load = new Load();
  try {
    await load.more(10, 'before the rotation');
    const oldRoot = activeRoot();
    let text = await certsText();
    assert.equal(rootColumn(text, 'orders-1'), rootId(oldRoot));
    assert.equal(rootColumn(text, 'shop-1'), rootId(oldRoot));

    // The trap: retire the old root at once, while every certificate still chains to it.
    await mesh.cp!.ca.rotateRoot();
    const rotatedAt = Date.now();
    const newRoot = activeRoot();
    await assert.rejects(mesh.cp!.ca.retireRoots(), (err: CaError) => {
      assert.equal(err.code, 'CA_ROOT_IN_USE');
      assert.match(err.message, /orders-1/);
      assert.match(err.message, /shop-1/);
      assert.match(err.message, /--force/);
      return true;
    });
    assert.equal(splitPemCertificates(mesh.cp!.ca.bundlePem()).length, 2, 'the refused retirement left both roots trusted');

    // The rotation makes both sidecars renew now, not at half life of a 24 h certificate.
    await waitFor(() => chainsTo(orders, newRoot) && chainsTo(shop, newRoot), 15_000, 'both sidecars on certificates under the new root');
    const reissuedMs = Date.now() - rotatedAt;
    t.diagnostic(`every sidecar re-issued under the new root ${reissuedMs} ms after the rotation`);
    assert.ok(reissuedMs < 10_000, `re-issued after ${reissuedMs} ms`);
    await waitFor(() => mesh.cp!.ca.latestIssuances().every((r) => r.rootFingerprint256 === fingerprint(newRoot)), 5000, 'the CA records the new root for each node');
    text = await certsText();
    assert.equal(rootColumn(text, 'orders-1'), rootId(newRoot), text);
    assert.equal(rootColumn(text, 'shop-1'), rootId(newRoot), text);
    assert.match(text, new RegExp(`\\* .*root ${rootId(newRoot)}.*active`), text);
    assert.match(text, new RegExp(`  .*root ${rootId(oldRoot)}.*previous`), text);

    // Now the CLI retires without --force, and the sidecars drop the old root.
    let out = '';
    await runRetireRoots({ api, out: { write: (s: string) => (out += s) } });
    assert.match(out, /the trust bundle holds 1 root/);
    for (const sc of [orders, shop]) {
      await waitFor(() => splitPemCertificates(sc.proxy.secrets.trustBundle('ROOTCA')!.trustedCaPem).length === 1, 5000, 'the old root retired on the sidecar');
    }
    await load.more(20, 'after the retirement');
  } finally {
    await load.stop();
  }
  assert.deepEqual(load.failures, [], `${load.failures.length} of ${load.ok + load.failures.length} requests failed`);
  t.diagnostic(`${load.ok} requests, each on a new mTLS connection, none failed`);
});

test('a node not connected that holds a certificate under the old root: the API answers 409 and the CLI names it; --force retires anyway', T, async (t) => {
  const reports = await mesh.sidecar({ nodeId: 'reports-1', service: 'reports' });
  await reports.proxy.certificateAgent!.waitForCertificate(5000);
  const reportsRoot = activeRoot();
  // It stops (its certificate lives on for 24 h, and so does its record).
  mesh.sidecars.splice(mesh.sidecars.indexOf(reports), 1);
  await reports.close();
  await waitFor(() => !mesh.cp!.xds.status().some((n) => n.nodeId === 'reports-1'), 5000, 'reports-1 disconnected');

  const load = new Load();
  try {
    let out = '';
    await runRotateRoot({ api, out: { write: (s: string) => (out += s) } });
    assert.match(out, /the trust bundle holds 2 roots/);
    const newRoot = activeRoot();
    await waitFor(() => chainsTo(orders, newRoot) && chainsTo(shop, newRoot), 15_000, 'the connected sidecars on the new root');

    // The API refuses with 409 and the node list.
    const res = await fetch(`${api}/api/v1/ca/retire-roots`, { method: 'POST' });
    assert.equal(res.status, 409);
    const body = (await res.json()) as { code: string; error: string; nodes: { nodeId: string; root: string }[] };
    assert.equal(body.code, 'CA_ROOT_IN_USE');
    assert.deepEqual(body.nodes.map((n) => n.nodeId), ['reports-1']);
    assert.equal(body.nodes[0].root, rootId(reportsRoot));

    // The CLI says which node, that it is not connected, and what to do.
    await assert.rejects(runRetireRoots({ api, out: { write: () => {} } }), (err: Error) => {
      t.diagnostic(`weft ca retire-roots:\n${err.message}`);
      assert.match(err.message, /refused/);
      assert.match(err.message, /reports-1 .*not connected/);
      assert.doesNotMatch(err.message, /orders-1|shop-1/);
      assert.match(err.message, /--force/);
      return true;
    });
    const text = await certsText();
    t.diagnostic(`weft certs:\n${text}`);
    assert.equal(rootColumn(text, 'reports-1'), rootId(reportsRoot), text);
    assert.match(text, /reports-1 .*not connected/);

    out = '';
    await runRetireRoots({ api, force: true, out: { write: (s: string) => (out += s) } });
    assert.match(out, /the trust bundle holds 1 root/);
    assert.match(out, /reports-1/, 'the forced retirement names the node it cut off');
    assert.equal(splitPemCertificates(mesh.cp!.ca.bundlePem()).length, 1);
    for (const sc of [orders, shop]) {
      await waitFor(() => splitPemCertificates(sc.proxy.secrets.trustBundle('ROOTCA')!.trustedCaPem).length === 1, 5000, 'the old root retired on the sidecar');
    }
    await load.more(20, 'after the forced retirement');
  } finally {
    await load.stop();
  }
  assert.deepEqual(load.failures, [], `${load.failures.length} of ${load.ok + load.failures.length} requests failed`);
});

test('rotate and retire by force at once (the outage, asked for): sidecars whose certificate lost its root renew within seconds and new connections work again', T, async (t) => {
  const oldRoot = activeRoot();
  await mesh.cp!.ca.rotateRoot();
  const newRoot = activeRoot();
  await mesh.cp!.ca.retireRoots({ force: true });
  assert.deepEqual(splitPemCertificates(mesh.cp!.ca.bundlePem()), [newRoot]);
  const at = Date.now();
  // The bundle each sidecar receives no longer holds the root its certificate chains to: it renews.
  await waitFor(() => chainsTo(orders, newRoot) && chainsTo(shop, newRoot), 15_000, 'both sidecars on certificates under the new root');
  t.diagnostic(`both sidecars renewed ${Date.now() - at} ms after the forced retirement`);
  assert.ok(!chainsTo(shop, oldRoot));
  for (const sc of [orders, shop]) {
    await waitFor(() => splitPemCertificates(sc.proxy.secrets.trustBundle('ROOTCA')!.trustedCaPem).length === 1, 5000, 'the bundle without the old root');
  }
  for (let i = 0; i < 10; i++) {
    const r = await request(shop.outboundPort, { host: 'orders', path: `/orders/${i}` });
    assert.equal(r.status, 200, `${r.status} ${r.headers['x-weft-response-flags'] ?? ''} ${r.text}`);
  }
});
