// A real Envoy as a weft sidecar, when an `envoy` binary is on PATH: the
// bootstrap of `weft bootstrap --envoy` (checked first against Envoy's own
// protos), delta ADS to a --dev control plane on loopback, Envoy LIVE
// (admin /ready), and one HTTP request routed by Envoy's outbound listener
// (the RDS weft serves) to a service with a static endpoint. Then `weft run
// --proxy envoy`: Envoy as a unit's sidecar, its workload certificate from
// weft run's local SDS socket, serving a weft sidecar's call over mTLS.
//
// Envoy is not packaged for Debian, and the README promises it on no
// platform, so a missing envoy skips this test, under CI=true too (the rule
// "a missing dependency fails under CI" applies to what the README promises).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { once } from 'node:events';
import { startControlPlane, type ControlPlane } from '../../src/control/control-plane';
import { silentLogger } from '../../src/observe/log';
import * as net from 'node:net';
import { startProxy, type Proxy } from '../../src/proxy/proxy';
import { processAlive } from '../helpers/tmp';
import { freePort } from '../../src/run/free-port';
import { envoyBootstrap } from '../../src/xds/envoy-bootstrap';
import { assertValidEnvoyBootstrap } from '../../src/xds/envoy-validate';
import { tempDir, waitFor } from '../helpers/tmp';

function envoyVersion(): string | undefined {
  const res = spawnSync('envoy', ['--version'], { encoding: 'utf8', timeout: 10_000 });
  return res.status === 0 ? res.stdout.trim() : undefined;
}

