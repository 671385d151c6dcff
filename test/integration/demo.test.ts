// The demo mesh of `npm start`: every service under weft run (one of them in
// Python), the storefront's pages assembled from calls through the mesh, and
// quiet while healthy: no log line at warn or above, also once the TCP health
// checks of the strict payment service have run several times.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import * as path from 'node:path';
import { startDemo } from '../../src/demo/run-demo';
import type { Logger } from '../../src/observe/log';
import { freePort } from '../../src/run/free-port';
import { parsePrometheus } from '../helpers/proxy-harness';
import { tempDir, waitFor } from '../helpers/tmp';

const PAYMENT_CLUSTER = 'outbound|8083||payment.default';

/** The lines at warn or above: the control plane's, and the sidecars' and weft run's (JSON lines behind a "[service] " prefix). */
function loudLines(controlPlane: string[], out: string): string[] {
  const loud = [...controlPlane];
  for (const line of out.split('\n')) {
    const json = line.replace(/^\[[\w-]+\] /, '');
    if (!json.startsWith('{')) continue;
    try {
      const level = (JSON.parse(json) as { level?: string }).level;
      if (level === 'warn' || level === 'error') loud.push(line);
    } catch {
      // not a log line (an app's own output)
    }
  }
  return loud;
}

/** A sidecar's metrics: the sum of a series' samples, undefined when it has none. */
async function prometheus(adminPort: number) {
  const samples = parsePrometheus(await fetch(`http://127.0.0.1:${adminPort}/stats/prometheus`).then((r) => r.text()));
  return (name: string, labels: Record<string, string> = {}): number | undefined => {
    const matching = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
    return matching.length ? matching.reduce((n, s) => n + s.value, 0) : undefined;
  };
}

test('the demo mesh serves its storefront through the mesh, places orders paid by the Python service, stays quiet while healthy, and stops cleanly', { timeout: 120_000 }, async () => {
  const out = new PassThrough();
  let log = '';
  out.on('data', (d) => (log += d));
  const controlPlaneLoud: string[] = [];
  const controlPlaneLog: Logger = (level, msg, fields) => {
    if (level === 'warn' || level === 'error') controlPlaneLoud.push(`[control plane] ${JSON.stringify({ level, msg, ...fields })}`);
  };
  const demo = await startDemo({
    root: path.resolve(__dirname, '../../..'),
    dataDir: tempDir(),
    apiPort: 0,
    xdsPort: 0,
    storefrontPort: await freePort(),
    // Free ports for the apps too: a demo already running on this machine (npm start) must not collide.
    appPorts: { payment: await freePort(), product: await freePort(), 'product-v2': await freePort(), order: await freePort() },
    loadRate: 0,
    log: controlPlaneLog,
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
    // The split the page shows is counted from the answers, not written into the page.
    assert.match(page, /the last \d+ catalogue calls: \d+% v[12]/);
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

    // Quiet while healthy: the sidecars that may call payment (strict mTLS) health-check it every
    // 5 s; after three rounds of each (10 s past the first, and past the 5 s after which a probe
    // that sent nothing used to be called plaintext), payment refused none and nothing logged a warning.
    const adminPorts = new Map<string, number>(nodes.items.map((n: any) => [n.node.service, n.node.adminPort]));
    const checkers = new Set<string>();
    await waitFor(
      async () => {
        for (const [service, port] of adminPorts) {
          const checks = (await prometheus(port))('weft_health_checks_total', { cluster: PAYMENT_CLUSTER });
          if (checks !== undefined) checkers.add(service);
          if (checks !== undefined && checks < 3) return false;
        }
        return checkers.has('order');
      },
      45_000,
      'three health checks of payment by every sidecar that checks it',
    );
    const payment = await prometheus(adminPorts.get('payment')!);
    assert.equal(payment('weft_downstream_tls_refused_total') ?? 0, 0, 'payment refused no connection');
    assert.ok(payment('weft_downstream_tls_handshakes_total')! >= 3 * checkers.size, 'the checks were mTLS handshakes');
    for (const service of checkers) assert.equal((await prometheus(adminPorts.get(service)!))('weft_health_check_failures_total', { cluster: PAYMENT_CLUSTER }), 0, service);
    assert.deepEqual(loudLines(controlPlaneLoud, log), [], 'no log line at warn or above while healthy');
  } finally {
    await demo.stop();
  }
  assert.deepEqual(log.match(/exited .*/g)?.sort(), Array(5).fill('exited with code 0'), log.slice(-2000));
  assert.deepEqual(loudLines(controlPlaneLoud, log), [], 'no log line at warn or above while stopping');
});
