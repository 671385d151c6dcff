import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseDocuments, resourceKey, validateAgainst, validateDelete, validateSet, type Resource } from '../../src/config';
import { BASE_KEYS, keys, loadYaml, onlyError, withBase } from './support';

const HTTP = 'apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute';
const GRPC = 'apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute';
const TCP = 'apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: TCPRoute';
const WEFT = 'apiVersion: weft.dev/v1';

/** A valid HTTPRoute, as the good neighbour of a bad document. */
const ROUTE_OK = `${HTTP}\nmetadata: { name: ok }\nspec:\n  parentRefs: [{ name: web, port: 80 }]\n  rules: [{ backendRefs: [{ name: web, port: 80 }] }]`;
const OK_KEYS = [...BASE_KEYS, 'HTTPRoute/default/ok'];

function route(name: string, spec: string, head = HTTP): string {
  return `${head}\nmetadata: { name: ${name} }\nspec:\n${spec}`;
}

function policy(kind: string, name: string, spec: string): string {
  return `${WEFT}\nkind: ${kind}\nmetadata: { name: ${name} }\nspec:\n${spec}`;
}

/** Loads BASE + `bad` (document 3) + ROUTE_OK (document 4); expects one error in document 3. */
async function expectBad(bad: string, code: string, path: string, detail?: RegExp): Promise<void> {
  const { file, resources, errors } = await loadYaml(withBase(bad, ROUTE_OK));
  const e = onlyError(errors, { code: code as never, file, document: 3, path });
  if (detail) assert.match(e.detail, detail);
  assert.deepEqual(keys(resources), OK_KEYS, 'the bad document yields no resource, the others do');
}

async function expectGood(...docs: string[]): Promise<Resource[]> {
  const { resources, errors } = await loadYaml(withBase(...docs));
  assert.deepEqual(errors.map((e) => e.message), []);
  return resources;
}

test('duplicate kind/namespace/name names both places', async () => {
  const { file, resources, errors } = await loadYaml(withBase(ROUTE_OK, ROUTE_OK.replace('port: 80 }] }]', 'port: 9901 }] }]')));
  const e = onlyError(errors, { code: 'E_DUPLICATE', file, document: 4, path: 'metadata.name' });
  assert.ok(e.detail.includes(`here in ${file} document 4 and before in ${file} document 3`), e.detail);
  assert.deepEqual(keys(resources), OK_KEYS);
  assert.equal((resources[3] as Resource<'HTTPRoute'>).spec.rules[0].backendRefs?.[0].port, 80, 'the first definition stays');
});

test('the same name in another namespace is no duplicate', async () => {
  await expectGood(ROUTE_OK, ROUTE_OK.replace('{ name: ok }', '{ name: ok, namespace: other }').replace(/name: web,/g, 'name: web, namespace: default,'));
});

test('duplicate port names within a Service', async () => {
  const svc = policy('Service', 'api', '  ports:\n    - { name: http, port: 80, protocol: http }\n    - { name: http, port: 81, protocol: http }');
  await expectBad(svc, 'E_DUPLICATE', 'spec.ports[1].name', /duplicate port name 'http' \(also spec\.ports\[0\]\)/);
});

test('duplicate port numbers within a Service', async () => {
  const svc = policy('Service', 'api', '  ports:\n    - { name: http, port: 80, protocol: http }\n    - { name: grpc, port: 80, protocol: grpc }');
  await expectBad(svc, 'E_DUPLICATE', 'spec.ports[1].port', /duplicate port 80/);
});

test('a backendRef naming a missing Service', async () => {
  const r = route('shop', '  parentRefs: [{ name: web }]\n  rules:\n    - backendRefs: [{ name: web, port: 80 }, { name: cart, port: 80 }]');
  await expectBad(r, 'E_REFERENCE', 'spec.rules[0].backendRefs[1].name', /^Service default\/cart does not exist$/);
});

test('a parentRef naming a missing Service', async () => {
  const r = route('shop', '  parentRefs: [{ name: shop }]\n  rules: [{ backendRefs: [{ name: web, port: 80 }] }]');
  await expectBad(r, 'E_REFERENCE', 'spec.parentRefs[0].name', /Service default\/shop does not exist/);
});

