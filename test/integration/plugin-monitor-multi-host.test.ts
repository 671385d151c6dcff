// The monitor plugin across hosts (issue 16, "Show it": the monitor plugin pulling a sick instance out
// of load balancing; a crashing plugin restarted and counted). Every process is the real bin/weft.js
// on a host of its own (network namespaces on one bridge, test/helpers/hosts.ts), NOT in dev mode:
//
//   cp   `weft control`: xDS and the admin API over TLS, the first admin token in <data-dir>/admin.token
//   a    `weft run` of svc with its join token; the Plugin `monitor` ([weft, plugin, monitor]) beside it
//   b    `weft run --transparent` of svc: the same plugin runs inside the unit, where 127.0.0.1 is the app
//   c    `weft run` of caller (join token), with a Plugin `crasher` that exits at once, forever
//
// svc's app answers /healthz with 500 while a file `sick` is in its directory. The test makes b sick:
// its monitor reports unhealthy after two failed probes, weft run marks its registration unhealthy
// (with the probe's reason), the control plane sends it to caller's sidecar as UNHEALTHY, and every
// request from c goes to a; made well again, b is back in caller's load balancing. Meanwhile the
// crasher's restarts show in `weft status` (the real CLI) and the dashboard's service JSON. Every
// step waits for its event (the API, the caller's sidecar's /clusters, its answers), never a fixed time.
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Hosts, multiHostSkip, type Host, type Proc, withProcessLogs } from '../helpers/hosts';
import { serviceYaml } from '../helpers/resources';
import { tempDir } from '../helpers/tmp';

const ROOT = path.resolve(__dirname, '../../..');
const BIN = path.join(ROOT, 'bin/weft.js');
// Outside CI a machine without root, ip or iptables skips with the reason; under CI=true it fails instead.
const SKIP = multiHostSkip() || missingIptables() || false;
const API_PORT = 15000;
const XDS_PORT = 15010;
const APP_PORT = 8080;
const OUTBOUND = 15001;
const INBOUND = 15006;
const ADMIN = 15020;
const T = (ms: number) => ({ skip: SKIP, timeout: ms });

/** b's unit needs iptables for its host rules (as plugins-transparent.test.ts). */
function missingIptables(): string | false {
  const r = spawnSync('iptables', ['--version'], { encoding: 'utf8', timeout: 10_000 });
  if (!r.error && r.status === 0) return false;
  if (process.env.CI === 'true') throw new Error('plugin-monitor-multi-host: iptables is missing (Debian package iptables)');
  return 'plugin-monitor-multi-host skipped: iptables is missing (Debian package iptables)';
}

let hosts: Hosts;
let cp: Host;
let a: Host;
let b: Host;
let c: Host;
let api: string;
let work: string;
let bundle: string;
let adminTokenFile: string;
let adminToken: string;
const procs: Proc[] = [];
const units: string[] = [];
/** Each svc instance's working directory: a file `sick` there makes its /healthz answer 500. */
const dirs: Record<string, string> = {};

/** svc: says where it runs; /healthz is 500 while ./sick exists. */
const SVC_APP = `
const fs = require('node:fs');
require('node:http').createServer((req, res) => {
  if (req.url === '/healthz') {
    const sick = fs.existsSync('sick');
    res.statusCode = sick ? 500 : 200;
    return res.end(sick ? 'sick' : 'ok');
  }
  res.end('svc on ' + process.env.HOST_ADDRESS);
}).listen(Number(process.env.PORT), process.env.LISTEN);
`;
const CALLER_APP = `require('node:http').createServer((req, res) => res.end('caller')).listen(Number(process.env.PORT), '127.0.0.1');`;

const PLUGINS = `apiVersion: weft.dev/v1
kind: Plugin
metadata: { name: monitor }
spec:
  type: general
  command: [weft, plugin, monitor]
  targetRefs: [{ kind: Service, name: svc }]
  config:
    global: { probe: /healthz, interval: 200ms, timeout: 2s, failureThreshold: "2", successThreshold: "2" }
---
apiVersion: weft.dev/v1
kind: Plugin
metadata: { name: crasher }
spec:
  type: general
  command: [sh, -c, "echo CRASH; exit 1"]
  restartBackoff: { min: 100ms, max: 400ms }
  targetRefs: [{ kind: Service, name: caller }]
`;

