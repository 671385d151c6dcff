// Who may call what on the admin API outside --dev, as a table: every route
// is tried with no credential, a viewer, the wrong workload, the right
// workload and an admin. A route added without a row here fails the walk.
// Then the bad inputs: malformed, oversized, revoked and expired
// credentials, a token whose service is gone, a workload claiming another
// address; and the audit log.
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as path from 'node:path';
import { startControlPlane, type ControlPlane } from '../../src/control/control-plane';
import { silentLogger } from '../../src/observe/log';
import { serviceYaml } from '../helpers/proxy-harness';
import { tempDir } from '../helpers/tmp';

let cp: ControlPlane;
let dataDir: string;
const tok: Record<'admin' | 'viewer' | 'alpha' | 'beta', string> = { admin: '', viewer: '', alpha: '', beta: '' };

/** One request over HTTPS, verified with the mesh's trust bundle (outside --dev the API speaks TLS). */
function call(method: string, route: string, token: string | undefined, body?: string, headers: Record<string, string> = {}, stream = false): Promise<{ status: number; json: any }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port: cp.apiPort, path: route, method, ca: cp.ca.bundlePem(), agent: false, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body ? { 'content-type': body.startsWith('{') || body.startsWith('[') ? 'application/json' : 'application/yaml' } : {}), ...headers } },
      (res) => {
        // An event stream never ends: its status line is the answer.
        if (stream) {
          res.destroy();
          return resolve({ status: res.statusCode ?? 0, json: undefined });
        }
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          let json: any;
          try {
            json = JSON.parse(text);
          } catch {
            json = text;
          }
          resolve({ status: res.statusCode ?? 0, json });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

before(async () => {
  dataDir = tempDir(undefined, 'weft-access-');
  const configDir = tempDir(undefined, 'weft-access-config-');
  fs.writeFileSync(path.join(configDir, 'services.yaml'), [serviceYaml({ name: 'alpha', port: 80 }), serviceYaml({ name: 'beta', port: 80 })].join('---\n'));
  cp = await startControlPlane({ configDir, dataDir, xdsPort: 0, apiPort: 0, log: silentLogger, dev: false });
  tok.admin = fs.readFileSync(path.join(dataDir, 'admin.token'), 'utf8').trim();
  tok.viewer = (await call('POST', '/api/v1/credentials', tok.admin, JSON.stringify({ name: 'dash', role: 'viewer' }))).json.token;
  tok.alpha = (await call('POST', '/api/v1/tokens', tok.admin, JSON.stringify({ service: 'alpha' }))).json.token;
  tok.beta = (await call('POST', '/api/v1/tokens', tok.admin, JSON.stringify({ service: 'beta' }))).json.token;
});

after(async () => {
  await cp?.close();
});

test('the first admin token is written to <data-dir>/admin.token, mode 0600, and only its hash is kept', () => {
  assert.equal(fs.statSync(path.join(dataDir, 'admin.token')).mode & 0o777, 0o600);
  assert.match(tok.admin, /^weftapi\.[0-9a-f]{12}\./);
  const stored = fs.readFileSync(path.join(dataDir, 'api-credentials.json'), 'utf8');
  assert.ok(!stored.includes(tok.admin.split('.')[2]), 'the secret is not in the store');
  assert.equal(fs.statSync(path.join(dataDir, 'api-credentials.json')).mode & 0o777, 0o600);
});

type Who = 'none' | 'viewer' | 'alphaWl' | 'betaWl' | 'admin';
/** Per route: a request to make, and who is refused (401 none / 403 the others); everyone else must get past access control. */
interface Row {
  method: string;
  path: () => string;
  body?: () => string;
  refused: Who[];
}

const READ: Who[] = ['none', 'alphaWl', 'betaWl'];
const ADMIN: Who[] = ['none', 'viewer', 'alphaWl', 'betaWl'];
let regId = '';

const ROUTES: Record<string, Row> = {
  'GET ^\\/healthz$': { method: 'GET', path: () => '/healthz', refused: [] },
  'GET ^\\/(?!api\\/|healthz$|metrics$)(.*)$': { method: 'GET', path: () => '/', refused: [] },
  'GET ^\\/api\\/v1\\/status$': { method: 'GET', path: () => '/api/v1/status', refused: READ },
  'GET ^\\/api\\/v1\\/resources$': { method: 'GET', path: () => '/api/v1/resources', refused: READ },
  'GET ^\\/api\\/v1\\/resources\\/([^/]+)(?:\\/([^/]+))?(?:\\/([^/]+))?$': { method: 'GET', path: () => '/api/v1/resources/services', refused: READ },
  'POST ^\\/api\\/v1\\/resources$': { method: 'POST', path: () => '/api/v1/resources', body: () => serviceYaml({ name: 'gamma', port: 80 }), refused: ADMIN },
  'DELETE ^\\/api\\/v1\\/resources\\/([^/]+)\\/([^/]+)\\/([^/]+)$': { method: 'DELETE', path: () => '/api/v1/resources/services/default/nothing', refused: ADMIN },
  'GET ^\\/api\\/v1\\/endpoints$': { method: 'GET', path: () => '/api/v1/endpoints', refused: READ },
  'GET ^\\/api\\/v1\\/registrations$': { method: 'GET', path: () => '/api/v1/registrations', refused: READ },
  'POST ^\\/api\\/v1\\/registrations$': { method: 'POST', path: () => '/api/v1/registrations', body: () => JSON.stringify({ service: 'alpha', address: '127.0.0.1', port: 8080 }), refused: ['none', 'viewer', 'betaWl'] },
  'PUT ^\\/api\\/v1\\/registrations\\/([^/]+)$': { method: 'PUT', path: () => `/api/v1/registrations/${regId}`, body: () => '{}', refused: ['none', 'viewer', 'betaWl'] },
  'DELETE ^\\/api\\/v1\\/registrations\\/([^/]+)$': { method: 'DELETE', path: () => `/api/v1/registrations/${regId}`, refused: ['none', 'viewer', 'betaWl'] },
  'GET ^\\/api\\/v1\\/nodes$': { method: 'GET', path: () => '/api/v1/nodes', refused: READ },
  'GET ^\\/api\\/v1\\/errors$': { method: 'GET', path: () => '/api/v1/errors', refused: READ },
  'GET ^\\/api\\/v1\\/plugins$': { method: 'GET', path: () => '/api/v1/plugins?service=alpha', refused: ['none', 'betaWl'] },
  'GET ^\\/api\\/v1\\/credentials$': { method: 'GET', path: () => '/api/v1/credentials', refused: ADMIN },
  'POST ^\\/api\\/v1\\/credentials$': { method: 'POST', path: () => '/api/v1/credentials', body: () => JSON.stringify({ name: 'x', role: 'viewer' }), refused: ADMIN },
  'DELETE ^\\/api\\/v1\\/credentials\\/([^/]+)$': { method: 'DELETE', path: () => '/api/v1/credentials/ffffffffffff', refused: ADMIN },
  'GET ^\\/api\\/v1\\/audit$': { method: 'GET', path: () => '/api/v1/audit', refused: ADMIN },
  'GET ^\\/api\\/v1\\/topology$': { method: 'GET', path: () => '/api/v1/topology', refused: READ },
  'GET ^\\/api\\/v1\\/services\\/([^/]+)\\/([^/]+)$': { method: 'GET', path: () => '/api/v1/services/default/alpha', refused: READ },
  'GET ^\\/api\\/v1\\/explain$': { method: 'GET', path: () => '/api/v1/explain?from=alpha&to=beta', refused: READ },
  'GET ^\\/api\\/v1\\/events$': { method: 'GET', path: () => '/api/v1/events', refused: READ },
  'GET ^\\/api\\/v1\\/history$': { method: 'GET', path: () => '/api/v1/history?minutes=5', refused: READ },
  'GET ^\\/api\\/v1\\/edges\\/([^/]+)\\/([^/]+)$': { method: 'GET', path: () => '/api/v1/edges/alpha.default/beta.default', refused: READ },
  'GET ^\\/api\\/v1\\/telemetry\\/replica$': { method: 'GET', path: () => '/api/v1/telemetry/replica', refused: READ },
  'GET ^\\/api\\/v1\\/endpoint-health$': { method: 'GET', path: () => '/api/v1/endpoint-health', refused: READ },
  'GET ^\\/api\\/v1\\/nodes\\/([^/]+)\\/admin(\\/[a-z_]+)$': { method: 'GET', path: () => '/api/v1/nodes/nobody/admin/clusters', refused: READ },
  'GET ^\\/api\\/v1\\/requests$': { method: 'GET', path: () => '/api/v1/requests?failed=1', refused: READ },
  'GET ^\\/api\\/v1\\/tap$': { method: 'GET', path: () => '/api/v1/tap?service=alpha', refused: READ },
  'GET ^\\/api\\/v1\\/certs$': { method: 'GET', path: () => '/api/v1/certs', refused: READ },
  'GET ^\\/api\\/v1\\/certs\\/issued$': { method: 'GET', path: () => '/api/v1/certs/issued', refused: READ },
  'POST ^\\/api\\/v1\\/ca\\/rotate-root$': { method: 'POST', path: () => '/api/v1/ca/rotate-root', refused: ADMIN },
  'POST ^\\/api\\/v1\\/ca\\/retire-roots$': { method: 'POST', path: () => '/api/v1/ca/retire-roots', refused: ADMIN },
  'GET ^\\/api\\/v1\\/tokens$': { method: 'GET', path: () => '/api/v1/tokens', refused: ADMIN },
  'POST ^\\/api\\/v1\\/tokens$': { method: 'POST', path: () => '/api/v1/tokens', body: () => JSON.stringify({ service: 'beta' }), refused: ADMIN },
  'DELETE ^\\/api\\/v1\\/tokens\\/([^/]+)$': { method: 'DELETE', path: () => '/api/v1/tokens/ffffffffffff', refused: ADMIN },
  'GET ^\\/metrics$': { method: 'GET', path: () => '/metrics', refused: READ },
  'GET ^\\/api\\/v1\\/prometheus\\/targets$': { method: 'GET', path: () => '/api/v1/prometheus/targets', refused: READ },
};

test('every route of the API has a rule, and every rule holds for no credential, a viewer, the wrong and the right workload, an admin', async () => {
  const table = cp.api.routeTable();
  const unknown = table.map((r) => `${r.method} ${r.pattern.source}`).filter((key) => !(key in ROUTES));
  assert.deepEqual(unknown, [], 'a route without a row here: add it with who may call it');
  regId = (await call('POST', '/api/v1/registrations', tok.admin, JSON.stringify({ service: 'alpha', address: '127.0.0.1', port: 9000, ttlSeconds: 3600 }))).json.id;
  const token: Record<Who, string | undefined> = { none: undefined, viewer: tok.viewer, alphaWl: tok.alpha, betaWl: tok.beta, admin: tok.admin };
  const failures: string[] = [];
  for (const [key, row] of Object.entries(ROUTES)) {
    assert.ok(table.some((r) => `${r.method} ${r.pattern.source}` === key), `${key} is in the table but not served`);
    for (const who of ['none', 'viewer', 'betaWl', 'alphaWl', 'admin'] as Who[]) {
      const res = await call(row.method, row.path(), token[who], row.body?.(), {}, row.path().includes('/events'));
      check(key, who, res.status, row, failures);
      if (row.method === 'DELETE' && key.includes('registrations') && res.status === 200) {
        regId = (await call('POST', '/api/v1/registrations', tok.admin, JSON.stringify({ service: 'alpha', address: '127.0.0.1', port: 9000, ttlSeconds: 3600 }))).json.id;
      }
    }
  }
  assert.deepEqual(failures, []);
});

function check(key: string, who: Who, status: number, row: Row, failures: string[]): void {
  const expected = !row.refused.includes(who) ? 'through' : who === 'none' ? 401 : 403;
  const ok = expected === 'through' ? status !== 401 && status !== 403 : status === expected;
  if (!ok) failures.push(`${key} as ${who}: ${status}, expected ${expected}`);
}

test('refusals say why and what to do, as JSON', async () => {
  const none = await call('POST', '/api/v1/tokens', undefined, JSON.stringify({ service: 'alpha' }));
  assert.equal(none.status, 401);
  assert.match(none.json.error, /set WEFT_TOKEN .*admin\.token/);
  const viewer = await call('POST', '/api/v1/resources', tok.viewer, serviceYaml({ name: 'x', port: 80 }));
  assert.equal(viewer.status, 403);
  assert.match(viewer.json.error, /credential dash .* viewer\) may not POST \/api\/v1\/resources \(needs the admin role\)/);
  const wrong = await call('POST', '/api/v1/registrations', tok.beta, JSON.stringify({ service: 'alpha', address: '127.0.0.1', port: 1 }));
  assert.equal(wrong.status, 403);
  assert.match(wrong.json.error, /may only register instances for default\/beta, not default\/alpha/);
  assert.equal((await call('POST', '/api/v1/tokens', tok.alpha, JSON.stringify({ service: 'alpha' }))).status, 403, 'a workload never mints tokens');
  assert.equal((await call('POST', '/api/v1/resources', tok.alpha, serviceYaml({ name: 'x', port: 80 }))).status, 403, 'nor changes config');
});

