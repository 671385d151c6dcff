// AuthorizationPolicy through a real control plane and real sidecars: the
// callee's inbound sidecar answers 403 "RBAC: access denied" (flag RBAC) by
// path, method, header and port, DENY before ALLOW, a live policy change,
// and closes a denied TCP connection before any byte goes upstream. (Rules
// on the caller's identity need mTLS; the matcher tables cover them.)
import { after, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as http from 'node:http';
import * as net from 'node:net';
import { admin, docs, exitGuard, freePort, HttpUpstream, Mesh, parsePrometheus, RawUpstream, request, T, waitFor } from '../../helpers/proxy-harness';
import type { Logger } from '../../../src/observe/log';

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  exitGuard();
  for (const c of cleanups.reverse()) await c();
});

function authz(name: string, spec: string): string {
  return `apiVersion: weft.dev/v1
kind: AuthorizationPolicy
metadata: { name: ${name} }
spec:
${spec}
`;
}

/** One request to the sidecar listening on `port` (Host: api). */
const call = (port: number, path: string, method = 'GET', headers: http.OutgoingHttpHeaders = {}) => request(port, { host: 'api', path, method, headers });

/** Service `api` with two HTTP ports; a sidecar listening on each port (a chain per port), both in front of one app. */
async function httpMesh(policies: string[]) {
  const [portA, portB] = [await freePort(), await freePort()].sort((a, b) => a - b);
  const service = `apiVersion: weft.dev/v1
kind: Service
metadata: { name: api }
spec:
  ports: [{ name: a, port: ${portA}, protocol: http }, { name: b, port: ${portB}, protocol: http }]
`;
  const mesh = await Mesh.start({ 'mesh.yaml': docs(service, ...policies) });
  const app = await HttpUpstream.start('api');
  const lines: { msg: string; fields?: Record<string, unknown> }[] = [];
  const log: Logger = (_level, msg, fields) => lines.push({ msg, fields });
  cleanups.push(async () => {
    await mesh.close();
    await app.close();
  });
  // The sidecar on portA serves chain A (the lowest port: to the app); the one on portB chain B.
  const a = await mesh.sidecar({ nodeId: 'api-a', service: 'api', appPort: app.port, inboundPort: portA, log });
  const b = await mesh.sidecar({ nodeId: 'api-b', service: 'api', appPort: app.port, inboundPort: portB });
  return { mesh, app, a, b, lines, service, portA, portB };
}

test('HTTP: paths, methods and headers allow; DENY wins; denied requests never reach the app', T, async () => {
  const { app, a, lines } = await httpMesh([
    authz(
      'reads',
      `  action: ALLOW
  rules:
    - to: [{ operation: { methods: [GET, HEAD], paths: [/public/*] } }]
    - when: [{ key: "request.headers[x-api-key]", values: [let-me-in] }]`,
    ),
    authz('no-forbidden', `  action: DENY\n  rules: [{ to: [{ operation: { paths: [/public/forbidden] } }] }]`),
  ]);
  const port = a.inboundPort;
  assert.equal((await call(port, '/public/a')).status, 200);
  assert.equal((await call(port, '/public/a?x=1')).status, 200);
  assert.equal(app.requests, 2);

  const denied = await call(port, '/public/a', 'POST');
  assert.equal(denied.status, 403);
  assert.equal(denied.text, 'RBAC: access denied\n');
  assert.equal(denied.headers['x-weft-response-flags'], 'RBAC');
  assert.equal((await call(port, '/private')).status, 403);
  assert.equal((await call(port, '/private', 'DELETE', { 'x-api-key': 'let-me-in' })).status, 200, 'the header rule allows any request');
  assert.equal((await call(port, '/private', 'GET', { 'x-api-key': 'wrong' })).status, 403);
  assert.equal((await call(port, '/public/forbidden')).status, 403, 'DENY before ALLOW');
  assert.equal((await call(port, '/public/forbidden', 'GET', { 'x-api-key': 'let-me-in' })).status, 403, 'DENY wins over any ALLOW');
  assert.equal(app.requests, 3, 'no denied request reached the app');

  const stats = parsePrometheus((await admin(a, '/stats/prometheus')).text).filter((s) => s.name === 'weft_rbac_denied_total');
  const count = (action: string) => stats.find((s) => s.labels.filter === 'http' && s.labels.action === action)?.value ?? 0;
  assert.equal(count('ALLOW'), 3);
  assert.equal(count('DENY'), 2);
  const logged = lines.filter((l) => l.msg === 'rbac: access denied');
  assert.equal(logged.length, 5, 'one log line per denial');
  assert.equal(logged[0].fields?.method, 'POST');
  assert.equal(logged[0].fields?.path, '/public/a');
  assert.equal(logged[4].fields?.policy, 'default/no-forbidden[0]');
});

