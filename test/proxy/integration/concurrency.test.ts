// `weft proxy --concurrency 2` as a real process (the CLI) against a dev
// control plane and real HTTP upstreams: both workers serve (each new
// connection goes to whichever worker the kernel hands it), the admin port's
// counters are the sum over workers, a config change reaches every worker,
// a worker killed with SIGKILL is replaced while the other serves, the
// workload certificate the primary obtains serves strict mTLS in every
// worker, and SIGTERM stops the primary and every worker.
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as http from 'node:http';
import * as path from 'node:path';
import { docs, exitGuard, freePort, HttpUpstream, Mesh, serviceYaml, waitFor } from '../../helpers/proxy-harness';
import { processAlive } from '../../helpers/tmp';
import { killWeftRuns, spawnWeftRun } from '../../helpers/weft-run';

interface WorkerView {
  worker: number;
  pid?: number;
  ready: boolean;
  versions?: Record<string, string>;
  restarts: number;
  requests?: number;
}

/** `weft proxy --concurrency 2` through the CLI, a process of its own. */
class WeftProxy {
  stderr = '';
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;

  /** `child`: one started otherwise (weft run), whose admin port this reads. */
  constructor(
    readonly adminPort: number,
    args: string[],
    child?: ChildProcess,
  ) {
    const bin = path.resolve(__dirname, '../../../../bin/weft.js');
    this.child = child ?? spawn(process.execPath, [bin, 'proxy', '--xds', mesh.xdsAddress, '--admin-port', String(adminPort), '--concurrency', '2', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child.stderr!.on('data', (d) => (this.stderr += d));
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
    proxies.push(this);
  }

  async ready(): Promise<void> {
    await waitFor(async () => (await fetch(`http://127.0.0.1:${this.adminPort}/ready`).then((r) => r.status, () => 0)) === 200, 20_000, 'weft proxy --concurrency 2 ready');
    await waitFor(async () => (await this.workers()).every((w) => w.ready), 20_000, 'both workers ready');
  }

  async admin(p: string): Promise<any> {
    const res = await fetch(`http://127.0.0.1:${this.adminPort}${p}`);
    assert.equal(res.status, 200, `GET ${p}`);
    return p === '/stats/prometheus' ? res.text() : res.json();
  }

  async workers(): Promise<WorkerView[]> {
    const list = (await this.admin('/workers')) as WorkerView[];
    for (const w of list) if (w.pid) pids.add(w.pid);
    return list;
  }
}

let mesh: Mesh;
let web: HttpUpstream;
let api: HttpUpstream;
let secureApp: HttpUpstream | undefined;
let proxy: WeftProxy;
const proxies: WeftProxy[] = [];
let outbound = 0;
let metricsPort = 0;
/** Every worker pid seen, killed in `after` if the test failed before SIGTERM did it. */
const pids = new Set<number>();

const admin = (p: string) => proxy.admin(p);
const workers = () => proxy.workers();

/** One request on a connection of its own (so the kernel picks a worker for each): status and the upstream that answered. */
function get(host: string, path = '/', port = outbound): Promise<{ status: number; upstream: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, headers: { host }, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode!, upstream: String(res.headers['x-upstream'] ?? '') }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Batches of `parallel` concurrent requests to `host`, all expected 200 from `upstream`, until `done` (at most `max` requests). */
async function sendUntil(host: string, upstream: string, done: () => Promise<boolean>, max = 2000, parallel = 8, path = '/'): Promise<number> {
  let sent = 0;
  while (sent < max) {
    const results = await Promise.all(Array.from({ length: parallel }, () => get(host, path)));
    sent += parallel;
    for (const r of results) assert.deepEqual(r, { status: 200, upstream }, `request ${sent} to ${host}`);
    if (await done()) return sent;
  }
  assert.fail(`still not done after ${max} requests to ${host}: ${JSON.stringify(await workers())}`);
}

/** The sum of a counter family's samples in /stats/prometheus (of the admin port, or of the --metrics-address listener). */
async function total(family: string, metricsListener = false): Promise<number> {
  const text = metricsListener ? await fetch(`http://127.0.0.1:${metricsPort}/stats/prometheus`).then((r) => r.text()) : ((await admin('/stats/prometheus')) as string);
  let n = 0;
  for (const line of text.split('\n')) if (line.startsWith(`${family}{`) || line.startsWith(`${family} `)) n += Number(line.slice(line.lastIndexOf(' ') + 1));
  return n;
}

before(async () => {
  web = await HttpUpstream.start('web');
  api = await HttpUpstream.start('api');
  mesh = await Mesh.start({ 'web.yaml': serviceYaml({ name: 'web', endpoints: [web.port] }) });
  const [adminPort, inbound] = [await freePort(), await freePort()];
  [outbound, metricsPort] = [await freePort(), await freePort()];
  proxy = new WeftProxy(adminPort, ['--node-id', 'concurrency-1', '--outbound-port', String(outbound), '--inbound-port', String(inbound), '--metrics-address', `127.0.0.1:${metricsPort}`]);
  await proxy.ready();
}, { timeout: 45_000 });

after(async () => {
  exitGuard();
  for (const p of proxies) p.child.kill('SIGKILL');
  killWeftRuns();
  for (const pid of pids) if (processAlive(pid)) process.kill(pid, 'SIGKILL');
  await mesh?.close();
  await Promise.all([web?.close(), api?.close(), secureApp?.close()]);
});

const T = { timeout: 60_000 };

test('both workers serve, and the admin counters are their sum', T, async () => {
  const list = await workers();
  assert.equal(list.length, 2);
  assert.notEqual(list[0].pid, list[1].pid);
  const sent = await sendUntil('web', 'web', async () => (await workers()).every((w) => (w.requests ?? 0) > 0));
  const per = await workers();
  assert.ok(per.every((w) => w.requests! > 0), `every worker served: ${JSON.stringify(per)}`);
  // A request is counted when its response has gone out: the last ones may lag the client by a moment.
  await waitFor(async () => (await total('weft_requests_total')) === sent, 5000, `weft_requests_total = ${sent}`);
  assert.equal(await total('weft_downstream_connections_total'), sent);
  assert.equal(await total('weft_requests_total', true), sent, 'the --metrics-address listener serves the same sum');
  assert.equal(per.reduce((n, w) => n + w.requests!, 0), sent, 'per-worker requests add up to the total');
  assert.equal(web.requests, sent);
});

test('a config change from the control plane reaches every worker', T, async () => {
  mesh.write('api.yaml', serviceYaml({ name: 'api', endpoints: [api.port] }));
  // Each worker reports the versions it applied; they must be the ones the primary ACKed.
  await waitFor(
    async () => {
      const xds = (await admin('/xds')) as { types: Record<string, { version?: string }> };
      const clusters = (await admin('/clusters')) as { name: string }[];
      if (!clusters.some((c) => c.name.includes('api'))) return false;
      return (await workers()).every((w) => w.ready && Object.entries(w.versions ?? {}).every(([k, v]) => v === xds.types[k].version));
    },
    15_000,
    'every worker on the config with the api service',
  );
  const before = new Map((await workers()).map((w) => [w.worker, w.requests!]));
  // Every worker answers for the new service (a worker without it would answer 404 NR).
  await sendUntil('api', 'api', async () => (await workers()).every((w) => w.requests! > before.get(w.worker)!));
});

test('admin /requests and /tap see the requests of every worker', T, async () => {
  // /requests: the workers' rings merged, oldest first.
  const ring = (await admin('/requests?limit=5&authority=api')) as { capacity: number; items: { time: number; authority: string }[] };
  assert.equal(ring.capacity, 2000, 'two rings of 1000');
  assert.equal(ring.items.length, 5);
  assert.ok(ring.items.every((r) => r.authority === 'api'), JSON.stringify(ring.items));
  assert.deepEqual([...ring.items].sort((a, b) => a.time - b.time), ring.items);
  // /tap: the primary asks the workers for records while someone taps; enough requests that both serve some.
  const res = await fetch(`http://127.0.0.1:${proxy.adminPort}/tap`);
  const reader = res.body!.getReader();
  let text = '';
  const count = (path: string) => text.split('\n').filter((l) => l.includes(`"path":"${path}"`)).length;
  const reading = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      text += Buffer.from(value).toString();
    }
  })();
  try {
    // Taps start asynchronously in the workers: send until records arrive, then count a marked batch.
    await sendUntil('web', 'web', async () => count('/warm') > 0, 2000, 8, '/warm');
    const before = new Map((await workers()).map((w) => [w.worker, w.requests!]));
    const sent = await sendUntil('web', 'web', async () => (await workers()).every((w) => w.requests! > before.get(w.worker)!), 2000, 8, '/tapped');
    await waitFor(() => count('/tapped') >= sent, 5000, `${sent} tap records`);
    assert.equal(count('/tapped'), sent);
  } finally {
    await reader.cancel();
    await reading.catch(() => {});
  }
});

