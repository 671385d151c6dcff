// The monitor plugin's parts against real peers: probes (HTTP, TCP, exec) of
// real servers and commands; the thresholds; the probe loop reporting into a
// real unit channel, counted by the probed server; and `weft plugin monitor`
// itself as a process: its first verdict, a SIGHUP reload, exit 0 on SIGTERM.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import { silentLogger } from '../../src/observe/log';
import { HealthThresholds } from '../../src/plugins/monitor/health-thresholds';
import { Monitor } from '../../src/plugins/monitor/monitor-plugin';
import { parseProbe, ProbeSpecError, runProbe } from '../../src/plugins/monitor/probe';
import { unitRequest } from '../../src/plugins/plugin-runtime';
import { UnitChannel, type AppHealth } from '../../src/run/plugins/unit-channel';
import { tempDir, waitFor } from '../helpers/tmp';

const BIN = path.resolve(__dirname, '../../../bin/weft.js');
const closers: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

/** A real HTTP server whose /healthz answers `status()`; counts the probes it got. */
async function healthServer(status: () => number | 'hang'): Promise<{ port: number; probes: () => number }> {
  let probes = 0;
  const server = http.createServer((req, res) => {
    if (req.url !== '/healthz') return void res.writeHead(404).end();
    probes++;
    const s = status();
    if (s === 'hang') return; // answers never
    res.writeHead(s, s >= 300 && s < 400 ? { location: '/elsewhere' } : {}).end(String(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(() => {
    server.closeAllConnections();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return { port: (server.address() as net.AddressInfo).port, probes: () => probes };
}

/** A port nothing listens on (taken and released). */
async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

test('probe settings: URLs, a path or nothing on the app port, tcp and exec; a wrong one is named', () => {
  const app = { host: '127.0.0.1', port: 8080 };
  assert.deepEqual(parseProbe('/healthz', app), { kind: 'http', url: new URL('http://127.0.0.1:8080/healthz') });
  assert.deepEqual(parseProbe(undefined, app), { kind: 'tcp', host: '127.0.0.1', port: 8080 });
  assert.deepEqual(parseProbe('tcp:[::1]:9000', app), { kind: 'tcp', host: '::1', port: 9000 });
  assert.deepEqual(parseProbe('exec:test -f ready', app), { kind: 'exec', command: 'test -f ready' });
  assert.equal((parseProbe('https://127.0.0.1:8443/ready', app) as { url: URL }).url.href, 'https://127.0.0.1:8443/ready');
  assert.throws(() => parseProbe('tcp:host:70000', app), ProbeSpecError);
  assert.throws(() => parseProbe('ftp://x/', app), /http\(s\):\/\//);
  assert.throws(() => parseProbe('/healthz', { host: '127.0.0.1' }), /the app's port, but this unit has none/);
});

test('HTTP probes: 2xx and 3xx pass, 5xx fails with its status, a refused connect and a silent server fail with why', async () => {
  let status: number | 'hang' = 200;
  const srv = await healthServer(() => status);
  const probe = parseProbe('/healthz', { host: '127.0.0.1', port: srv.port });
  assert.deepEqual(await runProbe(probe, 1000), { ok: true, detail: 'HTTP 200' });
  status = 302;
  assert.deepEqual(await runProbe(probe, 1000), { ok: true, detail: 'HTTP 302' }, 'a redirect is an answer, not followed');
  status = 503;
  assert.deepEqual(await runProbe(probe, 1000), { ok: false, detail: 'HTTP 503' });
  status = 'hang';
  const started = Date.now();
  assert.deepEqual(await runProbe(probe, 300), { ok: false, detail: 'no answer within 300 ms' });
  assert.ok(Date.now() - started < 3000, 'the timeout bounds the probe');
  const refused = await runProbe(parseProbe(`http://127.0.0.1:${await closedPort()}/healthz`, { host: '127.0.0.1' }), 1000);
  assert.equal(refused.ok, false);
  assert.match(refused.detail, /ECONNREFUSED/);
});

test('TCP and exec probes: a listener passes, a closed port fails; exit 0 passes, an exit code fails with its stderr, a hung command is killed', async () => {
  const srv = await healthServer(() => 200);
  assert.equal((await runProbe(parseProbe(`tcp:127.0.0.1:${srv.port}`, { host: '127.0.0.1' }), 1000)).ok, true);
  const closed = await runProbe(parseProbe(undefined, { host: '127.0.0.1', port: await closedPort() }), 1000);
  assert.equal(closed.ok, false);
  assert.match(closed.detail, /ECONNREFUSED/);

  const dir = tempDir();
  const exec = (cmd: string, timeoutMs = 2000) => runProbe(parseProbe(`exec:${cmd}`, { host: '127.0.0.1' }), timeoutMs, { cwd: dir, env: { ...process.env, WHO: 'probe' } });
  assert.deepEqual(await exec('test "$WHO" = probe'), { ok: true, detail: 'exit code 0' }, 'runs with the given environment');
  assert.deepEqual(await exec('echo checking; echo "disk full" >&2; exit 3'), { ok: false, detail: 'exit code 3: disk full' });
  fs.writeFileSync(path.join(dir, 'ready'), '');
  assert.equal((await exec('test -f ready')).ok, true, 'runs in the given directory');
  const pidFile = path.join(dir, 'sleeper.pid');
  const hung = await exec(`sleep 30 & echo $! > ${pidFile}; wait`, 300);
  assert.deepEqual(hung, { ok: false, detail: 'still running after 300 ms (killed)' });
  const sleeper = Number(fs.readFileSync(pidFile, 'utf8'));
  await waitFor(() => !fs.existsSync(`/proc/${sleeper}`) || /^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${sleeper}/stat`, 'utf8')), 5000, 'what the command started to be killed too');
});

test('thresholds: unhealthy after failureThreshold failures in a row, healthy after successThreshold passes; no verdict before', () => {
  const t = new HealthThresholds({ failureThreshold: 3, successThreshold: 2 });
  const run = (results: boolean[]) => results.map((ok) => t.observe(ok) ?? '-').join(' ');
  assert.equal(run([false, false]), '- -');
  assert.equal(t.verdict, undefined, 'two failures of three: no verdict yet');
  assert.equal(run([true, false, false, false, false]), '- - - unhealthy -', 'a pass resets the failure streak; a verdict is said once');
  assert.equal(run([true, false, true, true, true]), '- - - healthy -', 'two passes in a row, not two passes');
  t.update({ failureThreshold: 1, successThreshold: 1 });
  assert.equal(run([false, true]), 'unhealthy healthy', 'reloaded thresholds apply to the next probe');
  const fresh = new HealthThresholds({ failureThreshold: 2, successThreshold: 1 });
  assert.equal(fresh.observe(true), 'healthy', 'a new monitor says healthy after successThreshold passes');
});

/** A real unit channel and the health changes it hands weft run. */
/** A unit channel and the health changes it took; `probes` (a probe counter) is read as each arrives, into `probesAtChange`. */
async function channel(probes?: () => number): Promise<{ ch: UnitChannel; changes: { health: AppHealth; reason?: string }[]; probesAtChange: number[] }> {
  const ch = await UnitChannel.open({ service: 'shop', namespace: 'default', appPort: 8080, appHost: '127.0.0.1' }, undefined, silentLogger);
  closers.push(() => ch.close());
  const changes: { health: AppHealth; reason?: string }[] = [];
  const probesAtChange: number[] = [];
  ch.onHealth((health, reason) => {
    changes.push({ health, ...(reason ? { reason } : {}) });
    if (probes) probesAtChange.push(probes());
  });
  changes.length = 0; // onHealth calls at once with the current health
  probesAtChange.length = 0;
  return { ch, changes, probesAtChange };
}

const report = (socket: string) => async (health: AppHealth, reason: string) => {
  const res = await unitRequest(socket, 'PUT', '/v1/health', { health, reason });
  if (res.status !== 204) throw new Error(`unit channel: ${res.status}`);
};

test('the probe loop reports unhealthy over the unit channel after exactly failureThreshold failing probes, healthy after successThreshold', async () => {
  let status = 200;
  const srv = await healthServer(() => status);
  // Probes are counted when each change arrives: a busy test may look later, after the next probe.
  const { ch, changes, probesAtChange } = await channel(() => srv.probes());
  let probesWhenSick = 0;
  let probesWhenWell = 0;
  const monitor = new Monitor({
    config: { probe: '/healthz', interval: 50, timeout: 2000, failureThreshold: 3, successThreshold: 2 },
    app: { host: '127.0.0.1', port: srv.port },
    report: report(ch.socketPath),
    log: silentLogger,
  });
  closers.push(() => monitor.stop());
  monitor.start();
  // Healthy after two passes (the channel already says healthy: no change for weft run).
  await waitFor(() => monitor.verdict === 'healthy', 5000, 'the first verdict');
  assert.deepEqual(changes, []);

  status = 500;
  const sickAt = srv.probes();
  await waitFor(() => changes.length === 1, 5000, 'unhealthy');
  // The report goes out before the next probe: the server has seen exactly the failing ones.
  probesWhenSick = probesAtChange[0] - sickAt;
  assert.equal(probesWhenSick, 3, 'three failing probes, not more');
  assert.deepEqual(changes[0], { health: 'unhealthy', reason: `GET http://127.0.0.1:${srv.port}/healthz: HTTP 500 (3 failed in a row)` });
  assert.equal(ch.appHealth, 'unhealthy');

  status = 204;
  const wellAt = srv.probes();
  await waitFor(() => changes.length === 2, 5000, 'healthy again');
  probesWhenWell = probesAtChange[1] - wellAt;
  assert.equal(probesWhenWell, 2);
  assert.deepEqual(changes[1], { health: 'healthy', reason: `GET http://127.0.0.1:${srv.port}/healthz: HTTP 204` });
  // Only changes are reported: more passing probes, no more reports.
  const seen = srv.probes();
  await waitFor(() => srv.probes() >= seen + 4, 5000, 'four more probes');
  assert.equal(changes.length, 2);
});

test('a verdict the unit channel did not take is sent again after the next probe', async () => {
  const srv = await healthServer(() => 500);
  const { ch, changes } = await channel();
  let refuse = true;
  let attempts = 0;
  const send = report(ch.socketPath);
  const monitor = new Monitor({
    config: { probe: `http://127.0.0.1:${srv.port}/healthz`, interval: 50, timeout: 500, failureThreshold: 1, successThreshold: 1 },
    app: { host: '127.0.0.1' },
    // The channel away (weft run busy or restarting its channel): the first reports fail as a refused socket would.
    report: async (h, r) => {
      attempts++;
      if (refuse) throw new Error('connect ENOENT unit.sock');
      await send(h, r);
    },
    log: silentLogger,
  });
  closers.push(() => monitor.stop());
  monitor.start();
  await waitFor(() => attempts >= 2, 5000, 'a second attempt');
  assert.equal(changes.length, 0);
  refuse = false;
  await waitFor(() => changes.length === 1, 5000, 'the verdict to arrive once the channel takes it');
  assert.equal(changes[0].health, 'unhealthy');
  const after = attempts;
  await waitFor(() => srv.probes() >= after + 3, 5000, 'more probes');
  assert.equal(attempts, after, 'sent once it was taken, not again');
});

test('`weft plugin monitor` as a process: reports its verdict, reloads its config on SIGHUP, exits 0 on SIGTERM', async () => {
  const sick = await healthServer(() => 500);
  const well = await healthServer(() => 200);
  const { ch, changes } = await channel();
  const config = (port: number) => JSON.stringify({ global: { probe: `http://127.0.0.1:${port}/healthz`, interval: '50ms', failureThreshold: '2' } });
  const file = path.join(ch.dir, 'monitor.config.json');
  fs.writeFileSync(file, config(sick.port));
  const child = spawn(process.execPath, [BIN, 'plugin', 'monitor'], {
    env: { ...process.env, WEFT_PLUGIN_NAME: 'monitor', WEFT_PLUGIN_TYPE: 'general', WEFT_PLUGIN_CONFIG: config(sick.port), WEFT_PLUGIN_CONFIG_FILE: file, WEFT_UNIT_SOCKET: ch.socketPath },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  closers.push(() => void child.kill('SIGKILL'));
  await waitFor(() => changes.length === 1, 15_000, `unhealthy (stderr: ${stderr})`);
  assert.match(changes[0].reason ?? '', /HTTP 500 \(2 failed in a row\)/);

  fs.writeFileSync(file, config(well.port));
  child.kill('SIGHUP');
  await waitFor(() => changes.length === 2, 10_000, `healthy after the reload (stderr: ${stderr})`);
  assert.equal(changes[1].health, 'healthy');
  assert.match(changes[1].reason ?? '', new RegExp(`127\\.0\\.0\\.1:${well.port}/healthz: HTTP 200`));
  assert.match(stderr, /config reloaded/);

  child.kill('SIGTERM');
  assert.equal(await exited, 0);
});

test('`weft plugin monitor` with a bad probe exits 2 naming the setting', async () => {
  const { ch } = await channel();
  const child = spawn(process.execPath, [BIN, 'plugin', 'monitor'], {
    env: { ...process.env, WEFT_PLUGIN_CONFIG: JSON.stringify({ global: { probe: 'tcp:nohost' } }), WEFT_UNIT_SOCKET: ch.socketPath },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  assert.equal(code, 2);
  assert.match(stderr, /weft plugin monitor: config\.global\.probe: http\(s\):\/\/<url>, \/<path>/);
});
