// The web dashboard in a real browser: the demo mesh of `npm start` under
// load, the control plane serving the built dashboard (web/dist), headless
// Debian chromium driven by playwright-core. The page shows the demo's
// services and the calls between them with live rates and mTLS locks; a
// service's and a call's charts gain points as the live ticks arrive; a
// call's page shows the config that applies to it; the errors view lists a
// request the test had denied; a config error written into the config
// directory appears without a reload. Before the first window of signals
// (a control plane whose sidecars have not been scraped twice), the page
// says it is warming up instead of showing zeros. Screenshots of each view
// are saved (WEFT_ARTIFACTS or test-artifacts/).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { once } from 'node:events';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { chromium, type Page } from 'playwright-core';
import { startControlPlane } from '../../src/control/control-plane';
import { startDemo } from '../../src/demo/run-demo';
import { silentLogger } from '../../src/observe/log';
import { freePort } from '../../src/run/free-port';
import { tempDir } from '../helpers/tmp';

const CHROMIUM = '/usr/bin/chromium';
const root = path.resolve(__dirname, '../../..');
const artifacts = process.env.WEFT_ARTIFACTS ?? path.join(root, 'test-artifacts');

async function shot(page: Page, name: string): Promise<void> {
  fs.mkdirSync(artifacts, { recursive: true });
  await page.screenshot({ path: path.join(artifacts, name), fullPage: true });
}

/** The number in an attribute of the first element matching `selector` reaches `atLeast` (page polled by Playwright, no sleep here). */
async function waitForCount(page: Page, selector: string, attr: string, atLeast: number, timeout = 30_000): Promise<number> {
  const expr = `Number(document.querySelector(${JSON.stringify(selector)})?.getAttribute(${JSON.stringify(attr)}) ?? 0)`;
  await page.waitForFunction(`${expr} >= ${atLeast}`, undefined, { timeout });
  return Number(await page.evaluate(expr));
}

/** A request through a sidecar's outbound listener (as its app would send it, HTTP_PROXY style). */
function viaSidecar(outboundPort: number, method: string, url: string, body = ''): Promise<{ status: number; flags?: string }> {
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port: outboundPort, method, path: target.href, headers: { host: target.host, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }, agent: false, timeout: 5000 },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, flags: res.headers['x-weft-response-flags'] as string | undefined }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end(body);
  });
}