function weft(host: Host, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Proc {
  const proc = host.spawn(process.execPath, [BIN, ...args], { cwd: opts.cwd ?? work, env: { WEFT_DEBUG: '', WEFT_TOKEN: '', WEFT_TOKEN_FILE: '', WEFT_API: '', ...opts.env } });
  procs.push(proc);
  return proc;
}

/** A CLI command run to its end on a host, as the operator (admin token file, trust bundle). */
async function cli(host: Host, args: string[]): Promise<{ stdout: string; stderr: string }> {
  const r = await host.exec(process.execPath, [BIN, ...args, '--api', api], { cwd: work, env: { WEFT_DEBUG: '', WEFT_TOKEN: '', WEFT_TOKEN_FILE: adminTokenFile, WEFT_CA_FILE: bundle }, timeoutMs: 20_000 });
  assert.equal(r.code, 0, `[${host.name}] weft ${args.join(' ')}: ${r.stderr}`);
  return r;
}

/** GET on the admin API from host c (https, verified with the trust bundle, the admin token). */
async function apiGet(p: string): Promise<any> {
  const res = await c.fetch(`${api}${p}`, { ca: bundle, headers: { authorization: `Bearer ${adminToken}` }, timeoutMs: 3000 });
  assert.equal(res.status, 200, `${p}: ${res.body}`);
  return JSON.parse(res.body);
}

interface Reg {
  id: string;
  service: string;
  address: string;
  health: string;
  healthReason?: string;
  plugins?: { name: string; type: string; state: string; restarts: number; lastExit?: string }[];
}

const registrations = async (): Promise<Reg[]> => (await apiGet('/api/v1/registrations')).items;
const svcOn = async (host: Host): Promise<Reg | undefined> => (await registrations()).find((r) => r.service === 'svc' && r.address === host.address);

/** Who answers a request to svc from c, through caller's sidecar. */
async function ask(): Promise<string> {
  const res = await c.fetch('http://svc/who', { proxy: `http://127.0.0.1:${OUTBOUND}`, timeoutMs: 3000 });
  assert.equal(res.status, 200, res.body);
  return res.body;
}

/** The health caller's sidecar holds for b's svc endpoint (its /clusters admin view), or undefined before it knows it. */
async function callerSeesB(): Promise<string | undefined> {
  const res = await c.fetch(`http://127.0.0.1:${ADMIN}/clusters`, { timeoutMs: 2000 });
  const clusters = JSON.parse(res.body) as { name: string; endpoints: { address: string; health: string }[] }[];
  const svc = clusters.find((x) => x.name.startsWith('outbound|') && x.name.endsWith('||svc.default'));
  return svc?.endpoints.find((e) => e.address === `${b.address}:${INBOUND}`)?.health;
}

/** Resolves when `check` is true (polled every `everyMs`, errors count as not yet); rejects after `timeoutMs` naming `what` and the last state. */
async function poll(check: () => Promise<boolean>, timeoutMs: number, what: string, everyMs = 100): Promise<number> {
  const started = Date.now();
  let last = '';
  for (;;) {
    try {
      if (await check()) return Date.now() - started;
      last = 'not yet';
    } catch (err) {
      last = (err as Error).message.split('\n')[0];
    }
    if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${last})`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

const explained = (fn: () => Promise<void>) => withProcessLogs(procs, fn);

before(async () => {
  if (SKIP) return;
  hosts = await Hosts.create({ name: 'mon', hosts: ['cp', 'a', 'b', 'c'] });
  [cp, a, b, c] = ['cp', 'a', 'b', 'c'].map((h) => hosts.get(h));
  api = `https://${cp.address}:${API_PORT}`;
  work = tempDir(undefined, 'weft-monitor-');
  const config = path.join(work, 'config');
  const dataDir = path.join(work, 'data');
  fs.mkdirSync(config);
  fs.writeFileSync(path.join(config, 'mesh.yaml'), [serviceYaml('svc', 80), serviceYaml('caller', 80), PLUGINS].join('---\n'));
  const control = weft(cp, ['control', '--host', cp.address, '--config', config, '--data-dir', dataDir, '--xds-port', String(XDS_PORT), '--api-port', String(API_PORT)]);
  await explained(async () => {
    await control.waitForOutput(/API on https?:\/\//, 15_000);
    assert.match(control.output(), /API on https:\/\//, 'not in dev mode: the API over TLS');
    adminTokenFile = path.join(dataDir, 'admin.token');
    adminToken = fs.readFileSync(adminTokenFile, 'utf8').trim();
    bundle = path.join(dataDir, 'ca', 'trust-bundle.pem');
    const [svcToken, callerToken] = (await Promise.all([cli(cp, ['token', 'create', '--service', 'svc']), cli(cp, ['token', 'create', '--service', 'caller'])])).map((r) => r.stdout.trim());
    const join = (token: string) => ['--xds', `${cp.address}:${XDS_PORT}`, '--api', api, '--ca-file', bundle, '--join-token', token, '--drain-seconds', '0.2'];
    for (const h of ['a', 'b']) {
      dirs[h] = path.join(work, `svc-${h}`);
      fs.mkdirSync(dirs[h]);
    }
    const svcA = weft(a, ['run', '--service', 'svc', '--port', String(APP_PORT), '--address', a.address, '--inbound-port', String(INBOUND), ...join(svcToken), '--', process.execPath, '-e', SVC_APP], {
      cwd: dirs.a,
      env: { HOST_ADDRESS: a.address, LISTEN: '127.0.0.1' },
    });
    const svcB = weft(b, ['run', '--transparent', '--service', 'svc', '--port', String(APP_PORT), '--address', b.address, '--inbound-port', String(INBOUND), ...join(svcToken), '--', process.execPath, '-e', SVC_APP], {
      cwd: dirs.b,
      env: { HOST_ADDRESS: b.address, LISTEN: '0.0.0.0' },
    });
    const caller = weft(c, ['run', '--service', 'caller', '--port', String(APP_PORT), '--address', c.address, '--outbound-port', String(OUTBOUND), '--admin-port', String(ADMIN), ...join(callerToken), '--', process.execPath, '-e', CALLER_APP]);
    units.push((await svcB.waitForOutput(/"unit":"(weft-\d+)"/, 30_000))[1]);
    await Promise.all([svcA, svcB, caller].map((p) => p.waitForOutput(/instance registered/, 30_000)));
    await Promise.all([svcA, svcB].map((p) => p.waitForOutput(/monitor started/, 15_000)));
  });
});

after(async () => {
  for (const p of procs) p.killTree('SIGKILL');
  await hosts?.destroy();
  for (const name of units) {
    spawnSync('ip', ['netns', 'del', name], { timeout: 10_000 });
    fs.rmSync(`/etc/netns/${name}`, { recursive: true, force: true });
    fs.rmSync(`/run/netns/${name}`, { force: true });
  }
});

test('a sick instance leaves the caller’s load balancing after its monitor’s threshold, with the reason in weft status and the dashboard, and comes back when well', T(120_000), (t: TestContext) =>
  explained(async () => {
    // Both instances serve caller's requests.
    const seen = new Set<string>();
    await poll(async () => (seen.add(await ask()), seen.size === 2), 30_000, 'requests from c to reach svc on a and on b', 20);
    assert.deepEqual([...seen].sort(), [`svc on ${a.address}`, `svc on ${b.address}`].sort());
    assert.equal((await svcOn(b))?.health, 'healthy');

    // b's app turns sick (inside b's transparent unit: its monitor probes 127.0.0.1 there).
    const sickAt = Date.now();
    fs.writeFileSync(path.join(dirs.b, 'sick'), '');
    const inRegistry = await poll(async () => (await svcOn(b))?.health === 'unhealthy', 15_000, "b's registration to turn unhealthy");
    await poll(async () => (await callerSeesB()) === 'unhealthy', 15_000, "caller's sidecar to hold b as unhealthy");
    t.diagnostic(`b sick → unhealthy in the registry ${inRegistry} ms, in caller's sidecar ${Date.now() - sickAt} ms (2 probes 200 ms apart)`);
    const reg = (await svcOn(b))!;
    assert.equal(reg.healthReason, 'GET http://127.0.0.1:8080/healthz: HTTP 500 (2 failed in a row)');
    assert.equal((await svcOn(a))?.health, 'healthy', 'a stays in');
    const answers = new Map<string, number>();
    for (let i = 0; i < 40; i++) {
      const who = await ask();
      answers.set(who, (answers.get(who) ?? 0) + 1);
    }
    assert.deepEqual([...answers], [[`svc on ${a.address}`, 40]], 'every request goes to the healthy instance');

    // What an operator sees: weft status (the real CLI, on cp) and the dashboard's service JSON.
    const status = (await cli(cp, ['status'])).stdout;
    t.diagnostic(status.slice(status.indexOf('Instances:')).trimEnd());
    const bLine = status.split('\n').find((l) => l.includes(`${b.address}:${INBOUND}`));
    assert.ok(bLine, status);
    assert.match(bLine, /svc\.default\s+\S+\s+unhealthy: GET http:\/\/127\.0\.0\.1:8080\/healthz: HTTP 500 \(2 failed in a row\)\s+monitor\(0↻\)/);
    assert.match(status, new RegExp(`svc\\.default\\s+${a.address.replace(/\./g, '\\.')}:${INBOUND}\\s+healthy\\s+monitor\\(0↻\\)`));
    const detail = await apiGet('/api/v1/services/default/svc');
    const bEndpoint = detail.endpoints.find((e: any) => e.address === b.address);
    assert.equal(bEndpoint.health, 'unhealthy');
    assert.equal(bEndpoint.healthReason, reg.healthReason);
    assert.deepEqual(bEndpoint.plugins.map((p: any) => [p.name, p.state, p.restarts]), [['monitor', 'running', 0]]);

    // Well again: two passing probes, then b is back for the caller.
    const wellAt = Date.now();
    fs.rmSync(path.join(dirs.b, 'sick'));
    await poll(async () => (await svcOn(b))?.health === 'healthy', 15_000, "b's registration to turn healthy again");
    await poll(async () => (await ask()) === `svc on ${b.address}`, 15_000, 'a request from c to reach b again', 20);
    t.diagnostic(`b well → back in caller's load balancing in ${Date.now() - wellAt} ms`);
    assert.equal((await svcOn(b))?.healthReason, undefined, 'no reason once healthy');
  }),
);

test('a crashing plugin is restarted and its restarts show in weft status and the dashboard JSON', T(60_000), () =>
  explained(async () => {
    // Restarts reach the registration with the next renewal (a third of its 15 s lease).
    let crasher: NonNullable<Reg['plugins']>[number] | undefined;
    await poll(
      async () => {
        crasher = (await registrations()).find((r) => r.service === 'caller')?.plugins?.find((p) => p.name === 'crasher');
        return (crasher?.restarts ?? 0) >= 3;
      },
      20_000,
      "crasher's restarts in caller's registration",
      250,
    );
    assert.equal(crasher!.type, 'general');
    assert.match(crasher!.lastExit ?? '', /^exit code 1$/);
    assert.ok(['running', 'restarting'].includes(crasher!.state), crasher!.state);

    const status = (await cli(c, ['status'])).stdout;
    const line = status.split('\n').find((l) => l.startsWith('caller.default'));
    assert.ok(line, status);
    const m = /crasher\((\d+)↻/.exec(line);
    assert.ok(m && Number(m[1]) >= 3, line);

    const detail = await apiGet('/api/v1/services/default/caller');
    const shown = detail.endpoints.find((e: any) => e.address === c.address)?.plugins?.find((p: any) => p.name === 'crasher');
    assert.ok(shown && shown.restarts >= 3 && shown.lastExit === 'exit code 1', JSON.stringify(detail.endpoints));
  }),
);
