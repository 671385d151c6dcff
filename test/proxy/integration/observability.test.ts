// Observability of the sidecars: metrics labelled by source and destination
// service, route, code and response flags (both ends of a hop), request
// records in the admin /requests ring and the /tap stream (filtered), the
// access log (JSON lines, sampling, a slow sink drops instead of blocking),
// TCP connections, `weft tap <service>` end to end, and the control plane's
// /metrics.
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import { admin, docs, exitGuard, freePort, HttpUpstream, Mesh, parsePrometheus, request, serviceYaml, sleep, T, waitFor, type Sidecar } from '../../helpers/proxy-harness';
import { tempDir } from '../../helpers/tmp';
import { AccessLog } from '../../../src/observe/access-log';
import type { RequestRecord } from '../../../src/observe/request-record';
import { runTap } from '../../../src/cli/commands/tap';
import * as grpc from '@grpc/grpc-js';
import { EchoClient, startEchoServer, unary, type EchoServer } from '../../helpers/grpc-echo';

let mesh: Mesh;
let app: HttpUpstream;
let echo: net.Server;
let rpc: EchoServer;
let shop: Sidecar;
let api: Sidecar;
let logged: Sidecar;
let unsampled: Sidecar;
const dir = tempDir(undefined, 'weft-observe-');
const accessLogPath = path.join(dir, 'access.log');
const unsampledPath = path.join(dir, 'unsampled.log');

before(async () => {
  app = await HttpUpstream.start('api-app');
  rpc = await startEchoServer('rpc', 99); // Flaky always fails: UNAVAILABLE
  echo = net.createServer((s) => s.pipe(s));
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', () => r()));
  const apiInbound = await freePort();
  // Only shop may call db: the other sidecars on this host would bind its TCP port too.
  mesh = await Mesh.start({
    'services.yaml': docs(
      serviceYaml({ name: 'api', endpoints: [apiInbound], dependsOn: [] }),
      serviceYaml({ name: 'empty' }),
      serviceYaml({ name: 'db', port: await freePort(), protocol: 'tcp', endpoints: [(echo.address() as net.AddressInfo).port] }),
      serviceYaml({ name: 'rpc', port: 50051, protocol: 'grpc', endpoints: [rpc.port] }),
      serviceYaml({ name: 'shop', dependsOn: ['api', 'empty', 'db', 'rpc'] }),
      serviceYaml({ name: 'web', dependsOn: ['api', 'empty'] }),
    ),
  });
  shop = await mesh.sidecar({ nodeId: 'shop-1', service: 'shop' });
  api = await mesh.sidecar({ nodeId: 'api-1', service: 'api', inboundPort: apiInbound, appPort: app.port });
  logged = await mesh.sidecar({ nodeId: 'logged', service: 'web', proxy: { accessLog: accessLogPath } });
  unsampled = await mesh.sidecar({ nodeId: 'unsampled', service: 'web', proxy: { accessLog: unsampledPath, accessLogSample: 0 } });
}, T);

after(async () => {
  exitGuard();
  await mesh.close();
  await app.close();
  await rpc.close();
  echo.close();
}, T);

async function metrics(sc: Sidecar) {
  const samples = parsePrometheus((await admin(sc, '/stats/prometheus')).text);
  return (name: string, labels: Record<string, string>) =>
    samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((n, s) => n + s.value, 0);
}