test("a reference's namespace defaults to the route's own", async () => {
  const r = `${HTTP}\nmetadata: { name: shop, namespace: shop }\nspec:\n  parentRefs: [{ name: web, namespace: default }]\n  rules: [{ backendRefs: [{ name: web, port: 80 }] }]`;
  await expectBad(r, 'E_REFERENCE', 'spec.rules[0].backendRefs[0].name', /Service shop\/web does not exist/);
  await expectGood(r.replace('{ name: web, port: 80 }', '{ name: web, namespace: default, port: 80 }'));
});

test('a parentRef port the Service does not have', async () => {
  const r = route('shop', '  parentRefs: [{ name: web, port: 8080 }]\n  rules: [{ backendRefs: [{ name: web, port: 80 }] }]');
  await expectBad(r, 'E_REFERENCE', 'spec.parentRefs[0].port', /no port 8080 \(expected one of the ports 80 \(http\), 9901 \(http\)\)/);
});

test('a backendRef port the Service does not have', async () => {
  const r = route('shop', '  parentRefs: [{ name: web }]\n  rules: [{ backendRefs: [{ name: greeter, port: 50052 }] }]');
  await expectBad(r, 'E_REFERENCE', 'spec.rules[0].backendRefs[0].port', /Service default\/greeter has no port 50052/);
});

test('a backendRef without port to a Service with several ports', async () => {
  const r = route('shop', '  parentRefs: [{ name: web }]\n  rules: [{ backendRefs: [{ name: web }] }]');
  await expectBad(r, 'E_REFERENCE', 'spec.rules[0].backendRefs[0].port', /several ports/);
  await expectGood(route('g', '  parentRefs: [{ name: web }]\n  rules: [{ backendRefs: [{ name: greeter }] }]'));
});

test('an HTTPRoute cannot attach to a tcp port', async () => {
  const r = route('shop', '  parentRefs: [{ name: db, port: 5432 }]\n  rules: [{ backendRefs: [{ name: web, port: 80 }] }]');
  await expectBad(r, 'E_REFERENCE', 'spec.parentRefs[0].port', /HTTPRoute cannot attach to port 5432 of Service default\/db: its protocol is tcp/);
});

