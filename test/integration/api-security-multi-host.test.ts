// The trust model across hosts (issue 12, "Show it"): every process is the real bin/weft.js on a
// host of its own (network namespaces on one bridge, test/helpers/hosts.ts):
//
//   cp   `weft control`, NOT in dev mode: the admin API over TLS with the mesh CA's certificate
//        (https://cp:15000), xDS over TLS, the first admin token in <data-dir>/admin.token
//   a    `weft run` of alpha with its join token (`weft token create`) and --ca-file
//   b    a host with no credential of its own: the requests an outsider (or a thief) can make
//
// From b: no credential → 401 on every change and every read; alpha's join token → only alpha's
// own registration at b's own address; a viewer reads but changes nothing; a revoked token is
// refused at once; the admin token does everything and the audit log says who did what; the xDS
// port refuses a sidecar that presents another service's token, and tells one without --ca-file
// what to pass.
//
// host.fetch speaks plain HTTP only, so HTTPS requests on a host go through a small node script
// run there (host.exec) that verifies the control plane with the trust bundle; tokens reach it on
// stdin, never in argv.
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Hosts, multiHostSkip, type Host, type Proc, withProcessLogs } from '../helpers/hosts';
import { serviceYaml } from '../helpers/resources';
import { tempDir } from '../helpers/tmp';

const ROOT = path.resolve(__dirname, '../../..');
const BIN = path.join(ROOT, 'bin/weft.js');
// Outside CI a machine without root or ip skips with the reason; under CI=true it fails instead
// (multiHostSkip returns false and Hosts.create throws).
const SKIP = multiHostSkip();
// Every host has a network stack of its own: fixed ports never collide.
const API_PORT = 15000;
const XDS_PORT = 15010;
const APP_PORT = 8080;
const T = (ms: number) => ({ skip: SKIP, timeout: ms });

let hosts: Hosts;
let cp: Host;
let a: Host;
let b: Host;
let api: string;
let work: string;
let bundle: string;
let adminToken: string;
/** Alpha's join token (the one alpha's `weft run` on a uses) and its id. */
let alphaToken: string;
let alphaTokenId: string;
let viewerToken: string;
let alphaOnA: Proc;
const procs: Proc[] = [];
let setupMs = 0;

/** Alpha's app under `weft run` on a: answers on loopback. */
const ALPHA_APP = `require('node:http').createServer((req, res) => res.end('alpha')).listen(Number(process.env.PORT), '127.0.0.1');`;

interface Req {
  method: string;
  path: string;
  token?: string;
  body?: string;
  /** Verify with the system's roots instead of the mesh's trust bundle. */
  noCa?: boolean;
}

interface Res {
  status: number;
  headers: Record<string, string | string[]>;
  body: string;
  json: any;
  error?: string;
}

/**
 * Runs inside a host's namespace: HTTPS requests, one after another, verified with the CA file;
 * the requests (tokens included) come as JSON on stdin, the answers go out as JSON on stdout.
 */
const HTTPS_SCRIPT = String.raw`
const https = require('node:https');
const fs = require('node:fs');
let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => (input += d));
process.stdin.on('end', async () => {
  const { base, ca, requests } = JSON.parse(input);
  const caPem = fs.readFileSync(ca);
  const out = [];
  for (const q of requests) {
    out.push(await new Promise((resolve) => {
      const u = new URL(q.path, base);
      const headers = {};
      if (q.token) headers.authorization = 'Bearer ' + q.token;
      if (q.body !== undefined) {
        headers['content-type'] = /^[\[{]/.test(q.body) ? 'application/json' : 'application/yaml';
        headers['content-length'] = Buffer.byteLength(q.body);
      }
      const req = https.request({ host: u.hostname, port: u.port, path: u.pathname + u.search, method: q.method, headers, agent: false, ...(q.noCa ? {} : { ca: caPem }) }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (body += c));
        res.on('end', () => { clearTimeout(t); resolve({ status: res.statusCode, headers: res.headers, body }); });
      });
      const t = setTimeout(() => req.destroy(new Error('timed out after 3000 ms')), 3000);
      req.on('error', (e) => { clearTimeout(t); resolve({ status: 0, headers: {}, body: '', error: e.message }); });
      req.end(q.body);
    }));
  }
  process.stdout.write(JSON.stringify(out));
});
`;

