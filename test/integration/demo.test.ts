// The demo mesh of `npm start`: every service under weft run (one of them in
// Python), the storefront's pages assembled from calls through the mesh.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import * as path from 'node:path';
import { startDemo } from '../../src/demo/run-demo';
import { silentLogger } from '../../src/observe/log';
import { freePort } from '../../src/run/run-app';
import { tempDir, waitFor } from '../helpers/tmp';

test('the demo mesh serves its storefront through the mesh, places orders paid by the Python service, and stops cleanly', async () => {
  const out = new PassThrough();
  let log = '';
  out.on('data', (d) => (log += d));
  const demo = await startDemo({
    root: path.resolve(__dirname, '../../..'),
    dataDir: tempDir(),
    apiPort: 0,
    xdsPort: 0,
    storefrontPort: await freePort(),
    // Free ports for the apps too: a demo already running on this machine (npm start) must not collide.
    appPorts: { payment: await freePort(), product: await freePort(), 'product-v2': await freePort(), order: await freePort() },
    loadRate: 0,
    log: silentLogger,
    out,
  });
  try {
    await waitFor(
      async () => (await fetch(demo.storefrontUrl).then((r) => r.status, () => 0)) === 200,
      45_000,
      'storefront page assembled from product and order',
    );
    const page = await fetch(demo.storefrontUrl).then((r) => r.text());
    assert.match(page, /Catalogue served by product <b>v[12]<\/b>/);
    assert.match(page, /Loom/);

    // Payment (Python) may register a moment after the storefront: orders succeed once it has.
    let placed = '';
    await waitFor(
      async () => {
        const buy = await fetch(`${demo.storefrontUrl}buy?id=2&amount=39`, { redirect: 'manual' });
        placed = decodeURIComponent(buy.headers.get('location') ?? '');
        return buy.status === 303 && /order #\d+ placed/.test(placed);
      },
      30_000,
      'an order paid through order → payment',
    );
    const summary = (await fetch(`${demo.storefrontUrl}api/summary`).then((r) => r.json())) as { orders: number };
    assert.ok(summary.orders >= 1);
    // That call was mTLS under payment's strict MeshTLS: every demo sidecar holds a certificate from the control plane's CA.
    const issued = (await fetch(`http://127.0.0.1:${demo.apiPort}/api/v1/certs/issued`).then((r) => r.json())) as { items: { spiffeId: string }[] };
    for (const svc of ['order', 'payment']) assert.ok(issued.items.some((c) => c.spiffeId === `spiffe://cluster.local/ns/default/sa/${svc}`), `${svc} has a certificate`);

    // Every sidecar is connected and in sync with the control plane.
    const nodes = (await fetch(`http://127.0.0.1:${demo.apiPort}/api/v1/nodes`).then((r) => r.json())) as { items: any[] };
    const services = nodes.items.map((n: any) => n.node.service).sort();
    assert.deepEqual(services, ['order', 'payment', 'product', 'product-v2', 'storefront']);
  } finally {
    await demo.stop();
  }
  assert.deepEqual(log.match(/exited .*/g)?.sort(), Array(5).fill('exited with code 0'), log.slice(-2000));
});
