// `weft run --proxy envoy`: the refusals through the real CLI, and the
// sidecar's supervision (bootstrap written, local SDS and certificate agent
// against a real --dev control plane, the process started in its own group,
// /ready awaited, SIGTERM on close, the private directory removed).
//
// No envoy binary exists on this machine, so the supervision test runs a
// stand-in executable in Envoy's place: it reads the bootstrap weft run
// wrote, fetches "default" over StreamSecrets from the socket the bootstrap's
// weft_sds cluster names (as Envoy would), and only then answers /ready LIVE
// on the bootstrap's admin port. A real Envoy runs in
// test/integration/envoy-sidecar.test.ts when one is on PATH.
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { silentLogger } from '../../src/observe/log';
import { freePort } from '../../src/run/free-port';
import { findEnvoyBinary, NO_ENVOY_MESSAGE, startEnvoySidecar } from '../../src/run/envoy/envoy-sidecar';
import { Mesh } from '../helpers/proxy-harness';
import { processAlive, tempDir, waitFor } from '../helpers/tmp';

const T = { timeout: 30_000 };
const BIN = path.resolve(__dirname, '../../../bin/weft.js');
const closers: (() => Promise<unknown> | unknown)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

/** Runs the real CLI with PATH holding no envoy; resolves with its exit code, output and how long it took. */
function weft(args: string[]): Promise<{ code: number | null; stderr: string; ms: number }> {
  const started = Date.now();
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, PATH: tempDir() }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (c) => (stderr += c));
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, stderr, ms: Date.now() - started })));
}

test('without an envoy binary, `weft run --proxy envoy` exits 1 at once saying what to do; --transparent and weft-proxy-only flags are refused', T, async () => {
  const none = await weft(['run', '--proxy', 'envoy', '--service', 'web', '--port', '8080', '--', 'sleep', '30']);
  assert.equal(none.code, 1);
  assert.equal(none.stderr.trim(), `weft: ${NO_ENVOY_MESSAGE}`);
  assert.equal(NO_ENVOY_MESSAGE, '--proxy envoy needs an envoy binary on PATH or --envoy-binary (none found); weft proxy (the default) needs none');
  assert.ok(none.ms < 10_000, `exited after ${none.ms} ms`);

  const missing = await weft(['run', '--proxy', 'envoy', '--envoy-binary', '/nonexistent/envoy', '--service', 'web', '--', 'true']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /--envoy-binary \/nonexistent\/envoy: not an executable file \(ENOENT\)/);

  const transparent = await weft(['run', '--proxy', 'envoy', '--transparent', '--service', 'web', '--', 'true']);
  assert.equal(transparent.code, 1);
  assert.match(transparent.stderr, /--proxy envoy with --transparent is not supported yet/);

  const weftOnly = await weft(['run', '--proxy', 'envoy', '--access-log', '-', '--otlp-endpoint', 'http://127.0.0.1:4318/v1/traces', '--service', 'web', '--', 'true']);
  assert.equal(weftOnly.code, 1);
  assert.match(weftOnly.stderr, /--proxy envoy: --otlp-endpoint, --access-log configure weft proxy, not Envoy/);

  const bad = await weft(['run', '--proxy', 'nginx', '--service', 'web', '--', 'true']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /--proxy.*nginx.*weft, envoy/);
});

test('findEnvoyBinary: PATH is searched for an executable file named envoy', () => {
  const dir = tempDir();
  assert.throws(() => findEnvoyBinary(undefined, dir), { message: NO_ENVOY_MESSAGE });
  fs.writeFileSync(path.join(dir, 'envoy'), '#!/bin/sh\n', { mode: 0o644 });
  assert.throws(() => findEnvoyBinary(undefined, dir), { message: NO_ENVOY_MESSAGE }, 'not executable');
  fs.chmodSync(path.join(dir, 'envoy'), 0o755);
  assert.equal(findEnvoyBinary(undefined, `/nonexistent:${dir}`), path.join(dir, 'envoy'));
  assert.throws(() => findEnvoyBinary(dir), /--envoy-binary .*: not an executable file/, 'a directory');
});