test('the dashboard shows the demo mesh live: services, calls with rates and locks, charts, an edge\'s config, errors, and a config error without reload', { timeout: 180_000 }, async (t) => {
  if (!fs.existsSync(CHROMIUM)) {
    if (process.env.CI === 'true') assert.fail(`${CHROMIUM} is missing (apt-get install chromium): the dashboard test must run in CI`);
    t.skip(`${CHROMIUM} not installed (apt-get install chromium); CI=true makes this a failure`);
    return;
  }
  assert.ok(fs.existsSync(path.join(root, 'web/dist/index.html')), 'web/dist is built by npm run build');
  // A copy of the demo's config: the test breaks it.
  const configDir = tempDir(undefined, 'weft-dashboard-config-');
  for (const f of fs.readdirSync(path.join(root, 'examples/mesh'))) fs.copyFileSync(path.join(root, 'examples/mesh', f), path.join(configDir, f));
  // A service with no sidecar (a static endpoint: this test's own server): calls to it are plaintext.
  const legacy = http.createServer((_req, res) => res.end('legacy')).listen(0, '127.0.0.1');
  await once(legacy, 'listening');
  t.after(() => legacy.close());
  fs.writeFileSync(
    path.join(configDir, 'legacy.yaml'),
    `apiVersion: weft.dev/v1\nkind: Service\nmetadata: { name: legacy }\nspec:\n  ports: [{ name: http, port: 9000, protocol: http }]\n  endpoints: [{ address: 127.0.0.1, port: ${(legacy.address() as AddressInfo).port} }]\n`,
  );

  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  t.after(() => browser.close());
  const pageErrors: string[] = [];

  // Warming up: a control plane of the demo's config whose sidecars have not been scraped yet (none connected).
  {
    const cp = await startControlPlane({ configDir: path.join(root, 'examples/mesh'), dataDir: tempDir(), apiPort: 0, xdsPort: 0, log: silentLogger, dev: true });
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      page.on('pageerror', (e) => pageErrors.push(String(e)));
      await page.goto(`http://127.0.0.1:${cp.apiPort}/`);
      await page.locator('#topology [data-service="payment.default"]').waitFor({ timeout: 15_000 });
      assert.match((await page.locator('#warming-up').textContent()) ?? '', /Warming up/);
      const text = (await page.locator('main').textContent()) ?? '';
      assert.doesNotMatch(text, /last 0s/);
      assert.doesNotMatch(text, /\b0(\.0)? rps/, 'no zero rates before the first window');
      assert.match((await page.locator('#topology [data-service="payment.default"] .service-signals').textContent()) ?? '', /warming up/);
      await shot(page, 'dashboard-warming-up.png');
      await page.close();
    } finally {
      await cp.close();
    }
  }

  const out = new PassThrough();
  let log = '';
  out.on('data', (d) => (log += d));
  const demo = await startDemo({
    root,
    dataDir: tempDir(),
    configDir,
    apiPort: 0,
    xdsPort: 0,
    storefrontPort: await freePort(),
    appPorts: { payment: await freePort(), product: await freePort(), 'product-v2': await freePort(), order: await freePort() },
    loadRate: 20,
    log: silentLogger,
    out,
  });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  try {
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    await page.goto(`http://127.0.0.1:${demo.apiPort}/`);
    await page.evaluate('window.__sameDocument = true');

    for (const s of ['storefront', 'product', 'product-v2', 'order', 'payment']) {
      await page.locator(`#topology [data-service="${s}.default"]`).waitFor({ timeout: 45_000 });
    }
    // The calls, once the sidecars have counted them, with a rate.
    const edges = ['storefront.default->product.default', 'storefront.default->order.default', 'order.default->payment.default'];
    for (const e of edges) await page.locator(`#topology [data-edge="${e}"]`).waitFor({ timeout: 45_000 });
    // (page functions as strings: this file compiles without the DOM library)
    await page.waitForFunction(
      `/^[1-9]|^0\\.[1-9]/.test(document.querySelector('#topology [data-edge="storefront.default->product.default"] .edge-label')?.textContent ?? '')`,
      undefined,
      { timeout: 20_000 },
    );
    const label = await page.locator('#topology [data-edge="storefront.default->product.default"] .edge-label').textContent();
    assert.match(label ?? '', /rps · \d+(\.\d)?% · p99 \d/);

    assert.match((await page.locator('#window').textContent()) ?? '', /Signals over the last [1-9]/);

    // Every demo call is between sidecars: mutual TLS, a closed lock; order → payment is strict.
    const strict = page.locator('#topology [data-edge="order.default->payment.default"][data-security="mtls"] .lock.closed');
    await strict.waitFor({ timeout: 10_000 });
    // A call to legacy (no sidecar), sent through product's sidecar (product may call anything): plaintext, an open lock.
    const api = `http://127.0.0.1:${demo.apiPort}/api/v1`;
    const nodes = (await (await fetch(`${api}/nodes`)).json()) as { items: { node: { service?: string; outboundPort?: number } }[] };
    const outboundOf = (service: string) => {
      const port = nodes.items.find((n) => n.node.service === service && n.node.outboundPort)?.node.outboundPort;
      assert.ok(port, `the ${service} sidecar announced its outbound port`);
      return port;
    };
    for (let i = 0; i < 3; i++) assert.equal((await viaSidecar(outboundOf('product'), 'GET', 'http://legacy:9000/')).status, 200);
    await page.locator('#topology [data-edge="product.default->legacy.default"][data-security="plaintext"] .lock.open').waitFor({ timeout: 20_000 });
    assert.equal(await page.locator('#topology .edge[data-security="plaintext"]').count(), 1, 'the call to legacy is the only plaintext one');
    assert.match((await page.locator('#topology [data-edge="product.default->legacy.default"] title').textContent()) ?? '', /PLAINTEXT: its endpoint has no sidecar/);
    assert.match((await page.locator('#edges-table tr', { hasText: 'legacy' }).locator('.security').textContent()) ?? '', /plaintext/);
    const paymentRow = page.locator('#edges-table tr', { hasText: 'payment' });
    assert.match((await paymentRow.locator('.security').textContent()) ?? '', /mTLS \(strict\)/);
    assert.match((await page.locator('#edges-table tr', { hasText: 'product-v2' }).locator('.security').textContent()) ?? '', /^\s*mTLS$/);
    await shot(page, 'dashboard-topology.png');

    // A service's page: its endpoints (registered by weft run), the policy that targets it, its charts filling live.
    await page.locator('#topology [data-service="payment.default"]').click();
    await page.locator('#endpoints-table tbody tr').first().waitFor({ timeout: 10_000 });
    const servicePage = (await page.locator('main').textContent()) ?? '';
    assert.match(servicePage, /TrafficPolicy default\/payment/);
    assert.match(servicePage, /outlierDetection/);
    const points = await waitForCount(page, '.charts', 'data-points', 2);
    await waitForCount(page, '.charts', 'data-points', points + 1); // a live tick adds one, without a reload
    assert.ok((await waitForCount(page, '.chart[data-metric="rps"]', 'data-drawn', 2)) >= 2);
    assert.ok((await waitForCount(page, '.chart[data-metric="latency"]', 'data-drawn', 2)) >= 2, 'p50 and p99 are drawn');
    await shot(page, 'dashboard-service.png');
    // The same history as JSON: one series per service and call, 2 s apart; a bad window is refused by name.
    const edgeHistory = (await (await fetch(`${api}/history?minutes=5&source=order.default&destination=payment.default`)).json()) as { stepSeconds: number; series: { at: number; rps: number }[] };
    assert.equal(edgeHistory.stepSeconds, 2);
    assert.ok(edgeHistory.series.length >= 2 && edgeHistory.series.every((p, i, all) => i === 0 || p.at > all[i - 1].at), 'points oldest first');
    const all = (await (await fetch(`${api}/history`)).json()) as { at: number[]; services: Record<string, { rps: unknown[] }>; edges: Record<string, unknown> };
    assert.ok(all.services['payment.default'].rps.length === all.at.length && 'order.default -> payment.default' in all.edges);
    const bad = await fetch(`${api}/history?minutes=60`);
    assert.equal(bad.status, 400);
    assert.match(await bad.text(), /minutes must be a number in \(0, 15\]/);
    await page.goto(`http://127.0.0.1:${demo.apiPort}/#/`);

    // A call, one click away: its charts, its lock and the config that applies to it.
    await page.locator('#topology [data-edge="order.default->payment.default"] .edge-label').click();
    await page.locator('#edge-title').waitFor({ timeout: 10_000 });
    assert.match((await page.locator('#edge-title').textContent()) ?? '', /order → payment/);
    assert.equal(await page.locator('#edge-security [data-security="mtls"]').count(), 1);
    assert.match((await page.locator('#edge-security').textContent()) ?? '', /strict/);
    await page.locator('#edge-meshtls [data-kind="MeshTLS"][data-name="payment-strict"]').waitFor({ timeout: 5_000 });
    assert.match((await page.locator('#edge-meshtls').textContent()) ?? '', /mode: strict/);
    assert.match((await page.locator('#edge-authz [data-name="payment-callers"]').textContent()) ?? '', /action: ALLOW[\s\S]*\/charge/);
    assert.match((await page.locator('#edge-policies [data-name="payment"]').textContent()) ?? '', /outlierDetection:[\s\S]*consecutiveGatewayErrors: 3/);
    assert.match((await page.locator('#edge-routes').textContent()) ?? '', /No route/);
    await waitForCount(page, '.charts', 'data-points', 2);
    await shot(page, 'dashboard-edge.png');
    // The canary route shows on the call to product.
    await page.goto(`http://127.0.0.1:${demo.apiPort}/#/edge/storefront.default/product.default`);
    await page.locator('#edge-routes [data-kind="HTTPRoute"][data-name="product-canary"]').waitFor({ timeout: 10_000 });

    // The errors view: a call payment's AuthorizationPolicy denies (order may only POST /charge), sent through order's sidecar.
    const denied = await viaSidecar(outboundOf('order'), 'GET', 'http://payment:8083/charge');
    assert.equal(denied.status, 403, `payment's sidecar refuses GET from order (flags ${denied.flags})`);
    await page.goto(`http://127.0.0.1:${demo.apiPort}/#/errors`);
    const row = page.locator('#errors-table tbody tr', { hasText: 'RBAC' }).filter({ hasText: 'order' }).first();
    await row.waitFor({ timeout: 20_000 });
    assert.match((await row.textContent()) ?? '', /order → payment.*GET .*\/charge.*403/);
    assert.match((await row.textContent()) ?? '', /payment~.*127\.0\.0\.1$/, 'the node that saw it and its host');
    await shot(page, 'dashboard-errors.png');
    await page.goto(`http://127.0.0.1:${demo.apiPort}/#/`);

    // A broken resource in the watched directory: the error shows on the page, no reload.
    fs.writeFileSync(
      path.join(configDir, 'broken.yaml'),
      'apiVersion: weft.dev/v1\nkind: TrafficPolicy\nmetadata: { name: broken }\nspec:\n  targetRef: { kind: Service, name: order }\n  retries: { attempts: many }\n',
    );
    const error = page.locator('#errors-banner .config-error').first();
    await error.waitFor({ timeout: 15_000 });
    assert.match((await error.textContent()) ?? '', /attempts|broken\.yaml/);
    assert.equal(await page.evaluate('window.__sameDocument'), true, 'the page was not reloaded');

    await shot(page, 'dashboard.png');
    assert.deepEqual(pageErrors, []);
  } catch (err) {
    // What the page showed when it failed, for the CI run's artifacts.
    await shot(page, 'dashboard-failure.png').catch(() => {});
    throw new Error(`${(err as Error).message}\n--- demo output (tail) ---\n${log.slice(-1500)}`);
  } finally {
    await demo.stop();
  }
});
