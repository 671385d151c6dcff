// Replicas as processes: two `weft control --dev` processes, each with its
// own config and data directories holding the same files, and a `weft proxy
// --xds A,B` process. The replica the sidecar is connected to is SIGKILLed
// under continuous requests: none fails, the sidecar's admin /xds shows it on
// the other replica within 5 s, and a config change written there reaches
// it. Then the CLI with `--api dead,good` (answers, naming the dead URL only
// with WEFT_DEBUG=1), with every URL dead (the error names each), and
// `weft run` registering through `--api dead,good`.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { docs, freePort, HttpUpstream, request, serviceYaml } from '../helpers/proxy-harness';
import { tempDir, waitFor } from '../helpers/tmp';

const ROOT = path.resolve(__dirname, '../../..');
const BIN = path.join(ROOT, 'bin/weft.js');
const T = { timeout: 30_000 };

interface Replica {
  id: string;
  configDir: string;
  proc: ChildProcess;
  xds: string;
  api: string;
  log: () => string;
}

const children: ChildProcess[] = [];
const upstreams: HttpUpstream[] = [];
let work: string;
let apiUp: HttpUpstream;
let replicas: Replica[];

function spawnWeft(args: string[], env: NodeJS.ProcessEnv = {}): { proc: ChildProcess; out: () => string } {
  const proc = spawn(process.execPath, [BIN, ...args], { cwd: work, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  children.push(proc);
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  return { proc, out: () => out };
}

function weft(args: string[], env: NodeJS.ProcessEnv = {}) {
  const res = spawnSync(process.execPath, [BIN, ...args], { cwd: work, encoding: 'utf8', timeout: 15_000, env: { ...process.env, WEFT_DEBUG: '', ...env } });
  return { code: res.status, out: res.stdout, err: res.stderr };
}

async function startReplica(id: string, files: Record<string, string>): Promise<Replica> {
  const configDir = path.join(work, `config-${id}`);
  fs.mkdirSync(configDir);
  for (const [name, yaml] of Object.entries(files)) fs.writeFileSync(path.join(configDir, name), yaml);
  const { proc, out } = spawnWeft(['control', '--dev', '--config', configDir, '--data-dir', path.join(work, `data-${id}`), '--xds-port', '0', '--api-port', '0', '--replica-id', id, '--log-level', 'warn']);
  await waitFor(() => /xDS on (\S+) .*API on (http:\/\/\S+?)\/api/.test(out()), 30_000, `replica ${id} started`);
  const [, xds, api] = /xDS on (\S+) .*API on (http:\/\/\S+?)\/api/.exec(out())!;
  return { id, configDir, proc, xds, api, log: out };
}


async function getJson(port: number, p: string): Promise<any> {
  const r = await request(port, { host: '127.0.0.1', path: p });
  return r.json();
}

before(async () => {
  work = tempDir(undefined, 'weft-replicas-');
  apiUp = await HttpUpstream.start('api');
  upstreams.push(apiUp);
  const files = { 'mesh.yaml': docs(serviceYaml({ name: 'web' }), serviceYaml({ name: 'api', endpoints: [apiUp.port] })) };
  replicas = await Promise.all([startReplica('replica-a', files), startReplica('replica-b', files)]);
});

after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await Promise.all(upstreams.map((u) => u.close()));
});

test('weft proxy --xds A,B: its replica is SIGKILLed under load; no request fails, it is on the other within 5 s and follows its config', T, async () => {
  const [outbound, inbound, adminPort] = [await freePort(), await freePort(), await freePort()];
  const proxy = spawnWeft([
    'proxy',
    '--xds', replicas.map((r) => r.xds).join(','),
    '--service', 'web',
    '--node-id', 'web-1',
    '--outbound-port', String(outbound),
    '--inbound-port', String(inbound),
    '--admin-port', String(adminPort),
    '--log-level', 'warn',
  ]);
  await waitFor(async () => (await request(adminPort, { host: '127.0.0.1', path: '/ready' }).catch(() => undefined))?.status === 200, 20_000, 'the sidecar ready');
  const xds0 = await getJson(adminPort, '/xds');
  assert.equal(xds0.connected, true);
  assert.deepEqual(xds0.servers, replicas.map((r) => r.xds));
  const first = replicas.find((r) => r.xds === xds0.server)!;
  const second = replicas.find((r) => r !== first)!;

  const failures: string[] = [];
  let ok = 0;
  const deadline = Date.now() + 10_000;
  const worker = async () => {
    while (ok + failures.length < 2000 && Date.now() < deadline) {
      try {
        const r = await request(outbound, { host: 'api' });
        if (r.status === 200) ok++;
        else failures.push(`HTTP ${r.status} ${r.headers['x-weft-response-flags'] ?? ''}`);
      } catch (err) {
        failures.push(String(err));
      }
    }
  };
  const load = Promise.all([worker(), worker()]);
  await waitFor(() => ok >= 50, 5000, 'requests flowing');
  const killedAt = Date.now();
  first.proc.kill('SIGKILL');
  await waitFor(
    async () => {
      const x = await getJson(adminPort, '/xds');
      return x.connected && x.server === second.xds;
    },
    5000,
    'the sidecar connected to the other replica',
  );
  const failoverMs = Date.now() - killedAt;

  const extra = await HttpUpstream.start('extra');
  upstreams.push(extra);
  fs.writeFileSync(path.join(second.configDir, 'extra.yaml'), serviceYaml({ name: 'extra', endpoints: [extra.port] }));
  await waitFor(async () => (await request(outbound, { host: 'extra' }).catch(() => undefined))?.status === 200, 5000, 'the change on the other replica reaches the sidecar');
  await load;
  assert.deepEqual(failures, [], `${failures.length} of ${ok + failures.length} requests failed`);
  process.stderr.write(`# SIGKILL: on the other replica ${failoverMs} ms later; ${ok} requests, none failed\n`);

  // weft status, the dead replica's API first: the node and the replica serving it; the dead URL is not named.
  const status = weft(['status', '--api', `${first.api},${second.api}`]);
  assert.equal(status.code, 0, status.err);
  assert.match(status.out, new RegExp(`^web-1\\s+${second.id}\\s+web\\.default\\s+sidecar\\s+delta\\s+SYNCED`, 'm'));
  assert.equal(status.err, '');
  const debug = weft(['status', '--api', `${first.api},${second.api}`], { WEFT_DEBUG: '1' });
  assert.equal(debug.code, 0, debug.err);
  assert.ok(debug.err.includes(first.api), `WEFT_DEBUG=1 names the unreachable URL: ${debug.err}`);
  proxy.proc.kill('SIGTERM');
});