test('an HTTPRoute without parent port needs a fitting port on the Service', async () => {
  const r = route('shop', '  parentRefs: [{ name: db }]\n  rules: [{ backendRefs: [{ name: web, port: 80 }] }]');
  await expectBad(r, 'E_REFERENCE', 'spec.parentRefs[0]', /has no port a HTTPRoute can attach to \(its ports: 5432 \(tcp\)/);
});

test('a GRPCRoute cannot attach to an http port', async () => {
  const r = route('g', '  parentRefs: [{ name: web, port: 80 }]\n  rules: [{ backendRefs: [{ name: greeter, port: 50051 }] }]', GRPC);
  await expectBad(r, 'E_REFERENCE', 'spec.parentRefs[0].port', /expected a port with protocol grpc or http2/);
});

test('a TCPRoute cannot attach to a grpc port', async () => {
  const r = route('t', '  parentRefs: [{ name: greeter, port: 50051 }]\n  rules: [{ backendRefs: [{ name: db, port: 5432 }] }]', TCP);
  await expectBad(r, 'E_REFERENCE', 'spec.parentRefs[0].port', /protocol is grpc/);
});

test('routes on ports that fit: HTTPRoute on grpc, GRPCRoute on grpc, TCPRoute on tcp', async () => {
  await expectGood(
    route('h', '  parentRefs: [{ name: greeter, port: 50051 }]\n  rules: [{ backendRefs: [{ name: greeter, port: 50051 }] }]'),
    route('g', '  parentRefs: [{ name: greeter }]\n  rules: [{ backendRefs: [{ name: greeter }] }]', GRPC),
    route('t', '  parentRefs: [{ name: db, port: 5432 }]\n  rules: [{ backendRefs: [{ name: db }] }]', TCP),
  );
});

test('backendRefs all of weight 0 are fine (no traffic)', async () => {
  const [r] = (await expectGood(route('zero', '  parentRefs: [{ name: web }]\n  rules: [{ backendRefs: [{ name: web, port: 80, weight: 0 }, { name: web, port: 9901, weight: 0 }] }]'))).slice(3);
  assert.deepEqual((r as Resource<'HTTPRoute'>).spec.rules[0].backendRefs?.map((b) => b.weight), [0, 0]);
});

test('a rule with neither backendRefs nor a redirect', async () => {
  const r = route('shop', '  parentRefs: [{ name: web }]\n  rules:\n    - backendRefs: [{ name: web, port: 80 }]\n    - matches: [{ path: { value: /x } }]');
  await expectBad(r, 'E_INVALID', 'spec.rules[1].backendRefs', /needs backendRefs or a RequestRedirect filter/);
  await expectGood(
    route('redir', '  parentRefs: [{ name: web }]\n  rules:\n    - filters: [{ type: RequestRedirect, requestRedirect: { scheme: https } }]'),
  );
});

test('a RequestRedirect of type ReplaceFullPath without replaceFullPath', async () => {
  const r = route('shop', '  parentRefs: [{ name: web }]\n  rules:\n    - filters: [{ type: RequestRedirect, requestRedirect: { path: { type: ReplaceFullPath, replacePrefixMatch: /x } } }]');
  const { file, resources, errors } = await loadYaml(withBase(r, ROUTE_OK));
  assert.deepEqual(
    errors.map((e) => [e.code, e.file, e.document, e.path]),
    [
      ['E_INVALID', file, 3, 'spec.rules[0].filters[0].requestRedirect.path.replaceFullPath'],
      ['E_INVALID', file, 3, 'spec.rules[0].filters[0].requestRedirect.path.replacePrefixMatch'],
    ],
  );
  assert.deepEqual(keys(resources), OK_KEYS);
});

test('a RequestRedirect of type ReplacePrefixMatch without replacePrefixMatch', async () => {
  const r = route('shop', '  parentRefs: [{ name: web }]\n  rules:\n    - filters: [{ type: RequestRedirect, requestRedirect: { path: { type: ReplacePrefixMatch } } }]');
  await expectBad(r, 'E_INVALID', 'spec.rules[0].filters[0].requestRedirect.path.replacePrefixMatch', /path type ReplacePrefixMatch needs replacePrefixMatch/);
});

test('ReplacePrefixMatch needs a single PathPrefix match', async () => {
  const r = route(
    'shop',
    '  parentRefs: [{ name: web }]\n  rules:\n    - matches: [{ path: { type: Exact, value: /a } }]\n      filters: [{ type: URLRewrite, urlRewrite: { path: { type: ReplacePrefixMatch, replacePrefixMatch: /b } } }]\n      backendRefs: [{ name: web, port: 80 }]',
  );
  await expectBad(r, 'E_INVALID', 'spec.rules[0].matches', /exactly one match, of path type PathPrefix/);
});

test('a regular expression that does not compile', async () => {
  const r = route('shop', '  parentRefs: [{ name: web }]\n  rules:\n    - matches: [{ path: { type: RegularExpression, value: "/a(" } }]\n      backendRefs: [{ name: web, port: 80 }]');
  await expectBad(r, 'E_INVALID', 'spec.rules[0].matches[0].path.value', /not a valid RE2 regular expression/);
});

// JavaScript accepts these; RE2 (Envoy, gRPC) does not, and a client would NACK the whole RouteConfiguration.
const RE2_REJECTS: [string, string, string, string][] = [
  ['a lookahead in a path', HTTP, 'matches: [{ path: { type: RegularExpression, value: "(?=a)b" } }]', 'spec.rules[0].matches[0].path.value'],
  ['a negative lookahead in a header', HTTP, 'matches: [{ headers: [{ type: RegularExpression, name: x-a, value: "(?!x).*" }] }]', 'spec.rules[0].matches[0].headers[0].value'],
  ['a backreference in a query parameter', HTTP, 'matches: [{ queryParams: [{ type: RegularExpression, name: q, value: "(a)\\\\1" }] }]', 'spec.rules[0].matches[0].queryParams[0].value'],
  ['a lookbehind in a gRPC method', GRPC, 'matches: [{ method: { type: RegularExpression, service: "(?<=a)b" } }]', 'spec.rules[0].matches[0].method.service'],
];
for (const [what, head, matches, at] of RE2_REJECTS) {
  test(`RE2 refuses what JavaScript accepts: ${what}`, async () => {
    const backend = head === GRPC ? '{ name: greeter }' : '{ name: web, port: 80 }';
    const parent = head === GRPC ? '{ name: greeter }' : '{ name: web }';
    const r = route('re', `  parentRefs: [${parent}]\n  rules:\n    - ${matches}\n      backendRefs: [${backend}]`, head);
    await expectBad(r, 'E_INVALID', at, /not a valid RE2 regular expression/);
  });
}

test('RE2-only syntax is accepted: named groups (?P<n>…), \\A and \\z, POSIX classes', async () => {
  await expectGood(route('re2', '  parentRefs: [{ name: web }]\n  rules:\n    - matches: [{ path: { type: RegularExpression, value: "\\\\A/(?P<v>[[:alpha:]]+)/.*\\\\z" } }]\n      backendRefs: [{ name: web, port: 80 }]'));
});

test('a TrafficPolicy whose targetRef names a missing Service', async () => {
  await expectBad(policy('TrafficPolicy', 'p', '  targetRef: { name: cart }\n  timeouts: { request: 1s }'), 'E_REFERENCE', 'spec.targetRef.name', /Service default\/cart does not exist/);
});

test('a MeshTLS whose targetRef names a missing Service', async () => {
  await expectBad(policy('MeshTLS', 'm', '  targetRef: { name: cart }\n  mode: strict'), 'E_REFERENCE', 'spec.targetRef.name');
});

test('an AuthorizationPolicy whose targetRef names a missing Service', async () => {
  await expectBad(policy('AuthorizationPolicy', 'a', '  targetRef: { name: cart }\n  action: DENY'), 'E_REFERENCE', 'spec.targetRef.name');
});

test('two TrafficPolicies on the same Service conflict', async () => {
  const first = policy('TrafficPolicy', 'a', '  targetRef: { name: web }\n  timeouts: { request: 1s }');
  const second = policy('TrafficPolicy', 'b', '  targetRef: { name: web, namespace: default }\n  timeouts: { request: 2s }');
  const { file, resources, errors } = await loadYaml(withBase(first, second));
  const e = onlyError(errors, { code: 'E_CONFLICT', file, document: 4, path: 'spec.targetRef' });
  assert.match(e.detail, new RegExp(`TrafficPolicy default/a in ${file.replace(/[.]/g, '\\.')} document 3 already applies to Service default/web`));
  assert.deepEqual(keys(resources), [...BASE_KEYS, 'TrafficPolicy/default/a']);
});

test('two namespace-wide MeshTLS in one namespace conflict', async () => {
  const { file, resources, errors } = await loadYaml(withBase(policy('MeshTLS', 'a', '  mode: strict'), policy('MeshTLS', 'b', '  mode: permissive')));
  const e = onlyError(errors, { code: 'E_CONFLICT', file, document: 4, path: 'spec.targetRef' });
  assert.match(e.detail, /already applies to namespace default/);
  assert.deepEqual(keys(resources), [...BASE_KEYS, 'MeshTLS/default/a']);
  await expectGood(policy('MeshTLS', 'a', '  mode: strict'), policy('MeshTLS', 'b', '  targetRef: { name: web }\n  mode: permissive'));
});

test('retries.backoff.maxInterval shorter than baseInterval', async () => {
  const p = policy('TrafficPolicy', 'p', '  targetRef: { name: web }\n  retries: { attempts: 2, backoff: { baseInterval: 1s, maxInterval: 500ms } }');
  const { file, resources, errors } = await loadYaml(withBase(p, ROUTE_OK));
  const e = onlyError(errors, { code: 'E_INVALID', file, document: 3, path: 'spec.retries.backoff.maxInterval' });
  assert.equal(e.expected, 'a duration >= 1s');
  assert.deepEqual(keys(resources), OK_KEYS);
});

test('ringHash minimumRingSize larger than maximumRingSize', async () => {
  const p = policy('TrafficPolicy', 'p', '  targetRef: { name: web }\n  loadBalancer: { type: RingHash, ringHash: { minimumRingSize: 4096, maximumRingSize: 2048 } }');
  await expectBad(p, 'E_INVALID', 'spec.loadBalancer.ringHash.minimumRingSize', /4096 is larger than maximumRingSize 2048/);
});

test('a maximumRingSize below the default minimum', async () => {
  const p = policy('TrafficPolicy', 'p', '  targetRef: { name: web }\n  loadBalancer: { type: RingHash, ringHash: { maximumRingSize: 512 } }');
  await expectBad(p, 'E_INVALID', 'spec.loadBalancer.ringHash.maximumRingSize', /defaults to 1024/);
});

test('hashOn without RingHash or Maglev', async () => {
  const p = policy('TrafficPolicy', 'p', '  targetRef: { name: web }\n  loadBalancer: { type: LeastRequest, hashOn: [{ header: x-user }] }');
  await expectBad(p, 'E_INVALID', 'spec.loadBalancer.hashOn', /needs loadBalancer type RingHash or Maglev, got LeastRequest/);
  await expectGood(p.replace('LeastRequest', 'Maglev'));
});

for (const address of ['10.0.0.300', '127.0.0.1:8080', '[::1]', 'bad_host.local', 'api-1.internal', 'localhost']) {
  test(`a static endpoint address ${address} is an error`, async () => {
    const svc = policy('Service', 'api', `  ports: [{ name: http, port: 80, protocol: http }]\n  endpoints: [{ address: "127.0.0.1" }, { address: "${address}" }]`);
    await expectBad(svc, 'E_INVALID', 'spec.endpoints[1].address', /expected an IPv4 or IPv6 address \(no hostname/);
  });
}

test('static endpoint addresses: IPv4 and IPv6', async () => {
  await expectGood(policy('Service', 'api', '  ports: [{ name: http, port: 80, protocol: http }]\n  endpoints: [{ address: 10.1.2.3 }, { address: "fd00::1" }]'));
});

test('endpoint ports keys that are not port names of the Service', async () => {
  const svc = policy('Service', 'api', '  ports: [{ name: http, port: 80, protocol: http }]\n  endpoints: [{ address: 10.0.0.1, ports: { http: 8080, metrics: 9090 } }]');
  await expectBad(svc, 'E_REFERENCE', 'spec.endpoints[0].ports.metrics', /no port named 'metrics' \(expected one of the port names http\)/);
});

test('dependsOn naming a missing Service', async () => {
  const svc = policy('Service', 'api', '  ports: [{ name: http, port: 80, protocol: http }]\n  dependsOn: [{ name: db }, { name: cache }]');
  await expectBad(svc, 'E_REFERENCE', 'spec.dependsOn[1].name', /Service default\/cache does not exist/);
});

test('a RequestMirror to a missing Service', async () => {
  const r = route('m', '  parentRefs: [{ name: web }]\n  rules:\n    - backendRefs: [{ name: web, port: 80 }]\n      filters: [{ type: RequestMirror, requestMirror: { backendRef: { name: shadow, port: 80 } } }]');
  await expectBad(r, 'E_REFERENCE', 'spec.rules[0].filters[0].requestMirror.backendRef.name');
});

test('duplicates without locations', () => {
  const resources = parsed(withBase(ROUTE_OK));
  const e = onlyError(validateSet([...resources, resources[3]]), { code: 'E_DUPLICATE', file: undefined, document: undefined, path: 'metadata.name' });
  assert.equal(e.message, 'HTTPRoute default/ok: metadata.name: HTTPRoute default/ok is defined more than once');
});

test('validateSet without locations still names resource and field', () => {
  const { resources } = parseDocuments(withBase(route('shop', '  parentRefs: [{ name: web }]\n  rules: [{ backendRefs: [{ name: cart, port: 80 }] }]')), 'x.yaml');
  const errors = validateSet(resources);
  onlyError(errors, { code: 'E_REFERENCE', file: undefined, document: undefined, path: 'spec.rules[0].backendRefs[0].name' });
  assert.equal(errors[0].message, 'HTTPRoute default/shop: spec.rules[0].backendRefs[0].name: Service default/cart does not exist');
});

function parsed(text: string): Resource[] {
  const { resources, errors } = parseDocuments(text, 'x.yaml');
  assert.deepEqual(errors, []);
  return resources;
}

test('validateAgainst: a new route referring to a missing Service', () => {
  const existing = parsed(withBase(ROUTE_OK));
  const [candidate] = parsed(route('shop', '  parentRefs: [{ name: web }]\n  rules: [{ backendRefs: [{ name: cart, port: 80 }] }]'));
  const e = onlyError(validateAgainst(existing, candidate), { code: 'E_REFERENCE', file: undefined, document: undefined, path: 'spec.rules[0].backendRefs[0].name' });
  assert.deepEqual(e.resource, { kind: 'HTTPRoute', namespace: 'default', name: 'shop' });
});

test('validateAgainst: replacing a Service so that a route loses its port', () => {
  const existing = parsed(withBase(ROUTE_OK));
  const [web] = parsed(`${WEFT}\nkind: Service\nmetadata: { name: web }\nspec:\n  ports: [{ name: http, port: 8080, protocol: http }]`);
  const errors = validateAgainst(existing, web);
  assert.deepEqual(
    errors.map((e) => [e.code, e.resource?.name, e.path]),
    [
      ['E_REFERENCE', 'ok', 'spec.parentRefs[0].port'],
      ['E_REFERENCE', 'ok', 'spec.rules[0].backendRefs[0].port'],
    ],
  );
});

test('validateAgainst: a valid replacement passes, and old errors of others are not its doing', () => {
  const broken = route('broken', '  parentRefs: [{ name: web }]\n  rules: [{ backendRefs: [{ name: cart, port: 80 }] }]');
  const existing = parsed(withBase(ROUTE_OK, broken));
  assert.equal(validateSet(existing).length, 1);
  const [replacement] = parsed(ROUTE_OK.replace('port: 80 }] }]', 'port: 9901 }] }]'));
  assert.deepEqual(validateAgainst(existing, replacement), []);
  // The candidate's own errors count even when the old version had them too.
  const [stillBroken] = parsed(broken.replace('port: 80', 'port: 81'));
  assert.equal(validateAgainst(existing, stillBroken).length, 1);
});

test('validateDelete: a Service still referenced names the referrer', () => {
  const existing = parsed(withBase(ROUTE_OK, policy('TrafficPolicy', 'p', '  targetRef: { name: greeter }')));
  const errors = validateDelete(existing, 'Service/default/web');
  assert.deepEqual(
    errors.map((e) => [e.code, resourceKey({ kind: e.resource!.kind, metadata: { name: e.resource!.name!, namespace: e.resource!.namespace } }), e.path]),
    [
      ['E_IN_USE', 'HTTPRoute/default/ok', 'spec.parentRefs[0].name'],
      ['E_IN_USE', 'HTTPRoute/default/ok', 'spec.rules[0].backendRefs[0].name'],
    ],
  );
  assert.equal(errors[0].message, 'HTTPRoute default/ok: spec.parentRefs[0].name: refers to Service default/web, which cannot be deleted while this reference exists');
  onlyError(validateDelete(existing, 'Service/default/greeter'), { code: 'E_IN_USE', file: undefined, document: undefined, path: 'spec.targetRef.name' });
  assert.deepEqual(validateDelete(existing, 'Service/default/db'), []);
  assert.deepEqual(validateDelete(existing, 'HTTPRoute/default/ok'), []);
  assert.deepEqual(validateDelete(existing, 'Service/default/nothing'), []);
});

test('BASE alone is valid', async () => {
  assert.deepEqual(keys(await expectGood()), BASE_KEYS);
});

for (const [field, yaml] of [
  ['spec.retries.backoff.baseInterval', 'retries: { attempts: 2, backoff: { baseInterval: 0ms } }'],
  ['spec.outlierDetection.interval', 'outlierDetection: { consecutive5xx: 3, interval: 0s }'],
  ['spec.outlierDetection.baseEjectionTime', 'outlierDetection: { consecutive5xx: 3, baseEjectionTime: 0s }'],
  ['spec.connectionPool.connectTimeout', 'connectionPool: { connectTimeout: 0ms }'],
] as const) {
  test(`a zero ${field} is an error`, async () => {
    const p = policy('TrafficPolicy', 'p', `  targetRef: { name: web }\n  ${yaml}`);
    await expectBad(p, 'E_INVALID', field, /must be longer than 0/);
  });
}

test('fault: bad input is an error naming the field', async () => {
  const p = (fault: string) => policy('TrafficPolicy', 'p', `  targetRef: { name: web }\n  fault: ${fault}`);
  await expectBad(p('{ abort: { httpStatus: 503, percent: 101 } }'), 'E_SCHEMA', 'spec.fault.abort.percent');
  await expectBad(p('{ delay: { fixed: 1s, percent: -1 } }'), 'E_SCHEMA', 'spec.fault.delay.percent');
  await expectBad(p('{ abort: { httpStatus: 600 } }'), 'E_SCHEMA', 'spec.fault.abort.httpStatus');
  await expectBad(p('{ abort: { httpStatus: 199 } }'), 'E_SCHEMA', 'spec.fault.abort.httpStatus');
  await expectBad(p('{ abort: { grpcStatus: 17 } }'), 'E_SCHEMA', 'spec.fault.abort.grpcStatus');
  await expectBad(p('{ delay: { fixed: -5ms } }'), 'E_SCHEMA', 'spec.fault.delay.fixed');
  await expectBad(p('{ delay: { fixed: 0ms } }'), 'E_INVALID', 'spec.fault.delay.fixed', /longer than 0/);
  await expectBad(p('{ abort: { httpStatus: 503, grpcStatus: 14 } }'), 'E_INVALID', 'spec.fault.abort.grpcStatus', /not both/);
  await expectBad(p('{ abort: { percent: 10 } }'), 'E_INVALID', 'spec.fault.abort.httpStatus', /needs httpStatus or grpcStatus/);
  await expectBad(p('{ headers: [{ name: x-fault, value: "on" }] }'), 'E_INVALID', 'spec.fault', /needs a delay or an abort/);
  await expectBad(p('{ abort: { httpStatus: 503 }, headers: [{ type: RegularExpression, name: x, value: "(" }] }'), 'E_INVALID', 'spec.fault.headers[0].value');
  await expectBad(p('{ abort: { httpStatus: 503 }, delai: { fixed: 1s } }'), 'E_SCHEMA', 'spec.fault.delai');
  await expectGood(p('{ delay: { fixed: 200ms, percent: 12.5 }, abort: { grpcStatus: 14, percent: 1 }, headers: [{ name: x-fault, value: "on" }] }'));
});

// ---- rateLimit: every bad value is an error naming its field ----

for (const [code, field, yaml, detail] of [
  ['E_SCHEMA', 'spec.rateLimit.local.requests', 'rateLimit: { local: { requests: 0, per: 1s } }', /expected an integer >= 1, got 0/],
  ['E_SCHEMA', 'spec.rateLimit.local.requests', 'rateLimit: { local: { requests: -3, per: 1s } }', /got -3/],
  ['E_SCHEMA', 'spec.rateLimit.local.requests', 'rateLimit: { local: { requests: 1.5, per: 1s } }', /integer/],
  ['E_SCHEMA', 'spec.rateLimit.global.requests', 'rateLimit: { global: { requests: 2000000000, per: 1s } }', /<= 1000000000/],
  ['E_SCHEMA', 'spec.rateLimit.local.burst', 'rateLimit: { local: { requests: 1, per: 1s, burst: 0 } }', /got 0/],
  ['E_SCHEMA', 'spec.rateLimit.local.per', 'rateLimit: { local: { requests: 1, per: soon } }', /duration/],
  ['E_SCHEMA', 'spec.rateLimit.local.by', 'rateLimit: { local: { requests: 1, per: 1s, by: route } }', undefined],
  ['E_SCHEMA', 'spec.rateLimit.global.by.header', 'rateLimit: { global: { requests: 1, per: 1s, by: { header: "bad header" } } }', /header name/],
  ['E_SCHEMA', 'spec.rateLimit.local.window', 'rateLimit: { local: { requests: 1, per: 1s, window: 2 } }', undefined],
  ['E_SCHEMA', 'spec.rateLimit.global.burst', 'rateLimit: { global: { requests: 1, per: 1s, burst: 2 } }', undefined],
  ['E_INVALID', 'spec.rateLimit.local.per', 'rateLimit: { local: { requests: 1, per: 0s } }', /must be longer than 0/],
  ['E_INVALID', 'spec.rateLimit.global.per', 'rateLimit: { global: { requests: 1, per: 0ms } }', /must be longer than 0/],
  ['E_INVALID', 'spec.rateLimit.local.per', 'rateLimit: { local: { requests: 1, per: 20ms } }', /shorter than 50ms/],
  ['E_INVALID', 'spec.rateLimit.global.per', 'rateLimit: { global: { requests: 1, per: 25h } }', /longer than a day/],
  ['E_INVALID', 'spec.rateLimit.local.burst', 'rateLimit: { local: { requests: 10, per: 1s, burst: 5 } }', /burst 5 is smaller than requests 10/],
] as const) {
  test(`rateLimit: ${yaml} is an error at ${field}`, async () => {
    const p = policy('TrafficPolicy', 'p', `  targetRef: { name: web }\n  ${yaml}`);
    await expectBad(p, code, field, detail);
  });
}

test('rateLimit: a good policy with both limits', async () => {
  await expectGood(policy('TrafficPolicy', 'p', '  targetRef: { name: web }\n  rateLimit: { local: { requests: 100, per: 1s, burst: 200, by: source }, global: { requests: 1000, per: 1m, by: { header: x-user-id } } }'));
});

for (const [field, yaml, detail] of [
  ['spec.healthCheck.path', 'healthCheck: { type: http }', /needs a path/],
  ['spec.healthCheck.path', 'healthCheck: { type: tcp, path: /x }', /for http health checks/],
  ['spec.healthCheck.grpcService', 'healthCheck: { type: http, path: /x, grpcService: a }', /for grpc health checks/],
  ['spec.healthCheck.expectedStatuses', 'healthCheck: { type: grpc, expectedStatuses: [200] }', /for http health checks/],
  ['spec.healthCheck.interval', 'healthCheck: { type: tcp, interval: 0s }', /must be longer than 0/],
  ['spec.healthCheck.timeout', 'healthCheck: { type: tcp, interval: 1s, timeout: 2s }', /longer than interval 1s/],
  ['spec.healthCheck.timeout', 'healthCheck: { type: tcp, interval: 500ms }', /timeout 1s is longer than interval 500ms/],
] as const) {
  test(`healthCheck: ${yaml} is an error at ${field}`, async () => {
    const p = policy('TrafficPolicy', 'p', `  targetRef: { name: web }\n  ${yaml}`);
    await expectBad(p, 'E_INVALID', field, detail);
  });
}

test('healthCheck: a threshold of 0 is an error naming it; a full one is valid', async () => {
  const bad = policy('TrafficPolicy', 'p', '  targetRef: { name: web }\n  healthCheck: { type: tcp, unhealthyThreshold: 0 }');
  const { errors } = await loadYaml(withBase(bad, ROUTE_OK));
  assert.equal(errors.length, 1);
  assert.equal(errors[0].path, 'spec.healthCheck.unhealthyThreshold');
  await expectGood(policy('TrafficPolicy', 'p', '  targetRef: { name: web }\n  healthCheck: { type: http, path: /healthz, interval: 5s, timeout: 1s, unhealthyThreshold: 2, healthyThreshold: 2, expectedStatuses: [200, 204] }'));
});