test('metrics: requests by source, destination, route, code and flags on both ends of a hop', T, async () => {
  for (let i = 0; i < 5; i++) assert.equal((await request(shop.outboundPort, { host: 'api', path: `/items/${i}` })).status, 200);
  for (let i = 0; i < 2; i++) assert.equal((await request(shop.outboundPort, { host: 'empty' })).status, 503);
  const out = await metrics(shop);
  const toApi = { direction: 'outbound', source: 'shop.default', destination: 'api.default' };
  assert.equal(out('weft_requests_total', { ...toApi, code: '200', flags: '' }), 5);
  assert.equal(out('weft_requests_total', { direction: 'outbound', source: 'shop.default', destination: 'empty.default', code: '503', flags: 'UH' }), 2);
  assert.equal(out('weft_request_duration_seconds_count', toApi), 5);
  assert.equal(out('weft_request_duration_seconds_bucket', { ...toApi, le: '+Inf' }), 5);
  assert.ok(out('weft_request_duration_seconds_sum', toApi) > 0);
  assert.ok(out('weft_request_bytes_total', toApi) > 5 * 20, 'request heads counted');
  assert.ok(out('weft_response_bytes_total', toApi) > 5 * 20, 'response heads and bodies counted');
  assert.equal(out('weft_responses_total', { ...toApi, class: '2xx' }), 5, 'the old per-class series stay');
  assert.equal(out('weft_circuit_breaker_open', { cluster: 'outbound|80||api.default', kind: 'requests' }), 0);
  assert.ok(out('weft_xds_config_version_info', { type: 'CDS' }) === 1, 'the CDS version is exposed');
  assert.ok(out('weft_xds_last_update_timestamp_seconds', {}) > Date.now() / 1000 - 60);
  // The server end: the same requests, inbound, to api from a caller it cannot name before mTLS.
  const inb = await metrics(api);
  assert.equal(inb('weft_requests_total', { direction: 'inbound', source: 'unknown', destination: 'api.default', code: '200' }), 5);
  const routes = parsePrometheus((await admin(api, '/stats/prometheus')).text).filter((s) => s.name === 'weft_requests_total' && s.labels.direction === 'inbound');
  assert.ok(routes.every((s) => s.labels.route !== undefined), 'every series has a route label');
});

test('metrics: gRPC calls are counted with their grpc-status (grpc_code) and recorded', T, async () => {
  const c = new EchoClient(`127.0.0.1:${shop.outboundPort}`, grpc.credentials.createInsecure(), { 'grpc.default_authority': 'rpc:50051' });
  try {
    await unary(c, 'Hello', { n: 1 });
    await unary(c, 'Hello', { n: 2 });
    await assert.rejects(unary(c, 'Flaky', { id: 'x' }), (err: grpc.ServiceError) => err.code === grpc.status.UNAVAILABLE);
  } finally {
    c.close();
  }
  const m = await metrics(shop);
  const toRpc = { direction: 'outbound', source: 'shop.default', destination: 'rpc.default', code: '200' };
  assert.equal(m('weft_requests_total', { ...toRpc, grpc_code: '0' }), 2);
  assert.equal(m('weft_requests_total', { ...toRpc, grpc_code: '14' }), 1);
  const recs = (await admin(shop, '/requests?protocol=grpc')).json().items as RequestRecord[];
  assert.deepEqual(recs.map((r) => [r.path, r.grpcStatus]), [['/test.Echo/Hello', 0], ['/test.Echo/Hello', 0], ['/test.Echo/Flaky', 14]]);
  assert.ok(recs.every((r) => r.requestBytes > 0 && r.responseBytes >= 0 && r.upstream === `127.0.0.1:${rpc.port}`));
});

test('metrics: --no-metrics counts nothing (the bench baseline)', T, async () => {
  const off = await mesh.sidecar({ nodeId: 'off', service: 'web', proxy: { metrics: false } });
  assert.equal((await request(off.outboundPort, { host: 'api' })).status, 200);
  const m = await metrics(off);
  assert.equal(m('weft_requests_total', {}), 0);
});

