// http-filter Plugins through a real control plane and real sidecars on
// loopback: TypeScript modules (examples/filters, built to dist) loaded by the
// sidecar and run in its HTTP filter chain. A module adds a request header
// the upstream sees and a response header the client sees, on each codec
// path (HTTP/1.1 and HTTP/2 both ways); another denies /admin before the
// upstream; a Plugin applied or removed changes a running sidecar; modules
// that throw, reject, hang their factory or do not exist fail their own
// requests with 500 FE while the sidecar serves on; RBAC runs before any module.
import { after, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { admin, docs, exitGuard, freePort, HttpUpstream, Mesh, parsePrometheus, request, serviceYaml, T, waitFor } from '../../helpers/proxy-harness';
import { H2Upstream, h2Request } from '../../helpers/h2-tools';
import type { Logger } from '../../../src/observe/log';

const DIST = path.resolve(__dirname, '../../..');
const ADD_HEADER = path.join(DIST, 'examples/filters/add-header.js');
const DENY_PREFIX = path.join(DIST, 'examples/filters/deny-prefix.js');
const MISBEHAVING = path.join(DIST, 'test/fixtures/filters/misbehaving.js');

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  exitGuard();
  for (const c of cleanups.reverse()) await c();
});

function plugin(name: string, spec: string): string {
  return `apiVersion: weft.dev/v1
kind: Plugin
metadata: { name: ${name} }
spec:
  type: http-filter
${spec}
`;
}

test('inbound: a module adds a request and a response header, another denies /admin; applied and removed live', T, async () => {
  const app = await HttpUpstream.start('api');
  const port = await freePort();
  const mesh = await Mesh.start({ 'mesh.yaml': serviceYaml({ name: 'api', port }) });
  cleanups.push(async () => {
    await mesh.close();
    await app.close();
  });
  const sc = await mesh.sidecar({ nodeId: 'api-1', service: 'api', appPort: app.port, inboundPort: port });
  const call = (p: string) => request(port, { host: 'api', path: p });
  const before = await call('/hello');
  assert.equal(before.status, 200);
  assert.equal(before.headers['x-filtered-by'], undefined);

  mesh.write(
    'filters.yaml',
    docs(
      plugin('tagger', `  module: ${ADD_HEADER}\n  order: 2\n  config: { global: { tag: "\${service}.\${namespace}" } }\n  targetRefs: [{ kind: Service, name: api }]`),
      plugin('no-admin', `  module: ${DENY_PREFIX}\n  order: 1\n  config: { global: { prefix: /admin } }\n  targetRefs: [{ name: api }]`),
    ),
  );
  await waitFor(async () => (await call('/hello')).headers['x-filtered-by'] !== undefined, 5000, 'the filters to apply without a restart');
  const seenBefore = app.requests;
  const ok = await call('/hello');
  assert.equal(ok.status, 200);
  assert.equal(ok.headers['x-filtered-by'], 'api.default', 'the response header the module added');
  assert.equal(app.seen.at(-1)!.headers['x-weft-filter'], 'api.default', 'the upstream saw the request header the module added');
  assert.equal(app.requests, seenBefore + 1);

  const denied = await call('/admin/users');
  assert.equal(denied.status, 403);
  assert.equal(denied.text, '/admin is closed\n');
  assert.equal(denied.headers['x-weft-response-flags'], 'FL');
  assert.equal(denied.headers['x-denied-by'], 'deny-prefix');
  assert.equal(app.requests, seenBefore + 1, 'the upstream never saw the denied request');

  // The chain: jwt_authn/RBAC/limits (none here), then the plugins by order, then the router.
  const chain = sc.config().listeners.get('inbound')!.chains[0].network;
  assert.ok(chain.kind === 'http');
  assert.deepEqual(chain.httpFilters.map((f) => f.name), ['weft.plugin.default.no-admin', 'weft.plugin.default.tagger']);

  mesh.remove('filters.yaml');
  await waitFor(async () => (await call('/admin/users')).status === 200, 5000, 'the filters to go away without a restart');
  assert.equal((await call('/hello')).headers['x-filtered-by'], undefined);
});

