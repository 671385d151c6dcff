// Chaos: a service with three endpoints, one of which starts failing half of
// its requests a third of the way into the run. What share of requests does
// the client see succeed through a weft sidecar, with no policy, with retries
// only, with outlier detection only, and with both? (Goal with both: ≥ 99.9 %.)
//
//   node dist/bench/chaos.js [--seconds 12] [--connections 16]
//
// Each case runs on a fresh control plane, sidecar and upstream, so ejections
// and budgets start from zero. wrk counts the non-2xx answers.
import * as path from 'node:path';
import { arg, freePort, startProcess, startWeftControl, startWeftProxy, tempDir, waitForPort, wrk, type Peer } from './peers';

const seconds = Number(arg('seconds', '12'));
const connections = Number(arg('connections', '16'));

const RETRIES = 'retries: { attempts: 2, retryOn: [5xx, reset, connect-failure], backoff: { baseInterval: 5ms, maxInterval: 20ms }, budget: { percent: 20, minRetriesPerSecond: 10 } }';
const OUTLIER = 'outlierDetection: { consecutive5xx: 3, interval: 1s, baseEjectionTime: 5s, maxEjectionPercent: 34 }';

const CASES: { name: string; policy: string[] }[] = [
  { name: 'no policy', policy: [] },
  { name: 'retries', policy: [RETRIES] },
  { name: 'outlier detection', policy: [OUTLIER] },
  { name: 'outlier detection + retries', policy: [OUTLIER, RETRIES] },
];

async function runCase(policy: string[]): Promise<{ requests: number; errors: number; rps: number; p99ms: number }> {
  const dir = tempDir('weft-chaos-');
  const peers: Peer[] = [];
  try {
    const [a, b, c, xdsPort, apiPort, outPort, adminPort] = await Promise.all(Array.from({ length: 7 }, () => freePort()));
    const failAfterMs = 3000 + (seconds * 1000) / 3; // setup (≈3 s) plus a third of the run
    peers.push(startProcess('chaos-upstream', process.execPath, [path.join(__dirname, 'chaos-upstream.js'), '--ports', `${a},${b},${c}`, '--fail-after', String(failAfterMs)]));
    await Promise.all([a, b, c].map((p) => waitForPort(p)));
    const mesh = `apiVersion: weft.dev/v1
kind: Service
metadata: { name: shaky }
spec:
  ports: [{ name: http, port: 80, protocol: http }]
  endpoints: [{ address: 127.0.0.1, port: ${a} }, { address: 127.0.0.1, port: ${b} }, { address: 127.0.0.1, port: ${c} }]
${
  policy.length
    ? `---
apiVersion: weft.dev/v1
kind: TrafficPolicy
metadata: { name: shaky }
spec:
  targetRef: { name: shaky }
${policy.map((p) => `  ${p}`).join('\n')}
`
    : ''
}`;
    peers.push(await startWeftControl(dir, mesh, xdsPort, apiPort));
    peers.push(await startWeftProxy('weft-client', ['--xds', `127.0.0.1:${xdsPort}`, '--service', 'chaos-client', '--outbound-port', String(outPort)], adminPort));
    const start = Date.now();
    const r = wrk(`http://127.0.0.1:${outPort}/`, connections, seconds, ['Host: shaky']);
    if (Date.now() - start < seconds * 1000) throw new Error('wrk ended early');
    return { requests: r.requests ?? 0, errors: r.errors, rps: r.rps, p99ms: r.p99ms };
  } finally {
    for (const p of peers.reverse()) await p.stop();
  }
}

async function main(): Promise<void> {
  console.log(`chaos: 3 endpoints, the third fails 50 % of its requests from ${(seconds / 3).toFixed(0)} s into a ${seconds} s run; wrk -t1 -c${connections}`);
  for (const c of CASES) {
    const r = await runCase(c.policy);
    const success = r.requests ? (100 * (r.requests - r.errors)) / r.requests : NaN;
    console.log(`${c.name.padEnd(30)} success ${success.toFixed(3)} %  (${r.errors} of ${r.requests} failed)  ${r.rps.toFixed(0)} req/s  p99 ${r.p99ms.toFixed(2)} ms`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