test('records: /requests holds the latest, filtered; TCP connections are records and metrics too', T, async () => {
  assert.equal((await request(shop.outboundPort, { host: 'api', method: 'POST', path: '/orders?x=1', body: 'hello' })).status, 200);
  const recent = (await admin(shop, '/requests?limit=3&method=POST')).json() as { capacity: number; items: RequestRecord[] };
  assert.equal(recent.capacity, 1000);
  const r = recent.items.at(-1)!;
  assert.equal(r.method, 'POST');
  assert.equal(r.path, '/orders?x=1');
  assert.equal(r.authority, 'api');
  assert.equal(r.status, 200);
  assert.equal(r.cluster, 'outbound|80||api.default');
  assert.equal(r.upstream, `127.0.0.1:${api.inboundPort}`);
  assert.deepEqual([r.source, r.destination, r.direction, r.protocol, r.flags, r.attempts], ['shop.default', 'api.default', 'outbound', 'http1', '', 1]);
  assert.ok(r.requestBytes > 5 && r.responseBytes > 0 && r.durationMs >= 0);
  assert.ok(Math.abs(r.time - Date.now()) < 10_000, 'time is epoch ms');
  assert.match(r.sourceAddress, /^127\.0\.0\.1:\d+$/);
  const uh = (await admin(shop, '/requests?flag=UH')).json().items as RequestRecord[];
  assert.ok(uh.length >= 1 && uh.every((x) => x.flags === 'UH' && x.status === 503 && x.upstream === ''));
  assert.equal((await admin(shop, '/requests?status=9zz')).status, 400);

  // TCP: one connection through the db listener.
  const dbListener = shop.config().listeners.get([...shop.config().listeners.keys()].find((k) => k.includes('db.default'))!)!;
  const got = await new Promise<string>((resolve, reject) => {
    const s = net.connect(dbListener.port, '127.0.0.1', () => s.end('ping'));
    let data = '';
    s.on('data', (c) => (data += c));
    s.on('close', () => resolve(data));
    s.on('error', reject);
  });
  assert.equal(got, 'ping');
  await waitFor(async () => ((await admin(shop, '/requests?protocol=tcp')).json().items as RequestRecord[]).length === 1, 2000, 'the TCP record');
  const tcp = (await admin(shop, '/requests?protocol=tcp')).json().items[0] as RequestRecord;
  assert.deepEqual([tcp.destination, tcp.requestBytes, tcp.responseBytes], ['db.default', 4, 4]);
  const m = await metrics(shop);
  assert.equal(m('weft_tcp_connections_total', { destination: 'db.default' }), 1);
  assert.equal(m('weft_tcp_received_bytes_total', { destination: 'db.default' }), 4);
  assert.equal(m('weft_tcp_connections_active', { destination: 'db.default' }), 0);
});

