// Routing through a real sidecar: the Host forms a service is known by,
// absolute-form targets, HTTPRoute matches (path, header, method, query),
// a weighted split, header filters, redirects, URL rewrites, no route and
// the local answer of a rule left without backends.
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as http from 'node:http';
import { docs, HttpUpstream, Mesh, rawRoundTrip, request, serviceYaml, type Sidecar, T, exitGuard } from '../../helpers/proxy-harness';

let mesh: Mesh;
let sc: Sidecar;
let alpha: HttpUpstream;
let beta: HttpUpstream;
let gamma: HttpUpstream;
let v1: HttpUpstream;
let v2: HttpUpstream;

const ROUTES = `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: shop }
spec:
  parentRefs: [{ kind: Service, name: shop, port: 80 }]
  rules:
    - matches: [{ path: { type: Exact, value: /exact } }]
      backendRefs: [{ name: shop-v2 }]
    - matches: [{ headers: [{ name: X-Canary, value: "yes" }] }]
      backendRefs: [{ name: shop-v2 }]
    - matches: [{ method: DELETE }]
      backendRefs: [{ name: shop-v2 }]
    - matches: [{ queryParams: [{ name: tier, value: gold }] }]
      backendRefs: [{ name: shop-v2 }]
    - matches: [{ path: { type: PathPrefix, value: /split } }]
      backendRefs: [{ name: shop-v1, weight: 80 }, { name: shop-v2, weight: 20 }]
    - matches: [{ path: { type: PathPrefix, value: /hdr } }]
      filters:
        - type: RequestHeaderModifier
          requestHeaderModifier: { set: [{ name: x-set, value: set-by-route }], add: [{ name: x-added, value: added }], remove: [x-secret] }
        - type: ResponseHeaderModifier
          responseHeaderModifier: { add: [{ name: x-resp, value: from-route }], remove: [x-upstream] }
      backendRefs: [{ name: shop-v1 }]
    - matches: [{ path: { type: PathPrefix, value: /old } }]
      filters:
        - type: RequestRedirect
          requestRedirect: { hostname: new.example, path: { type: ReplacePrefixMatch, replacePrefixMatch: /new }, statusCode: 301 }
    - matches: [{ path: { type: PathPrefix, value: /api } }]
      filters:
        - type: URLRewrite
          urlRewrite: { path: { type: ReplacePrefixMatch, replacePrefixMatch: /v2 } }
      backendRefs: [{ name: shop-v1 }]
    - matches: [{ path: { type: PathPrefix, value: /dead } }]
      backendRefs: [{ name: shop-v1, weight: 0 }]
    - backendRefs: [{ name: shop-v1 }]
`;

before(async () => {
  [alpha, beta, gamma, v1, v2] = await Promise.all(['alpha', 'beta', 'gamma', 'v1', 'v2'].map((n) => HttpUpstream.start(n)));
  mesh = await Mesh.start({
    'services.yaml': docs(
      serviceYaml({ name: 'alpha', port: 80, endpoints: [alpha.port] }),
      serviceYaml({ name: 'beta', port: 8080, endpoints: [beta.port] }),
      serviceYaml({ name: 'gamma', namespace: 'other', port: 80, endpoints: [gamma.port] }),
      serviceYaml({ name: 'shop', port: 80 }),
      serviceYaml({ name: 'shop-v1', port: 80, endpoints: [v1.port] }),
      serviceYaml({ name: 'shop-v2', port: 80, endpoints: [v2.port] }),
    ),
    'routes.yaml': ROUTES,
  });
  sc = await mesh.sidecar();
}, T);

after(async () => {
  exitGuard();
  await mesh.close();
  await Promise.all([alpha, beta, gamma, v1, v2].map((u) => u.close()));
}, T);

const get = (host: string, path = '/', headers: http.OutgoingHttpHeaders = {}, method = 'GET') => request(sc.outboundPort, { host, path, headers, method });

test('routing: every Host form of a service reaches it; another namespace needs its namespace', T, async () => {
  const cases: [string, string][] = [
    ['alpha', 'alpha'],
    ['alpha:80', 'alpha'],
    ['alpha.default', 'alpha'],
    ['alpha.default:80', 'alpha'],
    ['ALPHA.Default', 'alpha'],
    ['beta', 'beta'], // the lowest port is the default when there is no 80
    ['beta:8080', 'beta'],
    ['beta.default:8080', 'beta'],
    ['beta.default.svc:8080', 'beta'],
    ['gamma.other', 'gamma'],
    ['gamma.other:80', 'gamma'],
  ];
  for (const [host, expected] of cases) {
    const res = await get(host, '/where');
    assert.equal(res.status, 200, `Host ${host}: ${res.text}`);
    assert.equal(res.json().name, expected, `Host ${host}`);
    assert.equal(res.json().url, '/where');
    assert.equal(res.json().headers.host, host, 'the Host goes upstream as sent');
  }
  // A port the service does not have is no route: it must not reach the service's other port.
  for (const host of ['gamma', 'gamma:80', 'gamma.default', 'nope', 'nope:80', 'alpha.other', 'alpha.default.svc.cluster', 'beta:80', 'beta.default:9999']) {
    const res = await get(host);
    assert.equal(res.status, 404, `Host ${host}`);
    assert.equal(res.headers['x-weft-response-flags'], 'NR', `Host ${host}`);
  }
});

