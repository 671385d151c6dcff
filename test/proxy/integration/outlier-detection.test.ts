// Outlier detection and active health checks in the sidecar: a TrafficPolicy's
// outlierDetection and healthCheck reach the sidecar as Cluster
// outlier_detection and health_checks; the sidecar ejects endpoints that
// answer 5xx, fail to connect or reset, or whose success rate lags, for a
// time that grows on repeat, within max_ejection_percent; it checks
// endpoints over HTTP, TCP and gRPC and picks only those that pass; /clusters
// and /stats/prometheus show it.
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import type * as http from 'node:http';
import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { admin, docs, exitGuard, freePort, HttpUpstream, Mesh, parsePrometheus, RawUpstream, request, serviceYaml, sleep, T, waitFor, type Sidecar } from '../../helpers/proxy-harness';
import { runStatus } from '../../../src/cli/commands/status';
import { EchoClient, startEchoServer, unary, type EchoServer } from '../../helpers/grpc-echo';

const FLAG = 'x-weft-response-flags';

/** An HTTP upstream whose answers the test steers: 200, 503, or every other one 503; /healthz says 200 or 503. */
class Steered {
  mode: 'ok' | '503' | 'alternate' = 'ok';
  healthy = true;
  /** performance.now() of each non-health request. */
  readonly arrivals: number[] = [];
  private n = 0;
  constructor(readonly up: HttpUpstream) {
    up.handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
      if (req.url === '/healthz') return res.writeHead(this.healthy ? 200 : 503, { 'content-length': 0 }).end();
      this.arrivals.push(performance.now());
      const fail = this.mode === '503' || (this.mode === 'alternate' && this.n++ % 2 === 0);
      res.writeHead(fail ? 503 : 200, { 'content-length': 2, 'x-upstream': up.name }).end(fail ? 'no' : 'ok');
    };
  }
  get port(): number {
    return this.up.port;
  }
  get count(): number {
    return this.arrivals.length;
  }
  static async start(name: string, port = 0): Promise<Steered> {
    return new Steered(await HttpUpstream.start(name, port));
  }
}

let mesh: Mesh;
let sc: Sidecar;
const ups: Record<string, Steered[]> = {};
let resetter: RawUpstream;
let refusedPort: number;
let grpcGood: EchoServer;
let grpcBad: EchoServer;
/** h2c upstreams: the first answers 503, the second 200; requests counted. */
const h2ups: { server: http2.Http2Server; port: number; requests: number }[] = [];
const healthServers: { server: grpc.Server; port: number; serving: boolean }[] = [];

const policy = (name: string, spec: string) => `apiVersion: weft.dev/v1
kind: TrafficPolicy
metadata: { name: ${name} }
spec:
  targetRef: { name: ${name} }
  ${spec}
`;

/** A grpc.health.v1.Health server (messages hand-encoded: field 1, the service / the status). */
async function startHealthServer(): Promise<(typeof healthServers)[number]> {
  const server = new grpc.Server();
  const entry = { server, port: 0, serving: true };
  const id = (b: Buffer) => b;
  server.addService(
    {
      Check: {
        path: '/grpc.health.v1.Health/Check',
        requestStream: false,
        responseStream: false,
        requestSerialize: id,
        requestDeserialize: id,
        responseSerialize: (status: number) => Buffer.from([0x08, status]),
        responseDeserialize: id,
      },
    },
    { Check: (_call: unknown, cb: grpc.sendUnaryData<number>) => cb(null, entry.serving ? 1 : 2) },
  );
  entry.port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
  );
  healthServers.push(entry);
  return entry;
}

let services: string[];
let policies: string[];
const OD = (extra: string) => `outlierDetection: { interval: 100ms, ${extra} }`;