test('access log: one JSON line per request; sampling 0 writes none', T, async () => {
  for (let i = 0; i < 3; i++) assert.equal((await request(logged.outboundPort, { host: 'api', path: `/log/${i}` })).status, 200);
  assert.equal((await request(logged.outboundPort, { host: 'empty' })).status, 503);
  assert.equal((await request(unsampled.outboundPort, { host: 'api' })).status, 200);
  await waitFor(() => fs.existsSync(accessLogPath) && fs.readFileSync(accessLogPath, 'utf8').split('\n').filter(Boolean).length === 4, 3000, 'four access log lines');
  const lines = fs.readFileSync(accessLogPath, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
  assert.deepEqual(lines.map((l) => l.path), ['/log/0', '/log/1', '/log/2', '/']);
  assert.match(lines[0].time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.deepEqual([lines[0].source, lines[0].destination, lines[0].status, lines[0].method], ['web.default', 'api.default', 200, 'GET']);
  assert.deepEqual([lines[3].status, lines[3].flags], [503, 'UH']);
  for (const k of ['durationMs', 'requestBytes', 'responseBytes', 'route', 'cluster', 'upstream']) assert.ok(k in lines[0], k);
  await sleep(100);
  assert.equal(fs.existsSync(unsampledPath) ? fs.readFileSync(unsampledPath, 'utf8') : '', '');
});

test('access log: a sink that does not read drops lines and counts them; the event loop goes on', T, async () => {
  const fifo = path.join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  let dropped = 0;
  const log = new AccessLog({ path: fifo, maxBufferedBytes: 20_000, onDrop: () => dropped++ });
  const record = (i: number): RequestRecord => ({
    time: Date.now(), durationMs: 1, direction: 'outbound', protocol: 'http1', method: 'GET', authority: 'a', path: `/${i}`, route: 'r', cluster: 'c',
    upstream: '127.0.0.1:1', status: 200, flags: '', requestBytes: 1, responseBytes: 1, sourceAddress: '127.0.0.1:2', source: 's', destination: 'd', attempts: 1,
  });
  // Nobody reads the FIFO (opening it for writing waits in the thread pool): lines pile up, then are dropped.
  const started = performance.now();
  for (let round = 0; round < 20; round++) {
    for (let i = 0; i < 100; i++) log.observe(record(round * 100 + i));
    await new Promise((r) => setImmediate(r));
  }
  assert.ok(performance.now() - started < 2000, 'the loop was never blocked');
  assert.ok(dropped > 0, `dropped ${dropped}`);
  // A reader comes: what was buffered flows, and the log closes.
  const reader = fs.createReadStream(fifo);
  let read = '';
  reader.on('data', (c) => (read += c));
  await log.close();
  await new Promise<void>((r) => reader.on('close', () => r()));
  const n = read.split('\n').filter(Boolean).length;
  assert.equal(n + dropped, 2000, `${n} written + ${dropped} dropped`);
});

test('tap: /tap streams records as they finish, filtered; the stream ends when the client goes away', T, async () => {
  const received: RequestRecord[] = [];
  const req = http.get({ host: '127.0.0.1', port: shop.adminPort, path: '/tap?status=5xx' });
  const res = await new Promise<http.IncomingMessage>((resolve) => req.on('response', resolve));
  assert.equal(res.headers['content-type'], 'application/x-ndjson');
  let rest = '';
  res.setEncoding('utf8');
  res.on('data', (c: string) => {
    const lines = (rest + c).split('\n');
    rest = lines.pop()!;
    for (const l of lines) received.push(JSON.parse(l));
  });
  await sleep(50);
  assert.equal((await request(shop.outboundPort, { host: 'api', path: '/tapped-ok' })).status, 200);
  assert.equal((await request(shop.outboundPort, { host: 'empty', path: '/tapped-fail' })).status, 503);
  await waitFor(() => received.length >= 1, 2000, 'a tapped record');
  await sleep(100);
  assert.deepEqual(received.map((r) => [r.path, r.status, r.flags]), [['/tapped-fail', 503, 'UH']]);
  assert.equal(shop.proxy.stats.records['observers'].size, 1);
  req.destroy();
  await waitFor(() => shop.proxy.stats.records['observers'].size === 0, 2000, 'the tap observer removed');
});

test('weft tap <service>: finds the sidecars through the control plane and prints their requests', T, async () => {
  let text = '';
  const controller = new AbortController();
  const done = runTap('api', { api: `http://127.0.0.1:${mesh.cp!.apiPort}`, out: { write: (t: string) => (text += t) }, signal: controller.signal });
  await waitFor(() => text.includes('# tapping'), 3000, 'the tap started');
  // The line is printed before the stream to the sidecar is open: wait until the sidecar has the tap.
  await waitFor(() => api.proxy.stats.records['observers'].size === 1, 3000, 'the tap registered at api-1');
  assert.equal((await request(shop.outboundPort, { host: 'api', method: 'PUT', path: '/via-tap', body: 'x' })).status, 200);
  await waitFor(() => text.includes('/via-tap'), 3000, 'the request printed');
  controller.abort();
  await done;
  assert.match(text, /# tapping 1 sidecar\(s\) of default\/api on replica \S+: api-1/);
  const line = text.split('\n').find((l) => l.includes('/via-tap'))!;
  assert.match(line, /api-1 inbound +PUT api\/via-tap → 200 [\d.]+ms unknown→api\.default 127\.0\.0\.1:\d+/);
  await assert.rejects(runTap('nobody', { api: `http://127.0.0.1:${mesh.cp!.apiPort}`, out: { write: () => true } }), /no sidecar of service nobody/);
});

test('control plane: /metrics on the API port (xDS clients, pushes, translate time, store revision)', T, async () => {
  const res = await request(mesh.cp!.apiPort, { host: '127.0.0.1', path: '/metrics' });
  assert.equal(res.status, 200);
  assert.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4/);
  const samples = parsePrometheus(res.text);
  const v = (name: string, labels: Record<string, string> = {}) =>
    samples.filter((s) => s.name === name && Object.entries(labels).every(([k, x]) => s.labels[k] === x)).reduce((n, s) => n + s.value, 0);
  assert.ok(v('weft_control_xds_clients', { role: 'sidecar' }) >= 4);
  assert.ok(v('weft_control_xds_pushes_total', { type: 'CDS' }) >= 4);
  assert.ok(v('weft_control_xds_acks_total', { type: 'LDS' }) >= 4);
  assert.ok(v('weft_control_translate_duration_seconds_count') >= 1);
  assert.ok(v('weft_control_store_revision') >= 1);
  assert.equal(v('weft_control_config_errors'), 0);
});