test('the CLI with --api dead,good answers from the good one; with WEFT_API too; all dead, the error names every URL', T, async () => {
  const good = replicas.find((r) => r.proc.exitCode === null && r.proc.signalCode === null)!;
  const dead = `http://127.0.0.1:${await freePort()}`;
  const dead2 = `http://127.0.0.1:${await freePort()}`;

  const get = weft(['get', 'services', '--api', `${dead},${good.api}`]);
  assert.equal(get.code, 0, get.err);
  assert.match(get.out, /^default\s+api\s/m);
  assert.equal(get.err, '', 'the dead URL is not named when another answers');
  const viaEnv = weft(['endpoints'], { WEFT_API: `${dead},${good.api}` });
  assert.equal(viaEnv.code, 0, viaEnv.err);
  assert.match(viaEnv.out, /api/);
  const debug = weft(['get', 'services', '--api', `${dead},${good.api}`], { WEFT_DEBUG: '1' });
  assert.equal(debug.code, 0);
  assert.match(debug.err, new RegExp(`GET /api/v1/resources/Service: ${dead.replace(/[.:/]/g, '\\$&')} unreachable \\(connect ECONNREFUSED[^)]*\\); trying ${good.api.replace(/[.:/]/g, '\\$&')}`));

  // An HTTP error is an answer, not a reason to try the next URL.
  const missing = weft(['get', 'service', 'nope', '--api', `${good.api},${dead}`], { WEFT_DEBUG: '1' });
  assert.equal(missing.code, 1);
  assert.match(missing.err, /not found/);
  assert.doesNotMatch(missing.err, /trying/);

  for (const args of [['get', 'services', '--api', `${dead},${dead2}`], ['status', '--api', `${dead},${dead2}`]]) {
    const none = weft(args);
    assert.equal(none.code, 1, args.join(' '));
    assert.match(none.err, /cannot reach the control plane at /);
    assert.ok(none.err.includes(`${dead} (`) && none.err.includes(`${dead2} (`), `every URL named: ${none.err}`);
  }
  const bad = weft(['get', 'services', '--api', `${good.api},localhost:15000`]);
  assert.equal(bad.code, 1);
  assert.match(bad.err, /--api.*"localhost:15000" is not an http:\/\/ or https:\/\/ URL/);
  const badXds = weft(['proxy', '--xds', '127.0.0.1:1,nohost']);
  assert.equal(badXds.code, 1);
  assert.match(badXds.err, /--xds.*"nohost" is not host:port/);
});

test('weft run --xds dead,good --api dead,good registers with the good replica', T, async () => {
  const good = replicas.find((r) => r.proc.exitCode === null && r.proc.signalCode === null)!;
  const deadXds = `127.0.0.1:${await freePort()}`;
  const deadApi = `http://127.0.0.1:${await freePort()}`;
  const port = await freePort();
  const app = `require('node:http').createServer((q, s) => s.end('app')).listen(${port}, '127.0.0.1'); process.on('SIGTERM', () => process.exit(0));`;
  const run = spawnWeft(['run', '--service', 'web', '--port', String(port), '--xds', `${deadXds},${good.xds}`, '--api', `${deadApi},${good.api}`, '--drain-seconds', '0.2', '--log-level', 'warn', '--', process.execPath, '-e', app]);
  const registered = async () => {
    const r = await fetch(`${good.api}/api/v1/registrations`).then((res) => res.json() as Promise<{ items: { service: string }[] }>);
    return r.items.some((i) => i.service === 'web');
  };
  await waitFor(registered, 15_000, 'registered on the good replica');
  const exited = new Promise((r) => run.proc.once('exit', r));
  run.proc.kill('SIGTERM');
  await exited;
  await waitFor(async () => !(await registered()), 5000, 'deregistered');
  assert.doesNotMatch(run.out(), /registration failed/);
});