before(async () => {
  for (const [name, n] of Object.entries({ plain: 3, c5xx: 3, gw: 2, reset: 2, rate: 4, fperc: 3, cap: 3, capdefault: 3, grow: 2, hchttp: 2, hctcp: 2 })) {
    ups[name] = [];
    for (let i = 0; i < n; i++) ups[name].push(await Steered.start(`${name}-${i}`));
  }
  resetter = await RawUpstream.start((s) => s.once('data', () => s.destroy()));
  refusedPort = await freePort();
  grpcGood = await startEchoServer('good', 1);
  grpcBad = await startEchoServer('bad', 1e9);
  await startHealthServer();
  await startHealthServer();
  for (const status of [503, 200]) {
    const entry = { server: http2.createServer(), port: 0, requests: 0 };
    entry.server.on('stream', (stream) => {
      entry.requests++;
      stream.respond({ ':status': status, 'content-length': 0 }, { endStream: true });
      stream.on('error', () => {});
    });
    await new Promise<void>((r) => entry.server.listen(0, '127.0.0.1', () => r()));
    entry.port = (entry.server.address() as AddressInfo).port;
    h2ups.push(entry);
  }
  const svc = (name: string, endpoints = ups[name].map((u) => u.port)) => serviceYaml({ name, endpoints });
  services = [
    ...['plain', 'c5xx', 'rate', 'fperc', 'cap', 'capdefault', 'grow', 'hchttp', 'hctcp'].map((n) => svc(n)),
    svc('gw', [refusedPort, ...ups.gw.map((u) => u.port)]),
    svc('reset', [resetter.port, ...ups.reset.map((u) => u.port)]),
    serviceYaml({ name: 'grpcod', port: 50051, protocol: 'grpc', endpoints: [grpcGood.port, grpcBad.port] }),
    serviceYaml({ name: 'h2od', protocol: 'http2', endpoints: h2ups.map((h) => h.port) }),
    serviceYaml({ name: 'hcgrpc', port: 50051, protocol: 'grpc', endpoints: healthServers.map((h) => h.port) }),
  ];
  policies = [
    policy('c5xx', OD('consecutive5xx: 3, baseEjectionTime: 2s, maxEjectionPercent: 50')),
    policy('gw', OD('consecutiveGatewayErrors: 2, baseEjectionTime: 10s, maxEjectionPercent: 50')),
    policy('reset', OD('consecutiveGatewayErrors: 2, baseEjectionTime: 10s, maxEjectionPercent: 50')),
    policy('rate', 'outlierDetection: { interval: 400ms, baseEjectionTime: 10s, maxEjectionPercent: 50, successRate: { minimumHosts: 3, requestVolume: 8, stdevFactor: 1 } }'),
    policy('fperc', 'outlierDetection: { interval: 400ms, baseEjectionTime: 10s, maxEjectionPercent: 50, failurePercentage: { threshold: 40, minimumHosts: 3, requestVolume: 6 } }'),
    policy('cap', OD('consecutive5xx: 2, baseEjectionTime: 10s, maxEjectionPercent: 34')),
    policy('capdefault', OD('consecutive5xx: 2, baseEjectionTime: 10s')),
    policy('grow', 'outlierDetection: { interval: 200ms, consecutive5xx: 2, baseEjectionTime: 600ms, maxEjectionPercent: 50 }'),
    policy('h2od', OD('consecutive5xx: 2, baseEjectionTime: 10s, maxEjectionPercent: 50')),
    policy('grpcod', OD('consecutive5xx: 2, baseEjectionTime: 10s, maxEjectionPercent: 50')),
    policy('hchttp', 'healthCheck: { type: http, path: /healthz, interval: 100ms, timeout: 80ms, unhealthyThreshold: 2, healthyThreshold: 2 }'),
    policy('hctcp', 'healthCheck: { type: tcp, interval: 100ms, timeout: 80ms, unhealthyThreshold: 2, healthyThreshold: 1 }'),
    policy('hcgrpc', 'healthCheck: { type: grpc, interval: 100ms, timeout: 80ms, unhealthyThreshold: 2, healthyThreshold: 1 }'),
  ];
  mesh = await Mesh.start({ 'services.yaml': docs(...services), 'policies.yaml': docs(...policies) });
  sc = await mesh.sidecar();
  await sc.waitConfig((c) => [...c.clusters.values()].filter((x) => x.outlierDetection || x.healthCheck).length === 13, 3000, 'clusters with outlier detection and health checks');
}, T);

