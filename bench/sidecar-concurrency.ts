// Many cores (issue 15): `weft proxy --concurrency N` against HAProxy with
// `nbthread N`, in one run, for each N given. The same nginx upstream, one
// outbound listener with Host routing (stats on), HTTP/1.1 keep-alive load
// from wrk. Reported per case: req/s, p50/p99, and CPU per request summed
// over every process of the proxy (weft: the primary and its workers; from
// /proc), with the ratios to HAProxy at the same N and to the same proxy at
// the first N (the scaling).
//
//   node dist/bench/sidecar-concurrency.js [--concurrency 1,2] [--seconds 10] [--connections 64] [--wrk-threads 2]
//
// wrk runs on the same machine: on a small one it competes with the proxies
// for the cores (see BENCHMARKS.md for how to measure on 16 cores).
import * as fs from 'node:fs';
import * as os from 'node:os';
import { arg, freePort, procCpuMs, requireTool, startHaproxy, startUpstreamMesh, startWeftProxy, tempDir, wrk, type LoadResult, type Peer } from './peers';

const counts = arg('concurrency', '1,2')
  .split(',')
  .map((n) => Number(n));
const seconds = Number(arg('seconds', '10'));
const connections = Number(arg('connections', '64'));
const wrkThreads = Number(arg('wrk-threads', '2'));
const BODY_BYTES = 100;

interface Row {
  name: string;
  n: number;
  result: LoadResult;
  cpuUsPerRequest: number;
  processes: number;
}

/** The proxy's processes: a weft primary's workers come from its admin /workers. */
async function weftPids(primary: number, adminPort: number): Promise<number[]> {
  const res = await fetch(`http://127.0.0.1:${adminPort}/workers`);
  if (res.status === 404) return [primary];
  const workers = (await res.json()) as { pid?: number }[];
  return [primary, ...workers.flatMap((w) => (w.pid ? [w.pid] : []))];
}

function measure(name: string, n: number, url: string, headers: string[], pids: number[]): Row {
  const load = () => wrk(url, connections, seconds, headers, wrkThreads);
  load(); // warm-up: connections made, JIT warm
  const cpu = () => pids.reduce((t, pid) => t + procCpuMs(pid), 0);
  const before = cpu();
  const result = load();
  const cpuUsPerRequest = ((cpu() - before) * 1000) / (result.requests || 1);
  const row = { name, n, result, cpuUsPerRequest, processes: pids.length };
  console.log(
    `${name.padEnd(10)} N=${n}  ${result.rps.toFixed(0).padStart(7)} req/s  p50 ${result.p50ms.toFixed(3)} ms  p99 ${result.p99ms.toFixed(3)} ms  errors ${result.errors}  cpu ${cpuUsPerRequest.toFixed(1)} µs/req (${pids.length} process${pids.length > 1 ? 'es' : ''})`,
  );
  return row;
}

async function main(): Promise<void> {
  for (const tool of ['nginx', 'haproxy', 'wrk']) requireTool(tool);
  const dir = tempDir('weft-bench-');
  const peers: Peer[] = [];
  const stopAll = async () => {
    for (const p of peers.splice(0).reverse()) await p.stop();
  };
  process.on('SIGINT', () => void stopAll().then(() => process.exit(130)));
  const rows: Row[] = [];
  console.log(`${os.cpus().length} cpus, load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}; wrk -t${wrkThreads} -c${connections} -d${seconds}s`);
  try {
    const { upstreamPort: upPort, xdsPort } = await startUpstreamMesh(dir, BODY_BYTES, peers);
    for (const n of counts) {
      // One proxy at a time: the others would only sit idle beside it.
      const haPort = await freePort();
      const ha = await startHaproxy(dir, haPort, upPort, 'http', n);
      try {
        rows.push(measure('haproxy', n, `http://127.0.0.1:${haPort}/`, [], [ha.pid]));
      } finally {
        await ha.stop();
      }
      const [outPort, adminPort] = [await freePort(), await freePort()];
      const weft = await startWeftProxy(`weft-${n}`, ['--xds', `127.0.0.1:${xdsPort}`, '--service', 'bench-client', '--outbound-port', String(outPort), '--concurrency', String(n)], adminPort);
      try {
        rows.push(measure('weft', n, `http://127.0.0.1:${outPort}/`, ['Host: upstream'], await weftPids(weft.pid, adminPort)));
      } finally {
        await weft.stop();
      }
    }
  } finally {
    await stopAll();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const ratio = (a: number, b: number | undefined) => (b ? (a / b).toFixed(2) : '-');
  console.log(`\nload average after: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  for (const n of counts) {
    const weft = rows.find((r) => r.name === 'weft' && r.n === n)!;
    const ha = rows.find((r) => r.name === 'haproxy' && r.n === n)!;
    console.log(`N=${n}: weft ${ratio(weft.result.rps, ha.result.rps)}× HAProxy's req/s, ${ratio(weft.cpuUsPerRequest, ha.cpuUsPerRequest)}× its CPU per request`);
  }
  const first = counts[0];
  for (const name of ['weft', 'haproxy']) {
    const base = rows.find((r) => r.name === name && r.n === first)!;
    for (const n of counts.slice(1)) {
      const r = rows.find((x) => x.name === name && x.n === n)!;
      console.log(`${name}: N=${n} gives ${ratio(r.result.rps, base.result.rps)}× the req/s of N=${first}, ${ratio(r.cpuUsPerRequest, base.cpuUsPerRequest)}× the CPU per request`);
    }
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