test('routing: an absolute-form target routes by its authority, and the upstream gets origin-form with that Host', T, async () => {
  const before = beta.requests;
  const res = await rawRoundTrip(sc.outboundPort, 'GET http://beta:8080/abs/path?q=1 HTTP/1.1\r\nHost: ignored.example\r\n\r\n');
  assert.equal(res.status, 200, res.rawHead);
  const body = JSON.parse(res.body.toString());
  assert.equal(body.name, 'beta');
  assert.equal(body.url, '/abs/path?q=1');
  assert.equal(body.headers.host, 'beta:8080');
  assert.equal(beta.requests, before + 1);
  // No path in the URL: '/'.
  const bare = await rawRoundTrip(sc.outboundPort, 'GET http://alpha.default HTTP/1.1\r\nHost: alpha.default\r\n\r\n');
  assert.equal(JSON.parse(bare.body.toString()).url, '/');
  // node:http as a forward proxy client (what HTTP_PROXY makes apps do).
  const viaProxy = await request(sc.outboundPort, { host: 'gamma.other', path: 'http://gamma.other/fwd' });
  assert.equal(viaProxy.json().name, 'gamma');
  assert.equal(viaProxy.json().url, '/fwd');
});

test('routing: path, header, method and query matches choose the backend', T, async () => {
  const cases: { path: string; headers?: http.OutgoingHttpHeaders; method?: string; to: string }[] = [
    { path: '/exact', to: 'v2' },
    { path: '/exact/more', to: 'v1' },
    { path: '/exactly', to: 'v1' },
    { path: '/m', headers: { 'x-canary': 'yes' }, to: 'v2' },
    { path: '/m', headers: { 'x-canary': 'YES' }, to: 'v1' },
    { path: '/m', headers: { 'x-canary': 'no' }, to: 'v1' },
    { path: '/m', method: 'DELETE', to: 'v2' },
    { path: '/m', method: 'PUT', to: 'v1' },
    { path: '/m?tier=gold', to: 'v2' },
    { path: '/m?a=1&tier=gold', to: 'v2' },
    { path: '/m?tier=silver', to: 'v1' },
    { path: '/m', to: 'v1' },
  ];
  for (const c of cases) {
    const res = await get('shop', c.path, c.headers, c.method);
    assert.equal(res.status, 200, `${c.method ?? 'GET'} ${c.path}: ${res.text}`);
    assert.equal(res.json().name, c.to, `${c.method ?? 'GET'} ${c.path} ${JSON.stringify(c.headers ?? {})}`);
  }
});

test('routing: an 80/20 split over 1000 requests lands within tolerance', T, async () => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  const counts: Record<string, number> = { v1: 0, v2: 0 };
  try {
    for (let batch = 0; batch < 1000; batch += 50) {
      const results = await Promise.all(Array.from({ length: 50 }, () => request(sc.outboundPort, { host: 'shop', path: '/split', agent })));
      for (const r of results) {
        assert.equal(r.status, 200, r.text);
        counts[r.json().name]++;
      }
    }
  } finally {
    agent.destroy();
  }
  assert.equal(counts.v1 + counts.v2, 1000);
  // Binomial(1000, 0.2): mean 200, sd 12.6; ±4 sd.
  assert.ok(counts.v2 >= 150 && counts.v2 <= 250, `v2 got ${counts.v2} of 1000`);
});

test('routing: request and response header filters', T, async () => {
  const res = await get('shop', '/hdr', { 'x-secret': 'hunter2', 'x-set': 'from-client', 'x-added': 'client' });
  assert.equal(res.status, 200, res.text);
  const seen = res.json().headers;
  assert.equal(seen['x-secret'], undefined, 'removed');
  assert.equal(seen['x-set'], 'set-by-route', 'overwritten');
  assert.equal(seen['x-added'], 'client, added', 'appended');
  assert.equal(res.headers['x-resp'], 'from-route');
  assert.equal(res.headers['x-upstream'], undefined, 'a response header removed');
  assert.equal(res.headers['content-type'], 'application/json', 'other headers untouched');
});

test('routing: RequestRedirect answers 301 with Location, nothing goes upstream', T, async () => {
  const before = v1.requests + v2.requests;
  const res = await get('shop', '/old/page?x=1');
  assert.equal(res.status, 301);
  assert.equal(res.headers.location, 'http://new.example/new/page?x=1');
  assert.equal(v1.requests + v2.requests, before);
});

test('routing: URLRewrite replaces the matched prefix', T, async () => {
  const res = await get('shop', '/api/items?page=2');
  assert.equal(res.json().name, 'v1');
  assert.equal(res.json().url, '/v2/items?page=2');
  const exact = await get('shop', '/api');
  assert.equal(exact.json().url, '/v2');
});

test('routing: a rule whose backends all have weight 0 answers 500 locally; the connection goes on', T, async () => {
  const before = v1.requests + v2.requests;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const res = await request(sc.outboundPort, { host: 'shop', path: '/dead/x', agent });
    assert.equal(res.status, 500);
    assert.equal(v1.requests + v2.requests, before);
    const next = await request(sc.outboundPort, { host: 'shop', path: '/m', agent });
    assert.equal(next.json().name, 'v1');
  } finally {
    agent.destroy();
  }
});

test('routing: unknown host → 404 NR, also for HEAD (no body)', T, async () => {
  const res = await get('unknown.example', '/x');
  assert.equal(res.status, 404);
  assert.equal(res.headers['x-weft-response-flags'], 'NR');
  assert.match(res.text, /no route/);
  const head = await rawRoundTrip(sc.outboundPort, 'HEAD /x HTTP/1.1\r\nHost: unknown.example\r\n\r\n', 'HEAD');
  assert.equal(head.status, 404);
  assert.equal(head.headers['x-weft-response-flags'], 'NR');
});