after(async () => {
  exitGuard();
  await mesh.close();
  await Promise.all([
    ...Object.values(ups).flatMap((list) => list.map((u) => u.up.close())),
    resetter.close(),
    grpcGood.close(),
    grpcBad.close(),
    ...healthServers.map((h) => new Promise<void>((r) => h.server.tryShutdown(() => r()))),
    ...h2ups.map((h) => new Promise<void>((r) => h.server.close(() => r()))),
  ]);
});

const cluster = (name: string) => `outbound|80||${name}.default`;

async function get(name: string): Promise<{ status: number; flag: string; from: string }> {
  const res = await request(sc.outboundPort, { host: name });
  return { status: res.status, flag: String(res.headers[FLAG] ?? ''), from: String(res.headers['x-upstream'] ?? '') };
}

async function clusters(): Promise<any[]> {
  return JSON.parse((await admin(sc, '/clusters?format=json')).text);
}

async function endpointView(clusterName: string, port: number): Promise<any> {
  const c = (await clusters()).find((x) => x.name === clusterName);
  return c.endpoints.find((e: any) => e.address === `127.0.0.1:${port}`);
}

async function metric(name: string, clusterName: string): Promise<number | undefined> {
  const samples = parsePrometheus((await admin(sc, '/stats/prometheus')).text);
  return samples.find((m) => m.name === name && m.labels.cluster === clusterName)?.value;
}

test('consecutive5xx: 3 → ejected after 3 503s, no traffic while ejected, back after the ejection time, ejected again', T, async () => {
  // Without outlier detection, an endpoint answering 503 keeps about a third of the traffic.
  const [plainBad] = ups.plain;
  plainBad.mode = '503';
  for (let i = 0; i < 60; i++) await get('plain');
  assert.ok(plainBad.count >= 14 && plainBad.count <= 26, `without detection the failing endpoint got ${plainBad.count} of 60`);
  const [bad, ...good] = ups.c5xx;
  bad.mode = '503';
  const started = performance.now();
  for (let i = 0; i < 40; i++) await get('c5xx');
  assert.equal(bad.count, 3, 'exactly 3 requests reached the failing endpoint');
  const ejectedAt = bad.arrivals[2];
  assert.equal(good[0].count + good[1].count, 37);
  const view = await endpointView(cluster('c5xx'), bad.port);
  assert.equal(view.outlier.ejected, true);
  assert.equal(view.outlier.timesEjected, 1);
  assert.equal(view.outlier.ejectionMs, 2000);
  assert.ok(Date.parse(view.outlier.ejectedUntil) > Date.now(), 'ejectedUntil is ahead');
  assert.equal(await metric('weft_outlier_ejected', cluster('c5xx')), 1);
  assert.equal(await metric('weft_outlier_ejections_total', cluster('c5xx')), 1);
  // Back after base_ejection_time (2 s), on the interval timer.
  await waitFor(async () => (await get('c5xx'), bad.count > 3), 6000, 'the ejected endpoint gets traffic again');
  const back = bad.arrivals[3] - ejectedAt;
  assert.ok(back >= 1950, `came back after ${Math.round(back)} ms (base ejection time 2000 ms)`);
  assert.ok(performance.now() - started < 8000);
  // Fresh counts: three more 503s eject it again.
  for (let i = 0; i < 30; i++) await get('c5xx');
  assert.equal(bad.count, 6, 'ejected again after 3 more');
  assert.equal((await endpointView(cluster('c5xx'), bad.port)).outlier.timesEjected, 2);
});

