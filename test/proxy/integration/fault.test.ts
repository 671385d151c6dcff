// Fault injection in the sidecar: a TrafficPolicy's `fault` reaches the
// sidecar as a per-route HTTPFault behind the outbound listener's fault
// filter, and requests are aborted (FI) or delayed (DI) by percentage and
// header match, over real sockets, with the upstream counting what reaches it.
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as http from 'node:http';
import * as grpc from '@grpc/grpc-js';
import { admin, docs, exitGuard, HttpUpstream, Mesh, parsePrometheus, RawClient, request, serviceYaml, sleep, T, type Sidecar } from '../../helpers/proxy-harness';
import { EchoClient, startEchoServer, unary, type EchoServer } from '../../helpers/grpc-echo';

const FLAG = 'x-weft-response-flags';
let mesh: Mesh;
let sc: Sidecar;
const up: Record<string, HttpUpstream> = {};
let echo: EchoServer;
const clients: grpc.Client[] = [];

const fault = (service: string, spec: string) => `apiVersion: weft.dev/v1
kind: TrafficPolicy
metadata: { name: ${service} }
spec:
  targetRef: { name: ${service} }
  fault: ${spec}
`;

before(async () => {
  for (const name of ['aborted', 'half', 'by-header', 'slow', 'left', 'plain']) up[name] = await HttpUpstream.start(name);
  echo = await startEchoServer('echo');
  mesh = await Mesh.start({
    'services.yaml': docs(
      ...Object.values(up).map((u) => serviceYaml({ name: u.name, endpoints: [u.port] })),
      serviceYaml({ name: 'rpc', port: 50051, protocol: 'grpc', endpoints: [echo.port] }),
    ),
    'faults.yaml': docs(
      fault('aborted', '{ abort: { httpStatus: 418 } }'),
      fault('half', '{ abort: { httpStatus: 503, percent: 50 } }'),
      fault('by-header', '{ abort: { httpStatus: 503 }, headers: [{ name: x-chaos, value: "yes" }] }'),
      fault('slow', '{ delay: { fixed: 200ms } }'),
      fault('left', '{ delay: { fixed: 400ms } }'),
      fault('rpc', '{ abort: { grpcStatus: 8 } }'),
    ),
  });
  sc = await mesh.sidecar({ nodeId: 'client' });
}, T);

after(async () => {
  exitGuard();
  for (const c of clients) c.close();
  await mesh.close();
  await Promise.all(Object.values(up).map((u) => u.close()));
  await echo.close();
}, T);

test('fault: a 100% abort answers with its status, flagged FI, and sends nothing upstream', T, async () => {
  for (let i = 0; i < 5; i++) {
    const res = await request(sc.outboundPort, { host: 'aborted' });
    assert.equal(res.status, 418);
    assert.equal(res.headers[FLAG], 'FI');
  }
  assert.equal(up.aborted.requests, 0);
  assert.equal(up.aborted.connections, 0);
  // A service without a fault behind the same listener is untouched.
  const ok = await request(sc.outboundPort, { host: 'plain' });
  assert.equal(ok.status, 200);
  assert.equal(ok.headers[FLAG], undefined);
});

test('fault: a 50% abort hits about half of the requests', T, async () => {
  const N = 200;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  let aborted = 0;
  try {
    for (let i = 0; i < N; i++) {
      const res = await request(sc.outboundPort, { host: 'half', agent });
      if (res.status === 503) {
        assert.equal(res.headers[FLAG], 'FI');
        aborted++;
      } else assert.equal(res.status, 200);
    }
  } finally {
    agent.destroy();
  }
  // Binomial(200, 0.5): mean 100, sd ≈ 7.1; ±4.5 sd fails by chance about once in 150 000 runs.
  assert.ok(aborted >= 68 && aborted <= 132, `aborted ${aborted} of ${N}`);
  assert.equal(up.half.requests, N - aborted, 'exactly the others reached the upstream');
});

test('fault: a header-matched fault hits only requests carrying the header', T, async () => {
  for (let i = 0; i < 5; i++) {
    const hit = await request(sc.outboundPort, { host: 'by-header', headers: { 'x-chaos': 'yes' } });
    assert.equal(hit.status, 503);
    assert.equal(hit.headers[FLAG], 'FI');
    const other = await request(sc.outboundPort, { host: 'by-header', headers: { 'x-chaos': 'no' } });
    assert.equal(other.status, 200);
    const none = await request(sc.outboundPort, { host: 'by-header' });
    assert.equal(none.status, 200);
  }
  assert.equal(up['by-header'].requests, 10);
});

test('fault: a 200 ms delay holds the request, then it goes through intact (DI in stats)', T, async () => {
  const started = performance.now();
  const res = await request(sc.outboundPort, { host: 'slow', method: 'POST', path: '/p?q=1', body: 'hello', headers: { 'x-a': 'b' } });
  const elapsed = performance.now() - started;
  // Node timers may fire a fraction of a millisecond early: 199 is "at least 200 ms".
  assert.ok(elapsed >= 199, `took ${elapsed.toFixed(1)} ms`);
  assert.equal(res.status, 200);
  const seen = res.json();
  assert.deepEqual([seen.name, seen.method, seen.url, seen.headers['x-a'], seen.bodyLength], ['slow', 'POST', '/p?q=1', 'b', 5]);
  assert.equal(res.headers[FLAG], undefined, 'an upstream answer carries no local-reply flag');
  const samples = parsePrometheus((await admin(sc, '/stats/prometheus')).text);
  const di = samples.find((s) => s.name === 'weft_response_flags_total' && s.labels.flag === 'DI' && s.labels.cluster === 'outbound|80||slow.default');
  assert.equal(di?.value, 1, 'the delay is counted as DI');
});

test('fault: gRPC callers get the grpc-status of the abort', T, async () => {
  const c = new EchoClient(`127.0.0.1:${sc.outboundPort}`, grpc.credentials.createInsecure(), { 'grpc.default_authority': 'rpc:50051' });
  clients.push(c);
  await assert.rejects(unary(c, 'Hello', {}), (err: grpc.ServiceError) => {
    assert.equal(err.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.deepEqual(err.metadata.get(FLAG), ['FI']);
    return true;
  });
  assert.equal(echo.calls, 0);
});

test('fault: a client that leaves during a delay sends nothing upstream', T, async () => {
  const c = await RawClient.connect(sc.outboundPort);
  c.write('GET /gone HTTP/1.1\r\nhost: left\r\n\r\n');
  await sleep(100);
  c.reset();
  await sleep(600); // past the 400 ms delay
  assert.equal(up.left.requests, 0);
  assert.equal(up.left.connections, 0);
  // The next request is delayed and answered as usual.
  const res = await request(sc.outboundPort, { host: 'left' });
  assert.equal(res.status, 200);
  assert.equal(up.left.requests, 1);
});
