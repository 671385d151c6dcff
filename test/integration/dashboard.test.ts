// The web dashboard in a real browser: the demo mesh of `npm start` under
// load, the control plane serving the built dashboard (web/dist), headless
// Debian chromium driven by playwright-core. The page shows the demo's
// services and the calls between them with live rates, and a config error
// written into the config directory appears without a reload. A screenshot
// is saved (WEFT_ARTIFACTS or test-artifacts/).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { chromium } from 'playwright-core';
import { startDemo } from '../../src/demo/run-demo';
import { silentLogger } from '../../src/observe/log';
import { freePort } from '../../src/run/run-app';
import { tempDir } from '../helpers/tmp';

const CHROMIUM = '/usr/bin/chromium';
const root = path.resolve(__dirname, '../../..');

test('the dashboard shows the demo mesh live: services, calls with their rates, and a config error without reload', { timeout: 90_000 }, async (t) => {
  if (!fs.existsSync(CHROMIUM)) {
    if (process.env.CI === 'true') assert.fail(`${CHROMIUM} is missing (apt-get install chromium): the dashboard test must run in CI`);
    t.skip(`${CHROMIUM} not installed (apt-get install chromium); CI=true makes this a failure`);
    return;
  }
  assert.ok(fs.existsSync(path.join(root, 'web/dist/index.html')), 'web/dist is built by npm run build');
  // A copy of the demo's config: the test breaks it.
  const configDir = tempDir(undefined, 'weft-dashboard-config-');
  for (const f of fs.readdirSync(path.join(root, 'examples/mesh'))) fs.copyFileSync(path.join(root, 'examples/mesh', f), path.join(configDir, f));

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
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const pageErrors: string[] = [];
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

    // A service's page: its endpoints (registered by weft run) and the policy that targets it.
    await page.locator('#topology [data-service="payment.default"]').click();
    await page.locator('#endpoints-table tbody tr').first().waitFor({ timeout: 10_000 });
    const servicePage = (await page.locator('main').textContent()) ?? '';
    assert.match(servicePage, /TrafficPolicy default\/payment/);
    assert.match(servicePage, /outlierDetection/);
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

    const artifacts = process.env.WEFT_ARTIFACTS ?? path.join(root, 'test-artifacts');
    fs.mkdirSync(artifacts, { recursive: true });
    await page.screenshot({ path: path.join(artifacts, 'dashboard.png'), fullPage: true });
    assert.deepEqual(pageErrors, []);
  } catch (err) {
    throw new Error(`${(err as Error).message}\n--- demo output (tail) ---\n${log.slice(-1500)}`);
  } finally {
    await browser.close();
    await demo.stop();
  }
});