test('bad credentials: malformed, oversized, unknown, revoked at once, expired, a service gone; another address', async () => {
  const bad = async (header: string) => (await call('GET', '/api/v1/status', undefined, undefined, { authorization: header })).status;
  assert.equal(await bad('Basic YWRtaW46YWRtaW4='), 401);
  assert.equal(await bad('Bearer'), 401);
  assert.equal(await bad(`Bearer ${'a'.repeat(4096)}`), 401);
  assert.equal(await bad('Bearer weftapi.000000000001.' + 'A'.repeat(43)), 401);
  const made = (await call('POST', '/api/v1/credentials', tok.admin, JSON.stringify({ name: 'temp', role: 'admin' }))).json;
  assert.equal((await call('GET', '/api/v1/status', made.token)).status, 200);
  assert.equal((await call('DELETE', `/api/v1/credentials/${made.id}`, tok.admin)).status, 200);
  const revoked = await call('GET', '/api/v1/status', made.token);
  assert.equal(revoked.status, 401);
  assert.match(revoked.json.error, /unknown or revoked/);
  // A join token that expired.
  const shortLived = (await call('POST', '/api/v1/tokens', tok.admin, JSON.stringify({ service: 'alpha', ttlSeconds: 1 }))).json.token;
  const expiry = Date.now() + 1100;
  while (Date.now() < expiry) await new Promise((r) => setTimeout(r, 50));
  const expired = await call('POST', '/api/v1/registrations', shortLived, JSON.stringify({ service: 'alpha', address: '127.0.0.1', port: 1 }));
  assert.equal(expired.status, 401);
  assert.match(expired.json.error, /expired/);
  // A workload registers the address it calls from; an admin may register others.
  const elsewhere = await call('POST', '/api/v1/registrations', tok.alpha, JSON.stringify({ service: 'alpha', address: '198.18.0.7', port: 1 }));
  assert.equal(elsewhere.status, 403);
  assert.match(elsewhere.json.error, /only register, renew and deregister the address it calls from/);
  const foreign = await call('POST', '/api/v1/registrations', tok.admin, JSON.stringify({ service: 'alpha', address: '198.18.0.7', port: 1, ttlSeconds: 5 }));
  assert.equal(foreign.status, 201);
  // Nor can it drain or remove an instance at another address: a stolen token used elsewhere changes nothing.
  const drain = await call('PUT', `/api/v1/registrations/${foreign.json.id}`, tok.alpha, JSON.stringify({ health: 'draining' }));
  assert.equal(drain.status, 403);
  assert.match(drain.json.error, /only register, renew and deregister the address it calls from/);
  assert.equal((await call('DELETE', `/api/v1/registrations/${foreign.json.id}`, tok.alpha)).status, 403);
  assert.equal(cp.registry.list().find((r) => r.id === foreign.json.id)?.health, 'healthy');
  // The token of a service that no longer exists registers nothing.
  const gone = (await call('POST', '/api/v1/tokens', tok.admin, JSON.stringify({ service: 'ghost' }))).json.token;
  const ghost = await call('POST', '/api/v1/registrations', gone, JSON.stringify({ service: 'ghost', address: '127.0.0.1', port: 1 }));
  assert.equal(ghost.status, 400);
  assert.match(ghost.json.error, /no Service default\/ghost/);
  assert.equal(cp.registry.list().filter((r) => r.service === 'ghost').length, 0, 'nothing changed');
});