/** One HTTP/1.1 request, no pooling; the status, body and headers. */
function get(port: number, pathName: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: pathName, headers, agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

test('a real Envoy joins the mesh with weft\'s bootstrap: LIVE, and routes a request to a static-endpoint service', { timeout: 120_000 }, async (t) => {
  const version = envoyVersion();
  if (!version) {
    t.skip('no `envoy` on PATH: Envoy is not packaged for Debian and the README promises it on no platform (install one, e.g. from envoyproxy.io, to run this test)');
    return;
  }
  const configDir = tempDir(t, 'weft-envoy-config-');
  const dataDir = tempDir(t, 'weft-envoy-data-');
  let cp: ControlPlane | undefined;
  let envoy: ChildProcess | undefined;
  let envoyLog = '';
  const backend = http.createServer((req, res) => {
    res.setHeader('content-type', 'text/plain');
    res.end(`backend saw ${req.method} ${req.url} host=${req.headers.host}`);
  });
  try {
    backend.listen(0, '127.0.0.1');
    await once(backend, 'listening');
    const backendPort = (backend.address() as AddressInfo).port;
    // The Envoy runs as `caller`, which may call `backend` (a static endpoint: no sidecar, plaintext).
    fs.writeFileSync(
      path.join(configDir, 'services.yaml'),
      `apiVersion: weft.dev/v1
kind: Service
metadata: { name: backend }
spec:
  ports: [{ name: http, port: 8080, protocol: http }]
  endpoints: [{ address: 127.0.0.1, port: ${backendPort} }]
---
apiVersion: weft.dev/v1
kind: Service
metadata: { name: caller }
spec:
  ports: [{ name: http, port: 8090, protocol: http }]
  dependsOn: [{ name: backend }]
`,
    );
    cp = await startControlPlane({ configDir, dataDir, xdsPort: 0, apiPort: 0, log: silentLogger, dev: true });
    const [adminPort, outboundPort, inboundPort, appPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
    const bootstrap = envoyBootstrap({ xds: `127.0.0.1:${cp.xdsPort}`, service: 'caller', nodeId: 'caller-envoy-1', adminPort, outboundPort, inboundPort, appPort });
    assertValidEnvoyBootstrap(bootstrap);
    const file = path.join(configDir, 'envoy.json');
    fs.writeFileSync(file, JSON.stringify(bootstrap));

    envoy = spawn('envoy', ['-c', file, '--disable-hot-restart', '-l', 'info', '--log-format', '[%l] %v'], { stdio: ['ignore', 'pipe', 'pipe'] });
    envoy.stdout!.on('data', (c) => (envoyLog += c));
    envoy.stderr!.on('data', (c) => (envoyLog += c));
    const exited = once(envoy, 'exit');

    // LIVE once its clusters (CDS, EDS) and listeners (LDS, RDS) are initialized.
    await waitFor(
      async () => {
        if (envoy!.exitCode !== null) throw new Error(`envoy exited with ${envoy!.exitCode}:\n${envoyLog.slice(-4000)}`);
        const ready = await get(adminPort, '/ready').catch(() => undefined);
        return ready?.status === 200 && ready.body.trim() === 'LIVE';
      },
      60_000,
      `Envoy LIVE (${version})`,
    );
    // The control plane sees the Envoy on a delta stream, as a sidecar of caller, with no NACK of any type.
    const node = cp.xds.status().find((n) => n.nodeId === 'caller-envoy-1');
    assert.ok(node, 'the Envoy node is connected');
    assert.equal(node.mode, 'delta');
    assert.deepEqual([node.node.role, node.node.service, node.node.outboundPort], ['sidecar', 'caller', outboundPort]);
    assert.deepEqual(node.types.filter((s) => s.lastNack).map((s) => `${s.type}: ${s.lastNack!.message}`), []);
    for (const type of ['CDS', 'EDS', 'LDS', 'RDS']) assert.ok(node.types.some((s) => s.type === type && s.ackedVersion), `${type} acked`);
    const clusters = await get(adminPort, '/clusters');
    assert.match(clusters.body, /backend/, 'the outbound cluster of backend arrived over CDS');

    const res = await get(outboundPort, '/hello?x=1', { host: 'backend:8080' });
    assert.equal(res.status, 200, `${res.status} ${res.body}\n${envoyLog.slice(-4000)}`);
    assert.match(res.body, /^backend saw GET \/hello\?x=1/);
    assert.doesNotMatch(envoyLog, /NACK|rejected|error adding listener|Proto constraint validation failed/i, envoyLog.slice(-4000));

    envoy.kill('SIGTERM');
    await exited;
  } finally {
    if (envoy && envoy.exitCode === null && envoy.signalCode === null) {
      envoy.kill('SIGKILL');
      await once(envoy, 'exit').catch(() => undefined);
    }
    await cp?.close();
    backend.close();
  }
});

const BIN = path.resolve(__dirname, '../../../bin/weft.js');

/** Sends a plaintext request straight to a port and resolves what came back before the connection ended. */
function rawExchange(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write('GET / HTTP/1.1\r\nhost: web\r\n\r\n'));
    let got = '';
    socket.setTimeout(10_000, () => socket.destroy());
    socket.on('data', (d) => (got += d));
    socket.on('error', () => {});
    socket.on('close', () => resolve(got));
  });
}

