// What mTLS between sidecars costs, in one run: the same two-hop path
// (client → client sidecar → server sidecar → nginx app), plaintext and
// mTLS, against HAProxy doing the same two hops, plaintext and with TLS
// (the first HAProxy originates TLS with a client certificate, the second
// terminates it and verifies the client). All four keep their connections
// alive (wrk -c32 into the first hop, pooled connections between hops), so
// the figures are the steady-state cost of TLS records, not of handshakes.
// Beside req/s: CPU time per request of both hops together, from /proc.
//
//   npm run build && node dist/bench/mtls.js [--seconds 8] [--connections 32] [--rounds 2]
//
// The weft mTLS server is started with `weft run` (so it registers, and the
// caller's sidecar originates mTLS to it, Envoy's auto-mTLS) under a strict
// MeshTLS; the plaintext server is a static endpoint (a legacy instance as
// far as the mesh knows) fronted by its own sidecar. Certificates: the weft
// sidecars get theirs from the control plane's CA over SDS; HAProxy's come
// from the same PKI code (src/ca/pki.ts), P-256 leaves under an intermediate.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { createIntermediate, createRoot, issueKeyedLeaf, spiffeId } from '../src/ca/pki';
import { arg, freePort, procCpuMs, requireTool, ROOT, startNginxUpstream, startProcess, startWeftControl, startWeftProxy, tempDir, waitForPort, wrk, type LoadResult, type Peer } from './peers';

const seconds = Number(arg('seconds', '8'));
const connections = Number(arg('connections', '32'));
const rounds = Number(arg('rounds', '2'));
const BODY_BYTES = 100;
const HOUR = 3600_000;

interface Case {
  name: string;
  url: string;
  headers: string[];
  /** The two hops' processes, whose CPU per request is reported. */
  pids: number[];
  results: LoadResult[];
  cpuUsPerRequest: number[];
}

