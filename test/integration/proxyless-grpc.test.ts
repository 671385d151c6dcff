// Real proxyless gRPC clients (@grpc/grpc-js-xds) against a real weft control
// plane and real gRPC servers on loopback: the proof that any xDS client can
// join the mesh.
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
import { waitFor } from '../helpers/tmp';

let cp: ControlPlane;
let configDir: string;
let dataDir: string;
const servers: Record<string, EchoServer> = {};
const clients: grpc.Client[] = [];

function grpcService(name: string, endpoints: EchoServer[]): string {
  const eps = endpoints.map((s) => `{ address: 127.0.0.1, port: ${s.port} }`).join(', ');
  return `apiVersion: weft.dev/v1
kind: Service
metadata: { name: ${name} }
spec:
  ports: [{ name: grpc, port: 50051, protocol: grpc }]
  endpoints: [${eps}]
---
`;
}

function canary(v1: number, v2: number): string {
  return `apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: { name: greeter-canary }
spec:
  parentRefs: [{ kind: Service, name: greeter, port: 50051 }]
  rules:
    - backendRefs:
        - { name: greeter-v1, port: 50051, weight: ${v1} }
        - { name: greeter-v2, port: 50051, weight: ${v2} }
`;
}

const POLICIES = `apiVersion: weft.dev/v1
kind: TrafficPolicy
metadata: { name: flaky }
spec:
  targetRef: { kind: Service, name: flaky }
  retries: { attempts: 3, retryOn: [unavailable], backoff: { baseInterval: 10ms, maxInterval: 50ms } }
---
apiVersion: weft.dev/v1
kind: TrafficPolicy
metadata: { name: slow }
spec:
  targetRef: { kind: Service, name: slow }
  timeouts: { request: 300ms }
`;

function client(target: string): grpc.Client & Record<string, Function> {
  const c = new EchoClient(target, grpc.credentials.createInsecure());
  clients.push(c);
  return c;
}

async function fromOf(c: grpc.Client & Record<string, Function>, n: number): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const res = await unary(c, 'Hello', { i });
    counts[res.from] = (counts[res.from] ?? 0) + 1;
  }
  return counts;
}

