// Zero trust end to end, with nothing handed to the sidecars: each gets its
// workload certificate from the control plane's CA over SDS (key made in the
// sidecar, CSR, short TTL so it renews during the test) and the trust bundle
// over ADS. `orders` is strict and guarded by an AuthorizationPolicy that
// names its callers by identity; `shop` and `intruder` call it through their
// own sidecars; a plaintext client calls it directly.
import { strict as assert } from 'node:assert';
import * as net from 'node:net';
import { after, before, test } from 'node:test';
import { isSignedBy, splitPemCertificates } from '../../src/ca/cert-info';
import { docs, exitGuard, freePort, HttpUpstream, Mesh, request, serviceYaml, sleep, waitFor, type Sidecar } from '../helpers/proxy-harness';

const T = { timeout: 60_000 };
const CERT_TTL_MS = 3000;

let mesh: Mesh;
let ordersApp: HttpUpstream;
let orders: Sidecar;
let shop: Sidecar;
let intruder: Sidecar;
let ordersPort: number;

before(async () => {
  ordersApp = await HttpUpstream.start('orders-app');
  ordersPort = await freePort();
  mesh = await Mesh.start(
    {
      'services.yaml': docs(
        serviceYaml({ name: 'orders', port: 80, dependsOn: [] }),
        serviceYaml({ name: 'shop', dependsOn: ['orders'] }),
        serviceYaml({ name: 'intruder', dependsOn: ['orders'] }),
      ),
      'security.yaml': `apiVersion: weft.dev/v1
kind: MeshTLS
metadata: { name: orders-strict }
spec: { targetRef: { kind: Service, name: orders }, mode: strict }
---
apiVersion: weft.dev/v1
kind: AuthorizationPolicy
metadata: { name: orders-callers }
spec:
  targetRef: { name: orders }
  action: ALLOW
  rules:
    - from: [{ source: { services: [shop] } }]
      to: [{ operation: { methods: [GET], paths: [/orders/*] } }]
---
apiVersion: weft.dev/v1
kind: AuthorizationPolicy
metadata: { name: orders-no-admin }
spec:
  targetRef: { name: orders }
  action: DENY
  rules:
    - to: [{ operation: { paths: [/admin/*] } }]
---
apiVersion: weft.dev/v1
kind: TrafficPolicy
metadata: { name: orders }
# Short-lived upstream connections: new mTLS handshakes all through the test, with whatever certificate is current.
spec: { targetRef: { name: orders }, connectionPool: { maxRequestsPerConnection: 5 } }
`,
    },
    { certTtlMs: CERT_TTL_MS },
  );
  // The instance registers as `weft run` does: behind its sidecar, which speaks mTLS.
  await mesh.cp!.registry.register({ service: 'orders', address: '127.0.0.1', port: ordersPort, sidecar: true, ttlSeconds: 3600 });
  orders = await mesh.sidecar({ nodeId: 'orders-1', service: 'orders', inboundPort: ordersPort, appPort: ordersApp.port });
  shop = await mesh.sidecar({ nodeId: 'shop-1', service: 'shop' });
  intruder = await mesh.sidecar({ nodeId: 'intruder-1', service: 'intruder' });
  for (const sc of [orders, shop, intruder]) {
    await sc.proxy.certificateAgent!.waitForCertificate(5000);
    await waitFor(() => sc.proxy.secrets.trustBundle('ROOTCA') !== undefined, 5000, 'the trust bundle');
  }
  for (const sc of [shop, intruder]) await sc.waitConfig((c) => (c.endpoints.get('outbound|80||orders.default')?.localities.length ?? 0) > 0, 5000);
}, T);

after(async () => {
  exitGuard();
  await mesh.close();
  await ordersApp.close();
}, T);

