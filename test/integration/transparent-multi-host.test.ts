// Transparent interception across hosts (issue 14, "Show it"): every process
// is the real bin/weft.js on a host of its own (network namespaces on one
// bridge, test/helpers/hosts.ts), NOT in dev mode:
//
//   cp   `weft control` (TLS, credentials), and a plain TCP server that is not in the mesh
//   a    alpha: `weft run --transparent --service alpha` of a program that only waits; the
//        clients below run inside its unit (nsenter into the program's network and mount
//        namespaces: the unit's resolv.conf included), with no proxy setting at all
//   b    three `weft run --transparent` units on one host: web (HTTP, strict mTLS, its app
//        on 0.0.0.0:8080), echo (TCP 9000) and greeter (gRPC 50051, a grpc-js server)
//
// Inside alpha's unit, `curl --noproxy '*'`, a raw TCP client (Python), a Python gRPC client
// (Debian python3-grpcio) and Node's fetch reach web, echo and greeter by name, through both
// sidecars, and each callee's sidecar names alpha as the caller (mTLS identity). A direct
// plaintext connection to web's app port from another host is refused. An unknown name fails
// to resolve at once; an undeclared port is refused; a destination outside the mesh passes
// through the host, or is refused under --egress mesh-only. After SIGTERM, and after SIGKILL
// of weft run, nothing is left: no namespace, link, rule, /etc/netns entry or app process.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Hosts, multiHostSkip, type Host, type Proc, withProcessLogs } from '../helpers/hosts';
import { serviceYaml } from '../helpers/resources';
import { processAlive, tempDir, waitFor } from '../helpers/tmp';

const ROOT = path.resolve(__dirname, '../../..');
const BIN = path.join(ROOT, 'bin/weft.js');
/** Debian's Python, where python3-grpcio installs (a python3 earlier on PATH may be another one). */
const PYTHON = '/usr/bin/python3';
const SKIP = multiHostSkip() || missingTools() || false;
const API_PORT = 15000;
const XDS_PORT = 15010;
const OUTSIDE_PORT = 7000;
const T = (ms: number) => ({ skip: SKIP, timeout: ms });

/** curl, python3 with grpcio, iptables, nsenter: outside CI a missing one skips, under CI=true it fails. */
function missingTools(): string | false {
  const checks: [string, string[], string][] = [
    ['curl', ['--version'], 'curl'],
    ['iptables', ['--version'], 'iptables'],
    ['nsenter', ['--version'], 'util-linux'],
    [PYTHON, ['-c', 'import grpc'], 'python3-grpcio'],
  ];
  for (const [cmd, args, pkg] of checks) {
    const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 10_000 });
    if (r.error || r.status !== 0) {
      if (process.env.CI === 'true') throw new Error(`transparent-multi-host: ${cmd} is missing (Debian package ${pkg})`);
      return `transparent-multi-host skipped: ${cmd} is missing (Debian package ${pkg})`;
    }
  }
  return false;
}

let hosts: Hosts;
let cp: Host;
let a: Host;
let b: Host;
let work: string;
let bundle: string;
let api: string;
const tokens: Record<string, string> = {};
const procs: Proc[] = [];

const WEB_APP = `require('node:http').createServer((req, res) => res.end('web saw ' + req.url)).listen(Number(process.env.PORT), '0.0.0.0');`;
const ECHO_APP = `require('node:net').createServer((s) => s.pipe(s)).listen(Number(process.env.PORT), '0.0.0.0');`;
const GREETER_APP = `
const grpc = require('@grpc/grpc-js');
const id = (b) => b;
const server = new grpc.Server();
server.addService(
  { Hello: { path: '/test.Greeter/Hello', requestStream: false, responseStream: false, requestSerialize: id, requestDeserialize: id, responseSerialize: id, responseDeserialize: id } },
  { Hello: (call, cb) => cb(null, Buffer.concat([Buffer.from('hello '), call.request])) },
);
server.bindAsync('0.0.0.0:' + process.env.PORT, grpc.ServerCredentials.createInsecure(), (err) => { if (err) throw err; });
`;
/** A program that knows nothing of the mesh: it says its pid (the test enters its namespaces) and waits. */
const WAITING_APP = `console.log('APP PID ' + process.pid); setInterval(() => {}, 1 << 30);`;

const PY_TCP = `
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
s.sendall(b'ping over tcp')
print(s.recv(100).decode())
`;
const PY_GRPC = `
import grpc
channel = grpc.insecure_channel('greeter:50051')
hello = channel.unary_unary('/test.Greeter/Hello')
print(hello(b'from python', timeout=10).decode())
`;
const NODE_FETCH = `fetch('http://web/from-fetch').then((r) => r.text()).then((t) => console.log(t), (e) => { console.log('FAILED', e.cause?.code ?? e.message); process.exit(1); });`;
const NODE_LOOKUP = `
const started = Date.now();
require('node:dns').lookup(process.argv[1], (err, address) => console.log(JSON.stringify({ code: err?.code, address, ms: Date.now() - started })));
`;

