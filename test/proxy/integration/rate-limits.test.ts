// Rate limits on the callee's inbound sidecar (TrafficPolicy.rateLimit):
// local token buckets (whole service, per header value, per caller address;
// kept across config changes; gRPC callers get RESOURCE_EXHAUSTED) and the
// global limit the control plane counts for every replica, failing open when
// the control plane is gone.
import { after, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import * as http from 'node:http';
import { admin, docs, exitGuard, freePort, HttpUpstream, Mesh, parsePrometheus, serviceYaml, sleep, T, type Sidecar } from '../../helpers/proxy-harness';
import type { LocalRateLimitConfig } from '../../../src/proxy/filters/local-rate-limit';

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  exitGuard();
  for (const c of cleanups.reverse()) await c();
});

function policyYaml(service: string, rateLimit: string): string {
  return `apiVersion: weft.dev/v1
kind: TrafficPolicy
metadata: { name: ${service}-limits }
spec:
  targetRef: { name: ${service} }
  rateLimit: ${rateLimit}
`;
}

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
}

/** One request to a sidecar's inbound listener, as a caller's sidecar would send it, from `localAddress`. */
function call(port: number, headers: http.OutgoingHttpHeaders = {}, localAddress = '127.0.0.1'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/', headers: { host: 'api', ...headers }, agent: false, localAddress, timeout: 5000 });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers }));
    });
    req.end();
  });
}

async function statuses(port: number, n: number, headers?: http.OutgoingHttpHeaders, localAddress?: string): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push((await call(port, headers, localAddress)).status);
  return out;
}

/** A mesh with Service `api` (one HTTP port), its policy, and `replicas` sidecars each in front of its own app. */
async function meshWith(rateLimit: string, replicas = 1): Promise<{ mesh: Mesh; sidecars: Sidecar[]; apps: HttpUpstream[] }> {
  const mesh = await Mesh.start({ 'mesh.yaml': docs(serviceYaml({ name: 'api' }), policyYaml('api', rateLimit)) });
  const apps: HttpUpstream[] = [];
  const sidecars: Sidecar[] = [];
  cleanups.push(async () => {
    await mesh.close();
    for (const a of apps) await a.close();
  });
  for (let i = 0; i < replicas; i++) {
    const app = await HttpUpstream.start(`api-${i}`);
    apps.push(app);
    sidecars.push(await mesh.sidecar({ nodeId: `api-${i}`, service: 'api', appPort: app.port }));
  }
  return { mesh, sidecars, apps };
}

function localConfig(sc: Sidecar): LocalRateLimitConfig | undefined {
  const inbound = sc.config().listeners.get('inbound');
  const network = inbound?.chains[0]?.network;
  if (network?.kind !== 'http') return undefined;
  return network.httpFilters.find((f) => f.name === 'envoy.filters.http.local_ratelimit')?.config as LocalRateLimitConfig | undefined;
}

test('local: after `requests` in a period the next gets 429 RL with Retry-After, and the bucket refills', T, async () => {
  const { sidecars, apps } = await meshWith('{ local: { requests: 3, per: 1s } }');
  const port = sidecars[0].inboundPort;
  assert.deepEqual(await statuses(port, 3), [200, 200, 200]);
  const limited = await call(port);
  assert.equal(limited.status, 429);
  assert.equal(limited.headers['x-weft-response-flags'], 'RL');
  assert.equal(limited.headers['retry-after'], '1');
  assert.equal(limited.headers['x-envoy-ratelimited'], 'true');
  assert.equal(apps[0].requests, 3, 'the limited request never reached the app');
  const stats = parsePrometheus((await admin(sidecars[0], '/stats/prometheus')).text);
  const limitedStat = stats.find((s) => s.name === 'weft_ratelimited_total' && s.labels.filter === 'local' && s.labels.stat_prefix === 'inbound|80');
  assert.equal(limitedStat?.value, 1);
  await sleep(1100);
  assert.equal((await call(port)).status, 200, 'a second later the bucket has tokens again');
});

test('local: a config change keeps the buckets (no refill)', T, async () => {
  const { mesh, sidecars } = await meshWith('{ local: { requests: 2, per: 1m } }');
  const port = sidecars[0].inboundPort;
  assert.deepEqual(await statuses(port, 3), [200, 200, 429]);
  mesh.write('mesh.yaml', docs(serviceYaml({ name: 'api' }), policyYaml('api', '{ local: { requests: 2, per: 1m, burst: 3 } }')));
  await sidecars[0].waitConfig((c) => {
    const inbound = c.listeners.get('inbound')?.chains[0]?.network;
    return inbound?.kind === 'http' && (inbound.httpFilters[0]?.config as LocalRateLimitConfig | undefined)?.bucket?.maxTokens === 3;
  });
  assert.equal(localConfig(sidecars[0])?.bucket?.maxTokens, 3);
  assert.equal((await call(port)).status, 429, 'the new config found the emptied bucket');
});