async function main(): Promise<void> {
  for (const tool of ['nginx', 'haproxy', 'wrk']) requireTool(tool);
  const dir = tempDir('weft-bench-mtls-');
  const peers: Peer[] = [];
  const stopAll = async () => {
    for (const p of peers.reverse()) await p.stop();
  };
  process.on('SIGINT', () => void stopAll().then(() => process.exit(130)));
  try {
    const ports = await Promise.all(Array.from({ length: 12 }, () => freePort()));
    const [appPort, xdsPort, apiPort, clientOut, clientAdmin, plainIn, plainAdmin, plainOut, haFront, haBack, haTlsFront, haTlsBack] = ports;
    peers.push(await startNginxUpstream(dir, appPort, BODY_BYTES));

    // HAProxy, plaintext and TLS, two hops each.
    const started = (peer: Peer) => (peers.push(peer), peer.pid);
    const haPids = [
      started(await startHaproxyHop(dir, 'ha-front', haFront, `server s1 127.0.0.1:${haBack}`)),
      started(await startHaproxyHop(dir, 'ha-back', haBack, `server s1 127.0.0.1:${appPort}`)),
    ];
    const pki = await haproxyPki(dir);
    const haTlsPids = [
      started(await startHaproxyHop(dir, 'ha-tls-front', haTlsFront, `server s1 127.0.0.1:${haTlsBack} ssl crt ${pki.client} ca-file ${pki.roots} verify required verifyhost server alpn http/1.1`)),
      started(await startHaproxyHop(dir, 'ha-tls-back', haTlsBack, `server s1 127.0.0.1:${appPort}`, `ssl crt ${pki.server} ca-file ${pki.roots} verify required alpn h2,http/1.1`)),
    ];

    const mesh = `apiVersion: weft.dev/v1
kind: Service
metadata: { name: server-plain }
spec:
  ports: [{ name: http, port: 80, protocol: http }]
  endpoints: [{ address: 127.0.0.1, port: ${plainIn} }]
  dependsOn: []
---
apiVersion: weft.dev/v1
kind: Service
metadata: { name: server-mtls }
spec:
  ports: [{ name: http, port: 80, protocol: http }]
  dependsOn: []
---
apiVersion: weft.dev/v1
kind: MeshTLS
metadata: { name: server-mtls-strict }
spec:
  targetRef: { kind: Service, name: server-mtls }
  mode: strict
`;
    peers.push(await startWeftControl(dir, mesh, xdsPort, apiPort));
    const xds = ['--xds', `127.0.0.1:${xdsPort}`];
    const clientPid = started(await startWeftProxy('weft-client', [...xds, '--service', 'bench-client', '--outbound-port', String(clientOut)], clientAdmin));
    const plainPid = started(await startWeftProxy('weft-server-plain', [...xds, '--service', 'server-plain', '--inbound-port', String(plainIn), '--app-port', String(appPort), '--outbound-port', String(plainOut)], plainAdmin));
    // The mTLS server: `weft run` registers it; its "program" is a process that stays up while nginx answers on appPort.
    // Its sidecar runs in the `weft run` process, so that process's CPU is the second hop's.
    const mtlsPid = started(
      startProcess('weft-run-server-mtls', process.execPath, [
        path.join(ROOT, 'bin/weft.js'), 'run', '--service', 'server-mtls', '--port', String(appPort), ...xds, '--api', `http://127.0.0.1:${apiPort}`, '--log-level', 'warn', '--',
        process.execPath, '-e', 'setInterval(() => {}, 1 << 30)',
      ]),
    );
    await waitForMtlsRoute(clientOut);

    const cases: Case[] = [
      { name: 'haproxy → haproxy', url: `http://127.0.0.1:${haFront}/`, headers: [], pids: haPids, results: [], cpuUsPerRequest: [] },
      { name: 'haproxy → TLS → haproxy', url: `http://127.0.0.1:${haTlsFront}/`, headers: [], pids: haTlsPids, results: [], cpuUsPerRequest: [] },
      { name: 'weft → weft', url: `http://127.0.0.1:${clientOut}/`, headers: ['Host: server-plain'], pids: [clientPid, plainPid], results: [], cpuUsPerRequest: [] },
      { name: 'weft → mTLS → weft', url: `http://127.0.0.1:${clientOut}/`, headers: ['Host: server-mtls'], pids: [clientPid, mtlsPid], results: [], cpuUsPerRequest: [] },
    ];
    for (const c of cases) wrk(c.url, connections, 2, c.headers); // warm-up: pools filled, JIT warm
    for (let round = 1; round <= rounds; round++) {
      for (const c of cases) {
        const before = c.pids.map((pid) => procCpuMs(pid));
        const r = wrk(c.url, connections, seconds, c.headers);
        const perHop = c.pids.map((pid, i) => ((procCpuMs(pid) - before[i]) * 1000) / (r.requests ?? NaN));
        const cpu = perHop.reduce((n, x) => n + x, 0);
        if (r.errors) throw new Error(`${c.name}: ${r.errors} errors`);
        c.results.push(r);
        c.cpuUsPerRequest.push(cpu);
        console.log(`round ${round}  ${c.name.padEnd(34)} ${r.rps.toFixed(0).padStart(7)} req/s  p50 ${r.p50ms.toFixed(3)} ms  p99 ${r.p99ms.toFixed(3)} ms  cpu ${cpu.toFixed(1)} µs/req (${perHop.map((x) => x.toFixed(1)).join(' + ')})`);
      }
    }
    const mean = (c: Case, k: 'rps' | 'p50ms' | 'p99ms') => c.results.reduce((n, r) => n + r[k], 0) / c.results.length;
    const meanCpu = (c: Case) => c.cpuUsPerRequest.reduce((n, x) => n + x, 0) / c.cpuUsPerRequest.length;
    const byName = new Map(cases.map((c) => [c.name, c]));
    const ratio = (a: string, b: string) => {
      const [x, y] = [byName.get(a)!, byName.get(b)!];
      return `${a.padEnd(34)} vs ${b.padEnd(30)} ${(mean(x, 'rps') / mean(y, 'rps')).toFixed(2)}× rps  ${(mean(x, 'p50ms') / mean(y, 'p50ms')).toFixed(2)}× p50  ${(mean(x, 'p99ms') / mean(y, 'p99ms')).toFixed(2)}× p99  ${(meanCpu(x) / meanCpu(y)).toFixed(2)}× cpu/req`;
    };
    console.log(`\nmeans of ${rounds} runs:`);
    for (const c of cases) console.log(`${c.name.padEnd(34)} ${mean(c, 'rps').toFixed(0).padStart(7)} req/s  p50 ${mean(c, 'p50ms').toFixed(3)} ms  p99 ${mean(c, 'p99ms').toFixed(3)} ms  cpu ${meanCpu(c).toFixed(1)} µs/req (both hops)`);
    console.log('');
    console.log(ratio('weft → mTLS → weft', 'weft → weft'));
    console.log(ratio('weft → mTLS → weft', 'haproxy → TLS → haproxy'));
    console.log(ratio('haproxy → TLS → haproxy', 'haproxy → haproxy'));
    console.log(ratio('weft → weft', 'haproxy → haproxy'));
  } finally {
    await stopAll();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Waits until the client sidecar answers for server-mtls (the instance registered and its certificate issued). */
async function waitForMtlsRoute(port: number): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    // node:http, not fetch: fetch does not let a caller set Host.
    const last = await new Promise<string>((resolve) => {
      const req = http.get({ host: '127.0.0.1', port, path: '/', headers: { host: 'server-mtls' } }, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve(`${res.statusCode} ${res.headers['x-weft-response-flags'] ?? ''} ${body.slice(0, 200)}`));
      });
      req.on('error', (err) => resolve(err.message));
    });
    if (last.startsWith('200 ')) return;
    if (Date.now() > deadline) throw new Error(`server-mtls not reachable through the client sidecar after 20 s: ${last}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** One HAProxy hop, one thread, keep-alive both ways; `bindExtra` turns on TLS termination. */
async function startHaproxyHop(dir: string, name: string, port: number, server: string, bindExtra = ''): Promise<Peer> {
  const haproxy = requireTool('haproxy');
  const conf = `global
  nbthread 1
  maxconn 4096
  tune.ssl.default-dh-param 2048
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  http-reuse always
  option http-keep-alive
frontend fe
  bind 127.0.0.1:${port} ${bindExtra}
  default_backend be
backend be
  ${server}
`;
  fs.writeFileSync(path.join(dir, `${name}.cfg`), conf);
  const peer = startProcess(name, haproxy, ['-f', path.join(dir, `${name}.cfg`), '-db']);
  await waitForPort(port);
  return peer;
}

/** HAProxy's certificates: P-256 leaves under an intermediate, as weft issues them; `server` also has DNS SAN "server" for verifyhost. */
async function haproxyPki(dir: string): Promise<{ client: string; server: string; roots: string }> {
  const root = await createRoot({ commonName: 'bench root', ttlMs: 24 * HOUR });
  const mid = await createIntermediate(root, { commonName: 'bench intermediate', ttlMs: 24 * HOUR });
  const client = await issueKeyedLeaf(mid, { uri: spiffeId('cluster.local', 'default', 'ha-client'), ttlMs: HOUR });
  const server = await issueKeyedLeaf(mid, { uri: spiffeId('cluster.local', 'default', 'ha-server'), ttlMs: HOUR, dnsNames: ['server'] });
  const write = (file: string, text: string) => (fs.writeFileSync(path.join(dir, file), text, { mode: 0o600 }), path.join(dir, file));
  return {
    client: write('ha-client.pem', client.certPem + mid.certPem + client.keyPem),
    server: write('ha-server.pem', server.certPem + mid.certPem + server.keyPem),
    roots: write('ha-roots.pem', root.certPem),
  };
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