/** The stand-in: Envoy's command line, bootstrap, SDS fetch and admin /ready; it records what it saw next to itself. */
function standIn(dir: string, behaviour: 'serve' | 'crash'): string {
  const file = path.join(dir, 'envoy');
  const grpc = require.resolve('@grpc/grpc-js');
  const sds = path.resolve(__dirname, '../../src/ca/sds-protocol.js');
  const local = path.resolve(__dirname, '../../src/run/envoy/local-sds.js');
  fs.writeFileSync(
    file,
    `#!${process.execPath}
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const record = (o) => fs.appendFileSync(path.join(__dirname, 'record.jsonl'), JSON.stringify(o) + '\\n');
const args = process.argv.slice(2);
record({ args, pid: process.pid, pgid: Number(fs.readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ')[2]) });
if (${JSON.stringify(behaviour)} === 'crash') process.exit(3);
const bootstrap = JSON.parse(fs.readFileSync(args[args.indexOf('-c') + 1], 'utf8'));
record({ bootstrap });
process.on('SIGTERM', () => { record({ signal: 'SIGTERM' }); process.exit(0); });
const grpc = require(${JSON.stringify(grpc)});
const { encodeDiscoveryRequest, decodeDiscoveryResponse, SECRET_TYPE_URL } = require(${JSON.stringify(sds)});
const { STREAM_SECRETS_PATH } = require(${JSON.stringify(local)});
const { decodeMessage } = require(${JSON.stringify(path.resolve(__dirname, '../../src/xds/protos.js'))});
const cluster = bootstrap.static_resources.clusters.find((c) => c.name === 'weft_sds');
const socket = cluster.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.pipe.path;
const client = new grpc.Client('unix:' + socket, grpc.credentials.createInsecure());
const call = client.makeBidiStreamRequest(STREAM_SECRETS_PATH, encodeDiscoveryRequest, decodeDiscoveryResponse);
call.on('error', () => {});
let live = false;
call.on('data', (r) => {
  const secret = decodeMessage(SECRET_TYPE_URL, r.resources[0].value);
  record({ secret: secret.name, chain: secret.tls_certificate.certificate_chain.inline_string, hasKey: secret.tls_certificate.private_key.inline_string.includes('PRIVATE KEY') });
  call.write({ version_info: r.version_info, response_nonce: r.nonce, type_url: SECRET_TYPE_URL, resource_names: ['default'] });
  live = true;
});
call.write({ node: { id: bootstrap.node.id }, type_url: SECRET_TYPE_URL, resource_names: ['default'] });
http.createServer((req, res) => res.end(req.url === '/ready' && live ? 'LIVE\\n' : 'PRE_INITIALIZING\\n'))
  .listen(bootstrap.admin.address.socket_address.port_value, bootstrap.admin.address.socket_address.address);
`,
    { mode: 0o755 },
  );
  return file;
}

