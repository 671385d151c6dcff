// The dashboard of a mesh spread over hosts (test/helpers/hosts.ts): the
// control plane on `cp` (--dev), alpha under `weft run` on `a` calling beta
// on `b`. Chromium runs inside cp's network namespace (a wrapper that
// `ip netns exec`s it; Playwright talks to it over pipes), so every packet
// stays inside the namespaces. The call a → b shows with a rate and a lock,
// and each service's page names the host its instance runs on. A
// screenshot is saved (WEFT_ARTIFACTS or test-artifacts/).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { Hosts, multiHostSkip, type Host, type Proc, withProcessLogs } from '../helpers/hosts';
import { serviceYaml } from '../helpers/resources';
import { tempDir } from '../helpers/tmp';

const ROOT = path.resolve(__dirname, '../../..');
const BIN = path.join(ROOT, 'bin/weft.js');
const CHROMIUM = '/usr/bin/chromium';
const API_PORT = 15000;
const XDS_PORT = 15010;
const APP_PORT = 8080;
/** Requests the load on host a sends (20 a second: a minute at most), then it stops by itself. */
const LOAD_COUNT = 1200;

const SKIP = multiHostSkip() || chromiumSkip();

function chromiumSkip(): string | false {
  if (fs.existsSync(CHROMIUM)) return false;
  if (process.env.CI === 'true') return false; // launch fails below and names it
  return `${CHROMIUM} not installed (apt-get install chromium); CI=true makes this a failure`;
}

let hosts: Hosts;
let cp: Host;
let a: Host;
let b: Host;
let browser: Browser | undefined;
const procs: Proc[] = [];

/** Alpha's app: relays every request to beta through its sidecar (HTTP_PROXY, set by weft run). */
const ALPHA_APP = `
const http = require('node:http');
const proxy = new URL(process.env.HTTP_PROXY);
http.createServer((req, res) => {
  http.get({ host: proxy.hostname, port: proxy.port, path: 'http://beta' + req.url, headers: { host: 'beta' } }, (r) => {
    r.resume(); r.on('end', () => res.end('relayed ' + r.statusCode));
  }).on('error', (e) => { res.statusCode = 502; res.end(e.message); });
}).listen(Number(process.env.PORT), '127.0.0.1');
`;
const BETA_APP = `require('node:http').createServer((req, res) => res.end('beta')).listen(Number(process.env.PORT), '127.0.0.1');`;
/** Bounded load on alpha's app, from its own host: LOAD_COUNT requests at 20/s, then exit. */
const LOAD = `
const http = require('node:http');
let sent = 0;
const t = setInterval(() => {
  if (++sent > ${LOAD_COUNT}) return clearInterval(t);
  http.get({ host: '127.0.0.1', port: ${APP_PORT}, path: '/item/' + sent, agent: false }, (r) => r.resume()).on('error', () => {});
}, 50);
`;

function weft(host: Host, args: string[]): Proc {
  const proc = host.spawn(process.execPath, [BIN, ...args], { cwd: ROOT });
  procs.push(proc);
  return proc;
}

function weftRun(host: Host, service: string, app: string): Proc {
  return weft(host, [
    'run', '--service', service, '--port', String(APP_PORT), '--address', host.address,
    '--xds', `${cp.address}:${XDS_PORT}`, '--api', `http://${cp.address}:${API_PORT}`,
    '--outbound-port', '15001', '--inbound-port', '15006', '--admin-port', '15020',
    '--', process.execPath, '-e', app,
  ]);
}

before(async () => {
  if (SKIP) return;
  assert.ok(fs.existsSync(path.join(ROOT, 'web/dist/index.html')), 'web/dist is built by npm run build');
  hosts = await Hosts.create({ name: 'dash', hosts: ['cp', 'a', 'b'] });
  [cp, a, b] = ['cp', 'a', 'b'].map((h) => hosts.get(h));
  const config = tempDir();
  fs.writeFileSync(path.join(config, 'mesh.yaml'), serviceYaml('alpha', 80) + '---\n' + serviceYaml('beta', 80));
  const control = weft(cp, ['control', '--dev', '--host', cp.address, '--config', config, '--data-dir', tempDir(), '--xds-port', String(XDS_PORT), '--api-port', String(API_PORT)]);
  await control.waitForOutput(/API on http:\/\//, 15_000);
});

after(async () => {
  await browser?.close().catch(() => {});
  await hosts?.destroy();
});

test('the dashboard on the control plane\'s host shows the call between services on two other hosts, its lock, and where each instance runs', { skip: SKIP, timeout: 120_000 }, () =>
  withProcessLogs(procs, async () => {
    assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing (apt-get install chromium): the dashboard test must run in CI`);
    const beta = weftRun(b, 'beta', BETA_APP);
    const alpha = weftRun(a, 'alpha', ALPHA_APP);
    await Promise.all([beta.waitForOutput(/sidecar ready/, 20_000), alpha.waitForOutput(/sidecar ready/, 20_000)]);
    procs.push(a.spawn(process.execPath, ['-e', LOAD]));

    // Chromium in cp's namespace: it reaches the control plane at cp's address, and nothing outside the namespaces.
    const wrapper = path.join(tempDir(), 'chromium-in-cp');
    fs.writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${cp.ns} ${CHROMIUM} "$@"\n`, { mode: 0o755 });
    browser = await chromium.launch({ executablePath: wrapper, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    const base = `http://${cp.address}:${API_PORT}/`;
    await page.goto(base);

    const edge = '#topology [data-edge="alpha.default->beta.default"]';
    await page.locator(edge).waitFor({ timeout: 45_000 });
    // (page functions as strings: this file compiles without the DOM library)
    await page.waitForFunction(`/^[1-9]|^0\\.[1-9]/.test(document.querySelector('${edge} .edge-label')?.textContent ?? '')`, undefined, { timeout: 30_000 });
    assert.match((await page.locator(`${edge} .edge-label`).textContent()) ?? '', /rps · \d+(\.\d)?% · p99 \d/);
    await page.locator(`${edge}[data-security="mtls"] .lock.closed`).waitFor({ timeout: 10_000 });
    // Each box counts its instances and their hosts.
    await page.waitForFunction(`/1 instance · 1 host/.test(document.querySelector('#topology [data-service="beta.default"] .service-instances')?.textContent ?? '')`, undefined, { timeout: 15_000 });

    // Where each instance runs: beta's on b, alpha's on a.
    const artifacts = process.env.WEFT_ARTIFACTS ?? path.join(ROOT, 'test-artifacts');
    fs.mkdirSync(artifacts, { recursive: true });
    for (const [service, host] of [['alpha', a], ['beta', b]] as const) {
      await page.goto(`${base}#/service/default/${service}`);
      const row = page.locator('#instances-table tbody tr', { hasText: host.address });
      await row.waitFor({ timeout: 15_000 });
      assert.equal(await page.locator('#instances-table tbody tr').count(), 1, `one instance of ${service}`);
    }
    // beta's charts, drawn from what its sidecar on b reported.
    await page.waitForFunction(`Number(document.querySelector('.chart[data-metric="rps"]')?.getAttribute('data-drawn') ?? 0) >= 2`, undefined, { timeout: 20_000 });
    await page.screenshot({ path: path.join(artifacts, 'dashboard-multi-host-service.png'), fullPage: true });
    await page.goto(`${base}#/`);
    await page.locator(`${edge} .lock`).waitFor({ timeout: 10_000 });
    await page.screenshot({ path: path.join(artifacts, 'dashboard-multi-host.png'), fullPage: true });
    assert.deepEqual(pageErrors, []);
  }),
);
