// An http-filter Plugin end to end with real processes: a control plane
// (--dev) on a config directory, `weft proxy` as a child process in front of
// a real app, and Plugins applied as files while the proxy runs. The module
// is an npm package the sidecar resolves from its working directory (a
// node_modules of its own), and the TypeScript example built to dist: the
// behaviour changes on the same proxy process, with no restart.
import { after, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { startControlPlane } from '../../src/control/control-plane';
import { silentLogger } from '../../src/observe/log';
import { HttpUpstream, freePort, request } from '../helpers/proxy-harness';
import { tempDir, waitFor } from '../helpers/tmp';

const DIST = path.resolve(__dirname, '../..');
const ROOT = path.resolve(DIST, '..');
const BIN = path.join(ROOT, 'bin/weft.js');
const closers: (() => unknown)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

function write(dir: string, name: string, text: string): void {
  fs.writeFileSync(path.join(dir, `.${name}.tmp`), text);
  fs.renameSync(path.join(dir, `.${name}.tmp`), path.join(dir, name));
}

test('weft proxy picks up an http-filter Plugin applied while it runs: a package module denies, the TypeScript example tags', { timeout: 60_000 }, async () => {
  const app = await HttpUpstream.start('shop');
  closers.push(() => app.close());
  const port = await freePort();
  const configDir = tempDir(undefined, 'weft-filter-config-');
  write(configDir, 'mesh.yaml', `apiVersion: weft.dev/v1\nkind: Service\nmetadata: { name: shop }\nspec:\n  ports: [{ name: http, port: ${port}, protocol: http }]\n`);
  const cp = await startControlPlane({ configDir, dataDir: tempDir(), xdsPort: 0, apiPort: 0, log: silentLogger, dev: true });
  closers.push(() => cp.close());

  // The sidecar's working directory holds the package, as an app's node_modules would.
  const work = tempDir(undefined, 'weft-filter-work-');
  const pkg = path.join(work, 'node_modules', 'shop-guard');
  fs.mkdirSync(pkg, { recursive: true });
  fs.writeFileSync(path.join(pkg, 'package.json'), JSON.stringify({ name: 'shop-guard', version: '1.0.0', main: 'index.js' }));
  fs.writeFileSync(
    path.join(pkg, 'index.js'),
    `module.exports = (config) => ({
  decodeHeaders(req) {
    if (req.method === 'DELETE') return { status: 405, body: 'no deletes on ' + config.service, flag: 'GUARD' };
  },
});
`,
  );

  const [outbound, admin] = [await freePort(), await freePort()];
  const child: ChildProcess = spawn(
    process.execPath,
    [BIN, 'proxy', '--xds', `127.0.0.1:${cp.xdsPort}`, '--service', 'shop', '--node-id', 'shop-1', '--inbound-port', String(port), '--outbound-port', String(outbound), '--admin-port', String(admin), '--app-port', String(app.port)],
    { cwd: work, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  closers.push(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  const call = (method: string, p = '/cart') => request(port, { host: 'shop', path: p, method });
  await waitFor(async () => (await call('GET').catch(() => undefined))?.status === 200, 20_000, 'the proxy to serve').catch((err) => assert.fail(`${err.message}\n${output}`));
  assert.equal((await call('DELETE')).status, 200, 'no filter yet');

  write(
    configDir,
    'filters.yaml',
    `apiVersion: weft.dev/v1
kind: Plugin
metadata: { name: guard }
spec:
  type: http-filter
  module: shop-guard
  config: { global: { service: "\${service}" } }
  targetRefs: [{ kind: Service, name: shop }]
---
apiVersion: weft.dev/v1
kind: Plugin
metadata: { name: tagger }
spec:
  type: http-filter
  module: ${path.join(DIST, 'examples/filters/add-header.js')}
  order: 1
  config: { global: { tag: "\${namespace}" } }
  targetRefs: [{ kind: Service, name: shop }]
`,
  );
  await waitFor(async () => (await call('DELETE')).status === 405, 15_000, 'the Plugin to reach the running proxy').catch((err) => assert.fail(`${err.message}\n${output}`));
  const deletes = () => app.seen.filter((r) => r.method === 'DELETE').length;
  const deletesBefore = deletes();
  const denied = await call('DELETE');
  assert.equal(denied.text, 'no deletes on shop\n');
  assert.equal(denied.headers['x-weft-response-flags'], 'GUARD');
  const ok = await call('GET');
  assert.equal(ok.status, 200);
  assert.equal(ok.headers['x-filtered-by'], 'default');
  assert.equal(app.seen.at(-1)!.headers['x-weft-filter'], 'default');
  assert.equal(deletes(), deletesBefore, 'the denied DELETE never reached the app');
  assert.equal(child.exitCode, null, 'the same proxy process');
  assert.match(output, /http-filter plugin loaded/);

  const stats = await new Promise<string>((resolve, reject) =>
    http.get({ host: '127.0.0.1', port: admin, path: '/stats/prometheus' }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve(body));
    }).on('error', reject),
  );
  assert.match(stats, /weft_requests_total\{[^}]*flags="GUARD"[^}]*\} [1-9]/);
});