test('the audit log records who changed what; workloads\' own registrations are not noise in it', async () => {
  const entries = (await call('GET', '/api/v1/audit?limit=1000', tok.admin)).json.items as { who: string; method: string; path: string; what?: string }[];
  assert.ok(entries.some((e) => e.who.startsWith('credential admin (000000000000, admin)') && e.path === '/api/v1/tokens' && /created join token .* for default\/alpha/.test(e.what ?? '')));
  assert.ok(entries.some((e) => /revoked credential/.test(e.what ?? '')));
  assert.ok(entries.some((e) => /registered default\/alpha at 198\.18\.0\.7/.test(e.what ?? '')), 'a registration by an admin');
  assert.ok(!entries.some((e) => e.who.includes('join token')), 'workloads are not audited');
  assert.ok(fs.existsSync(path.join(dataDir, 'audit.json')));
});

const caFileOf = () => path.join(dataDir, 'ca', 'trust-bundle.pem');

test('the API speaks TLS outside --dev: a plaintext request is told so, and the CLI given http:// moves to https://', async () => {
  const plain = await new Promise<{ status: number; tls: unknown; body: string }>((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: cp.apiPort, path: '/api/v1/status', agent: false }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, tls: res.headers['x-weft-tls'], body }));
    }).on('error', reject);
  });
  assert.equal(plain.status, 400);
  assert.equal(plain.tls, 'required');
  assert.match(plain.body, /speaks TLS: use https:\/\/127\.0\.0\.1:\d+\//);
  const { apiRequestAny } = await import('../../src/api/api-request');
  const { ControlPlaneAddresses } = await import('../../src/xds/client/control-plane-addresses');
  const answer = await apiRequestAny(ControlPlaneAddresses.api(`http://127.0.0.1:${cp.apiPort}`), 'GET', '/api/v1/status', { token: tok.viewer, ca: cp.ca.bundlePem() });
  assert.equal(answer.status, 200);
  // A client that does not trust the mesh's CA does not talk to it.
  await assert.rejects(apiRequestAny(ControlPlaneAddresses.api(`https://127.0.0.1:${cp.apiPort}`), 'GET', '/api/v1/status', { token: tok.viewer }), /certificate/);
});

