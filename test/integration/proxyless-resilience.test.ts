// Resilience policies reaching real proxyless gRPC clients (@grpc/grpc-js-xds)
// from a real weft control plane, against real gRPC servers on loopback:
// max-requests circuit breaking (gRFC A32), fault injection (A33) and outlier
// detection (A50). Route timeouts and retries are in proxyless-grpc.test.ts.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as os from 'node:os';
import * as grpc from '@grpc/grpc-js';
import { startControlPlane, type ControlPlane } from '../../src/control/control-plane';
import { silentLogger } from '../../src/observe/log';
import { grpcBootstrap } from '../../src/xds/bootstrap';
import { EchoClient, startEchoServer, unary, type EchoServer } from '../helpers/grpc-echo';

let cp: ControlPlane;
let configDir: string;
let dataDir: string;
const servers: Record<string, EchoServer> = {};
const clients: grpc.Client[] = [];
const T = { timeout: 20_000 };

function grpcService(name: string, endpoints: EchoServer[]): string {
  return `apiVersion: weft.dev/v1
kind: Service
metadata: { name: ${name} }
spec:
  ports: [{ name: grpc, port: 50051, protocol: grpc }]
  endpoints: [${endpoints.map((s) => `{ address: 127.0.0.1, port: ${s.port} }`).join(', ')}]
---
`;
}

function policy(service: string, spec: string): string {
  return `apiVersion: weft.dev/v1
kind: TrafficPolicy
metadata: { name: ${service} }
spec:
  targetRef: { kind: Service, name: ${service} }
  ${spec}
---
`;
}

function client(service: string): grpc.Client & Record<string, Function> {
  const c = new EchoClient(`xds:///${service}:50051`, grpc.credentials.createInsecure());
  clients.push(c);
  return c;
}

/** A unary call with metadata; resolves to the error code (0 for OK). */
function callCode(c: grpc.Client & Record<string, Function>, method: string, req: unknown, md = new grpc.Metadata(), deadlineMs = 5000): Promise<number> {
  return new Promise((resolve) => {
    c[method](req, md, { deadline: Date.now() + deadlineMs }, (err: grpc.ServiceError | null) => resolve(err ? err.code : 0));
  });
}

before(async () => {
  servers.held = await startEchoServer('held');
  servers.faulty = await startEchoServer('faulty');
  // Flaky fails on `bad` every time and succeeds at once on the good ones.
  servers.good1 = await startEchoServer('good1', 1);
  servers.good2 = await startEchoServer('good2', 1);
  servers.bad = await startEchoServer('bad', Number.MAX_SAFE_INTEGER);
  const pool = [servers.good1, servers.good2, servers.bad];
  configDir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-proxyless-res-config-'));
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-proxyless-res-data-'));
  fs.writeFileSync(
    path.join(configDir, 'services.yaml'),
    grpcService('held', [servers.held]) +
      ['aborted', 'delayed', 'half', 'by-header'].map((s) => grpcService(s, [servers.faulty])).join('') +
      grpcService('od-failure', pool) +
      grpcService('od-success', pool),
  );
  fs.writeFileSync(
    path.join(configDir, 'policies.yaml'),
    policy('held', 'connectionPool: { maxRequests: 2 }') +
      policy('aborted', 'fault: { abort: { grpcStatus: 8 } }') +
      policy('delayed', 'fault: { delay: { fixed: 300ms } }') +
      policy('half', 'fault: { abort: { httpStatus: 503, percent: 50 } }') +
      policy('by-header', 'fault: { abort: { grpcStatus: 7 }, headers: [{ name: x-chaos, value: "yes" }] }') +
      policy('od-failure', 'outlierDetection: { interval: 300ms, baseEjectionTime: 30s, maxEjectionPercent: 50, failurePercentage: { threshold: 50, minimumHosts: 3, requestVolume: 5 } }') +
      policy('od-success', 'outlierDetection: { interval: 300ms, baseEjectionTime: 30s, maxEjectionPercent: 50, successRate: { minimumHosts: 3, requestVolume: 5, stdevFactor: 1 } }'),
  );
  cp = await startControlPlane({ configDir, dataDir, xdsPort: 0, apiPort: 0, log: silentLogger, dev: true });
  process.env.GRPC_XDS_BOOTSTRAP_CONFIG = JSON.stringify(
    grpcBootstrap({ xdsServer: `127.0.0.1:${cp.xdsPort}`, nodeId: 'proxyless-resilience', service: 'tester', namespace: 'default' }),
  );
  require('@grpc/grpc-js-xds').register();
});