/** HTTPS requests to the control plane's API made from `host`, in order. */
async function https(host: Host, requests: Req[]): Promise<Res[]> {
  const r = await host.exec(process.execPath, ['-e', HTTPS_SCRIPT], { input: JSON.stringify({ base: api, ca: bundle, requests }), timeoutMs: 15_000 });
  assert.equal(r.code, 0, `the https script on ${host.name}: ${r.stderr}`);
  return (JSON.parse(r.stdout) as Omit<Res, 'json'>[]).map((x) => {
    let json: any;
    try {
      json = JSON.parse(x.body);
    } catch {
      json = undefined;
    }
    return { ...x, json };
  });
}

async function https1(host: Host, req: Req): Promise<Res> {
  return (await https(host, [req]))[0];
}

function weft(host: Host, args: string[], env: NodeJS.ProcessEnv = {}): Proc {
  const proc = host.spawn(process.execPath, [BIN, ...args], { cwd: work, env: { WEFT_DEBUG: '', WEFT_TOKEN: '', WEFT_TOKEN_FILE: '', WEFT_API: '', ...env } });
  procs.push(proc);
  return proc;
}

/**
 * A CLI command run to its end on a host, as an operator with `token` would run it (WEFT_TOKEN,
 * WEFT_CA_FILE = the trust bundle). The working directory has no .weft/, so nothing else is picked up.
 */
async function cli(host: Host, args: string[], token: string): Promise<{ stdout: string; stderr: string }> {
  const r = await host.exec(process.execPath, [BIN, ...args, '--api', api], { cwd: work, env: { WEFT_DEBUG: '', WEFT_TOKEN: token, WEFT_TOKEN_FILE: '', WEFT_CA_FILE: bundle }, timeoutMs: 15_000 });
  assert.equal(r.code, 0, `[${host.name}] weft ${args.join(' ')}: ${r.stderr}`);
  return r;
}

/** On failure, the tails of every process's output. */
const explained = (fn: () => Promise<void>) => withProcessLogs(procs, fn);

const timed = async <R>(t: TestContext, what: string, fn: () => Promise<R>): Promise<R> => {
  const started = Date.now();
  const r = await fn();
  t.diagnostic(`${what}: ${Date.now() - started} ms`);
  return r;
};

