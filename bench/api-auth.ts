// What authentication costs the control plane (issue 12), in one run:
//  1. the checks themselves, in process: a join token (SHA-256 + constant-time
//     compare + lookup) and an API credential, per call;
//  2. a registration renewal (PUT /api/v1/registrations/:id, what every
//     `weft run` instance sends every few seconds) against a `weft control`
//     process: --dev (plaintext, no credential) against the default (TLS and
//     the join token), keep-alive connections, CPU per renewal of the control
//     plane from /proc;
//  3. an xDS connection: the token is checked once per stream, when the node
//     identifies itself, so its cost is (1) once per connection.
//
//   npm run build && node dist/bench/api-auth.js [--seconds 5] [--concurrency 16]
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as os from 'node:os';
import * as path from 'node:path';
import { CredentialStore, type StoredCredential } from '../src/api/credentials';
import { JoinTokenStore } from '../src/ca/join-tokens';
import { FileDocumentSet } from '../src/store/document-set';
import { freePort, procCpuMs } from './peers';

const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const SECONDS = arg('seconds', 5);
const CONCURRENCY = arg('concurrency', 16);
const BIN = path.resolve(__dirname, '../../bin/weft.js');

async function checks(): Promise<void> {
  const tokens = new JoinTokenStore(undefined);
  const token = (await tokens.create({ service: 'web' })).token;
  const creds = new CredentialStore(new FileDocumentSet<StoredCredential>({ field: 'c', idOf: (c) => (c as StoredCredential).id, sweepIntervalMs: 0 }));
  const cred = (await creds.create({ name: 'bench', role: 'viewer' })).token;
  const time = (what: string, fn: () => void) => {
    for (let i = 0; i < 20_000; i++) fn();
    const n = 200_000;
    const start = process.hrtime.bigint();
    for (let i = 0; i < n; i++) fn();
    const ns = Number(process.hrtime.bigint() - start) / n;
    console.log(`${what.padEnd(36)} ${(ns / 1000).toFixed(2)} µs per check`);
  };
  time('join token (workload)', () => tokens.verify(token));
  time('API credential (operator)', () => creds.verify(cred));
}

interface Plane {
  api: string;
  pid: number;
  ca?: string;
  token?: string;
  stop(): void;
}

async function startPlane(dev: boolean): Promise<Plane> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-bench-auth-'));
  fs.mkdirSync(path.join(dir, 'config'));
  fs.writeFileSync(path.join(dir, 'config', 's.yaml'), 'apiVersion: weft.dev/v1\nkind: Service\nmetadata: { name: web }\nspec:\n  ports: [{ name: http, port: 80, protocol: http }]\n');
  const [xds, api] = [await freePort(), await freePort()];
  const child = spawn(process.execPath, [BIN, 'control', '--config', path.join(dir, 'config'), '--data-dir', path.join(dir, 'data'), '--xds-port', String(xds), '--api-port', String(api), '--log-level', 'warn', ...(dev ? ['--dev'] : [])], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
      if (/API on/.test(out)) resolve();
    });
    child.once('exit', (code) => reject(new Error(`weft control exited ${code}`)));
  });
  const stop = () => {
    child.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  };
  if (dev) return { api: `http://127.0.0.1:${api}`, pid: child.pid!, stop };
  const ca = fs.readFileSync(path.join(dir, 'data', 'ca', 'trust-bundle.pem'), 'utf8');
  const admin = fs.readFileSync(path.join(dir, 'data', 'admin.token'), 'utf8').trim();
  const plane: Plane = { api: `https://127.0.0.1:${api}`, pid: child.pid!, ca, stop };
  plane.token = (await request(plane, 'POST', '/api/v1/tokens', JSON.stringify({ service: 'web' }), admin)).token;
  return plane;
}

const agents = { http: new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY }), https: new https.Agent({ keepAlive: true, maxSockets: CONCURRENCY }) };

function request(plane: Plane, method: string, route: string, body?: string, token = plane.token): Promise<any> {
  return new Promise((resolve, reject) => {
    const url = new URL(route, plane.api);
    const headers: http.OutgoingHttpHeaders = { 'content-type': 'application/json' };
    if (token) headers.authorization = `Bearer ${token}`;
    const onRes = (res: http.IncomingMessage) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => (res.statusCode! < 300 ? resolve(text ? JSON.parse(text) : undefined) : reject(new Error(`${res.statusCode} ${text}`))));
    };
    const req = url.protocol === 'https:' ? https.request(url, { method, headers, agent: agents.https, ca: plane.ca }, onRes) : http.request(url, { method, headers, agent: agents.http }, onRes);
    req.on('error', reject);
    req.end(body);
  });
}

async function renewals(dev: boolean): Promise<{ rps: number; cpuUs: number }> {
  const plane = await startPlane(dev);
  try {
    const regs = await Promise.all(Array.from({ length: CONCURRENCY }, () => request(plane, 'POST', '/api/v1/registrations', JSON.stringify({ service: 'web', address: '127.0.0.1', port: 8080, ttlSeconds: 3600 }))));
    const loop = async (id: string, until: number) => {
      let n = 0;
      while (Date.now() < until) {
        await request(plane, 'PUT', `/api/v1/registrations/${id}`, '{}');
        n++;
      }
      return n;
    };
    await Promise.all(regs.map((r) => loop(r.id, Date.now() + 1000))); // warm-up
    const cpu0 = procCpuMs(plane.pid);
    const start = Date.now();
    const counts = await Promise.all(regs.map((r) => loop(r.id, start + SECONDS * 1000)));
    const total = counts.reduce((a, b) => a + b, 0);
    const secs = (Date.now() - start) / 1000;
    return { rps: total / secs, cpuUs: ((procCpuMs(plane.pid) - cpu0) * 1000) / total };
  } finally {
    plane.stop();
  }
}

async function main(): Promise<void> {
  console.log('1. the checks, in process');
  await checks();
  console.log(`\n2. registration renewals, ${CONCURRENCY} keep-alive clients, ${SECONDS} s each (CPU of the control plane process, /proc)`);
  const dev = await renewals(true);
  console.log(`--dev (plaintext, no credential)     ${dev.rps.toFixed(0).padStart(6)} renewals/s  ${dev.cpuUs.toFixed(0)} µs CPU per renewal`);
  const secure = await renewals(false);
  console.log(`default (TLS + join token)           ${secure.rps.toFixed(0).padStart(6)} renewals/s  ${secure.cpuUs.toFixed(0)} µs CPU per renewal  | ${(secure.cpuUs / dev.cpuUs).toFixed(2)}× CPU`);
  console.log('\n3. xDS: the join token is checked once per stream (when the node identifies itself): the cost of (1), once per connection.');
  agents.http.destroy();
  agents.https.destroy();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
