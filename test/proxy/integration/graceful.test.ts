// Graceful change under load: 16 keep-alive clients send requests without
// pause (some slow, so many are always in flight) while the route flips
// between two versions several times, and then `weft proxy` (a real process)
// gets SIGTERM. No request may fail: in-flight requests finish on the config
// they started with, requests started after the sidecar applied a change go
// to the new version, and on SIGTERM every request already sent is answered
// before the process exits 0.
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as http from 'node:http';
import * as path from 'node:path';
import { docs, exitGuard, freePort, HttpUpstream, Mesh, serviceYaml, T, waitFor, type Sidecar } from '../../helpers/proxy-harness';
import type { RouteAction } from '../../../src/proxy/config/types';

let mesh: Mesh;
let sc: Sidecar;
let v1: HttpUpstream;
let v2: HttpUpstream;

const route = (version: string) => `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: web }
spec:
  parentRefs: [{ kind: Service, name: web, port: 80 }]
  rules:
    - backendRefs: [{ name: web-${version}, port: 80 }]
`;

/** Answers after a delay from the query (?ms=…), with its name. */
function slowHandler(name: string) {
  return (req: http.IncomingMessage, res: http.ServerResponse) => {
    const ms = Number(new URL(req.url!, 'http://x').searchParams.get('ms') ?? 0);
    setTimeout(() => res.writeHead(200, { 'content-length': name.length }).end(name), ms);
  };
}

before(async () => {
  v1 = await HttpUpstream.start('v1');
  v2 = await HttpUpstream.start('v2');
  v1.handler = slowHandler('v1');
  v2.handler = slowHandler('v2');
  mesh = await Mesh.start({
    'services.yaml': docs(serviceYaml({ name: 'web' }), serviceYaml({ name: 'web-v1', endpoints: [v1.port] }), serviceYaml({ name: 'web-v2', endpoints: [v2.port] })),
    'route.yaml': route('v1'),
  });
  sc = await mesh.sidecar();
}, T);

after(async () => {
  exitGuard();
  await mesh.close();
  await Promise.all([v1.close(), v2.close()]);
});

interface Outcome {
  startedAt: number;
  status: number;
  body: string;
  error?: string;
}

/** `clients` keep-alive loops until `until()` says stop; every 4th request is slow (150 ms). */
/** `out` fills as requests finish, so a test can wait for a number of them rather than for a time. */
async function load(port: number, clients: number, until: () => boolean, out: Outcome[] = []): Promise<Outcome[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: clients });
  let n = 0;
  const one = () =>
    new Promise<Outcome>((resolve) => {
      const startedAt = performance.now();
      const ms = n++ % 4 === 0 ? 150 : 0;
      const req = http.get({ host: '127.0.0.1', port, path: `/?ms=${ms}`, headers: { host: 'web' }, agent, timeout: 5000 }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ startedAt, status: res.statusCode!, body }));
        res.on('error', (e) => resolve({ startedAt, status: 0, body, error: e.message }));
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (e) => resolve({ startedAt, status: 0, body: '', error: e.message }));
    });
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (!until()) out.push(await one());
    }),
  );
  agent.destroy();
  return out;
}

test('config changes under load: no request fails, and requests after each change follow it', { timeout: 30_000 }, async () => {
  let stop = false;
  const done: Outcome[] = [];
  const running = load(sc.outboundPort, 16, () => stop, done);
  /** Waits until `n` more requests have finished (a window of traffic, whatever the machine's speed). */
  const moreRequests = (n: number) => {
    const target = done.length + n;
    return waitFor(() => done.length >= target, 10_000, `${n} more requests through the sidecar`);
  };
  /** When the sidecar had applied each version: requests started later must reach it. */
  const switches: { version: string; appliedAt: number }[] = [];
  const servedBy = (version: string) => (c: import('../../../src/proxy/config/types').ProxyConfig) =>
    [...c.routeTables.values()].some((t) =>
      t.virtualHosts.some((v) => v.domains.includes('web') && v.routes.some((r) => (r.action as RouteAction).clusters?.[0]?.name === `outbound|80||web-${version}.default`)),
    );
  await moreRequests(100);
  for (const version of ['v2', 'v1', 'v2', 'v1', 'v2']) {
    mesh.write('route.yaml', route(version));
    await sc.waitConfig(servedBy(version), 5000, `route to ${version}`);
    switches.push({ version, appliedAt: performance.now() });
    await moreRequests(120);
  }
  stop = true;
  const outcomes = await running;
  const failed = outcomes.filter((o) => o.status !== 200);
  assert.ok(outcomes.length > 500, `only ${outcomes.length} requests`);
  assert.deepEqual(failed.slice(0, 5), [], `${failed.length} of ${outcomes.length} requests failed`);
  // Requests started after a switch was applied (and before the next) went to that version.
  for (let i = 0; i < switches.length; i++) {
    const { version, appliedAt } = switches[i];
    const end = switches[i + 1]?.appliedAt ?? Infinity;
    // A switch is applied a few ms before waitConfig sees it; start 20 ms later to be sure.
    const window = outcomes.filter((o) => o.startedAt > appliedAt + 20 && o.startedAt < end - 50);
    assert.ok(window.length > 20, `switch ${i}: ${window.length} requests`);
    const wrong = window.filter((o) => o.body !== version);
    assert.equal(wrong.length, 0, `switch ${i} to ${version}: ${wrong.length} of ${window.length} went elsewhere`);
  }
});

test('SIGTERM under load: `weft proxy` answers every request it accepted, then exits 0', { timeout: 30_000 }, async () => {
  const [outbound, inbound, adminPort] = [await freePort(), await freePort(), await freePort()];
  const bin = path.resolve(__dirname, '../../../../bin/weft.js');
  const child = spawn(process.execPath, [bin, 'proxy', '--xds', mesh.xdsAddress, '--node-id', 'graceful-1', '--outbound-port', String(outbound), '--inbound-port', String(inbound), '--admin-port', String(adminPort)], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    await waitFor(async () => (await fetch(`http://127.0.0.1:${adminPort}/ready`).then((r) => r.status, () => 0)) === 200, 10_000, 'weft proxy ready');
    let stop = false;
    const done: Outcome[] = [];
    const running = load(outbound, 16, () => stop, done);
    await waitFor(() => done.length > 150, 10_000, '150 requests through weft proxy before SIGTERM');
    const termAt = performance.now();
    child.kill('SIGTERM');
    const code = await exited;
    stop = true;
    const outcomes = await running;
    assert.equal(code, 0, `exit code (stderr: ${stderr.slice(-500)})`);
    const before = outcomes.filter((o) => o.startedAt < termAt - 5);
    assert.ok(before.length > 100, `only ${before.length} requests before SIGTERM`);
    // Requests sent before SIGTERM were all answered; after it, new ones may be refused (connection errors), never half-answered.
    const lost = before.filter((o) => o.status !== 200);
    assert.deepEqual(lost.slice(0, 5), [], `${lost.length} of ${before.length} requests sent before SIGTERM failed`);
    const after = outcomes.filter((o) => o.startedAt >= termAt - 5);
    for (const o of after) assert.ok(o.status === 200 || (o.status === 0 && /ECONNREFUSED|ECONNRESET|socket hang up/.test(o.error ?? '')), `after SIGTERM: ${JSON.stringify(o)}`);
  } finally {
    child.kill('SIGKILL');
  }
});