test('authorization by caller identity: a table of allowed and denied requests over mTLS', T, async () => {
  const table: [caller: Sidecar, who: string, method: string, path: string, status: number][] = [
    [shop, 'shop', 'GET', '/orders/42', 200],
    [shop, 'shop', 'GET', '/orders/', 200],
    [shop, 'shop', 'POST', '/orders/42', 403], // method not allowed to anyone
    [shop, 'shop', 'GET', '/payments/1', 403], // path not allowed
    [shop, 'shop', 'GET', '/admin/orders/', 403], // DENY wins (and no ALLOW either)
    [intruder, 'intruder', 'GET', '/orders/42', 403], // a valid mesh identity, not named by the policy
    [intruder, 'intruder', 'GET', '/admin/x', 403],
  ];
  const before = ordersApp.requests;
  let allowed = 0;
  for (const [caller, who, method, path, status] of table) {
    const r = await request(caller.outboundPort, { host: 'orders', method, path });
    assert.equal(r.status, status, `${who} ${method} ${path}: ${r.status} ${r.text}`);
    if (status === 403) {
      assert.equal(r.headers['x-weft-response-flags'], 'RBAC', `${who} ${method} ${path}`);
      assert.equal(r.text.trimEnd(), 'RBAC: access denied');
    } else allowed++;
  }
  assert.equal(ordersApp.requests - before, allowed, 'denied requests never reached the app');
  // The callee's sidecar knew who called: the records carry the caller's service.
  const { items: recent } = (await (await fetch(`http://127.0.0.1:${orders.adminPort}/requests`)).json()) as { items: { source: string; status: number; path: string }[] };
  const sources = new Set(recent.filter((r) => r.path.startsWith('/orders/')).map((r) => `${r.source} ${r.status}`));
  assert.ok(sources.has('shop.default 200'), [...sources].join(', '));
  assert.ok(sources.has('intruder.default 403'), [...sources].join(', '));
});

test('strict: a plaintext client reaching the service directly gets no answer', T, async () => {
  const reply = await new Promise<string>((resolve) => {
    const s = net.connect(ordersPort, '127.0.0.1', () => s.write('GET /orders/1 HTTP/1.1\r\nhost: orders\r\n\r\n'));
    let got = '';
    s.on('data', (d) => (got += d));
    s.on('close', () => resolve(got));
    s.on('error', () => {});
    s.setTimeout(3000, () => s.destroy());
  });
  assert.equal(reply, '');
});

test('certificates renew under continuous load, and the root rotates, without failing a request', T, async () => {
  const issuedBefore = mesh.cp!.ca.issuances().length;
  const failures: string[] = [];
  let ok = 0;
  let running = true;
  const worker = async () => {
    while (running) {
      try {
        const r = await request(shop.outboundPort, { host: 'orders', path: `/orders/${ok}` });
        if (r.status === 200) ok++;
        else failures.push(`${r.status} ${r.headers['x-weft-response-flags'] ?? ''} ${r.text.slice(0, 80)}`);
      } catch (err) {
        failures.push(String(err));
      }
    }
  };
  const workers = Array.from({ length: 8 }, worker);
  await sleep(1500);
  // Root rotation mid-load: the bundle carries both roots, new leaves come from the new intermediate.
  const oldRoot = mesh.cp!.ca.bundlePem();
  await mesh.cp!.ca.rotateRoot();
  const newRoot = splitPemCertificates(mesh.cp!.ca.bundlePem()).find((r) => r !== oldRoot.trim() && r !== oldRoot)!;
  const fromNewRoot = (sc: Sidecar) => isSignedBy(splitPemCertificates(sc.proxy.secrets.certificate('default')!.certificateChainPem)[1], newRoot);
  // Every sidecar, intruder too: retire-roots is refused while any live certificate chains to the old root.
  await waitFor(() => fromNewRoot(orders) && fromNewRoot(shop) && fromNewRoot(intruder), 4 * CERT_TTL_MS, 'every sidecar on a certificate from the new root');
  // Every leaf now chains to the new root: the old one can go, under load.
  await mesh.cp!.ca.retireRoots();
  const issuedAtRetirement = mesh.cp!.ca.issuances().length;
  await waitFor(() => splitPemCertificates(shop.proxy.secrets.trustBundle('ROOTCA')!.trustedCaPem).length === 1, 5000, 'the old root retired');
  const ofSide = (records: { spiffeId: string }[], id: string) => records.filter((r) => r.spiffeId.endsWith(`/sa/${id}`)).length;
  const renewedSince = (from: number, id: string) => ofSide(mesh.cp!.ca.issuances().slice(from), id);
  await sleep(CERT_TTL_MS); // load on after the retirement, for a certificate lifetime
  // At least one more renewal on each side after the retirement, and the three each the assertion
  // below counts: they come at about half life, later when the machine is busy; wait for them.
  await waitFor(
    () => ['orders', 'shop'].every((id) => renewedSince(issuedAtRetirement, id) >= 1 && renewedSince(issuedBefore, id) >= 3),
    4 * CERT_TTL_MS,
    'a renewal on each side after the retirement',
  );
  running = false;
  await Promise.all(workers);
  const renewals = mesh.cp!.ca.issuances().slice(issuedBefore);
  const count = (id: string) => ofSide(renewals, id);
  assert.ok(count('orders') >= 3 && count('shop') >= 3, `renewals during the load: orders ${count('orders')}, shop ${count('shop')}`);
  assert.ok(ok > 200, `only ${ok} requests`);
  assert.deepEqual(failures, [], `${failures.length} of ${ok + failures.length} failed`);
});