test('connect failures count as gateway errors: a refused endpoint is ejected after 2', T, async () => {
  const replies: string[] = [];
  for (let i = 0; i < 30; i++) replies.push((await get('gw')).flag);
  assert.equal(replies.filter((f) => f === 'UF').length, 2, `UF replies: ${replies.join(' ')}`);
  assert.equal((await endpointView(cluster('gw'), refusedPort)).outlier.ejected, true);
});

test('resets before a response count as gateway errors', T, async () => {
  const replies: number[] = [];
  for (let i = 0; i < 30; i++) replies.push((await get('reset')).status);
  const failed = replies.filter((s) => s !== 200).length;
  assert.ok(failed >= 1 && failed <= 2, `failed replies: ${replies.join(' ')}`);
  assert.deepEqual(replies.slice(5), Array(25).fill(200), 'nothing fails once it is ejected');
  assert.equal((await endpointView(cluster('reset'), resetter.port)).outlier.ejected, true);
});

test('success rate: an endpoint failing half its requests among healthy ones is ejected at an interval', T, async () => {
  const [bad] = ups.rate;
  bad.mode = 'alternate';
  const deadline = performance.now() + 8000;
  let view: any;
  while (performance.now() < deadline) {
    await Promise.all(Array.from({ length: 4 }, () => get('rate')));
    view = await endpointView(cluster('rate'), bad.port);
    if (view.outlier.ejected) break;
  }
  assert.equal(view.outlier.ejected, true, 'ejected for its success rate');
  const others = await Promise.all(ups.rate.slice(1).map((u) => endpointView(cluster('rate'), u.port)));
  assert.ok(others.every((e) => !e.outlier.ejected && e.outlier.successRate === 100), JSON.stringify(others.map((e) => e.outlier)));
  const before = bad.count;
  for (let i = 0; i < 20; i++) assert.equal((await get('rate')).status, 200);
  assert.equal(bad.count, before, 'no traffic to the ejected endpoint');
});

test('failure percentage: an endpoint failing half its requests (threshold 40 %) is ejected at an interval; healthy ones stay', T, async () => {
  const [bad] = ups.fperc;
  bad.mode = 'alternate';
  const deadline = performance.now() + 8000;
  let view: any;
  while (performance.now() < deadline) {
    await Promise.all(Array.from({ length: 3 }, () => get('fperc')));
    view = await endpointView(cluster('fperc'), bad.port);
    if (view.outlier.ejected) break;
  }
  assert.equal(view.outlier.ejected, true, 'ejected for its failure percentage');
  const others = await Promise.all(ups.fperc.slice(1).map((u) => endpointView(cluster('fperc'), u.port)));
  assert.ok(others.every((e) => !e.outlier.ejected), JSON.stringify(others.map((e) => e.outlier)));
  const before = bad.count;
  for (let i = 0; i < 15; i++) assert.equal((await get('fperc')).status, 200);
  assert.equal(bad.count, before, 'no traffic to the ejected endpoint');
});

test('max ejection percent: 34 % of 3 ejects one of three failing endpoints; the default 10 % ejects none', T, async () => {
  for (const u of [...ups.cap, ...ups.capdefault]) u.mode = '503';
  for (let i = 0; i < 30; i++) {
    await get('cap');
    await get('capdefault');
  }
  const cap = (await clusters()).find((c) => c.name === cluster('cap'));
  assert.equal(cap.endpoints.filter((e: any) => e.outlier.ejected).length, 1);
  assert.equal(await metric('weft_outlier_ejected', cluster('cap')), 1);
  const capDefault = (await clusters()).find((c) => c.name === cluster('capdefault'));
  assert.equal(capDefault.endpoints.filter((e: any) => e.outlier.ejected).length, 0);
  assert.ok(ups.capdefault.every((u) => u.count >= 5), 'all three keep getting traffic');
});

