// Seeing the whole mesh from anywhere (issue 13, "Show it"): every process is
// the real bin/weft.js (or etcd) on a host of its own (network namespaces on
// one bridge, test/helpers/hosts.ts), NOT in dev mode:
//
//   e1         etcd (one member)
//   cpa cpb    `weft control --store etcd://e1` replicas cp-a and cp-b (TLS, credentials)
//   a          alpha under `weft run`, its sidecar connected to cp-a only
//   b          beta under `weft run`, its sidecar connected to cp-b only
//
// The sidecars push their metrics and keep their admin relay open to the
// replica they are connected to; neither replica's host runs a sidecar, and
// no admin port is reachable from it. So every answer below crosses hosts,
// and the half of it about the other replica's sidecar crosses replicas too:
// 1. traffic a → b shows in the topology of both replicas within 5 s, at the
//    rate the client sent (within 10 %), with each instance's host;
// 2. `weft tap beta` on cp-a's host streams beta's requests (beta is on cp-b);
// 3. an ejection seen by alpha's sidecar shows in `weft status` asked of cp-b,
//    and in the live half of `weft explain` there;
// 4. the telemetry streams refuse an outsider and the wrong workload.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { etcdMissing } from '../helpers/etcd-cluster';
import { EtcdOnHosts } from '../helpers/etcd-hosts';
import { Hosts, multiHostSkip, type FetchOptions, type FetchResult, type Host, type Proc, withProcessLogs } from '../helpers/hosts';
import { serviceYaml } from '../helpers/resources';
import { tempDir, waitFor } from '../helpers/tmp';
import type { Topology } from '../../src/observe/topology';

const ROOT = path.resolve(__dirname, '../../..');
const BIN = path.join(ROOT, 'bin/weft.js');
const SKIP = multiHostSkip() || etcdMissing() || false;
const API_PORT = 15000;
const XDS_PORT = 15010;
const APP_PORT = 8080;
const OUTBOUND = 15001;
const T = (ms: number) => ({ skip: SKIP, timeout: ms });

interface Replica {
  id: string;
  host: Host;
  xds: string;
  api: string;
  dataDir: string;
}

let hosts: Hosts;
let etcd: EtcdOnHosts;
let ra: Replica;
let rb: Replica;
let a: Host;
let b: Host;
const procs: Proc[] = [];
const work = SKIP ? '' : tempDir(undefined, 'weft-tmh-');
let adminTokenFile: string;
let adminToken: string;
let trustBundle: string;
const tokens: Record<string, string> = {};

/** Beta's app: 503 for /fail, else 200; loopback only, so its sidecar is the one way in. */
const BETA_APP = `
require('node:http').createServer((req, res) => {
  res.statusCode = req.url.startsWith('/fail') ? 503 : 200;
  res.end('beta answered ' + req.url);
}).listen(Number(process.env.PORT), '127.0.0.1');
`;
const ALPHA_APP = `require('node:http').createServer((req, res) => res.end('alpha')).listen(Number(process.env.PORT), '127.0.0.1');`;

/**
 * Paced load from host a to beta through alpha's sidecar: one request every PACE ms (a timer, so the
 * rate does not depend on latency) for MS ms; a progress line every 250 ms with the answers so far.
 */
const LOAD = `
const http = require('node:http');
const [OUT, MS, PACE] = [process.env.OUT, process.env.MS, process.env.PACE].map(Number);
const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
const started = Date.now();
let ok = 0, failed = 0, seq = 0;
const send = () => {
  const req = http.request({ host: '127.0.0.1', port: OUT, path: 'http://beta/load-' + seq++, headers: { host: 'beta' }, agent }, (res) => {
    res.resume();
    res.on('end', () => (res.statusCode === 200 ? ok++ : failed++));
  });
  req.on('error', () => failed++);
  req.end();
};
const timer = setInterval(() => (Date.now() - started < MS ? send() : null), PACE);
const progress = setInterval(() => console.log('PROGRESS ' + JSON.stringify({ ok, failed, ms: Date.now() - started, at: Date.now() })), 250);
setTimeout(() => { clearInterval(timer); setTimeout(() => { clearInterval(progress); console.log('DONE ' + JSON.stringify({ ok, failed })); agent.destroy(); }, 1000); }, MS);
`;

function weft(host: Host, args: string[], env: NodeJS.ProcessEnv = {}): Proc {
  const proc = host.spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: { WEFT_DEBUG: '', ...env } });
  procs.push(proc);
  return proc;
}

async function cli(host: Host, args: string[], timeoutMs = 30_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return host.exec(process.execPath, [BIN, ...args], { cwd: ROOT, env: { WEFT_DEBUG: '', WEFT_TOKEN_FILE: adminTokenFile, WEFT_CA_FILE: trustBundle }, timeoutMs });
}