test('a worker killed with SIGKILL is replaced; the proxy keeps serving and its counts stay', T, async () => {
  const [victim, other] = await workers();
  const counted = await total('weft_requests_total');
  process.kill(victim.pid!, 'SIGKILL');
  await waitFor(() => !processAlive(victim.pid!), 5000, 'the worker gone');
  // The other worker takes every connection meanwhile.
  for (let i = 0; i < 20; i++) assert.deepEqual(await get('web'), { status: 200, upstream: 'web' });
  await waitFor(
    async () => {
      const w = (await workers()).find((x) => x.worker === victim.worker)!;
      return w.pid !== undefined && w.pid !== victim.pid && w.ready && w.restarts === 1;
    },
    20_000,
    'a replacement worker, ready',
  );
  assert.equal((await workers()).find((x) => x.worker === other.worker)!.pid, other.pid, 'the other worker was not touched');
  // What the dead worker counted stays in the totals (it was reported at the scrape just before).
  await waitFor(async () => (await total('weft_requests_total')) === counted + 20, 5000, `weft_requests_total = ${counted + 20}`);
  assert.match(proxy.stderr, /proxy worker exited; starting a replacement/);
});

test("the workload certificate the primary obtained serves strict mTLS in every worker", T, async () => {
  secureApp = await HttpUpstream.start('secure');
  mesh.write(
    'secure.yaml',
    docs(
      serviceYaml({ name: 'secure', port: 81, dependsOn: [] }),
      serviceYaml({ name: 'shop', dependsOn: ['secure'] }),
      `apiVersion: weft.dev/v1
kind: MeshTLS
metadata: { name: secure-strict }
spec: { targetRef: { kind: Service, name: secure }, mode: strict }
---
apiVersion: weft.dev/v1
kind: TrafficPolicy
metadata: { name: secure }
spec: { targetRef: { name: secure }, connectionPool: { maxRequestsPerConnection: 1 } }
`,
    ),
  );
  const [inbound, adminPort, out] = [await freePort(), await freePort(), await freePort()];
  // Registered as `weft run` registers an instance (behind its sidecar's inbound port), once the control plane has read the file.
  const register = () => mesh.cp!.registry.register({ service: 'secure', address: '127.0.0.1', port: inbound, sidecar: true, ttlSeconds: 3600 });
  await waitFor(() => Promise.resolve(register()).then(() => true, () => false), 10_000, 'the secure Service known to the control plane');
  const secure = new WeftProxy(adminPort, ['--node-id', 'secure-1', '--service', 'secure', '--inbound-port', String(inbound), '--app-port', String(secureApp.port), '--outbound-port', String(out)]);
  await secure.ready(); // ready only once the primary holds its certificate
  const certs = await secure.admin('/certs');
  assert.match(JSON.stringify(certs), /spiffe:\/\/cluster\.local\/ns\/default\/sa\/secure/);
  // A caller with a certificate of its own (in-process sidecar, real SDS); one upstream connection per request, so both workers see handshakes.
  const shop = await mesh.sidecar({ nodeId: 'shop-1', service: 'shop' });
  await shop.waitConfig((c) => (c.endpoints.get('outbound|81||secure.default')?.localities.length ?? 0) > 0, 10_000, "shop's route to secure");
  let sent = 0;
  while (!(await secure.workers()).every((w) => (w.requests ?? 0) > 0)) {
    assert.ok(sent < 1000, `a worker never served after ${sent} requests: ${JSON.stringify(await secure.workers())}`);
    const results = await Promise.all(Array.from({ length: 8 }, () => get('secure', '/', shop.outboundPort)));
    sent += 8;
    for (const r of results) assert.deepEqual(r, { status: 200, upstream: 'secure' });
  }
  const text = (await secure.admin('/stats/prometheus')) as string;
  const handshakes = Number(/^weft_downstream_tls_handshakes_total (\d+)$/m.exec(text)?.[1]);
  assert.ok(handshakes >= sent, `${handshakes} mTLS handshakes summed over workers for ${sent} requests`);
  // Strict: plaintext straight to the inbound port is refused by whichever worker takes it.
  for (let i = 0; i < 4; i++) await assert.rejects(get('secure', '/', inbound));
  secure.child.kill('SIGTERM');
  assert.equal(await secure.exited, 0);
});

