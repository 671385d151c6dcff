// What a new mTLS connection between sidecars costs, full handshake against
// a resumed session (what TlsContexts.connect offers since issue 15): the
// same PKI shape as the mesh (ECDSA P-256 leaves under an intermediate,
// TLS 1.3, client certificate required and verified), a server in a child
// process, sequential connections from this one. CPU of both sides from
// /proc and wall time per connection (connect → first byte back).
//
//   npx tsc -p tsconfig.build.json && node dist/bench/tls-handshake.js [--connections 2000]
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { createIntermediate, createRoot, issueKeyedLeaf, spiffeId } from '../src/ca/pki';
import { arg, freePort, procCpuMs, tempDir } from './peers';

const connections = Number(arg('connections', '2000'));
const HOUR = 3600_000;

async function main(): Promise<void> {
  const dir = tempDir('weft-bench-tls-');
  const root = await createRoot({ commonName: 'bench root', ttlMs: HOUR });
  const mid = await createIntermediate(root, { commonName: 'bench intermediate', ttlMs: HOUR });
  const leaf = (svc: string) => issueKeyedLeaf(mid, { uri: spiffeId('cluster.local', 'default', svc), ttlMs: HOUR });
  const [server, client] = [await leaf('server'), await leaf('client')];
  const chain = (l: { certPem: string }) => l.certPem + mid.certPem;
  fs.writeFileSync(path.join(dir, 'server.json'), JSON.stringify({ key: server.keyPem, cert: chain(server), ca: root.certPem }));
  const port = await freePort();
  const serverProc = spawn(process.execPath, ['-e', `
    const tls = require('node:tls'); const o = JSON.parse(require('node:fs').readFileSync(${JSON.stringify(path.join(dir, 'server.json'))}, 'utf8'));
    tls.createServer({ key: o.key, cert: o.cert, ca: o.ca, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' }, (s) => { s.end('x'); s.on('error', () => {}); })
      .listen(${port}, '127.0.0.1', () => console.log('ready'));`], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((r) => serverProc.stdout!.once('data', r));
  const ctx = tls.createSecureContext({ key: client.keyPem, cert: chain(client), ca: root.certPem });

  const once = (session?: Buffer) =>
    new Promise<{ ms: number; session?: Buffer; reused: boolean }>((resolve, reject) => {
      const t0 = performance.now();
      let got: Buffer | undefined;
      const s = tls.connect({ host: '127.0.0.1', port, secureContext: ctx, session, checkServerIdentity: () => undefined });
      s.on('session', (b: Buffer) => (got = b));
      s.once('data', () => {
        const ms = performance.now() - t0;
        const reused = s.isSessionReused();
        s.once('close', () => resolve({ ms, session: got, reused }));
        s.end();
      });
      s.once('error', reject);
    });

  const run = async (resume: boolean) => {
    let session: Buffer | undefined;
    const times: number[] = [];
    let reused = 0;
    for (let i = 0; i < 100; i++) session = (await once(resume ? session : undefined)).session ?? session; // warm-up
    const [c0, s0] = [procCpuMs(process.pid), procCpuMs(serverProc.pid!)];
    for (let i = 0; i < connections; i++) {
      const r = await once(resume ? session : undefined);
      if (r.session) session = r.session;
      if (r.reused) reused++;
      times.push(r.ms);
    }
    const [c1, s1] = [procCpuMs(process.pid), procCpuMs(serverProc.pid!)];
    times.sort((a, b) => a - b);
    return { clientUs: ((c1 - c0) * 1000) / connections, serverUs: ((s1 - s0) * 1000) / connections, p50: times[Math.floor(times.length / 2)], p99: times[Math.floor(times.length * 0.99)], reused };
  };
  try {
    const results: Record<string, Awaited<ReturnType<typeof run>>> = {};
    for (const round of [1, 2]) {
      for (const [name, resume] of [['full', false], ['resumed', true]] as const) {
        const r = await run(resume);
        results[`${name}#${round}`] = r;
        console.log(`round ${round} ${name.padEnd(8)} client CPU ${r.clientUs.toFixed(0)} µs/conn, server CPU ${r.serverUs.toFixed(0)} µs/conn, connect→first byte p50 ${r.p50.toFixed(2)} ms p99 ${r.p99.toFixed(2)} ms, resumed ${r.reused}/${connections}`);
      }
    }
  } finally {
    serverProc.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

void main().catch((err) => {
  console.error(err);
  process.exit(1);
});
