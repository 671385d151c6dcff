// What a new mTLS connection between sidecars costs, full handshake against
// a resumed session (what TlsContexts.connect offers since issue 15), with
// HAProxy terminating the same handshakes in the same run: the same PKI
// shape as the mesh (ECDSA P-256 leaves under an intermediate, TLS 1.3,
// client certificate required and verified). Two servers, each its own
// process: Node's TLS server as weft's inbound runs it (requestCert, then
// getPeerCertificate for the caller's URI SAN), and HAProxy (one thread,
// `verify required`, answering from its frontend). Sequential connections
// from this process, each one request and its answer; CPU of each side from
// /proc and wall time per connection (connect → first byte back).
//
//   npx tsc -p tsconfig.build.json && node dist/bench/tls-handshake.js [--connections 1000] [--rounds 2]
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { createIntermediate, createRoot, issueKeyedLeaf, spiffeId } from '../src/ca/pki';
import { arg, freePort, procCpuMs, requireTool, startProcess, tempDir, waitForPort, type Peer } from './peers';

const connections = Number(arg('connections', '1000'));
const rounds = Number(arg('rounds', '2'));
const HOUR = 3600_000;
const REQUEST = 'GET / HTTP/1.1\r\nhost: server\r\nconnection: close\r\n\r\n';

interface Result {
  clientUs: number;
  serverUs: number;
  p50: number;
  p99: number;
  reused: number;
}

async function main(): Promise<void> {
  const haproxy = requireTool('haproxy');
  const dir = tempDir('weft-bench-tls-');
  const root = await createRoot({ commonName: 'bench root', ttlMs: HOUR });
  const mid = await createIntermediate(root, { commonName: 'bench intermediate', ttlMs: HOUR });
  const leaf = (svc: string) => issueKeyedLeaf(mid, { uri: spiffeId('cluster.local', 'default', svc), ttlMs: HOUR });
  const [server, client] = [await leaf('server'), await leaf('client')];
  const chain = (l: { certPem: string }) => l.certPem + mid.certPem;
  const write = (file: string, text: string) => (fs.writeFileSync(path.join(dir, file), text, { mode: 0o600 }), path.join(dir, file));
  const servers: Peer[] = [];
  try {
    const [nodePort, haPort] = [await freePort(), await freePort()];
    const serverJson = write('server.json', JSON.stringify({ key: server.keyPem, cert: chain(server), ca: root.certPem }));
    servers.push(startProcess('node-tls', process.execPath, ['-e', `
      const tls = require('node:tls'); const o = JSON.parse(require('node:fs').readFileSync(${JSON.stringify(serverJson)}, 'utf8'));
      tls.createServer({ key: o.key, cert: o.cert, ca: o.ca, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.3' }, (s) => {
        s.on('error', () => {});
        // What weft's inbound checks once a handshake is done (tls-contexts.ts): verified, and the caller's URI SAN.
        if (!s.authorized || !/URI:spiffe:/.test(s.getPeerCertificate().subjectaltname || '')) return s.destroy();
        s.once('data', () => s.end('HTTP/1.1 200 OK\\r\\ncontent-length: 1\\r\\nconnection: close\\r\\n\\r\\nx'));
      }).listen(${nodePort}, '127.0.0.1');`]));
    write('ha.cfg', `global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend fe
  bind 127.0.0.1:${haPort} ssl crt ${write('ha-server.pem', chain(server) + server.keyPem)} ca-file ${write('roots.pem', root.certPem)} verify required ssl-min-ver TLSv1.3
  http-request return status 200 content-type text/plain string x
`);
    servers.push(startProcess('haproxy-tls', haproxy, ['-f', path.join(dir, 'ha.cfg'), '-db']));
    await Promise.all([waitForPort(nodePort), waitForPort(haPort)]);
    const ctx = tls.createSecureContext({ key: client.keyPem, cert: chain(client), ca: root.certPem });

    const once = (port: number, session?: Buffer) =>
      new Promise<{ ms: number; session?: Buffer; reused: boolean }>((resolve, reject) => {
        const t0 = performance.now();
        let got: Buffer | undefined;
        const s = tls.connect({ host: '127.0.0.1', port, secureContext: ctx, session, checkServerIdentity: () => undefined }, () => s.write(REQUEST));
        s.on('session', (b: Buffer) => (got = b));
        s.once('data', () => {
          const ms = performance.now() - t0;
          const reused = s.isSessionReused();
          s.once('close', () => resolve({ ms, session: got, reused }));
          s.resume();
          s.end();
        });
        s.once('error', reject);
      });

    const run = async (port: number, serverPid: number, resume: boolean): Promise<Result> => {
      let session: Buffer | undefined;
      const times: number[] = [];
      let reused = 0;
      for (let i = 0; i < 100; i++) session = (await once(port, resume ? session : undefined)).session ?? session; // warm-up
      const [c0, s0] = [procCpuMs(process.pid), procCpuMs(serverPid)];
      for (let i = 0; i < connections; i++) {
        const r = await once(port, resume ? session : undefined);
        if (r.session) session = r.session;
        if (r.reused) reused++;
        times.push(r.ms);
      }
      const [c1, s1] = [procCpuMs(process.pid), procCpuMs(serverPid)];
      times.sort((a, b) => a - b);
      return { clientUs: ((c1 - c0) * 1000) / connections, serverUs: ((s1 - s0) * 1000) / connections, p50: times[Math.floor(times.length / 2)], p99: times[Math.floor(times.length * 0.99)], reused };
    };

    const show = (r: Result) => `server CPU ${r.serverUs.toFixed(0)} µs/conn, client CPU ${r.clientUs.toFixed(0)} µs/conn, connect→first byte p50 ${r.p50.toFixed(2)} ms p99 ${r.p99.toFixed(2)} ms, resumed ${r.reused}/${connections}`;
    for (let round = 1; round <= rounds; round++) {
      for (const [handshake, resume] of [['full', false], ['resumed', true]] as const) {
        // Interleaved, so both servers see the same machine.
        const node = await run(nodePort, servers[0].pid, resume);
        const ha = await run(haPort, servers[1].pid, resume);
        console.log(`round ${round} ${handshake.padEnd(8)} node (weft's TLS) ${show(node)}`);
        console.log(`round ${round} ${handshake.padEnd(8)} haproxy           ${show(ha)}`);
        console.log(`round ${round} ${handshake.padEnd(8)} server CPU node/haproxy ${(node.serverUs / ha.serverUs).toFixed(2)}×, p50 ${(node.p50 / ha.p50).toFixed(2)}×`);
      }
    }
  } finally {
    for (const s of servers) await s.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

void main().catch((err) => {
  console.error(err);
  process.exit(1);
});