test('HTTP: a rule for one port allows on that port only', T, async () => {
  // The ports are free ports picked at start: the policy is written once the mesh runs.
  const { mesh, a, b, service, portA } = await httpMesh([]);
  mesh.write('mesh.yaml', docs(service, authz('port-a', `  action: ALLOW\n  rules: [{ to: [{ operation: { ports: [${portA}] } }] }]`)));
  await waitFor(async () => (await call(b.inboundPort, '/')).status === 403, 5000, 'the policy applied on B');
  await a.waitConfig((c) => c.listeners.get('inbound')!.chains.every((ch) => ch.network.kind === 'http' && ch.network.httpFilters.length === 1), 5000, 'the policy on A');
  assert.equal((await call(a.inboundPort, '/')).status, 200, 'port A is allowed');
  assert.equal((await call(b.inboundPort, '/')).status, 403, 'port B is not');
});

test('HTTP: default deny for the namespace, then lifted by a live config change', T, async () => {
  const { mesh, a, app, service } = await httpMesh([authz('lockdown', '  action: ALLOW')]);
  assert.equal((await call(a.inboundPort, '/')).status, 403);
  assert.equal(app.requests, 0);
  mesh.write('mesh.yaml', service);
  await waitFor(async () => (await call(a.inboundPort, '/')).status === 200, 5000, 'requests allowed again');
  assert.equal(app.requests, 1);
});

test('TCP: a denied connection is closed before any byte goes upstream; an allowed one flows', T, async () => {
  const upstream = await RawUpstream.start((s) => {
    s.on('data', (c: Buffer) => s.write(c.toString('latin1').toUpperCase()));
    s.on('end', () => s.end());
  });
  const dbPort = await freePort();
  const service = `apiVersion: weft.dev/v1
kind: Service
metadata: { name: db }
spec:
  ports: [{ name: tcp, port: ${dbPort}, protocol: tcp }]
`;
  const lines: { msg: string; fields?: Record<string, unknown> }[] = [];
  // Callers must come from the namespace `default` over mTLS: a plaintext caller has no identity.
  const mesh = await Mesh.start({ 'mesh.yaml': docs(service, authz('callers', `  action: ALLOW\n  rules: [{ from: [{ source: { namespaces: [default] } }] }]`)) });
  cleanups.push(async () => {
    await mesh.close();
    await upstream.close();
  });
  const sc = await mesh.sidecar({ nodeId: 'db-1', service: 'db', appPort: upstream.port, log: (_l, msg, fields) => lines.push({ msg, fields }) });

  const outcome = (): Promise<{ got: string; closed: boolean }> =>
    new Promise((resolve) => {
      const s = net.connect(sc.inboundPort, '127.0.0.1');
      let got = '';
      s.on('data', (c: Buffer) => (got += c.toString('latin1')));
      s.on('connect', () => s.write('hello'));
      s.on('error', () => {});
      s.on('close', () => resolve({ got, closed: true }));
      setTimeout(() => {
        s.end();
      }, 500);
    });
  const denied = await outcome();
  assert.equal(denied.got, '');
  assert.equal(upstream.connections, 0, 'no upstream connection was made');
  assert.equal(upstream.bytes, 0);
  const stats = parsePrometheus((await admin(sc, '/stats/prometheus')).text);
  assert.equal(stats.find((s) => s.name === 'weft_rbac_denied_total' && s.labels.filter === 'network')?.value, 1);
  assert.equal(lines.filter((l) => l.msg === 'rbac: access denied').length, 1);

  mesh.write('mesh.yaml', docs(service, authz('callers', `  action: ALLOW\n  rules: [{ to: [{ operation: { ports: [${dbPort}] } }] }]`)));
  await waitFor(async () => (await outcome()).got === 'HELLO', 5000, 'an allowed connection flows');
  assert.ok(upstream.connections >= 1);
});
