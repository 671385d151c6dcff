// What a rate limit costs a request it admits: three weft proxy processes,
// each the inbound sidecar of a service in front of the same nginx app, the
// first with no limit, the second with a local limit that never trips, the
// third with a global limit that never trips (one ShouldRateLimit call to the
// control plane per request). wrk -t1 hits each inbound listener, as a caller's
// sidecar would, in interleaved rounds; ratios are against "no limit".
//
//   node dist/bench/rate-limit.js [--seconds 5] [--connections 32] [--rounds 2]
import {
  arg,
  freePort,
  median,
  startNginxUpstream,
  startWeftControl,
  startWeftProxy,
  tempDir,
  wrk,
  requireTool,
  type LoadResult,
  type Peer,
} from './peers';

const seconds = Number(arg('seconds', '5'));
const connections = Number(arg('connections', '32'));
const rounds = Number(arg('rounds', '2'));

const CASES = [
  { service: 'rl-none', rateLimit: '' },
  { service: 'rl-local', rateLimit: '{ local: { requests: 1000000000, per: 1s } }' },
  { service: 'rl-global', rateLimit: '{ global: { requests: 1000000000, per: 1s } }' },
] as const;

async function main(): Promise<void> {
  requireTool('nginx');
  requireTool('wrk');
  const dir = tempDir('weft-bench-rl-');
  const peers: Peer[] = [];
  const stopAll = async () => {
    for (const p of peers.reverse()) await p.stop();
  };
  process.on('SIGINT', () => void stopAll().then(() => process.exit(130)));
  try {
    const ports = await Promise.all(Array.from({ length: 3 + CASES.length * 3 }, () => freePort()));
    const [upPort, xdsPort, apiPort] = ports;
    peers.push(await startNginxUpstream(dir, upPort, 100));
    const mesh = CASES.map(
      (c) => `apiVersion: weft.dev/v1
kind: Service
metadata: { name: ${c.service} }
spec:
  ports: [{ name: http, port: 80, protocol: http }]
  dependsOn: []
${
  c.rateLimit
    ? `---
apiVersion: weft.dev/v1
kind: TrafficPolicy
metadata: { name: ${c.service} }
spec:
  targetRef: { name: ${c.service} }
  rateLimit: ${c.rateLimit}
`
    : ''
}`,
    ).join('---\n');
    peers.push(await startWeftControl(dir, mesh, xdsPort, apiPort));
    const inbound: number[] = [];
    for (const [i, c] of CASES.entries()) {
      const [inPort, outPort, adminPort] = ports.slice(3 + i * 3, 6 + i * 3);
      const args = ['--xds', `127.0.0.1:${xdsPort}`, '--service', c.service, '--inbound-port', String(inPort), '--outbound-port', String(outPort), '--app-port', String(upPort)];
      peers.push(await startWeftProxy(`weft-${c.service}`, args, adminPort));
      inbound.push(inPort);
    }
    const results: LoadResult[][] = CASES.map(() => []);
    for (const port of inbound) wrk(`http://127.0.0.1:${port}/`, connections, 1); // warm-up
    for (let r = 0; r < rounds; r++) {
      for (const [i, port] of inbound.entries()) {
        const res = wrk(`http://127.0.0.1:${port}/`, connections, seconds);
        if (res.errors) throw new Error(`${CASES[i].service}: ${res.errors} errors (a limit tripped?)`);
        results[i].push(res);
      }
    }
    const summary = results.map((rs) => ({ rps: median(rs.map((x) => x.rps)), p50: median(rs.map((x) => x.p50ms)), p99: median(rs.map((x) => x.p99ms)) }));
    const base = summary[0];
    console.log(`wrk -t1 -c${connections}, ${rounds} interleaved rounds of ${seconds} s, median per case`);
    for (const [i, s] of summary.entries()) {
      const ratio = i ? `  ${(s.rps / base.rps).toFixed(2)}× rps, ${(s.p50 / base.p50).toFixed(2)}× p50, ${(s.p99 / base.p99).toFixed(2)}× p99 vs no limit` : '';
      console.log(`${CASES[i].service.padEnd(10)} ${s.rps.toFixed(0).padStart(7)} req/s  p50 ${s.p50.toFixed(3)} ms  p99 ${s.p99.toFixed(3)} ms${ratio}`);
    }
  } finally {
    await stopAll();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