test('outbound: the module runs on the calls the service makes, on every codec path (h1→h1, h1→h2, h2→h1, h2→h2)', T, async () => {
  const h1 = await HttpUpstream.start('h1');
  const h2 = await H2Upstream.start('h2');
  const mesh = await Mesh.start({
    'mesh.yaml': docs(
      serviceYaml({ name: 'web', port: 8080 }),
      serviceYaml({ name: 'h1svc', port: 80, endpoints: [h1.port] }),
      serviceYaml({ name: 'h2svc', port: 80, protocol: 'http2', endpoints: [h2.port] }),
      plugin('out-tagger', `  module: ${ADD_HEADER}\n  direction: outbound\n  config: { global: { tag: "from-\${service}" } }\n  targetRefs: [{ name: web }]`),
    ),
  });
  cleanups.push(async () => {
    await mesh.close();
    await h1.close();
    await h2.close();
  });
  const sc = await mesh.sidecar({ nodeId: 'web-1', service: 'web' });
  const outbound = sc.config().listeners.get('outbound')!.chains[0].network;
  assert.ok(outbound.kind === 'http');
  assert.deepEqual(outbound.httpFilters.map((f) => f.name), ['weft.plugin.default.out-tagger']);
  for (const [name, l] of sc.config().listeners) {
    if (name === 'outbound') continue;
    for (const c of l.chains) assert.ok(c.network.kind !== 'http' || c.network.httpFilters.length === 0, `${name}: an outbound plugin stays off other listeners`);
  }

  const viaH1 = await request(sc.outboundPort, { host: 'h1svc', path: '/a' });
  assert.equal(viaH1.status, 200);
  assert.equal(viaH1.headers['x-filtered-by'], 'from-web');
  assert.equal(h1.seen.at(-1)!.headers['x-weft-filter'], 'from-web');

  const bridged = await request(sc.outboundPort, { host: 'h2svc', path: '/b' });
  assert.equal(bridged.status, 200);
  assert.equal(bridged.headers['x-filtered-by'], 'from-web', 'h1 client, h2 upstream (bridge)');
  assert.equal(h2.seen.at(-1)!.headers['x-weft-filter'], 'from-web');

  const url = `http://127.0.0.1:${sc.outboundPort}`;
  const h2toH1 = await h2Request(url, { ':authority': 'h1svc', ':path': '/c' });
  assert.equal(h2toH1.status, 200);
  assert.equal(h2toH1.headers['x-filtered-by'], 'from-web', 'h2 client, h1 upstream');
  assert.equal(h1.seen.at(-1)!.headers['x-weft-filter'], 'from-web');

  const h2toH2 = await h2Request(url, { ':authority': 'h2svc', ':path': '/d' });
  assert.equal(h2toH2.status, 200);
  assert.equal(h2toH2.headers['x-filtered-by'], 'from-web', 'h2 client, h2 upstream');
  assert.equal(h2.seen.at(-1)!.headers['x-weft-filter'], 'from-web');
});