const records = (dir: string) =>
  fs.existsSync(path.join(dir, 'record.jsonl')) ? fs.readFileSync(path.join(dir, 'record.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)) : [];

test('the Envoy sidecar: bootstrap with the chosen ports and the SDS socket, the certificate fetched over it, /ready awaited, SIGTERM on close, the directory removed', T, async () => {
  const mesh = await Mesh.start();
  closers.push(() => mesh.close());
  const dir = tempDir();
  const binary = standIn(dir, 'serve');
  const [outboundPort, inboundPort, adminPort] = [await freePort(), await freePort(), await freePort()];
  const sidecar = await startEnvoySidecar({ binary, xds: mesh.xdsAddress, nodeId: 'web~127.0.0.1~1', service: 'web', namespace: 'default', outboundPort, inboundPort, appPort: 8080, adminPort, log: silentLogger, stopGraceMs: 2000 });
  closers.push(() => sidecar.close());
  assert.equal(sidecar.adminPort, adminPort);
  assert.equal(sidecar.metricsAddress, undefined);
  await sidecar.waitReady(20_000);

  const seen = records(dir);
  const start = seen.find((r) => r.args);
  assert.deepEqual(start.args.slice(2), ['--base-id', String(process.pid), '--log-level', 'warn']);
  assert.equal(start.pgid, start.pid, 'a process group of its own');
  const bootstrapFile: string = start.args[1];
  const privateDir = path.dirname(bootstrapFile);
  assert.equal(fs.statSync(privateDir).mode & 0o777, 0o700);
  assert.equal(fs.statSync(bootstrapFile).mode & 0o777, 0o600);
  const { bootstrap } = seen.find((r) => r.bootstrap);
  assert.deepEqual(bootstrap.node.metadata, { WEFT_SERVICE: 'web', WEFT_NAMESPACE: 'default', WEFT_ROLE: 'sidecar', WEFT_OUTBOUND_PORT: String(outboundPort), WEFT_INBOUND_PORT: String(inboundPort), WEFT_APP_PORT: '8080', WEFT_LOCAL_SDS: 'true' });
  assert.equal(bootstrap.admin.address.socket_address.port_value, adminPort);
  const secret = seen.find((r) => r.secret);
  assert.equal(secret.secret, 'default');
  assert.ok(secret.hasKey);
  assert.match(new (require('node:crypto').X509Certificate)(secret.chain).subjectAltName, /URI:spiffe:\/\/cluster\.local\/ns\/default\/sa\/web/);

  await sidecar.close();
  assert.ok(records(dir).some((r) => r.signal === 'SIGTERM'), 'Envoy was sent SIGTERM');
  assert.equal(processAlive(start.pid), false);
  assert.equal(fs.existsSync(privateDir), false, 'the bootstrap (join token) and the SDS socket are gone');
});

test('an Envoy that exits before it is ready: waitReady says so at once, not after its timeout', T, async () => {
  const mesh = await Mesh.start();
  closers.push(() => mesh.close());
  const dir = tempDir();
  const sidecar = await startEnvoySidecar({ binary: standIn(dir, 'crash'), xds: mesh.xdsAddress, nodeId: 'web~127.0.0.1~2', service: 'web', namespace: 'default', outboundPort: await freePort(), adminPort: await freePort(), log: silentLogger });
  closers.push(() => sidecar.close());
  const started = Date.now();
  await assert.rejects(sidecar.waitReady(20_000), /envoy exited before it was ready \(code 3/);
  assert.ok(Date.now() - started < 10_000);
  await sidecar.close();
});

test('through the CLI: weft run --proxy envoy --envoy-binary starts the app once Envoy is ready and registers it; SIGTERM stops app then Envoy; a SIGKILLed weft run leaves no Envoy behind', { timeout: 60_000 }, async () => {
  const mesh = await Mesh.start({ 'web.yaml': 'apiVersion: weft.dev/v1\nkind: Service\nmetadata: { name: web }\nspec: { ports: [{ name: http, port: 8080, protocol: http }] }\n' });
  closers.push(() => mesh.close());
  const children: import('node:child_process').ChildProcess[] = [];
  closers.push(() => children.forEach((c) => c.exitCode === null && c.signalCode === null && c.kill('SIGKILL')));
  const start = async () => {
    const dir = tempDir();
    const appPort = await freePort();
    const app = `require('node:http').createServer((q, s) => s.end('ok')).listen(${appPort}, '127.0.0.1'); process.on('SIGTERM', () => process.exit(0));`;
    const child = spawn(process.execPath, [BIN, 'run', '--proxy', 'envoy', '--envoy-binary', standIn(dir, 'serve'), '--service', 'web', '--port', String(appPort), '--xds', mesh.xdsAddress, '--api', `http://127.0.0.1:${mesh.cp!.apiPort}`, '--drain-seconds', '0.1', '--', process.execPath, '-e', app], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let output = '';
    child.stdout!.on('data', (d) => (output += d));
    child.stderr!.on('data', (d) => (output += d));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    await waitFor(() => {
      if (child.exitCode !== null) throw new Error(`weft run exited ${child.exitCode}: ${output}`);
      return (mesh.cp!.registry.endpoints().get('default/web') ?? []).length === 1;
    }, 30_000, 'registered');
    const envoy = records(dir).find((r) => r.args);
    assert.ok(records(dir).some((r) => r.secret === 'default'), 'Envoy had its certificate before the app started');
    assert.match(output, /"msg":"sidecar ready"/);
    return { child, exited, envoy, privateDir: path.dirname(envoy.args[1]), dir, output: () => output };
  };

  const a = await start();
  a.child.kill('SIGTERM');
  assert.equal(await a.exited, 0, a.output());
  assert.ok(records(a.dir).some((r) => r.signal === 'SIGTERM'));
  assert.equal(processAlive(a.envoy.pid), false);
  assert.equal(fs.existsSync(a.privateDir), false);
  await waitFor(() => (mesh.cp!.registry.endpoints().get('default/web') ?? []).length === 0, 10_000, 'deregistered');

  const b = await start();
  b.child.kill('SIGKILL');
  await b.exited;
  await waitFor(() => !processAlive(b.envoy.pid), 15_000, 'the guard stopped Envoy');
  await waitFor(() => !fs.existsSync(b.privateDir), 5000, 'the guard removed the private directory');
});