before(async () => {
  for (const name of ['v1a', 'v1b', 'v2', 'v2-extra', 'flaky', 'slow']) servers[name] = await startEchoServer(name);
  configDir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-proxyless-config-'));
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-proxyless-data-'));
  fs.writeFileSync(
    path.join(configDir, 'services.yaml'),
    grpcService('greeter', []) +
      grpcService('greeter-v1', [servers.v1a, servers.v1b]) +
      grpcService('greeter-v2', [servers.v2]) +
      grpcService('flaky', [servers.flaky]) +
      grpcService('slow', [servers.slow]),
  );
  fs.writeFileSync(path.join(configDir, 'route.yaml'), canary(80, 20));
  fs.writeFileSync(path.join(configDir, 'policies.yaml'), POLICIES);
  cp = await startControlPlane({ configDir, dataDir, xdsPort: 0, apiPort: 0, log: silentLogger, dev: true });
  // grpc-js-xds reads its bootstrap once per process, on first use.
  process.env.GRPC_XDS_BOOTSTRAP_CONFIG = JSON.stringify(
    grpcBootstrap({ xdsServer: `127.0.0.1:${cp.xdsPort}`, nodeId: 'proxyless-test', service: 'tester', namespace: 'default' }),
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

test('calls to xds:///<service>:<port> balance over the service endpoints', async () => {
  const counts = await fromOf(client('xds:///greeter-v1:50051'), 60);
  assert.deepEqual(Object.keys(counts).sort(), ['v1a', 'v1b']);
  assert.ok(counts.v1a >= 20 && counts.v1b >= 20, `round robin spreads calls: ${JSON.stringify(counts)}`);
});

test('xds:///<service>.<namespace>:<port> honours the GRPCRoute weighted split', async () => {
  const counts = await fromOf(client('xds:///greeter.default:50051'), 600);
  const v2 = (counts.v2 ?? 0) / 600;
  assert.ok(v2 > 0.13 && v2 < 0.27, `about 20% to v2, saw ${JSON.stringify(counts)}`);
  assert.equal((counts.v1a ?? 0) + (counts.v1b ?? 0) + (counts.v2 ?? 0), 600);
});

test('editing the split moves a running client within 2 seconds without a failed call', async () => {
  const c = client('xds:///greeter:50051');
  await fromOf(c, 20); // the channel is connected and has the 80/20 config
  let failures = 0;
  let streakOnV2 = 0;
  let movedAt = 0;
  const writtenAt = Date.now();
  fs.writeFileSync(path.join(configDir, 'route.yaml'), canary(0, 100));
  while (Date.now() - writtenAt < 5000 && streakOnV2 < 50) {
    try {
      const res = await unary(c, 'Hello', {});
      if (res.from === 'v2') {
        if (streakOnV2++ === 0) movedAt = Date.now();
      } else streakOnV2 = 0;
    } catch {
      failures++;
    }
  }
  assert.equal(failures, 0, 'no call failed during the change');
  assert.equal(streakOnV2, 50, 'traffic moved to v2');
  assert.ok(movedAt - writtenAt < 2000, `moved in ${movedAt - writtenAt} ms`);
});

test('endpoints registered and deregistered are picked up by a running client', async () => {
  const c = client('xds:///greeter-v2:50051');
  assert.deepEqual(await fromOf(c, 10), { v2: 10 });
  const reg = await cp.registry.register({ service: 'greeter-v2', address: '127.0.0.1', port: servers['v2-extra'].port });
  await waitFor(async () => (await unary(c, 'Hello', {})).from === 'v2-extra', 3000, 'registered endpoint used');
  const eds = () => cp.xds.status().find((n) => n.nodeId === 'proxyless-test')?.types.find((t) => t.type === 'EDS');
  const withExtra = eds()?.snapshotVersion;
  await cp.registry.deregister(reg.id);
  // Once the client has ACKed the endpoints without it, every call must succeed and none reach the removed instance.
  await waitFor(() => {
    const t = eds();
    return t !== undefined && t.snapshotVersion !== withExtra && t.state === 'SYNCED';
  }, 5000, 'the client ACKed the endpoints without the removed instance');
  const counts = await fromOf(c, 30);
  assert.deepEqual(counts, { v2: 30 });
});

test('a route timeout from TrafficPolicy reaches the client', async () => {
  const c = client('xds:///slow:50051');
  await unary(c, 'Hello', {});
  const start = Date.now();
  await assert.rejects(unary(c, 'Hang', {}, 5000), (err: grpc.ServiceError) => err.code === grpc.status.DEADLINE_EXCEEDED);
  const elapsed = Date.now() - start;
  assert.ok(elapsed >= 250 && elapsed < 2000, `cut at the 300ms route timeout, not the 5s deadline (took ${elapsed} ms)`);
});

test('a retry policy from TrafficPolicy reaches the client', async () => {
  const c = client('xds:///flaky:50051');
  const res = await unary(c, 'Flaky', { id: 'retry-1' });
  assert.equal(res.attempt, 3, 'the client retried UNAVAILABLE twice');
  assert.equal(servers.flaky.flakyAttempts.get('retry-1'), 3);
});

test('the control plane reports the proxyless client as connected and SYNCED on every type', async () => {
  await waitFor(
    () => {
      const node = cp.xds.status().find((n) => n.nodeId === 'proxyless-test');
      return !!node && ['CDS', 'EDS', 'LDS', 'RDS'].every((t) => node.types.find((s) => s.type === t)?.state === 'SYNCED');
    },
    3000,
    'all types SYNCED',
  );
  const node = cp.xds.status().find((n) => n.nodeId === 'proxyless-test')!;
  assert.equal(node.node.role, 'proxyless');
  assert.equal(node.node.service, 'tester');
  assert.equal(node.mode, 'sotw');
});
