// Request mirroring: an HTTPRoute RequestMirror filter reaches the sidecar as
// request_mirror_policies, and the sidecar sends a copy of the sampled share
// of requests (body included, Host with "-shadow") to the mirror service. The
// mirror's answer is dropped, and a mirror that hangs, is down or reads
// slowly never delays or fails the primary.
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { admin, docs, exitGuard, HttpUpstream, Mesh, parsePrometheus, RawUpstream, request, serviceYaml, T, waitFor, type Sidecar } from '../../helpers/proxy-harness';
import type { RouteAction } from '../../../src/proxy/config/types';

let mesh: Mesh;
let sc: Sidecar;
let primary: HttpUpstream;
let mirror: HttpUpstream;
/** Accepts connections and reads nothing, ever: a shadow to it can only pile up. */
let blackhole: RawUpstream;
let refusedPort: number;

const route = (name: string, mirrorRef: string, percent?: number) => `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: ${name} }
spec:
  parentRefs: [{ kind: Service, name: ${name}, port: 80 }]
  rules:
    - filters: [{ type: RequestMirror, requestMirror: { backendRef: { name: ${mirrorRef}, port: 80 }${percent === undefined ? '' : `, percent: ${percent}`} } }]
      backendRefs: [{ name: ${name}, port: 80 }]
`;

before(async () => {
  primary = await HttpUpstream.start('primary');
  mirror = await HttpUpstream.start('mirror');
  blackhole = await RawUpstream.start((s) => s.pause());
  const spare = net.createServer();
  await new Promise<void>((r) => spare.listen(0, '127.0.0.1', () => r()));
  refusedPort = (spare.address() as net.AddressInfo).port;
  await new Promise<void>((r) => spare.close(() => r()));
  mesh = await Mesh.start({
    'services.yaml': docs(
      serviceYaml({ name: 'shop', endpoints: [primary.port] }),
      serviceYaml({ name: 'half', endpoints: [primary.port] }),
      serviceYaml({ name: 'stuck', endpoints: [primary.port] }),
      serviceYaml({ name: 'gone', endpoints: [primary.port] }),
      serviceYaml({ name: 'audit', endpoints: [mirror.port] }),
      serviceYaml({ name: 'blackhole', endpoints: [blackhole.port] }),
      serviceYaml({ name: 'refused', endpoints: [refusedPort] }),
    ),
    'routes.yaml': docs(route('shop', 'audit'), route('half', 'audit', 50), route('stuck', 'blackhole'), route('gone', 'refused')),
  });
  sc = await mesh.sidecar();
  await sc.waitConfig((c) => [...c.routeTables.values()].some((t) => t.virtualHosts.some((v) => v.routes.some((r) => (r.action as RouteAction).mirrors?.length))), 3000, 'routes with mirrors');
}, T);

after(async () => {
  exitGuard();
  await mesh.close();
  await Promise.all([primary.close(), mirror.close(), blackhole.close()]);
});

test('every request is copied to the mirror with its body; Host gets -shadow; the client sees the primary', T, async () => {
  primary.reset();
  mirror.reset();
  const body = 'x'.repeat(20_000);
  const res = await request(sc.outboundPort, { host: 'shop', path: '/orders?id=7', method: 'POST', body, headers: { 'x-trace': 'abc' } });
  assert.equal(res.status, 200);
  assert.equal(res.json().name, 'primary');
  // Chunked too: the shadow carries the body framed as it came.
  const chunked = await new Promise<number>((resolve, reject) => {
    const s = net.connect(sc.outboundPort, '127.0.0.1', () => {
      s.write('POST /chunked HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n');
    });
    let text = '';
    s.on('data', (c: Buffer) => (text += c.toString('latin1')));
    s.on('end', () => resolve(Number(text.split(' ')[1])));
    s.on('error', reject);
  });
  assert.equal(chunked, 200);
  await waitFor(() => mirror.requests === 2, 3000, 'both shadows at the mirror');
  const [post, chunk] = [mirror.seen.find((r) => r.url === '/orders?id=7')!, mirror.seen.find((r) => r.url === '/chunked')!];
  assert.equal(post.method, 'POST');
  assert.equal(post.headers.host, 'shop-shadow');
  assert.equal(post.headers['x-trace'], 'abc');
  assert.equal(post.body.toString(), body);
  assert.equal(chunk.body.toString(), 'hello world');
  assert.equal(chunk.headers.host, 'shop-shadow');
  assert.equal(primary.requests, 2, 'the primary got each request once');
  const stats = parsePrometheus((await admin(sc, '/stats/prometheus')).text);
  const sent = stats.find((m) => m.name === 'weft_mirror_requests_total' && m.labels.cluster === 'outbound|80||audit.default');
  assert.ok(sent && sent.value >= 2, 'weft_mirror_requests_total counts the shadows');
});

test('percent: about that share of requests is mirrored', T, async () => {
  mirror.reset();
  // The sidecar decides at each request whether it is mirrored, and counts the shadow sent (or
  // dropped) then; the shadow reaches the mirror later. Wait until every one sent has arrived or
  // was dropped.
  const audit = 'outbound|80||audit.default';
  const mirrors = sc.proxy.stats.mirrors;
  const count = (map: Map<string, number>) => map.get(audit) ?? 0;
  const [sent0, dropped0] = [count(mirrors.sent), count(mirrors.dropped)];
  const n = 200;
  for (let i = 0; i < n; i++) assert.equal((await request(sc.outboundPort, { host: 'half', path: `/${i}` })).status, 200);
  const sent = () => count(mirrors.sent) - sent0;
  const dropped = () => count(mirrors.dropped) - dropped0;
  await waitFor(() => mirror.requests + dropped() >= sent(), 5000, 'every shadow sent at the mirror, or dropped');
  // 50 % of 200: mean 100, sd ≈ 7; ±40 is beyond 5 sd.
  assert.ok(mirror.requests > 60 && mirror.requests < 140, `mirrored ${mirror.requests} of ${n}`);
});

test('a mirror that never reads, or is down, never delays or fails the primary', T, async () => {
  const big = Buffer.alloc(256 * 1024, 0x61);
  for (const host of ['stuck', 'gone']) {
    const t0 = performance.now();
    for (let i = 0; i < 10; i++) {
      const res = await request(sc.outboundPort, { host, path: `/${i}`, method: 'POST', body: big });
      assert.equal(res.status, 200, `${host}: primary answers`);
      assert.equal(res.json().bodyLength, big.length);
    }
    const ms = performance.now() - t0;
    assert.ok(ms < 3000, `${host}: 10 primaries took ${ms.toFixed(0)} ms`);
  }
  // The blackhole got connections (the shadows were attempted) and holds them; none of that reached the client.
  await waitFor(() => blackhole.connections >= 10, 3000, 'shadows at the blackhole');
});

test('HTTP/2 (h2c) requests are mirrored too, body included', T, async () => {
  mirror.reset();
  const client = http2.connect(`http://127.0.0.1:${sc.outboundPort}`);
  try {
    const status = await new Promise<number>((resolve, reject) => {
      const req = client.request({ ':method': 'POST', ':path': '/h2', ':authority': 'shop', 'content-length': '5' });
      req.on('response', (h) => resolve(Number(h[':status'])));
      req.on('error', reject);
      req.resume();
      req.end('h2h2h');
    });
    assert.equal(status, 200);
  } finally {
    client.close();
  }
  await waitFor(() => mirror.requests === 1, 3000, 'the h2 shadow');
  assert.equal(mirror.seen[0].headers.host, 'shop-shadow');
  assert.equal(mirror.seen[0].body.toString(), 'h2h2h');
});
