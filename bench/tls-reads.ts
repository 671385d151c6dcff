// What a terminated TLS connection's reads cost the server, the two ways
// weft's inbound can read them: through the TLS socket's readable stream
// (a buffer allocated per read, pushed through Readable), or into the
// listener's shared read buffer (src/proxy/listener/accepted-reads.ts, set
// once the handshake is done). A Node TLS server in a child process answers
// each 200-byte message with 300 bytes; 32 keep-alive TLS 1.3 connections
// ping-pong for --seconds after a 1 s warm-up; the server's CPU from /proc
// per request. The two modes alternate round by round.
//
//   npx tsc -p tsconfig.build.json && node dist/bench/tls-reads.js [--rounds 4] [--seconds 4]
import { fork } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import * as tls from 'node:tls';
import { createRoot, issueKeyedLeaf } from '../src/ca/pki';
import { readThroughBuffer } from '../src/proxy/listener/accepted-reads';
import { arg, median, procCpuMs } from './peers';

type Mode = 'stream' | 'shared buffer';
const rounds = Number(arg('rounds', '4'));
const seconds = Number(arg('seconds', '4'));
const CONNECTIONS = 32;
const HOUR = 3600_000;

/** The child: a TLS server reading the way `mode` says, answering every chunk it reads. */
function serve(config: { cert: string; key: string; mode: Mode }): void {
  const reply = Buffer.alloc(300, 'a');
  const server = tls.createServer({ cert: config.cert, key: config.key }, (socket) => {
    if (config.mode === 'shared buffer' && !readThroughBuffer(socket)) throw new Error('this Node cannot read a TLS socket into a buffer of ours');
    socket.on('data', () => socket.write(Buffer.from(reply)));
  });
  server.listen(0, '127.0.0.1', () => process.send!((server.address() as AddressInfo).port));
}

async function round(mode: Mode, pki: { ca: string; cert: string; key: string }): Promise<{ requests: number; usPerRequest: number }> {
  const child = fork(__filename, ['--serve', JSON.stringify({ cert: pki.cert, key: pki.key, mode })]);
  try {
    const port = await new Promise<number>((resolve) => child.once('message', (m) => resolve(Number(m))));
    const request = Buffer.alloc(200, 'q');
    let answered = 0;
    let stopped = false;
    const clients: tls.TLSSocket[] = [];
    for (let i = 0; i < CONNECTIONS; i++) {
      const c = await new Promise<tls.TLSSocket>((resolve, reject) => {
        const s = tls.connect({ port, host: '127.0.0.1', ca: pki.ca, servername: 'server' }, () => resolve(s));
        s.once('error', reject);
      });
      c.on('data', () => {
        answered++;
        if (!stopped) c.write(request);
      });
      clients.push(c);
    }
    for (const c of clients) c.write(request);
    await new Promise((r) => setTimeout(r, 1000)); // warm-up: the JIT and the session caches
    const cpu0 = procCpuMs(child.pid!);
    const n0 = answered;
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const requests = answered - n0;
    const usPerRequest = ((procCpuMs(child.pid!) - cpu0) * 1000) / requests;
    stopped = true;
    for (const c of clients) c.destroy();
    return { requests, usPerRequest };
  } finally {
    child.kill();
  }
}

async function main(): Promise<void> {
  const root = await createRoot({ commonName: 'tls-reads root', ttlMs: HOUR });
  const leaf = await issueKeyedLeaf(root, { uri: 'spiffe://bench/server', ttlMs: HOUR, dnsNames: ['server'] });
  const pki = { ca: root.certPem, cert: leaf.certPem, key: leaf.keyPem };
  const results: Record<Mode, number[]> = { stream: [], 'shared buffer': [] };
  for (let r = 1; r <= rounds; r++) {
    for (const mode of ['stream', 'shared buffer'] as const) {
      const { requests, usPerRequest } = await round(mode, pki);
      results[mode].push(usPerRequest);
      console.log(`round ${r}  ${mode.padEnd(13)} ${String(requests).padStart(7)} requests  server CPU ${usPerRequest.toFixed(1)} µs/req`);
    }
  }
  const [s, b] = [median(results.stream), median(results['shared buffer'])];
  console.log(`\nmedians of ${rounds} rounds: stream ${s.toFixed(1)} µs/req, shared buffer ${b.toFixed(1)} µs/req (${(b / s).toFixed(2)}×, ${(s - b).toFixed(1)} µs less)`);
}

if (process.argv[2] === '--serve') serve(JSON.parse(process.argv[3]));
else
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
