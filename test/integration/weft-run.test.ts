// `weft run` end to end: a real control plane, the real CLI as a child
// process, real apps.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { startControlPlane, type ControlPlane } from '../../src/control/control-plane';
import { silentLogger } from '../../src/observe/log';
import { freePort } from '../../src/run/free-port';
import { serviceYaml } from '../helpers/resources';
import { processAlive, tempDir, waitFor } from '../helpers/tmp';

const ROOT = path.resolve(__dirname, '../../..');
const BIN = path.join(ROOT, 'bin/weft.js');
let cp: ControlPlane;
let backend: http.Server;
let backendPort: number;
const started: ChildProcess[] = [];

before(async () => {
  backend = http.createServer((req, res) => res.end(`backend saw ${req.headers.host}${req.url}`));
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
  backendPort = (backend.address() as { port: number }).port;
  const config = tempDir();
  fs.writeFileSync(
    path.join(config, 'mesh.yaml'),
    serviceYaml('web', 8080) + '---\n' + serviceYaml('backend', 9000, 'http', `  endpoints: [{ address: 127.0.0.1, port: ${backendPort} }]\n`),
  );
  cp = await startControlPlane({ configDir: config, dataDir: tempDir(), xdsPort: 0, apiPort: 0, log: silentLogger, dev: true });
});

after(async () => {
  // A failed test leaves its weft run (and the app) behind; they would keep this file from ending.
  for (const child of started) child.kill('SIGKILL');
  await cp.close();
  backend.close();
});

/** Starts `weft run`; resolves its exit code and collects its output. */
function weftRun(args: string[], command: string[]) {
  const child = spawn(process.execPath, [BIN, 'run', '--xds', `127.0.0.1:${cp.xdsPort}`, '--api', `http://127.0.0.1:${cp.apiPort}`, '--drain-seconds', '0.5', ...args, '--', ...command], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  started.push(child);
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, exited, output: () => output };
}

/** A tiny app: calls backend through HTTP_PROXY at start (proving the sidecar was ready), then serves. */
const APP = `
const http = require('node:http');
const proxy = new URL(process.env.HTTP_PROXY);
http.get({ host: proxy.hostname, port: proxy.port, path: 'http://backend:9000/hello', headers: { host: 'backend:9000' } }, (res) => {
  let body = ''; res.on('data', (d) => body += d); res.on('end', () => console.log('FIRST CALL', res.statusCode, body));
}).on('error', (e) => console.log('FIRST CALL FAILED', e.message));
const srv = http.createServer((q, s) => s.end('app here')).listen(Number(process.env.PORT), '127.0.0.1');
process.on('SIGTERM', () => { console.log('APP GOT SIGTERM'); srv.close(() => process.exit(0)); });
`;

test('an app under weft run calls the mesh through its sidecar from its first line, and is registered while it runs', async () => {
  const port = await freePort();
  const run = weftRun(['--service', 'web', '--port', String(port)], [process.execPath, '-e', APP]);
  await waitFor(() => /FIRST CALL/.test(run.output()), 15_000, 'the app made its first call');
  assert.match(run.output(), /FIRST CALL 200 backend saw backend:9000\/hello/);
  await waitFor(() => (cp.registry.endpoints().get('default/web') ?? []).length === 1, 20_000, 'registered');
  const [endpoint] = cp.registry.endpoints().get('default/web')!;
  assert.equal(endpoint.health, 'healthy');

  // The registered endpoint is the sidecar's inbound port, which forwards to the app.
  const viaSidecar = await fetch(`http://127.0.0.1:${endpoint.ports.p}/`).then((r) => r.text());
  assert.equal(viaSidecar, 'app here');

  // SIGTERM: draining first (callers move away), then the app is stopped, then deregistered.
  // Every state the registration goes through is recorded, so a fast shutdown cannot hide the draining step.
  const states: string[] = [];
  const stop = cp.registry.onChange(() => states.push(cp.registry.endpoints().get('default/web')?.[0]?.health ?? 'gone'));
  run.child.kill('SIGTERM');
  await waitFor(() => states.includes('draining'), 10_000, 'draining');
  assert.equal(await run.exited, 0);
  stop();
  assert.ok(states.indexOf('draining') < states.lastIndexOf('gone'), `draining before deregistered: ${states.join(' → ')}`);
  assert.match(run.output(), /APP GOT SIGTERM/);
  assert.deepEqual(cp.registry.endpoints().get('default/web'), []);
});

test("a batch job's exit code is weft run's exit code, and nothing stays registered", async () => {
  const run = weftRun(['--service', 'web'], [process.execPath, '-e', 'setTimeout(() => process.exit(3), 100)']);
  assert.equal(await run.exited, 3);
  const crashed = weftRun([], [process.execPath, '-e', 'throw new Error("boom")']);
  assert.equal(await crashed.exited, 1);
  const missing = weftRun([], ['/nonexistent/program']);
  assert.equal(await missing.exited, 127);
  assert.deepEqual(cp.registry.endpoints().get('default/web'), []);
});

test('an app that exits on its own deregisters at once', async () => {
  const port = await freePort();
  // It exits when asked (through its sidecar), so the test does not race the registration.
  const app = `require('node:http').createServer((q, s) => { s.end('bye'); if (q.url === '/exit') setImmediate(() => process.exit(0)); }).listen(${port}, '127.0.0.1');`;
  const run = weftRun(['--service', 'web', '--port', String(port)], [process.execPath, '-e', app]);
  await waitFor(() => (cp.registry.endpoints().get('default/web') ?? []).length === 1, 20_000, 'registered');
  const [endpoint] = cp.registry.endpoints().get('default/web')!;
  assert.equal(await fetch(`http://127.0.0.1:${endpoint.ports.p}/exit`).then((r) => r.text()), 'bye');
  assert.equal(await run.exited, 0);
  assert.deepEqual(cp.registry.endpoints().get('default/web'), []);
});