test('local by header: each value has its own bucket; requests without it share one', T, async () => {
  const { sidecars } = await meshWith('{ local: { requests: 2, per: 1m, by: { header: x-user-id } } }');
  const port = sidecars[0].inboundPort;
  assert.deepEqual(await statuses(port, 3, { 'x-user-id': 'alice' }), [200, 200, 429]);
  assert.deepEqual(await statuses(port, 3, { 'x-user-id': 'bob' }), [200, 200, 429]);
  assert.deepEqual(await statuses(port, 3), [200, 200, 429]);
});

test('local by source: each caller address has its own bucket', T, async () => {
  const { sidecars } = await meshWith('{ local: { requests: 2, per: 1m, by: source } }');
  const port = sidecars[0].inboundPort;
  assert.deepEqual(await statuses(port, 3, {}, '127.0.0.1'), [200, 200, 429]);
  assert.deepEqual(await statuses(port, 3, {}, '127.0.0.2'), [200, 200, 429]);
});

test('local: a gRPC caller over the limit gets RESOURCE_EXHAUSTED', T, async () => {
  const appServer = new grpc.Server();
  const json = { serialize: (v: unknown) => Buffer.from(JSON.stringify(v)), deserialize: (b: Buffer) => JSON.parse(b.toString() || 'null') };
  const svc = {
    Hello: { path: '/it.Greeter/Hello', requestStream: false, responseStream: false, requestSerialize: json.serialize, requestDeserialize: json.deserialize, responseSerialize: json.serialize, responseDeserialize: json.deserialize },
  };
  appServer.addService(svc, { Hello: (_c: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, { ok: true }) });
  const appPort = await new Promise<number>((resolve, reject) =>
    appServer.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  const mesh = await Mesh.start({
    'mesh.yaml': docs(serviceYaml({ name: 'greeter', port: 50051, protocol: 'grpc' }), policyYaml('greeter', '{ local: { requests: 1, per: 1m } }')),
  });
  const Client = grpc.makeGenericClientConstructor(svc, 'Greeter') as unknown as new (t: string, c: grpc.ChannelCredentials) => grpc.Client & Record<string, Function>;
  const sc = await mesh.sidecar({ nodeId: 'greeter-0', service: 'greeter', appPort });
  const client = new Client(`127.0.0.1:${sc.inboundPort}`, grpc.credentials.createInsecure());
  cleanups.push(async () => {
    client.close();
    await mesh.close();
    await new Promise<void>((resolve) => appServer.tryShutdown(() => resolve()));
  });
  const hello = () =>
    new Promise<grpc.ServiceError | null>((resolve) => client.Hello({}, new grpc.Metadata(), { deadline: Date.now() + 5000 }, (err: grpc.ServiceError | null) => resolve(err)));
  assert.equal(await hello(), null);
  const err = await hello();
  assert.equal(err?.code, grpc.status.RESOURCE_EXHAUSTED);
});

test('global: two replicas share one limit the control plane counts; the control plane gone, requests pass', T, async () => {
  const { mesh, sidecars, apps } = await meshWith('{ global: { requests: 4, per: 1m } }', 2);
  const [a, b] = sidecars.map((s) => s.inboundPort);
  // Alternate between the replicas: either alone would admit 4.
  const seen = [];
  for (let i = 0; i < 6; i++) seen.push((await call(i % 2 ? b : a)).status);
  assert.deepEqual(seen, [200, 200, 200, 200, 429, 429]);
  assert.equal(apps[0].requests + apps[1].requests, 4);
  const limited = await call(a);
  assert.equal(limited.headers['x-weft-response-flags'], 'RL');
  const retryAfter = Number(limited.headers['retry-after']);
  assert.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${retryAfter} is the rest of the window`);

  await mesh.stopControlPlane();
  assert.deepEqual(await statuses(a, 2), [200, 200], 'fail open: the limiter is down, requests go through');
  const stats = parsePrometheus((await admin(sidecars[0], '/stats/prometheus')).text);
  const failures = stats.find((s) => s.name === 'weft_ratelimit_service_errors_total' && s.labels.mode === 'allowed');
  assert.ok((failures?.value ?? 0) >= 2);
});