test('weft run --proxy-concurrency 2: the app is served through both workers of its sidecar', T, async () => {
  mesh.write('hello.yaml', serviceYaml({ name: 'hello', port: 80, dependsOn: [] }));
  const [appPort, adminPort] = [await freePort(), await freePort()];
  const app = `require('node:http').createServer((q, s) => s.writeHead(200, { 'x-upstream': 'hello' }).end('hi')).listen(${appPort}, '127.0.0.1'); process.on('SIGTERM', () => process.exit(0))`;
  const run = spawnWeftRun({ xdsPort: mesh.cp!.xdsPort, apiPort: mesh.cp!.apiPort }, ['--service', 'hello', '--port', String(appPort), '--admin-port', String(adminPort), '--proxy-concurrency', '2'], [process.execPath, '-e', app]);
  const sidecar = new WeftProxy(adminPort, [], run.child);
  await sidecar.ready();
  // Reached from the first proxy, through the registered endpoint: weft run's inbound port.
  await waitFor(async () => (await get('hello')).status === 200, 15_000, 'hello registered and routed');
  let sent = 0;
  while (!(await sidecar.workers()).every((w) => (w.requests ?? 0) > 0)) {
    assert.ok(sent < 1000, `a worker never served after ${sent} requests: ${JSON.stringify(await sidecar.workers())}`);
    for (const r of await Promise.all(Array.from({ length: 8 }, () => get('hello')))) assert.deepEqual(r, { status: 200, upstream: 'hello' });
    sent += 8;
  }
  const live = (await sidecar.workers()).map((w) => w.pid!);
  run.child.kill('SIGTERM');
  assert.equal(await run.exited, 0, run.out().slice(-800)); // weft run exits with the app's code
  await waitFor(() => live.every((pid) => !processAlive(pid)), 5000, `workers ${live.join(', ')} gone`);
});

test('SIGTERM stops the primary and every worker', T, async () => {
  const live = (await workers()).map((w) => w.pid!);
  assert.equal(live.length, 2);
  proxy.child.kill('SIGTERM');
  const code = await proxy.exited;
  assert.equal(code, 0, `exit code (stderr: ${proxy.stderr.slice(-800)})`);
  await waitFor(() => live.every((pid) => !processAlive(pid)), 5000, `workers ${live.join(', ')} gone`);
});