async function startReplica(id: string, host: Host, secretFile: string): Promise<Replica> {
  const dataDir = path.join(work, `data-${id}`);
  const proc = weft(host, [
    'control', '--store', etcd.url, '--ca-key-secret-file', secretFile, '--replica-id', id,
    '--host', host.address, '--data-dir', dataDir, '--xds-port', String(XDS_PORT), '--api-port', String(API_PORT),
  ]);
  await proc.waitForOutput(/API on https:\/\//, 20_000);
  return { id, host, xds: `${host.address}:${XDS_PORT}`, api: `https://${host.address}:${API_PORT}`, dataDir };
}

function weftRun(host: Host, service: string, replica: Replica, app: string): Proc {
  return weft(host, [
    'run', '--service', service, '--port', String(APP_PORT), '--address', host.address,
    '--xds', replica.xds, '--api', `${ra.api},${rb.api}`, '--ca-file', trustBundle, '--join-token', tokens[service],
    '--outbound-port', String(OUTBOUND), '--', process.execPath, '-e', app,
  ]);
}

/** An admin API request from a host, verified with the trust bundle, with the admin credential. */
function api(host: Host, url: string, opts: FetchOptions = {}): Promise<FetchResult> {
  return host.fetch(url, { ...opts, ca: trustBundle, headers: { ...opts.headers, authorization: `Bearer ${adminToken}` } });
}

async function topology(r: Replica): Promise<Topology> {
  const res = await api(r.host, `${r.api}/api/v1/topology`, { timeoutMs: 3000 });
  assert.equal(res.status, 200, res.body);
  return JSON.parse(res.body) as Topology;
}

const explained = (fn: () => Promise<void>) => withProcessLogs(procs.filter((p) => p.command.includes(BIN)), fn, () => etcd?.logs() ?? '');

before(async () => {
  if (SKIP) return;
  hosts = await Hosts.create({ name: 'tmh', hosts: ['e1', 'cpa', 'cpb', 'a', 'b'] });
  [a, b] = ['a', 'b'].map((h) => hosts.get(h));
  await explained(async () => {
    etcd = await EtcdOnHosts.start([hosts.get('e1')]);
    const secretFile = path.join(work, 'ca-seal.secret');
    fs.writeFileSync(secretFile, crypto.randomBytes(32).toString('base64') + '\n', { mode: 0o600 });
    [ra, rb] = await Promise.all([startReplica('cp-a', hosts.get('cpa'), secretFile), startReplica('cp-b', hosts.get('cpb'), secretFile)]);
    adminTokenFile = [ra, rb].map((r) => path.join(r.dataDir, 'admin.token')).find((f) => fs.existsSync(f))!;
    adminToken = fs.readFileSync(adminTokenFile, 'utf8').trim();
    trustBundle = path.join(ra.dataDir, 'ca', 'trust-bundle.pem');
    const policy = `apiVersion: weft.dev/v1
kind: TrafficPolicy
metadata: { name: beta-outliers }
spec:
  targetRef: { kind: Service, name: beta }
  outlierDetection: { interval: 100ms, consecutive5xx: 3, baseEjectionTime: 60s, maxEjectionPercent: 100 }
`;
    const file = path.join(work, 'mesh.yaml');
    fs.writeFileSync(file, [serviceYaml('alpha', 80), serviceYaml('beta', 80), policy].join('---\n'));
    const applied = await cli(a, ['apply', '-f', file, '--api', ra.api]);
    assert.equal(applied.code, 0, applied.stderr);
    for (const s of ['alpha', 'beta']) {
      const r = await cli(a, ['token', 'create', '--service', s, '--api', ra.api]);
      assert.equal(r.code, 0, r.stderr);
      tokens[s] = r.stdout.trim();
    }
    weftRun(b, 'beta', rb, BETA_APP);
    weftRun(a, 'alpha', ra, ALPHA_APP);
    // Ready when alpha reaches beta through both sidecars.
    await waitFor(async () => (await a.fetch('http://beta/ready', { proxy: `http://127.0.0.1:${OUTBOUND}`, timeoutMs: 1000 }).catch(() => ({ status: 0 }))).status === 200, 30_000, 'alpha → beta through the sidecars');
  });
});

after(async () => {
  for (const p of procs) p.killTree('SIGKILL');
  await etcd?.stop();
  await hosts?.destroy();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

test('traffic between two hosts shows in both replicas\' topology within 5 s, at the rate the client sent', T(60_000), (t) =>
  explained(async () => {
    const load = a.spawn(process.execPath, ['-e', LOAD], { env: { OUT: String(OUTBOUND), MS: '14000', PACE: '40' } });
    procs.push(load);
    const started = Date.now();
    const edgeOf = (t: Topology) => t.edges.find((e) => e.source === 'alpha.default' && e.destination === 'beta.default');
    // Seen from cp-b, whose sidecar (beta) saw the requests arrive, and cp-a (alpha's, which sent them).
    let seen: Topology[] = [];
    const seenMs = await waitFor(async () => {
      seen = await Promise.all([topology(ra), topology(rb)]);
      return seen.every((t) => (edgeOf(t)?.rps ?? 0) > 0);
    }, 5000, 'the a → b edge with traffic in both replicas\' topology').catch((err: Error) => assert.fail(`${err.message}; they show ${JSON.stringify(seen)}`));
    t.diagnostic(`the edge showed in both replicas ${seenMs} ms after the load started (${Date.now() - started} ms with the last reads)`);

    // Once the window (10 s) holds only steady traffic: the client's own rate over its last 10 s.
    await load.waitForOutput(/"ms":1[3-9]\d\d\d/, 20_000);
    const progress = (load.stdout.match(/^PROGRESS .*$/gm) ?? []).map((l) => JSON.parse(l.slice(9)) as { ok: number; at: number });
    const last = progress[progress.length - 1];
    const first = progress.find((p) => p.at >= last.at - 10_000)!;
    const clientRps = (last.ok - first.ok) / ((last.at - first.at) / 1000);
    const [ta, tb] = await Promise.all([topology(ra), topology(rb)]);
    t.diagnostic(`client ${clientRps.toFixed(2)} rps; cp-a shows ${edgeOf(ta)?.rps}, cp-b ${edgeOf(tb)?.rps}`);
    for (const [name, t] of [['cp-a', ta], ['cp-b', tb]] as const) {
      const edge = edgeOf(t)!;
      assert.ok(Math.abs(edge.rps - clientRps) <= 0.1 * clientRps, `${name}: edge at ${edge.rps} rps, the client sent ${clientRps.toFixed(2)} rps`);
      assert.equal(edge.successRate, 1);
      assert.deepEqual(t.replicas?.slice().sort(), ['cp-a', 'cp-b'], `${name} counts both replicas' sidecars`);
      const service = (s: string) => t.services.find((x) => x.name === s)!;
      assert.deepEqual(service('alpha.default').instances?.map((i) => [i.host, i.replica]), [[a.address, 'cp-a']], `${name}: alpha's instance and its host`);
      assert.deepEqual(service('beta.default').instances?.map((i) => [i.host, i.replica]), [[b.address, 'cp-b']], `${name}: beta's instance and its host`);
      assert.ok(Math.abs(service('beta.default').rps - clientRps) <= 0.1 * clientRps, `${name}: beta at ${service('beta.default').rps} rps`);
    }
    // Both replicas show the same topology: the same services and edges.
    assert.deepEqual(ta.services.map((s) => [s.name, s.proxies]), tb.services.map((s) => [s.name, s.proxies]));
    assert.deepEqual(ta.edges.map((e) => `${e.source}→${e.destination}`), tb.edges.map((e) => `${e.source}→${e.destination}`));
    await load.waitForOutput(/^DONE /m, 10_000);
  }),
);

test('`weft tap beta` on cp-a\'s host streams the requests of beta\'s sidecar, connected to cp-b on another host', T(40_000), () =>
  explained(async () => {
    const cpaHost = ra.host;
    const tap = cpaHost.spawn(process.execPath, [BIN, 'tap', 'beta', '--api', ra.api, '--duration', '25'], { cwd: ROOT, env: { WEFT_TOKEN_FILE: adminTokenFile, WEFT_CA_FILE: trustBundle } });
    procs.push(tap);
    await tap.waitForOutput(/# tapping 1 sidecar\(s\) of default\/beta on replica cp-b: beta~/, 10_000);
    const marker = `/tapped-${crypto.randomBytes(4).toString('hex')}`;
    // The tap is registered at the sidecar once its first batch could flow: send until one shows.
    await waitFor(async () => {
      await a.fetch(`http://beta${marker}`, { proxy: `http://127.0.0.1:${OUTBOUND}`, timeoutMs: 2000 });
      return tap.stdout.includes(marker);
    }, 10_000, `${marker} in the tap's output`);
    const line = tap.stdout.split('\n').find((l) => l.includes(marker))!;
    assert.match(line, new RegExp(`beta~\\S+ inbound +GET beta${marker} → 200 [\\d.]+ms alpha\\.default→beta\\.default`), `the caller is named from its mTLS identity: ${line}`);
    tap.kill('SIGINT');
  }),
);

test('an ejection by alpha\'s sidecar (host a, on cp-a) shows in `weft status` and `weft explain` asked of cp-b', T(40_000), () =>
  explained(async () => {
    for (let i = 0; i < 3; i++) {
      const res = await a.fetch(`http://beta/fail-${i}`, { proxy: `http://127.0.0.1:${OUTBOUND}`, timeoutMs: 2000 });
      assert.equal(res.status, 503);
    }
    let out = '';
    const ejected = new RegExp(`alpha~\\S+ \\(${a.address.replace(/\./g, '\\.')}\\)  outbound\\|80\\|\\|beta\\.default  ${b.address.replace(/\./g, '\\.')}:\\d+  ejected until \\S+ \\(1× ejected\\)`);
    await waitFor(async () => {
      const r = await cli(rb.host, ['status', '--api', rb.api]);
      out = r.stdout + r.stderr;
      return ejected.test(out);
    }, 10_000, `the ejection in weft status on cp-b (last output: ${out})`);

    const res = await api(rb.host, `${rb.api}/api/v1/explain?from=alpha&method=GET&url=${encodeURIComponent('http://beta/x')}`, { timeoutMs: 5000 });
    assert.equal(res.status, 200, res.body);
    const explain = JSON.parse(res.body) as { clusters?: { endpoints?: { address: string; live?: { node: string; outlier?: { ejected: boolean } }[] }[] }[] };
    const live = (explain.clusters ?? []).flatMap((c) => c.endpoints ?? []).flatMap((e) => e.live ?? []);
    assert.ok(live.some((l) => l.node.startsWith('alpha~') && l.outlier?.ejected === true), `explain on cp-b shows alpha's ejection: ${JSON.stringify(live)}`);
  }),
);

/** A gRPC call to a replica's telemetry streams from host a, with `token` (or none), claiming to be `service`'s node. */
async function telemetryAs(token: string | undefined, service: string): Promise<string> {
  const script = `
const grpc = require(${JSON.stringify(path.join(ROOT, 'node_modules/@grpc/grpc-js'))});
const fs = require('node:fs');
const { metricsServiceDefinition, adminRelayDefinition } = require(${JSON.stringify(path.join(ROOT, 'dist/src/observe/telemetry/telemetry-protocol'))});
const { ControlPlaneCredentials } = require(${JSON.stringify(path.join(ROOT, 'dist/src/xds/client/control-plane-tls'))});
const client = new grpc.Client(process.env.XDS, new ControlPlaneCredentials(fs.readFileSync(process.env.CA)));
const md = new grpc.Metadata();
if (process.env.TOKEN) md.set('authorization', 'Bearer ' + process.env.TOKEN);
const node = { id: 'intruder', metadata: { fields: { WEFT_SERVICE: { stringValue: process.env.SERVICE }, WEFT_ROLE: { stringValue: 'sidecar' } } } };
const results = {};
const done = () => { if (Object.keys(results).length === 2) { console.log('RESULT ' + JSON.stringify(results)); process.exit(0); } };
const m = metricsServiceDefinition().StreamMetrics;
const call = client.makeClientStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, md, {}, (err) => { results.metrics = err ? grpc.status[err.code] : 'OK'; done(); });
call.write({ identifier: { node }, envoy_metrics: [] });
const r = adminRelayDefinition().Connect;
const relay = client.makeBidiStreamRequest(r.path, r.requestSerialize, r.responseDeserialize, md);
relay.on('error', (err) => { results.relay = grpc.status[err.code]; done(); });
relay.on('data', () => {});
relay.write({ hello: { node } });
setTimeout(() => { console.log('RESULT ' + JSON.stringify(results)); process.exit(0); }, 8000);
`;
  const r = await a.exec(process.execPath, ['-e', script], { env: { XDS: ra.xds, CA: trustBundle, TOKEN: token ?? '', SERVICE: service }, timeoutMs: 15_000 });
  return /^RESULT (.*)$/m.exec(r.stdout)?.[1] ?? `no result: ${r.stdout} ${r.stderr}`;
}

test('the telemetry streams refuse an outsider and a workload that claims another service', T(40_000), () =>
  explained(async () => {
    assert.deepEqual(JSON.parse(await telemetryAs(undefined, 'beta')), { metrics: 'UNAUTHENTICATED', relay: 'UNAUTHENTICATED' });
    const wrong = JSON.parse(await telemetryAs(tokens.alpha, 'beta')) as Record<string, string>;
    assert.deepEqual(wrong, { metrics: 'PERMISSION_DENIED', relay: 'PERMISSION_DENIED' });
    // The intruder never shows up as a node with a metrics report.
    const t = await topology(ra);
    assert.ok(!t.services.flatMap((s) => s.instances ?? []).some((i) => i.nodeId === 'intruder'));
  }),
);
