// The mesh across hosts: three network namespaces on one bridge (test/helpers/hosts.ts),
// the control plane on `cp`, service alpha under `weft run` on `a`, beta on `b`,
// every process the real `bin/weft.js`. A call from a's app reaches b's app
// through both sidecars over the bridge; SIGKILL on b's whole process tree and
// beta's endpoint leaves the mesh within its lease.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Hosts, multiHostSkip, type Host, type Proc, withProcessLogs } from '../helpers/hosts';
import { serviceYaml } from '../helpers/resources';
import { tempDir, waitFor } from '../helpers/tmp';

const ROOT = path.resolve(__dirname, '../../..');
const BIN = path.join(ROOT, 'bin/weft.js');
const SKIP = multiHostSkip();
// Every host has a network stack of its own, so fixed ports never collide.
const API_PORT = 15000;
const XDS_PORT = 15010;
const APP_PORT = 8080;
const OUTBOUND = 15001;
const INBOUND = 15006;
/** The lease `weft run` asks for (src/run/registration-client.ts), renewed every third of it. */
const LEASE_TTL_MS = 15_000;
/** How often the registry removes expired leases (src/registry/registry.ts). */
const SWEEP_MS = 1000;

let hosts: Hosts;
let cp: Host;
let a: Host;
let b: Host;
let api: string;
const procs: Proc[] = [];
let setupMs = 0;

/** Alpha's app: relays every request to beta through its sidecar (HTTP_PROXY, set by weft run). */
const ALPHA_APP = `
const http = require('node:http');
const proxy = new URL(process.env.HTTP_PROXY);
http.createServer((req, res) => {
  http.get({ host: proxy.hostname, port: proxy.port, path: 'http://beta' + req.url, headers: { host: 'beta' } }, (r) => {
    let body = ''; r.on('data', (d) => (body += d));
    r.on('end', () => res.end('alpha relayed ' + r.statusCode + ' [' + (r.headers['x-weft-response-flags'] || '') + '] ' + body));
  }).on('error', (e) => { res.statusCode = 502; res.end('alpha: ' + e.message); });
}).listen(Number(process.env.PORT), '127.0.0.1');
`;

/** Beta's app: says what it saw and where it runs; listens on loopback only, so its sidecar is the one way in. */
const BETA_APP = `
require('node:http').createServer((req, res) => {
  console.log('BETA SAW ' + req.method + ' ' + req.url);
  res.end('beta on ' + process.env.HOST_ADDRESS + ' answered ' + req.url);
}).listen(Number(process.env.PORT), '127.0.0.1');
`;

function weft(host: Host, args: string[], env: NodeJS.ProcessEnv = {}): Proc {
  const proc = host.spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env });
  procs.push(proc);
  return proc;
}

function weftRun(host: Host, service: string, app: string): Proc {
  return weft(
    host,
    [
      'run', '--service', service, '--port', String(APP_PORT), '--address', host.address,
      '--xds', `${cp.address}:${XDS_PORT}`, '--api', api,
      '--outbound-port', String(OUTBOUND), '--inbound-port', String(INBOUND), '--admin-port', '15020',
      '--access-log', '-', '--', process.execPath, '-e', app,
    ],
    { HOST_ADDRESS: host.address },
  );
}

/** Registered endpoints of a service, read from the control plane's API by a request made on host a. */
async function endpointsSeenFromA(service: string): Promise<Array<{ address: string; ports: Record<string, number>; health: string }>> {
  const res = await a.fetch(`${api}/api/v1/endpoints?service=${service}`, { timeoutMs: 2000 });
  assert.equal(res.status, 200, res.body);
  return (JSON.parse(res.body) as { services: Record<string, Array<{ address: string; ports: Record<string, number>; health: string }>> }).services[`default/${service}`];
}