test('weft run --proxy envoy: Envoy serves a weft sidecar\'s call on its inbound listener over mTLS, its certificate from the local SDS socket', { timeout: 120_000 }, async (t) => {
  const version = envoyVersion();
  if (!version) {
    t.skip('no `envoy` on PATH: Envoy is not packaged for Debian and the README promises it on no platform (install one, e.g. from envoyproxy.io, to run this test)');
    return;
  }
  const configDir = tempDir(t, 'weft-envoy-run-config-');
  // web accepts mTLS only: a 200 through its Envoy proves the handshake with the certificate from the local SDS.
  fs.writeFileSync(
    path.join(configDir, 'services.yaml'),
    `apiVersion: weft.dev/v1
kind: Service
metadata: { name: web }
spec:
  ports: [{ name: http, port: 8080, protocol: http }]
---
apiVersion: weft.dev/v1
kind: Service
metadata: { name: client }
spec:
  ports: [{ name: http, port: 8090, protocol: http }]
  dependsOn: [{ name: web }]
---
apiVersion: weft.dev/v1
kind: MeshTLS
metadata: { name: web-strict }
spec: { targetRef: { name: web }, mode: strict }
`,
  );
  let cp: ControlPlane | undefined;
  let run: ChildProcess | undefined;
  let client: Proxy | undefined;
  let output = '';
  const logLines = () => output.split('\n').flatMap((l) => { try { return [JSON.parse(l)]; } catch { return []; } });
  try {
    cp = await startControlPlane({ configDir, dataDir: tempDir(t, 'weft-envoy-run-data-'), xdsPort: 0, apiPort: 0, log: silentLogger, dev: true });
    const appPort = await freePort();
    const app = `require('node:http').createServer((q, s) => s.end('web app saw ' + q.url)).listen(${appPort}, '127.0.0.1'); process.on('SIGTERM', () => process.exit(0));`;
    run = spawn(process.execPath, [BIN, 'run', '--proxy', 'envoy', '--service', 'web', '--port', String(appPort), '--xds', `127.0.0.1:${cp.xdsPort}`, '--api', `http://127.0.0.1:${cp.apiPort}`, '--drain-seconds', '0.2', '--', process.execPath, '-e', app], { stdio: ['ignore', 'pipe', 'pipe'] });
    run.stdout!.on('data', (d) => (output += d));
    run.stderr!.on('data', (d) => (output += d));
    const exited = once(run, 'exit');
    await waitFor(() => {
      if (run!.exitCode !== null) throw new Error(`weft run exited with ${run!.exitCode}:\n${output.slice(-4000)}`);
      return (cp!.registry.endpoints().get('default/web') ?? []).length === 1;
    }, 60_000, 'web registered behind its Envoy');
    const ready = logLines().find((l) => l.msg === 'sidecar ready');
    const started = logLines().find((l) => l.msg === 'envoy started');
    assert.ok(ready && started, output);
    const envoyNode = cp.xds.status().find((n) => n.node.service === 'web');
    assert.equal(envoyNode?.node.localSds, true, 'the Envoy announced its local SDS');
    assert.deepEqual(envoyNode!.types.filter((s) => s.lastNack).map((s) => `${s.type}: ${s.lastNack!.message}`), []);

    const [outboundPort, inboundPort] = [await freePort(), await freePort()];
    client = await startProxy({ xds: `127.0.0.1:${cp.xdsPort}`, nodeId: 'client-1', service: 'client', namespace: 'default', outboundPort, inboundPort, adminPort: 0, log: silentLogger });
    await client.waitReady(10_000);
    await client.certificateAgent!.waitForCertificate(10_000);
    let last = '';
    await waitFor(async () => {
      const res = await get(outboundPort, '/through-envoy', { host: 'web:8080' }).catch((e: Error) => ({ status: 0, body: e.message }));
      last = `${res.status} ${res.body}`;
      return res.status === 200;
    }, 30_000, 'a 200 through the weft sidecar and web\'s Envoy').catch((err) => assert.fail(`${err.message}; last: ${last}\n${output.slice(-4000)}`));
    assert.equal(last, '200 web app saw /through-envoy');
    // Strict: plaintext straight to Envoy's inbound port gets no answer.
    const [endpoint] = cp.registry.endpoints().get('default/web')!;
    assert.doesNotMatch(await rawExchange(Object.values(endpoint.ports)[0] as number), /web app saw/);
    // Envoy's own view: it holds web's SPIFFE certificate and has done TLS handshakes.
    const certs = await get(ready.admin, '/certs');
    assert.match(certs.body, /spiffe:\/\/cluster\.local\/ns\/default\/sa\/web/);
    const stats = await get(ready.admin, '/stats?filter=ssl.handshake');
    assert.ok(stats.body.split('\n').some((l) => /ssl\.handshake: [1-9]/.test(l)), stats.body);

    run.kill('SIGTERM');
    const [code] = await exited;
    assert.equal(code, 0, output.slice(-4000));
    assert.equal(processAlive(started.pid), false, 'Envoy stopped with its unit');
  } finally {
    if (run && run.exitCode === null && run.signalCode === null) {
      run.kill('SIGKILL');
      await once(run, 'exit').catch(() => undefined);
    }
    await client?.close();
    await cp?.close();
  }
});