before(async () => {
  if (SKIP) return;
  const started = Date.now();
  hosts = await Hosts.create({ name: 'apisec', hosts: ['cp', 'a', 'b'] });
  [cp, a, b] = ['cp', 'a', 'b'].map((h) => hosts.get(h));
  api = `https://${cp.address}:${API_PORT}`;
  work = tempDir(undefined, 'weft-apisec-');
  const config = path.join(work, 'config');
  const dataDir = path.join(work, 'data');
  fs.mkdirSync(config);
  fs.writeFileSync(path.join(config, 'mesh.yaml'), serviceYaml('alpha', 80) + '---\n' + serviceYaml('beta', 80));
  const control = weft(cp, ['control', '--host', cp.address, '--config', config, '--data-dir', dataDir, '--xds-port', String(XDS_PORT), '--api-port', String(API_PORT)]);
  await explained(async () => {
    await control.waitForOutput(/API on https?:\/\//, 15_000);
    assert.match(control.output(), /xDS on \S+ \(TLS;/, 'not in dev mode: xDS over TLS');
    assert.match(control.output(), /API on https:\/\//, 'not in dev mode: the API over TLS');
    // The files an operator on cp has (the test reads them from the shared filesystem).
    adminToken = fs.readFileSync(path.join(dataDir, 'admin.token'), 'utf8').trim();
    bundle = path.join(dataDir, 'ca', 'trust-bundle.pem');
    assert.match(fs.readFileSync(bundle, 'utf8'), /BEGIN CERTIFICATE/);
    assert.doesNotMatch(control.output(), new RegExp(adminToken.split('.')[2]), 'the admin token is never logged');

    // Alpha's join token, made on cp; the viewer credential, made on a: the CLI over https across hosts.
    const [joined, viewer] = await Promise.all([cli(cp, ['token', 'create', '--service', 'alpha'], adminToken), cli(a, ['admin-token', 'create', '--name', 'dash', '--role', 'viewer'], adminToken)]);
    alphaToken = joined.stdout.trim();
    alphaTokenId = /join token (\S+) for alpha\.default/.exec(joined.stderr)?.[1] ?? '';
    assert.ok(alphaToken && alphaTokenId, joined.stderr);
    viewerToken = viewer.stdout.trim();
    assert.match(viewerToken, /^weftapi\./);

    alphaOnA = weft(a, [
      'run', '--service', 'alpha', '--port', String(APP_PORT), '--address', a.address,
      '--xds', `${cp.address}:${XDS_PORT}`, '--api', api, '--ca-file', bundle, '--join-token', alphaToken,
      '--', process.execPath, '-e', ALPHA_APP,
    ]);
    await alphaOnA.waitForOutput(/instance registered/, 20_000);
  });
  setupMs = Date.now() - started;
});

after(async () => {
  await hosts?.destroy();
});

test('the API speaks TLS only, verified with the trust bundle; alpha is registered from a with its join token', T(20_000), (t) =>
  explained(async () => {
    t.diagnostic(`hosts, control plane, token, viewer credential and alpha registered in ${setupMs} ms`);
    // Plaintext from b: 400, told to use https.
    const plain = await b.fetch(`http://${cp.address}:${API_PORT}/api/v1/status`);
    assert.equal(plain.status, 400);
    assert.equal(plain.headers['x-weft-tls'], 'required');
    assert.match(plain.body, /speaks TLS: use https:/);
    const [health, untrusted] = await https(b, [
      { method: 'GET', path: '/healthz' },
      // Without the mesh's trust bundle the certificate does not verify: no request is sent.
      { method: 'GET', path: '/healthz', noCa: true },
    ]);
    assert.equal(health.status, 200, 'liveness is public');
    assert.equal(untrusted.status, 0);
    assert.match(untrusted.error ?? '', /certificate/);
    // Alpha's instance on a, registered by `weft run` with the join token, at a's address.
    const regs = await https1(b, { method: 'GET', path: '/api/v1/registrations', token: adminToken });
    assert.equal(regs.status, 200, regs.body);
    const alphas = (regs.json.items as { service: string; address: string }[]).filter((r) => r.service === 'alpha');
    assert.deepEqual(alphas.map((r) => r.address), [a.address]);
  }),
);

test('from b without a credential: every change and every read is 401, and nothing changed', T(20_000), (t) =>
  explained(async () => {
    const regs = await https1(b, { method: 'GET', path: '/api/v1/registrations', token: adminToken });
    const alphaRegId = (regs.json.items as { id: string; service: string }[]).find((r) => r.service === 'alpha')!.id;
    const bundleBefore = fs.readFileSync(bundle, 'utf8');
    const mutating: Req[] = [
      { method: 'POST', path: '/api/v1/resources', body: serviceYaml('gamma', 80) },
      { method: 'DELETE', path: '/api/v1/resources/services/default/alpha' },
      { method: 'POST', path: '/api/v1/tokens', body: JSON.stringify({ service: 'alpha' }) },
      { method: 'DELETE', path: `/api/v1/tokens/${alphaTokenId}` },
      { method: 'POST', path: '/api/v1/ca/rotate-root' },
      { method: 'POST', path: '/api/v1/ca/retire-roots' },
      { method: 'POST', path: '/api/v1/registrations', body: JSON.stringify({ service: 'alpha', address: b.address, port: APP_PORT }) },
      { method: 'PUT', path: `/api/v1/registrations/${alphaRegId}`, body: JSON.stringify({ health: 'draining' }) },
      { method: 'DELETE', path: `/api/v1/registrations/${alphaRegId}` },
      { method: 'POST', path: '/api/v1/credentials', body: JSON.stringify({ name: 'intruder', role: 'admin' }) },
      { method: 'DELETE', path: '/api/v1/credentials/000000000000' },
    ];
    const reads: Req[] = [
      '/api/v1/status', '/api/v1/resources', '/api/v1/resources/services', '/api/v1/endpoints', '/api/v1/registrations',
      '/api/v1/nodes', '/api/v1/errors', '/api/v1/credentials', '/api/v1/audit', '/api/v1/topology',
      '/api/v1/services/default/alpha', '/api/v1/explain?from=alpha&to=beta', '/api/v1/events', '/api/v1/certs',
      '/api/v1/certs/issued', '/api/v1/tokens', '/metrics',
    ].map((p) => ({ method: 'GET', path: p }));
    const answers = await timed(t, `${mutating.length + reads.length} requests from b`, () => https(b, [...mutating, ...reads]));
    const wrong = answers.map((r, i) => ({ r, q: [...mutating, ...reads][i] })).filter(({ r }) => r.status !== 401 || !/set WEFT_TOKEN/.test(r.json?.error ?? ''));
    assert.deepEqual(wrong.map(({ q, r }) => `${q.method} ${q.path}: ${r.status} ${r.error ?? r.body.slice(0, 120)}`), []);

    // Nothing changed: alpha is still configured and registered (not draining), its token still
    // works, the admin credential too, no gamma, and the roots are the same.
    const [services, after] = await https(b, [
      { method: 'GET', path: '/api/v1/resources/services', token: adminToken },
      { method: 'GET', path: '/api/v1/registrations', token: adminToken },
    ]);
    // Its owner, on a, renews it with alpha's token as before.
    const registration = await https1(a, { method: 'PUT', path: `/api/v1/registrations/${alphaRegId}`, token: alphaToken, body: '{}' });
    assert.equal(services.status, 200, services.body);
    assert.deepEqual((services.json.items as { metadata: { name: string } }[]).map((s) => s.metadata.name).sort(), ['alpha', 'beta']);
    const alphaReg = (after.json.items as { id: string; health: string }[]).find((r) => r.id === alphaRegId);
    assert.equal(alphaReg?.health, 'healthy');
    assert.equal(registration.status, 200, `alpha's token still renews: ${registration.body}`);
    assert.equal(fs.readFileSync(bundle, 'utf8'), bundleBefore, 'the roots did not change');
  }),
);

test("alpha's join token used from b: only alpha, only at b's own address, no tokens, no config", T(20_000), (t) =>
  explained(async () => {
    // What a join token lets its holder do on the API is register instances of its own service at
    // the address it calls from. So a stolen token used on the thief's machine (b here) can add that
    // machine as an instance of alpha — callers' sidecars would send some of alpha's traffic there,
    // under an identity the thief can also obtain a certificate for (README: "A stolen token") — but
    // it cannot point alpha's traffic at any other address, register another service, mint tokens,
    // change config or touch credentials. The thief's instance shows in `weft endpoints` at its
    // real address, and is gone with the token's revocation (below) once its lease runs out. It is
    // not in the audit log (workloads' own registrations are not recorded).
    // Renewing (PUT, which also sets health) and deregistering (DELETE) are held to the same address:
    // the token used from b can neither drain alpha's instance on a nor remove it.
    const [regs] = await https(b, [{ method: 'GET', path: '/api/v1/registrations', token: viewerToken }]);
    const alphaRegId = (regs.json.items as { id: string; service: string; address: string }[]).find((r) => r.service === 'alpha' && r.address === a.address)!.id;
    const answers = await timed(t, "alpha's token from b: 5 requests", () =>
      https(b, [
        { method: 'POST', path: '/api/v1/registrations', token: alphaToken, body: JSON.stringify({ service: 'beta', address: b.address, port: APP_PORT }) },
        { method: 'POST', path: '/api/v1/registrations', token: alphaToken, body: JSON.stringify({ service: 'alpha', address: a.address, port: APP_PORT }) },
        { method: 'POST', path: '/api/v1/tokens', token: alphaToken, body: JSON.stringify({ service: 'alpha' }) },
        { method: 'POST', path: '/api/v1/resources', token: alphaToken, body: serviceYaml('gamma', 80) },
        { method: 'POST', path: '/api/v1/registrations', token: alphaToken, body: JSON.stringify({ service: 'alpha', address: b.address, port: APP_PORT, ttlSeconds: 30 }) },
        { method: 'PUT', path: `/api/v1/registrations/${alphaRegId}`, token: alphaToken, body: JSON.stringify({ health: 'draining' }) },
        { method: 'DELETE', path: `/api/v1/registrations/${alphaRegId}`, token: alphaToken },
      ]),
    );
    const [beta, elsewhere, mint, apply, own, drain, remove] = answers;
    assert.equal(drain.status, 403, drain.body);
    assert.match(drain.json.error, /may only register, renew and deregister the address it calls from/);
    assert.equal(remove.status, 403, remove.body);
    assert.equal(beta.status, 403, beta.body);
    assert.match(beta.json.error, /the join token \S+ of default\/alpha may only register instances for default\/alpha, not default\/beta/);
    assert.equal(elsewhere.status, 403, elsewhere.body);
    assert.match(elsewhere.json.error, new RegExp(`may only register, renew and deregister the address it calls from \\(${b.address.replace(/\./g, '\\.')}\\), not ${a.address.replace(/\./g, '\\.')}`));
    assert.equal(mint.status, 403, mint.body);
    assert.match(mint.json.error, /may not POST \/api\/v1\/tokens \(needs the admin role\)/);
    assert.equal(apply.status, 403, apply.body);
    assert.match(apply.json.error, /may not POST \/api\/v1\/resources \(needs the admin role\)/);
    assert.equal(own.status, 201, own.body);
    assert.equal(own.json.service, 'alpha');
    assert.equal(own.json.address, b.address);

    // The mesh now lists alpha at a (weft run) and at b (this registration); the holder deregisters its own.
    const [endpoints, gone, after] = await https(b, [
      { method: 'GET', path: '/api/v1/endpoints?service=alpha', token: viewerToken },
      { method: 'DELETE', path: `/api/v1/registrations/${own.json.id}`, token: alphaToken },
      { method: 'GET', path: '/api/v1/endpoints?service=alpha', token: viewerToken },
    ]);
    assert.deepEqual((endpoints.json.services['default/alpha'] as { address: string }[]).map((e) => e.address).sort(), [a.address, b.address].sort());
    assert.equal(gone.status, 200, gone.body);
    assert.deepEqual((after.json.services['default/alpha'] as { address: string }[]).map((e) => e.address), [a.address]);
  }),
);

test('a viewer credential reads status and topology but changes nothing', T(20_000), () =>
  explained(async () => {
    const [status, topology, apply, tokens] = await https(b, [
      { method: 'GET', path: '/api/v1/status', token: viewerToken },
      { method: 'GET', path: '/api/v1/topology', token: viewerToken },
      { method: 'POST', path: '/api/v1/resources', token: viewerToken, body: serviceYaml('gamma', 80) },
      { method: 'GET', path: '/api/v1/tokens', token: viewerToken },
    ]);
    assert.equal(status.status, 200, status.body);
    assert.equal(topology.status, 200, topology.body);
    assert.ok(JSON.stringify(topology.json).includes('alpha'), 'the topology names alpha');
    assert.equal(apply.status, 403, apply.body);
    assert.match(apply.json.error, /credential dash \(\w+, viewer\) may not POST \/api\/v1\/resources \(needs the admin role\)/);
    assert.equal(tokens.status, 403, 'join tokens are for admins');
  }),
);

test("the xDS port: a sidecar for beta with alpha's token is refused and gets no config; one without --ca-file is told what to pass", T(30_000), (t) =>
  explained(async () => {
    const started = Date.now();
    const common = ['proxy', '--service', 'beta', '--join-token', alphaToken, '--xds', `${cp.address}:${XDS_PORT}`];
    // Two sidecars on b at once: ports of their own.
    const refused = weft(b, [...common, '--ca-file', bundle, '--admin-port', '15020', '--outbound-port', '15001', '--inbound-port', '15006']);
    const noCa = weft(b, [...common, '--admin-port', '15021', '--outbound-port', '15002', '--inbound-port', '15007']);

    // The xDS stream's refusal; the certificate agent's own refusal (also PERMISSION_DENIED) may come first.
    const line = await refused.waitForOutput(/^(?=.*"code":"PERMISSION_DENIED")(?=.*declares default\/beta).*$/m, 10_000);
    t.diagnostic(`refused on xDS ${Date.now() - started} ms after start`);
    const ended = JSON.parse(line[0]) as { msg: string; code: string; details: string };
    assert.equal(ended.code, 'PERMISSION_DENIED');
    assert.match(ended.details, /declares default\/beta, but its join token is for default\/alpha/);
    await refused.waitForOutput(/admin http:\/\/127\.0\.0\.1:15020\//, 5000);
    const xds = JSON.parse((await b.fetch('http://127.0.0.1:15020/xds')).body) as { connected: boolean; types: Record<string, { version?: string; resources: number }> };
    assert.equal(xds.connected, false);
    for (const [kind, s] of Object.entries(xds.types)) assert.ok(s.version === undefined && s.resources === 0, `no ${kind} config: ${JSON.stringify(s)}`);
    assert.equal((await b.fetch('http://127.0.0.1:15020/ready')).status, 503);
    // ("xds connected" in its log is the TLS channel coming up: the stream is refused right after.)
    assert.doesNotMatch(refused.output(), /"config applied"|"sidecar ready"/);

    const told = await noCa.waitForOutput(/^.*speaks TLS.*$/m, 10_000);
    t.diagnostic(`the sidecar without --ca-file told what to pass ${Date.now() - started} ms after start`);
    assert.match(told[0], new RegExp(`the control plane at ${cp.address.replace(/\./g, '\\.')}:${XDS_PORT} speaks TLS: pass --ca-file with its trust bundle .* and --join-token`));
    assert.equal((await b.fetch('http://127.0.0.1:15021/ready')).status, 503);
    refused.killTree('SIGKILL');
    noCa.killTree('SIGKILL');
    await Promise.all([refused.exited, noCa.exited]);
  }),
);

test("revoking alpha's join token (`weft token revoke`) refuses it on the next request", T(20_000), (t) =>
  explained(async () => {
    const revoke = await timed(t, '`weft token revoke` on cp', () => cli(cp, ['token', 'revoke', alphaTokenId], adminToken));
    assert.match(revoke.stdout, new RegExp(`join token ${alphaTokenId} revoked`));
    const revokedAt = Date.now();
    const [reg, renew] = await https(b, [
      { method: 'POST', path: '/api/v1/registrations', token: alphaToken, body: JSON.stringify({ service: 'alpha', address: b.address, port: APP_PORT }) },
      { method: 'GET', path: '/api/v1/registrations', token: adminToken },
    ]);
    t.diagnostic(`refused ${Date.now() - revokedAt} ms after the revocation returned (the next request)`);
    assert.equal(reg.status, 401, reg.body);
    assert.match(reg.json.error, /unknown or revoked|revoked/);
    assert.equal(renew.status, 200);
  }),
);

test('the admin token does everything; `weft audit` lists the changes and who made them', T(20_000), () =>
  explained(async () => {
    const file = path.join(work, 'gamma.yaml');
    fs.writeFileSync(file, serviceYaml('gamma', 80));
    await cli(a, ['apply', '-f', file], adminToken);
    const [services, elsewhere] = await https(b, [
      { method: 'GET', path: '/api/v1/resources/services', token: adminToken },
      // An admin credential may register any address, not only the one it calls from.
      { method: 'POST', path: '/api/v1/registrations', token: adminToken, body: JSON.stringify({ service: 'beta', address: '198.51.100.7', port: APP_PORT, ttlSeconds: 5 }) },
    ]);
    assert.deepEqual((services.json.items as { metadata: { name: string } }[]).map((s) => s.metadata.name).sort(), ['alpha', 'beta', 'gamma']);
    assert.equal(elsewhere.status, 201, elsewhere.body);

    const ADMIN = 'credential admin (000000000000, admin)';
    const audit = await cli(cp, ['audit', '--limit', '100'], adminToken);
    const lines = audit.stdout.split('\n');
    const has = (re: RegExp) => assert.ok(lines.some((l) => l.includes(ADMIN) && re.test(l)), `weft audit has ${re}:\n${audit.stdout}`);
    has(/POST \/api\/v1\/tokens\s+200\s+created join token \S+ for default\/alpha/);
    has(/POST \/api\/v1\/credentials\s+200\s+created viewer credential dash/);
    has(new RegExp(`DELETE /api/v1/tokens/${alphaTokenId}\\s+200\\s+revoked join token ${alphaTokenId}`));
    has(/POST \/api\/v1\/resources\s+200\s+applied Service\/default\/gamma/);
    has(/POST \/api\/v1\/registrations\s+201\s+registered default\/beta at 198\.51\.100\.7/);
    // Refused requests and workloads' own registrations (alpha's token, from a and from b) are not changes by operators.
    assert.doesNotMatch(audit.stdout, /join token \S+ of default\/alpha|intruder|gamma.*40[13]/);

    // The same as JSON, read from b with the admin token; a viewer may not read it.
    const [json, asViewer] = await https(b, [
      { method: 'GET', path: '/api/v1/audit?limit=100', token: adminToken },
      { method: 'GET', path: '/api/v1/audit', token: viewerToken },
    ]);
    assert.equal(json.status, 200);
    const entries = json.json.items as { who: string; method: string; path: string; what?: string }[];
    assert.ok(entries.some((e) => e.who === ADMIN && e.path === '/api/v1/resources' && /applied Service\/default\/gamma/.test(e.what ?? '')));
    assert.ok(entries.every((e) => e.who === ADMIN), `only the admin changed anything: ${JSON.stringify(entries.map((e) => e.who))}`);
    assert.equal(asViewer.status, 403);
  }),
);