test('weft dashboard: a loopback proxy that carries a viewer credential; no secret in any URL, reads only', async () => {
  const { spawn } = await import('node:child_process');
  const bin = path.resolve(__dirname, '../../../bin/weft.js');
  const api = `http://127.0.0.1:${cp.apiPort}`;
  const refused = spawn(process.execPath, [bin, 'dashboard', '--port', '0', '--api', api], { env: { ...process.env, WEFT_TOKEN: '', WEFT_TOKEN_FILE: '', WEFT_CA_FILE: caFileOf() }, cwd: dataDir + '/..' });
  let refusedErr = '';
  refused.stderr.on('data', (d) => (refusedErr += d));
  const code = await new Promise((r) => refused.once('exit', r));
  assert.notEqual(code, 0);
  assert.match(refusedErr, /needs a credential: set WEFT_TOKEN/);

  const proxy = spawn(process.execPath, [bin, 'dashboard', '--port', '0', '--api', api], { env: { ...process.env, WEFT_TOKEN: tok.viewer, WEFT_CA_FILE: caFileOf() } });
  try {
    let out = '';
    proxy.stdout.on('data', (d) => (out += d));
    const started = Date.now();
    while (!/http:\/\/127\.0\.0\.1:\d+\//.test(out)) {
      if (Date.now() - started > 10_000) throw new Error(`the proxy did not start: ${out}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const base = /(http:\/\/127\.0\.0\.1:\d+)\//.exec(out)![1];
    assert.ok(!out.includes(tok.viewer.split('.')[2]), 'the secret is not printed');
    const topology = await fetch(`${base}/api/v1/topology`);
    assert.equal(topology.status, 200, 'the viewer credential was added');
    assert.equal((await fetch(`${base}/`)).status, 200, 'the page itself');
    assert.equal((await fetch(`${base}/api/v1/tokens`, { method: 'POST', body: '{}' })).status, 405, 'reads only');
  } finally {
    proxy.kill('SIGINT');
  }
});

test('xDS lets in only the node its join token names: none, another service\'s and an admin credential', async () => {
  const { startProxy } = await import('../../src/proxy/proxy');
  const caFile = path.join(dataDir, 'ca', 'trust-bundle.pem');
  const attempt = async (nodeId: string, service: string | undefined, token: string | undefined) => {
    const ended: { code: string; details: string }[] = [];
    const log = (_level: string, msg: string, fields?: Record<string, unknown>) => {
      if (msg.startsWith('xds stream ended')) ended.push({ code: String(fields?.code), details: String(fields?.details) });
    };
    const proxy = await startProxy({ xds: `127.0.0.1:${cp.xdsPort}`, nodeId, service, namespace: 'default', adminPort: 0, log, caFile, joinToken: token, sds: false });
    try {
      const deadline = Date.now() + 5000;
      while (Date.now() < deadline && ended.length === 0 && !proxy.xds.status().types.CDS.version) await new Promise((r) => setTimeout(r, 20));
      return { ended, configured: Boolean(proxy.xds.status().types.CDS.version) };
    } finally {
      await proxy.close();
    }
  };
  const none = await attempt('alpha-none', 'alpha', undefined);
  assert.equal(none.configured, false);
  assert.equal(none.ended[0]?.code, 'UNAUTHENTICATED', JSON.stringify(none.ended));
  assert.match(none.ended[0].details, /needs a credential on xDS: the service's join token/);
  const wrong = await attempt('alpha-wrong', 'alpha', tok.beta);
  assert.equal(wrong.configured, false);
  assert.equal(wrong.ended[0]?.code, 'PERMISSION_DENIED');
  assert.match(wrong.ended[0].details, /declares default\/alpha, but its join token is for default\/beta/);
  const viewer = await attempt('alpha-viewer', 'alpha', tok.viewer);
  assert.equal(viewer.ended[0]?.code, 'PERMISSION_DENIED');
  assert.equal((await attempt('alpha-1', 'alpha', tok.alpha)).configured, true, 'its own token: config');
  assert.equal((await attempt('tool-1', undefined, tok.admin)).configured, true, 'an admin credential: any node');
});

test('a sidecar without --ca-file against this TLS control plane is told what to pass, once', async () => {
  const { startProxy } = await import('../../src/proxy/proxy');
  const errors: string[] = [];
  const log = (level: string, msg: string) => level === 'error' && errors.push(msg);
  const proxy = await startProxy({ xds: `127.0.0.1:${cp.xdsPort}`, nodeId: 'no-ca', service: 'alpha', namespace: 'default', adminPort: 0, log, joinToken: tok.alpha, sds: false });
  try {
    const deadline = Date.now() + 10_000;
    while (!errors.some((e) => /speaks TLS/.test(e)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.match(errors.find((e) => /speaks TLS/.test(e)) ?? '', /the control plane at 127\.0\.0\.1:\d+ speaks TLS: pass --ca-file with its trust bundle/);
    assert.equal(errors.filter((e) => /speaks TLS/.test(e)).length, 1, 'said once, not on every retry');
  } finally {
    await proxy.close();
  }
});