function weft(host: Host, args: string[]): Proc {
  const proc = host.spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: { WEFT_DEBUG: '' } });
  procs.push(proc);
  return proc;
}

interface Unit {
  proc: Proc;
  /** weft run's pid: the unit's namespace is weft-<pid>. */
  pid: number;
  name: string;
  appPid?: number;
}

async function transparentRun(host: Host, service: string, app: string, opts: { port?: number; adminPort?: number; egress?: string } = {}): Promise<Unit> {
  const proc = weft(host, [
    'run', '--transparent', '--service', service, '--address', host.address,
    ...(opts.port ? ['--port', String(opts.port)] : []),
    ...(opts.adminPort ? ['--admin-port', String(opts.adminPort)] : []),
    ...(opts.egress ? ['--egress', opts.egress] : []),
    '--xds', `${cp.address}:${XDS_PORT}`, '--api', api, '--ca-file', bundle, '--join-token', tokens[service],
    '--', process.execPath, '-e', app,
  ]);
  const [, name] = await proc.waitForOutput(/"unit":"(weft-\d+)"/, 30_000);
  const unit: Unit = { proc, pid: Number(name.slice(5)), name };
  units.push(unit);
  if (opts.port) await proc.waitForOutput(/instance registered/, 30_000);
  else unit.appPid = Number((await proc.waitForOutput(/APP PID (\d+)/, 30_000))[1]);
  return unit;
}

/** Runs a command inside a unit: the program's network and mount namespaces (so its resolv.conf too). */
function inUnit(host: Host, unit: Unit, argv: string[], timeoutMs = 20_000) {
  return host.exec('nsenter', ['-t', String(unit.appPid), '-n', '-m', ...argv], { cwd: ROOT, timeoutMs });
}

async function metrics(host: Host, adminPort: number): Promise<string> {
  const res = await host.fetch(`http://127.0.0.1:${adminPort}/stats/prometheus`, { timeoutMs: 3000 });
  assert.equal(res.status, 200);
  return res.body;
}

/** What a unit leaves on its host, if anything: namespace, links, rules, /etc/netns, the app. */
async function leftovers(host: Host, unit: Unit): Promise<string[]> {
  const left: string[] = [];
  if (fs.existsSync(`/run/netns/${unit.name}`)) left.push(`namespace ${unit.name}`);
  if (fs.existsSync(`/etc/netns/${unit.name}`)) left.push(`/etc/netns/${unit.name}`);
  const links = await host.exec('ip', ['-o', 'link']);
  if (links.stdout.includes(`wu${unit.pid}h`)) left.push(`link wu${unit.pid}h`);
  const rules = await host.exec('iptables-save');
  if (rules.stdout.includes(`weft-unit:${unit.name}`)) left.push('iptables rules');
  if (unit.appPid !== undefined && processAlive(unit.appPid)) left.push(`app pid ${unit.appPid}`);
  return left;
}

const explained = (fn: () => Promise<void>) => withProcessLogs(procs.filter((p) => p.command.includes(BIN)), fn);

let alpha: Unit;
let web: Unit;
const units: Unit[] = [];