test('the ejection time grows on repeat: base, then twice the base', T, async () => {
  const [bad] = ups.grow;
  bad.mode = '503';
  const seen: number[] = [];
  const deadline = performance.now() + 8000;
  while (performance.now() < deadline) {
    await get('grow');
    const view = await endpointView(cluster('grow'), bad.port);
    if (view.outlier.ejected && !seen.includes(view.outlier.ejectionMs)) seen.push(view.outlier.ejectionMs);
    if (view.outlier.timesEjected >= 2) break;
    await sleep(5);
  }
  assert.deepEqual(seen, [600, 1200]);
  // The traffic agrees: the gaps in the failing endpoint's arrivals are at least the ejection times.
  const gaps = bad.arrivals.slice(1).map((t, i) => t - bad.arrivals[i]).filter((g) => g > 400);
  assert.ok(gaps.length >= 1 && gaps[0] >= 580, `gaps ${gaps.map(Math.round).join(', ')}`);
});

test('gRPC: trailers-only UNAVAILABLE counts as a 503; the failing endpoint is ejected', T, async () => {
  const client = new EchoClient(`127.0.0.1:${sc.outboundPort}`, grpc.credentials.createInsecure(), { 'grpc.default_authority': 'grpcod:50051' });
  try {
    let failures = 0;
    for (let i = 0; i < 20; i++) await unary(client, 'Flaky', { id: `g${i}` }).catch(() => failures++);
    assert.equal(failures, 2, 'two UNAVAILABLE, then the endpoint is out');
    assert.equal(grpcBad.calls, 2);
    const c = (await clusters()).find((x) => x.name === 'outbound|50051||grpcod.default');
    assert.equal(c.endpoints.find((e: any) => e.address === `127.0.0.1:${grpcBad.port}`).outlier.ejected, true);
  } finally {
    client.close();
  }
});

test('HTTP/1.1 clients of an HTTP/2 upstream: its 503s eject it too', T, async () => {
  const statuses: number[] = [];
  for (let i = 0; i < 20; i++) statuses.push((await get('h2od')).status);
  assert.equal(h2ups[0].requests, 2, `statuses ${statuses.join(' ')}`);
  assert.deepEqual(statuses.filter((s) => s === 503).length, 2);
});

test('HTTP health check: a failing /healthz takes the endpoint out, passing brings it back', T, async () => {
  const [flaky, steady] = ups.hchttp;
  await waitFor(async () => (await endpointView(cluster('hchttp'), flaky.port)).healthCheck.state === 'healthy', 3000, 'first checks pass');
  flaky.healthy = false;
  await waitFor(async () => (await endpointView(cluster('hchttp'), flaky.port)).healthCheck.state === 'failed', 3000, 'the check fails it');
  // Each check has 80 ms: on a loaded machine one may time out instead; the next answers 503.
  await waitFor(async () => (await endpointView(cluster('hchttp'), flaky.port)).healthCheck.lastFailure === 'HTTP 503', 3000, 'a check failed by its 503');
  const before = flaky.count;
  for (let i = 0; i < 10; i++) assert.equal((await get('hchttp')).from, steady.up.name);
  assert.equal(flaky.count, before);
  assert.equal(await metric('weft_health_check_unhealthy', cluster('hchttp')), 1);
  assert.ok((await metric('weft_health_check_failures_total', cluster('hchttp')))! >= 2);
  flaky.healthy = true;
  await waitFor(async () => (await endpointView(cluster('hchttp'), flaky.port)).healthCheck.state === 'healthy', 3000, 'back after 2 passes');
  for (let i = 0; i < 10; i++) await get('hchttp');
  assert.ok(flaky.count >= before + 3, 'it gets traffic again');
});

test('TCP health check: a closed port is taken out, a reopened one comes back', T, async () => {
  const [flaky, steady] = ups.hctcp;
  const port = flaky.port;
  await waitFor(async () => (await endpointView(cluster('hctcp'), port)).healthCheck.state === 'healthy', 3000, 'first checks pass');
  await flaky.up.close();
  await waitFor(async () => (await endpointView(cluster('hctcp'), port)).healthCheck.state === 'failed', 3000, 'the check fails it');
  for (let i = 0; i < 10; i++) assert.equal((await get('hctcp')).from, steady.up.name, 'no connect failure: the closed endpoint is not picked');
  const reopened = await Steered.start('hctcp-0b', port);
  ups.hctcp[0] = reopened;
  await waitFor(async () => (await endpointView(cluster('hctcp'), port)).healthCheck.state === 'healthy', 3000, 'back once it accepts');
  for (let i = 0; i < 10; i++) await get('hctcp');
  assert.ok(reopened.count >= 3);
});