/** Access-log lines (JSON) a `weft run` printed. */
function accessLines(proc: Proc): Array<Record<string, unknown>> {
  return proc.stdout
    .split('\n')
    .filter((l) => l.includes('"direction"'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** On failure, the tails of every process's output. */
const explained = (fn: () => Promise<void>) => withProcessLogs(procs, fn);

before(async () => {
  if (SKIP) return;
  const started = Date.now();
  hosts = await Hosts.create({ name: 'mh', hosts: ['cp', 'a', 'b'] });
  [cp, a, b] = ['cp', 'a', 'b'].map((h) => hosts.get(h));
  api = `http://${cp.address}:${API_PORT}`;
  const config = tempDir();
  fs.writeFileSync(path.join(config, 'mesh.yaml'), serviceYaml('alpha', 80) + '---\n' + serviceYaml('beta', 80));
  const control = weft(cp, ['control', '--dev', '--host', cp.address, '--config', config, '--data-dir', tempDir(), '--xds-port', String(XDS_PORT), '--api-port', String(API_PORT)]);
  await control.waitForOutput(/API on http:\/\//, 15_000);
  setupMs = Date.now() - started;
});

after(async () => {
  await hosts?.destroy();
});

test('hosts: addresses only inside their namespaces, a bridge between them, isolate and reconnect', { skip: SKIP, timeout: 20_000 }, (t) =>
  explained(async () => {
    const started = Date.now();
    t.diagnostic(`hosts made and the control plane up on ${cp.address} in ${setupMs} ms`);
    assert.deepEqual(
      hosts.list.map((h) => h.address),
      [1, 2, 3].map((i) => hosts.subnet.replace(/0\/24$/, String(i))),
    );
    assert.match(hosts.subnet, /^198\.1[89]\.\d+\.0\/24$/);
    // The root namespace holds none of it.
    const rootAddrs = spawnSync('ip', ['-o', 'addr'], { encoding: 'utf8' }).stdout;
    const rootLinks = spawnSync('ip', ['-o', 'link'], { encoding: 'utf8' }).stdout;
    const rootRoutes = spawnSync('ip', ['route'], { encoding: 'utf8' }).stdout;
    assert.doesNotMatch(rootAddrs, /198\.1[89]\./);
    assert.doesNotMatch(rootRoutes, /198\.1[89]\./);
    assert.doesNotMatch(rootLinks, /v-(cp|a|b)\b/);
    const listed = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
    for (const ns of hosts.namespaces()) assert.match(listed, new RegExp(`^${ns}\\b`, 'm'));

    // Host a reaches the control plane's API on cp over the bridge.
    assert.equal((await a.fetch(`${api}/healthz`)).status, 200);
    assert.equal(await a.canConnect(API_PORT), false, "cp's API is not on a's loopback");

    // Isolated, a's packets go nowhere (a timeout, as with a cut cable); reconnected, it answers again.
    await a.isolate();
    assert.equal(await a.canConnect(API_PORT, cp.address, 300), false);
    await assert.rejects(a.fetch(`${api}/healthz`, { timeoutMs: 300 }), /timed out/);
    const cut = Date.now();
    await a.reconnect();
    await a.waitForPort(API_PORT, cp.address, 5000);
    t.diagnostic(`reachable again ${Date.now() - cut} ms after reconnect; ${cut - started} ms before it`);

    // exec runs inside the namespace: a sees its own address and no other.
    const addr = await a.exec('ip', ['-o', '-4', 'addr', 'show', 'eth0']);
    assert.equal(addr.code, 0, addr.stderr);
    assert.match(addr.stdout, new RegExp(`inet ${a.address.replace(/\./g, '\\.')}/24`));
  }),
);

test('alpha on host a calls beta on host b through both sidecars; SIGKILL on b and beta leaves the mesh within its lease', { skip: SKIP, timeout: 60_000 }, (t) =>
  explained(async () => {
    const started = Date.now();
    const beta = weftRun(b, 'beta', BETA_APP);
    const alpha = weftRun(a, 'alpha', ALPHA_APP);
    await Promise.all([beta.waitForOutput(/instance registered/, 20_000), alpha.waitForOutput(/instance registered/, 20_000)]);

    // The control plane, read from host a, lists beta at b's address (its sidecar's inbound port).
    const [endpoint, ...others] = await endpointsSeenFromA('beta');
    assert.deepEqual(others, []);
    assert.equal(endpoint.address, b.address);
    assert.deepEqual(Object.values(endpoint.ports), [INBOUND]);
    assert.equal(endpoint.health, 'healthy');
    t.diagnostic(`both instances registered ${Date.now() - started} ms after start`);

    // Beta's app is on b's loopback only: nothing on a reaches it but the mesh.
    assert.equal(await a.canConnect(APP_PORT, b.address, 1000), false);

    // a's app → a's sidecar → the bridge → b's sidecar → b's app, and back. Polled until a's
    // sidecar has beta's endpoint (xDS pushes it once beta registers).
    const token = crypto.randomBytes(4).toString('hex');
    let answer = '';
    const waited = await waitFor(
      async () => {
        const res = await a.fetch(`http://127.0.0.1:${APP_PORT}/hello-${token}`);
        answer = res.body;
        return res.status === 200 && answer.startsWith('alpha relayed 200');
      },
      15_000,
      "alpha's call to beta to succeed",
    );
    t.diagnostic(`first successful call ${waited} ms after both registered`);
    assert.equal(answer, `alpha relayed 200 [] beta on ${b.address} answered /hello-${token}`);
    await beta.waitForOutput(new RegExp(`BETA SAW GET /hello-${token}`), 5000);

    // The same through a's sidecar directly, as any HTTP client on a would call it.
    const direct = await a.fetch(`http://beta/direct-${token}`, { proxy: `http://127.0.0.1:${OUTBOUND}` });
    assert.equal(direct.status, 200, direct.body);
    assert.equal(direct.body, `beta on ${b.address} answered /direct-${token}`);
    await beta.waitForOutput(new RegExp(`BETA SAW GET /direct-${token}`), 5000);

    // The sidecars' access logs: a sent it to b's inbound port, b took it from a's address, as alpha (mTLS identity).
    await alpha.waitForOutput(new RegExp(`"path":"/direct-${token}"`), 5000);
    await beta.waitForOutput(new RegExp(`"direction":"inbound".*"path":"/direct-${token}"`), 5000);
    const out = accessLines(alpha).find((l) => l.path === `/direct-${token}`)!;
    assert.equal(out.direction, 'outbound');
    assert.equal(out.upstream, `${b.address}:${INBOUND}`);
    const inb = accessLines(beta).find((l) => l.path === `/direct-${token}` && l.direction === 'inbound')!;
    assert.match(String(inb.sourceAddress), new RegExp(`^${a.address.replace(/\./g, '\\.')}:`));
    assert.equal(inb.source, 'alpha.default');

    // Host b dies at once: weft run, its sidecar and its app (in a process group of its own), no goodbye.
    const killedAt = Date.now();
    const killed = beta.killTree('SIGKILL');
    assert.ok(killed.length >= 2, `weft run and its app: ${killed.join(',')}`);
    assert.equal((await beta.exited).signal, 'SIGKILL');
    await waitFor(async () => (await b.pids()).length === 0, 5000, 'nothing left running on host b');

    // No deregistration was sent: the lease runs out 10–15 s after the kill (it was renewed at most
    // TTL/3 before), and the next sweep removes it. The slack is for a loaded machine.
    const bound = LEASE_TTL_MS + SWEEP_MS + 2000;
    await waitFor(async () => (await endpointsSeenFromA('beta')).length === 0, bound + 2000, "beta's endpoint to leave the mesh");
    const gone = Date.now() - killedAt;
    t.diagnostic(`beta's endpoint left the mesh ${gone} ms after the SIGKILL (lease ${LEASE_TTL_MS} ms, sweep every ${SWEEP_MS} ms)`);
    assert.ok(gone <= bound, `gone within the lease and a sweep (+2 s slack): ${gone} ms`);
    assert.equal((await endpointsSeenFromA('alpha')).length, 1, 'alpha stays');

    // And a's sidecar stops sending there: no healthy upstream, said at once, not a connect timeout.
    let last = { status: 0, flags: '' };
    await waitFor(
      async () => {
        const res = await a.fetch(`http://beta/after-${token}`, { proxy: `http://127.0.0.1:${OUTBOUND}`, timeoutMs: 3000 });
        last = { status: res.status, flags: String(res.headers['x-weft-response-flags'] ?? '') };
        return res.status === 503 && last.flags === 'UH';
      },
      5000,
      "a's sidecar to answer 503 UH for beta",
    ).catch((err: Error) => assert.fail(`${err.message}; last answer ${JSON.stringify(last)}`));
    t.diagnostic(`test body took ${Date.now() - started} ms`);
  }),
);

test('destroy leaves no namespace, process or state file behind', { skip: SKIP, timeout: 20_000 }, async () => {
  const namespaces = hosts.namespaces();
  const pids = (await Promise.all(hosts.list.map((h) => h.pids()))).flat();
  assert.ok(pids.length > 0, 'processes were running on the hosts');
  await hosts.destroy();
  const listed = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
  for (const ns of namespaces) assert.doesNotMatch(listed, new RegExp(`^${ns}\\b`, 'm'));
  for (const pid of pids) assert.equal(fs.existsSync(`/proc/${pid}`) && !/\) Z /.test(readStat(pid)), false, `pid ${pid} still runs`);
  assert.equal(fs.existsSync(`/run/weft-hosts/${hosts.id}.json`), false);
  assert.equal(fs.existsSync(`/run/weft-hosts/net-${hosts.net}`), false);
});

function readStat(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return ') Z ';
  }
}