test('isolation: a module that throws, rejects, breaks its factory, answers nonsense or is missing fails its own requests with 500 FE; the sidecar serves on', T, async () => {
  const app = await HttpUpstream.start('app');
  const modes = ['decode', 'encode', 'factory', 'reject', 'async', 'bad-reply', 'smuggle', 'missing'] as const;
  const ports = new Map<string, number>();
  for (const m of modes) ports.set(m, await freePort());
  const yaml: string[] = [serviceYaml({ name: 'healthy', port: await freePort() })];
  for (const m of modes) {
    yaml.push(serviceYaml({ name: `m-${m}`, port: ports.get(m)! }));
    const module = m === 'missing' ? '/nonexistent/weft-filter.js' : MISBEHAVING;
    yaml.push(plugin(`p-${m}`, `  module: ${module}\n  config: { global: { mode: ${m} } }\n  targetRefs: [{ name: m-${m} }]`));
  }
  const mesh = await Mesh.start({ 'mesh.yaml': docs(...yaml) });
  const lines: { level: string; msg: string; fields?: Record<string, unknown> }[] = [];
  const log: Logger = (level, msg, fields) => lines.push({ level, msg, fields });
  cleanups.push(async () => {
    await mesh.close();
    await app.close();
  });
  const sidecars = new Map<string, Awaited<ReturnType<Mesh['sidecar']>>>();
  for (const m of modes) sidecars.set(m, await mesh.sidecar({ nodeId: `m-${m}-1`, service: `m-${m}`, appPort: app.port, inboundPort: ports.get(m)!, log }));
  const call = (m: string, p = '/') => request(ports.get(m)!, { host: `m-${m}`, path: p });
  const failedWithFE = async (m: string, p = '/') => {
    const r = await call(m, p);
    assert.equal(r.status, 500, `${m} ${p}: ${r.text}`);
    assert.equal(r.headers['x-weft-response-flags'], 'FE', m);
    assert.match(r.text, new RegExp(`http-filter plugin default/p-${m} (failed|is not loaded)`));
  };

  // decodeHeaders throws on /boom only: that request fails, the next one goes through.
  let n = app.requests;
  await failedWithFE('decode', '/boom');
  assert.equal(app.requests, n, 'a request the module failed never reaches the upstream');
  const survived = await call('decode', '/fine');
  assert.equal(survived.status, 200);
  assert.equal(app.seen.at(-1)!.headers['x-survived'], 'yes');

  // encodeHeaders throws: the upstream answered, the client gets 500 FE instead.
  n = app.requests;
  await failedWithFE('encode');
  assert.equal(app.requests, n + 1);
  await failedWithFE('reject');
  await failedWithFE('bad-reply');
  n = app.requests;
  await failedWithFE('smuggle');
  assert.equal(app.requests, n, 'a module may not set content-length');

  // A factory that throws and a module that does not exist: every request 500 FE, and no NACK.
  await failedWithFE('factory');
  await failedWithFE('factory');
  await failedWithFE('missing');
  for (const m of ['factory', 'missing']) assert.equal(mesh.nodeStates(`m-${m}-1`).LDS, 'SYNCED', `${m}: the listener was accepted`);
  const loadErrors = lines.filter((l) => l.msg.startsWith('http-filter plugin failed to load'));
  assert.equal(loadErrors.length, 2, 'one log line per module that failed to load');
  assert.match(String(loadErrors.find((l) => l.fields?.plugin === 'default/p-factory')?.fields?.error), /the factory refuses/);
  assert.match(String(loadErrors.find((l) => l.fields?.plugin === 'default/p-missing')?.fields?.error), /Cannot find module/);

  // Async verdicts: a header set before the promise resolves goes upstream; a resolved LocalResponse answers.
  const later = await call('async', '/go');
  assert.equal(later.status, 200);
  assert.equal(app.seen.at(-1)!.headers['x-async'], 'yes');
  const deny = await call('async', '/deny');
  assert.equal(deny.status, 429);
  assert.equal(deny.headers['x-weft-response-flags'], 'FX');

  // Counted per plugin and stage, logged per failed request.
  const stats = parsePrometheus((await admin(sidecars.get('decode')!, '/stats/prometheus')).text).filter((s) => s.name === 'weft_http_filter_errors_total');
  assert.deepEqual(
    stats.map((s) => [s.labels.plugin, s.labels.stage, s.value]),
    [['default/p-decode', 'decode', 1]],
  );
  const factoryStats = parsePrometheus((await admin(sidecars.get('factory')!, '/stats/prometheus')).text).filter((s) => s.name === 'weft_http_filter_errors_total');
  assert.deepEqual(factoryStats.map((s) => [s.labels.plugin, s.labels.stage, s.value]), [['default/p-factory', 'load', 2]]);
  const failures = lines.filter((l) => l.msg === 'http-filter plugin failed a request (500 FE)');
  assert.deepEqual(failures.map((l) => [l.fields?.plugin, l.fields?.stage]).filter(([p]) => p === 'default/p-decode' || p === 'default/p-encode'), [
    ['default/p-decode', 'decode'],
    ['default/p-encode', 'encode'],
  ]);
  assert.match(String(failures[0].fields?.error), /boom on \/boom/);

  // Every sidecar still serves: the decode one, and its outbound listener.
  assert.equal((await call('decode', '/again')).status, 200);
  assert.equal((await request(sidecars.get('decode')!.outboundPort, { host: 'nowhere', path: '/' })).status, 404);
});

test('RBAC runs before the modules: a request it denies never reaches one', T, async () => {
  const app = await HttpUpstream.start('app');
  const port = await freePort();
  const mesh = await Mesh.start({
    'mesh.yaml': docs(
      serviceYaml({ name: 'guarded', port }),
      plugin('thrower', `  module: ${MISBEHAVING}\n  config: { global: { mode: decode } }\n  targetRefs: [{ name: guarded }]`),
      `apiVersion: weft.dev/v1
kind: AuthorizationPolicy
metadata: { name: no-boom }
spec:
  targetRef: { kind: Service, name: guarded }
  action: DENY
  rules: [{ to: [{ operation: { paths: [/boom*] } }] }]
`,
    ),
  });
  cleanups.push(async () => {
    await mesh.close();
    await app.close();
  });
  const sc = await mesh.sidecar({ nodeId: 'guarded-1', service: 'guarded', appPort: app.port, inboundPort: port });
  const denied = await request(port, { host: 'guarded', path: '/boom' });
  assert.equal(denied.status, 403);
  assert.equal(denied.headers['x-weft-response-flags'], 'RBAC', 'RBAC answered, the module that throws on /boom never ran');
  assert.equal((await request(port, { host: 'guarded', path: '/ok' })).status, 200);
  const stats = parsePrometheus((await admin(sc, '/stats/prometheus')).text).filter((s) => s.name === 'weft_http_filter_errors_total');
  assert.deepEqual(stats, []);
});