test('a wrong --port: weft run says what it waits for, then gives up after --ready-timeout, stops the app and names the port it listens on', { timeout: 30_000 }, async (t) => {
  const [port, actual] = [await freePort(), await freePort()];
  // It listens on another port than --port, and reports its pid so the test can see it stopped.
  const app = `console.log('APP PID', process.pid); require('node:http').createServer((q, s) => s.end()).listen(${actual}, '127.0.0.1');`;
  const run = weftRun(['--service', 'web', '--port', String(port), '--ready-timeout', '6s'], [process.execPath, '-e', app]);
  t.after(() => run.child.kill('SIGKILL'));
  await waitFor(() => /APP PID \d+/.test(run.output()), 10_000, 'the app started');
  const pid = Number(/APP PID (\d+)/.exec(run.output())![1]);
  assert.equal(await run.exited, 1, run.output());
  const out = run.output();
  // A progress line every 5 s while it waits, naming the command and the port.
  assert.match(out, new RegExp(`waiting for ${process.execPath.replace(/[/.]/g, '\\$&')} to listen on 127\\.0\\.0\\.1:${port}`));
  assert.match(out, new RegExp(`did not listen on 127\\.0\\.0\\.1:${port} within 6s: is --port the port your program listens on\\? \\(it listens on: 127\\.0\\.0\\.1:${actual}\\)`));
  assert.throws(() => process.kill(pid, 0), { code: 'ESRCH' }, 'the app was stopped');
  assert.deepEqual(cp.registry.endpoints().get('default/web') ?? [], []);
});

test("a Node app's own http.get and fetch reach mesh services by name through its sidecar (Node ignores HTTP_PROXY by itself), also when a shell starts it; local calls stay direct", { timeout: 30_000 }, async (t) => {
  const app = path.join(tempDir(), 'client.js');
  fs.writeFileSync(
    app,
    `
const http = require('node:http');
const get = (url) => new Promise((resolve) => http.get(url, (res) => {
  let body = ''; res.on('data', (d) => body += d); res.on('end', () => resolve(res.statusCode + ' ' + body));
}).on('error', (e) => resolve('failed ' + e.message)));
(async () => {
  console.log('HTTP.GET', await get('http://backend/by-name'));
  console.log('HTTP.GET PORT', await get('http://backend:9000/with-port'));
  console.log('FETCH', await fetch('http://backend/fetched').then(async (r) => r.status + ' ' + await r.text(), (e) => 'failed ' + (e.cause?.message ?? e.message)));
  console.log('FETCH POST', await fetch('http://backend/posted', { method: 'POST', body: 'x'.repeat(100000) }).then(async (r) => r.status + ' ' + await r.text(), (e) => 'failed ' + (e.cause?.message ?? e.message)));
  console.log('DIRECT', await get('http://127.0.0.1:${backendPort}/direct'));
  console.log('DIRECT FETCH', await fetch('http://localhost:${backendPort}/direct').then((r) => r.text(), (e) => 'failed ' + e.message));
})();
`,
  );
  const run = weftRun([], ['sh', '-c', `exec "${process.execPath}" "${app}"`]);
  t.after(() => run.child.kill('SIGKILL'));
  assert.equal(await run.exited, 0, run.output());
  const out = run.output();
  assert.match(out, /^HTTP\.GET 200 backend saw backend\/by-name$/m, out);
  assert.match(out, /^HTTP\.GET PORT 200 backend saw backend:9000\/with-port$/m, out);
  assert.match(out, /^FETCH 200 backend saw backend\/fetched$/m, out);
  assert.match(out, /^FETCH POST 200 backend saw backend\/posted$/m, out);
  assert.match(out, new RegExp(`^DIRECT 200 backend saw 127\\.0\\.0\\.1:${backendPort}/direct$`, 'm'), out);
  assert.match(out, new RegExp(`^DIRECT FETCH backend saw localhost:${backendPort}/direct$`, 'm'), out);
});

test('SIGKILL of weft run does not orphan the app: its guard stops the app (and what the app started)', { timeout: 60_000 }, async () => {
  const port = await freePort();
  // The app starts a child of its own too: the whole process group goes.
  const app = `
const { spawn } = require('node:child_process');
const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1 << 30)'], { stdio: 'ignore' });
console.log('PIDS ' + process.pid + ' ' + child.pid);
require('node:http').createServer((q, s) => s.end('up')).listen(Number(process.env.PORT), '127.0.0.1');
`;
  const run = weftRun(['--service', 'web', '--port', String(port)], [process.execPath, '-e', app]);
  // The app starts once the sidecar is ready (its certificate included): up to 20 s on a loaded CI machine.
  await waitFor(() => /PIDS \d+ \d+/.test(run.output()), 30_000, 'the app and its child started');
  const pids = /PIDS (\d+) (\d+)/.exec(run.output())!.slice(1).map(Number);
  assert.ok(pids.every(processAlive));
  run.child.kill('SIGKILL');
  await run.exited;
  await waitFor(() => !pids.some(processAlive), 15_000, 'the app and its child stopped after weft run was killed');
});