test('gRPC health check: NOT_SERVING takes the endpoint out, SERVING brings it back', T, async () => {
  const name = 'outbound|50051||hcgrpc.default';
  const [h0, h1] = healthServers;
  const state = async (p: number) => (await endpointView(name, p)).healthCheck.state;
  await waitFor(async () => (await state(h0.port)) === 'healthy' && (await state(h1.port)) === 'healthy', 3000, 'first checks pass');
  assert.equal(sc.runtime().cluster(name)!.lb.size, 2);
  h0.serving = false;
  await waitFor(async () => (await state(h0.port)) === 'failed', 3000, 'NOT_SERVING fails it');
  assert.match((await endpointView(name, h0.port)).healthCheck.lastFailure, /NOT_SERVING/);
  assert.equal(sc.runtime().cluster(name)!.lb.size, 1);
  assert.equal(sc.runtime().cluster(name)!.lb.pick()!.port, h1.port);
  h0.serving = true;
  await waitFor(async () => (await state(h0.port)) === 'healthy', 3000, 'SERVING again');
  assert.equal(sc.runtime().cluster(name)!.lb.size, 2);
});

test('weft status lists the endpoints each sidecar took out, as the sidecar reported them to the control plane', T, async () => {
  let out = '';
  const line = new RegExp(`sidecar-1 \\(127\\.0\\.0\\.1\\)  outbound\\|80\\|\\|gw\\.default  127\\.0\\.0\\.1:${refusedPort}  ejected until \\S+ \\(1× ejected\\)`);
  // The sidecar reports on its next interval after the ejection.
  await waitFor(async () => {
    out = '';
    await runStatus({ api: `http://127.0.0.1:${mesh.cp!.apiPort}`, out: { write: (text: string) => (out += text) } });
    return line.test(out);
  }, 5000, 'the ejection in weft status');
  assert.match(out, /Endpoints the sidecars took out of load balancing/);
  assert.doesNotMatch(out, new RegExp(`127\\.0\\.0\\.1:${ups.gw[0].port}`), 'healthy endpoints are not listed');
});

test('state carries over a config change of the cluster; endpoints that leave are forgotten', T, async () => {
  const name = cluster('gw');
  assert.equal((await endpointView(name, refusedPort)).outlier.ejected, true);
  const detector = sc.runtime().cluster(name)!.health!.detector;
  // Same cluster, another setting: the ejection stays.
  policies = policies.map((p) => (p.includes('name: gw }') ? policy('gw', OD('consecutiveGatewayErrors: 3, baseEjectionTime: 10s, maxEjectionPercent: 60')) : p));
  mesh.write('policies.yaml', docs(...policies));
  await sc.waitConfig((c) => c.clusters.get(name)?.outlierDetection?.maxEjectionPercent === 60, 3000, 'the new policy');
  assert.equal(sc.runtime().cluster(name)!.health!.detector, detector);
  assert.equal((await endpointView(name, refusedPort)).outlier.ejected, true);
  assert.equal(sc.runtime().cluster(name)!.lb.size, 2);
  // The refused endpoint leaves: forgotten.
  services = services.map((d) => (d.includes('name: gw }') ? serviceYaml({ name: 'gw', endpoints: ups.gw.map((u) => u.port) }) : d));
  mesh.write('services.yaml', docs(...services));
  await sc.waitConfig((c) => c.endpoints.get(name)?.localities[0].endpoints.length === 2, 3000, 'two endpoints');
  assert.equal(detector!.state(`127.0.0.1:${refusedPort}`), undefined);
  assert.equal(detector!.ejected, 0);
});