after(async () => {
  for (const c of clients) c.close();
  await cp?.close();
  await Promise.all(Object.values(servers).map((s) => s.close()));
  fs.rmSync(configDir, { recursive: true, force: true });
  fs.rmSync(dataDir, { recursive: true, force: true });
});

test('connectionPool.maxRequests: the call beyond the limit fails fast with UNAVAILABLE', T, async () => {
  const c = client('held');
  assert.equal(await callCode(c, 'Hello', {}), 0, 'the channel works');
  const held = [callCode(c, 'Hang', {}, undefined, 3000), callCode(c, 'Hang', {}, undefined, 3000)];
  const deadline = Date.now() + 3000;
  while (servers.held.calls < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.equal(servers.held.calls, 3, 'both held calls reached the server');
  const started = Date.now();
  const code = await callCode(c, 'Hello', {});
  assert.equal(code, grpc.status.UNAVAILABLE);
  assert.ok(Date.now() - started < 1000, 'failed fast, not at the deadline');
  assert.equal(servers.held.calls, 3, 'the third call never reached the server');
  assert.deepEqual(await Promise.all(held), [grpc.status.DEADLINE_EXCEEDED, grpc.status.DEADLINE_EXCEEDED]);
  assert.equal(await callCode(c, 'Hello', {}), 0, 'below the limit again');
});

test('fault abort at 100%: every call fails with the grpcStatus and none reaches the server', T, async () => {
  const c = client('aborted');
  const before = servers.faulty.calls;
  for (let i = 0; i < 10; i++) assert.equal(await callCode(c, 'Hello', {}), grpc.status.RESOURCE_EXHAUSTED);
  assert.equal(servers.faulty.calls, before);
});

test('fault delay: calls take the delay longer and succeed', T, async () => {
  const c = client('delayed');
  for (let i = 0; i < 3; i++) {
    const started = performance.now();
    const res = await unary(c, 'Hello', { i });
    const elapsed = performance.now() - started;
    assert.equal(res.from, 'faulty');
    assert.ok(elapsed >= 295, `took ${elapsed.toFixed(0)} ms`);
  }
});

test('fault percent: a 50% abort (httpStatus 503 → UNAVAILABLE) fails about half the calls', T, async () => {
  const c = client('half');
  const N = 200;
  let failed = 0;
  for (let i = 0; i < N; i++) {
    const code = await callCode(c, 'Hello', {});
    if (code === grpc.status.UNAVAILABLE) failed++;
    else assert.equal(code, 0);
  }
  assert.ok(failed >= 68 && failed <= 132, `failed ${failed} of ${N}`);
});

test('fault headers: only calls carrying the metadata are aborted (the match moved into the route)', T, async () => {
  const c = client('by-header');
  const chaos = new grpc.Metadata();
  chaos.set('x-chaos', 'yes');
  const calm = new grpc.Metadata();
  calm.set('x-chaos', 'no');
  for (let i = 0; i < 5; i++) {
    assert.equal(await callCode(c, 'Hello', {}, chaos), grpc.status.PERMISSION_DENIED);
    assert.equal(await callCode(c, 'Hello', {}, calm), 0);
    assert.equal(await callCode(c, 'Hello', {}), 0);
  }
});

/** Calls Flaky on `service` for a while, then checks `bad` gets no more calls. */
async function expectEjection(service: string): Promise<void> {
  const c = client(service);
  let id = 0;
  // Well past a few 300 ms intervals with more than requestVolume calls per endpoint in each.
  const until = Date.now() + 2000;
  while (Date.now() < until) {
    await callCode(c, 'Flaky', { id: `${service}-${id++}` });
    await new Promise((r) => setTimeout(r, 5));
  }
  const badBefore = servers.bad.calls;
  let failures = 0;
  for (let i = 0; i < 30; i++) if ((await callCode(c, 'Flaky', { id: `${service}-after-${i}` })) !== 0) failures++;
  assert.equal(servers.bad.calls - badBefore, 0, 'the failing backend was ejected');
  assert.equal(failures, 0, 'the calls went to the good backends');
}

test('outlier detection, failure percentage: the always-failing backend is ejected', T, async () => {
  await expectEjection('od-failure');
});

test('outlier detection, success rate: the always-failing backend is ejected', T, async () => {
  await expectEjection('od-success');
});