before(async () => {
  if (SKIP) return;
  hosts = await Hosts.create({ name: 'tpx', hosts: ['cp', 'a', 'b'] });
  [cp, a, b] = ['cp', 'a', 'b'].map((h) => hosts.get(h));
  api = `https://${cp.address}:${API_PORT}`;
  work = tempDir(undefined, 'weft-tpx-');
  const config = path.join(work, 'config');
  const dataDir = path.join(work, 'data');
  fs.mkdirSync(config);
  const strictWeb = `apiVersion: weft.dev/v1\nkind: MeshTLS\nmetadata: { name: web-strict }\nspec: { targetRef: { kind: Service, name: web }, mode: strict }\n`;
  fs.writeFileSync(
    path.join(config, 'mesh.yaml'),
    [serviceYaml('alpha', 80), serviceYaml('web', 80), serviceYaml('echo', 9000, 'tcp'), serviceYaml('greeter', 50051, 'grpc'), strictWeb].join('---\n'),
  );
  const control = weft(cp, ['control', '--host', cp.address, '--config', config, '--data-dir', dataDir, '--xds-port', String(XDS_PORT), '--api-port', String(API_PORT)]);
  await explained(async () => {
    await control.waitForOutput(/API on https:\/\//, 20_000);
    bundle = path.join(dataDir, 'ca', 'trust-bundle.pem');
    for (const s of ['alpha', 'web', 'echo', 'greeter']) {
      const r = await cp.exec(process.execPath, [BIN, 'token', 'create', '--service', s, '--api', api], { cwd: ROOT, env: { WEFT_TOKEN_FILE: path.join(dataDir, 'admin.token'), WEFT_CA_FILE: bundle }, timeoutMs: 20_000 });
      assert.equal(r.code, 0, r.stderr);
      tokens[s] = r.stdout.trim();
    }
    // Host a forwards, so alpha's unit can reach destinations outside the mesh (passthrough egress).
    await a.exec('sh', ['-c', 'echo 1 > /proc/sys/net/ipv4/ip_forward']);
    const outside = cp.spawn(process.execPath, ['-e', `require('node:net').createServer((s) => s.end('outside answered ' + s.remoteAddress + '\\n')).listen(${OUTSIDE_PORT}, '${cp.address}', () => console.log('OUTSIDE READY'))`]);
    procs.push(outside);
    [web] = await Promise.all([
      transparentRun(b, 'web', WEB_APP, { port: 8080, adminPort: 15100 }),
      transparentRun(b, 'echo', ECHO_APP, { port: 9000, adminPort: 15101 }),
      transparentRun(b, 'greeter', GREETER_APP, { port: 50051, adminPort: 15102 }),
    ]);
    alpha = await transparentRun(a, 'alpha', WAITING_APP);
    await outside.waitForOutput(/OUTSIDE READY/, 10_000);
  });
});

after(async () => {
  for (const p of procs) p.killTree('SIGKILL');
  await hosts?.destroy();
  // killTree took the units' guards too: what they would have removed, the test does.
  for (const u of units) {
    spawnSync('ip', ['netns', 'del', u.name]);
    fs.rmSync(`/etc/netns/${u.name}`, { recursive: true, force: true });
    fs.rmSync(`/run/netns/${u.name}`, { force: true });
  }
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

test('inside a transparent unit, curl --noproxy, a raw TCP client, a Python gRPC client and Node fetch reach services on another host by name', T(90_000), () =>
  explained(async () => {
    // The three callees registered; the caller's sidecar learns their endpoints within a few seconds.
    await waitFor(async () => (await inUnit(a, alpha, ['curl', '--noproxy', '*', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '3', 'http://web/ready'])).stdout === '200', 30_000, 'alpha → web through both sidecars');
    const env = await inUnit(a, alpha, ['sh', '-c', "env | grep -iE '^(https?|all|no)_proxy=' || true"]);
    assert.equal(env.stdout.trim(), '', 'no proxy setting inside the unit');

    const curl = await inUnit(a, alpha, ['curl', '--noproxy', '*', '-sS', '--max-time', '5', 'http://web/from-curl']);
    assert.equal(curl.stdout, 'web saw /from-curl', curl.stderr);
    const curlNs = await inUnit(a, alpha, ['curl', '--noproxy', '*', '-sS', '--max-time', '5', 'http://web.default:80/qualified']);
    assert.equal(curlNs.stdout, 'web saw /qualified', curlNs.stderr);

    const tcp = await inUnit(a, alpha, [PYTHON, '-c', PY_TCP, 'echo', '9000']);
    assert.equal(tcp.stdout.trim(), 'ping over tcp', tcp.stderr);

    const grpc = await inUnit(a, alpha, [PYTHON, '-c', PY_GRPC]);
    assert.equal(grpc.stdout.trim(), 'hello from python', grpc.stderr);

    const fetched = await inUnit(a, alpha, [process.execPath, '-e', NODE_FETCH]);
    assert.equal(fetched.stdout.trim(), 'web saw /from-fetch', fetched.stderr);

    // Each callee's sidecar names the caller from its mTLS identity.
    const [mWeb, mEcho, mGreeter] = await Promise.all([metrics(b, 15100), metrics(b, 15101), metrics(b, 15102)]);
    assert.match(mWeb, /weft_requests_total\{direction="inbound",source="alpha\.default",destination="web\.default"[^}]*code="200"/);
    assert.match(mEcho, /weft_tcp_connections_total\{direction="inbound",source="alpha\.default",destination="echo\.default"[^}]*\} [1-9]/);
    assert.match(mGreeter, /weft_requests_total\{direction="inbound",source="alpha\.default",destination="greeter\.default"[^}]*code="200"/);
  }),
);

test('web\'s app port cannot be dialled around its strict sidecar from another host; its sidecar\'s port wants mTLS; alpha\'s VIPs answer alpha\'s unit only', T(30_000), () =>
  explained(async () => {
    // The app listens on 0.0.0.0:8080 — of its unit, which only b's sidecar reaches.
    assert.equal(await cp.canConnect(8080, b.address, 2000), false, 'a direct connection to the app port is refused');
    // The sidecar's inbound port is open, but a plaintext request gets no answer from web.
    const inbound = Number(/"inbound":(\d+)/.exec(web.proc.output())![1]);
    const res = await cp.fetch(`http://${b.address}:${inbound}/direct`, { timeoutMs: 3000 }).catch((err: Error) => ({ status: 0, body: err.message }));
    assert.notEqual(res.status, 200, `plaintext to a strict sidecar: ${res.status} ${res.body}`);
    // Alpha's VIPs call with alpha's identity: only alpha's unit may use them, not another process on its host.
    const lookup = await inUnit(a, alpha, [process.execPath, '-e', NODE_LOOKUP, 'web']);
    const vip = (JSON.parse(lookup.stdout) as { address: string }).address;
    assert.match(vip, /^2(4\d|5[0-4])\./);
    assert.equal(await a.canConnect(80, vip, 2000), false, `a process on host a outside the unit cannot use ${vip}:80`);
    const fromUnit = await inUnit(a, alpha, ['curl', '--noproxy', '*', '-sS', '--max-time', '5', `http://${vip}/by-vip`, '-H', 'host: web']);
    assert.equal(fromUnit.stdout, 'web saw /by-vip', fromUnit.stderr);
  }),
);

test('bad input: an unknown name fails to resolve at once; an undeclared port is refused; a non-mesh destination passes through the host', T(60_000), () =>
  explained(async () => {
    const lookup = async (name: string) => JSON.parse((await inUnit(a, alpha, [process.execPath, '-e', NODE_LOOKUP, name])).stdout) as { code?: string; address?: string; ms: number };
    const known = await lookup('echo');
    assert.match(known.address ?? '', /^2(4\d|5[0-4])\./, `a service name resolves to a VIP (240.0.0.0–254.255.255.255): ${JSON.stringify(known)}`);
    for (const name of ['nosuch', 'nosuch.default']) {
      const missing = await lookup(name);
      assert.equal(missing.code, 'ENOTFOUND', `${name}: ${JSON.stringify(missing)}`);
      assert.ok(missing.ms < 1000, `${name} failed in ${missing.ms} ms, not at once`);
    }
    const undeclared = await inUnit(a, alpha, ['curl', '--noproxy', '*', '-sS', '--max-time', '5', '-o', '/dev/null', '-w', '%{http_code}', 'http://web:81/']);
    assert.equal(undeclared.code, 7, `port 81 is not web's: refused (curl exit 7), got ${undeclared.code} ${undeclared.stderr}`);
    const outside = await inUnit(a, alpha, [PYTHON, '-c', PY_TCP, cp.address, String(OUTSIDE_PORT)]);
    assert.equal(outside.stdout.trim(), `outside answered ${a.address}`, `passthrough, masqueraded as host a: ${outside.stderr}`);
  }),
);

test('--egress mesh-only: services by name still work, anything else is refused at once', T(60_000), () =>
  explained(async () => {
    const unit = await transparentRun(a, 'alpha', WAITING_APP, { egress: 'mesh-only' });
    try {
      await waitFor(async () => (await inUnit(a, unit, ['curl', '--noproxy', '*', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '3', 'http://web/'])).stdout === '200', 30_000, 'web from the mesh-only unit');
      const started = Date.now();
      const outside = await inUnit(a, unit, [PYTHON, '-c', PY_TCP, cp.address, String(OUTSIDE_PORT)]);
      assert.notEqual(outside.code, 0);
      assert.match(outside.stderr, /ConnectionRefused|Connection refused/);
      assert.ok(Date.now() - started < 5000, 'refused at once, not left to time out');
    } finally {
      unit.proc.kill('SIGTERM');
      await unit.proc.exited;
    }
  }),
);

test('SIGTERM and SIGKILL of weft run leave nothing behind: no namespace, link, rule, resolv.conf or app', T(60_000), () =>
  explained(async () => {
    const termed = await transparentRun(a, 'alpha', WAITING_APP);
    const killed = await transparentRun(a, 'alpha', WAITING_APP);
    assert.notDeepEqual(await leftovers(a, killed), [], 'a running unit has its namespace and rules');
    termed.proc.kill('SIGTERM');
    await termed.proc.exited;
    assert.deepEqual(await leftovers(a, termed), [], 'after SIGTERM');
    killed.proc.kill('SIGKILL');
    // The guard does it once it sees weft run gone; it waits for the app's exit first.
    let left: string[] = [];
    await waitFor(async () => (left = await leftovers(a, killed)).length === 0, 20_000, 'the guard cleaning up after SIGKILL').catch(() => assert.fail(`after SIGKILL: ${left.join(', ')}`));
    // The other units on the hosts were not disturbed.
    const still = await inUnit(a, alpha, ['curl', '--noproxy', '*', '-sS', '--max-time', '5', 'http://web/still']);
    assert.equal(still.stdout, 'web saw /still');
  }),
);
