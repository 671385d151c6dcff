// What mesh-wide telemetry costs the sidecar: three sidecar processes side by
// side on one control plane and one nginx upstream, the same except for
// `telemetryIntervalMs` — 0 (no telemetry streams), 2000 (the default) and
// 500 — loaded in turn with wrk (HTTP/1.1, -t1 -c32, one hop), interleaved,
// in alternating order, after a warm-up each. Per case: req/s, p50/p99 and
// the CPU time of that sidecar process per request (from /proc), and the
// ratio against telemetry off. Then, in this process, the size of a report
// on the wire and what building and encoding it costs, for a sidecar with
// N edges.
//
//   npx tsc -p tsconfig.build.json && node dist/bench/telemetry-cost.js [--seconds 8] [--rounds 2] [--connections 32]
//   node dist/bench/telemetry-cost.js --sizes-only
//
// `weft proxy` has no flag for the interval (it is a ProxyOptions field), so
// each sidecar is this file run with --sidecar: startProxy() with the CLI's
// defaults, in its own process, so /proc's CPU figure is that sidecar's alone.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { jsonLogger } from '../src/observe/log';
import { metricsServiceDefinition } from '../src/observe/telemetry/telemetry-protocol';
import { startProxy } from '../src/proxy/proxy';
import { ProxyStats } from '../src/proxy/stats';
import { metricsReport } from '../src/proxy/telemetry/metrics-report';
import { TelemetryClient } from '../src/proxy/telemetry/telemetry-client';
import { XdsClient } from '../src/xds/client/ads-client';
import { NODE_METADATA } from '../src/xds/node-info';
import { arg, freePort, procCpuMs, requireTool, rssMiB, startNginxUpstream, startWeftControl, tempDir, waitForAdminReady, wrk, type LoadResult, type Peer } from './peers';

const BODY_BYTES = 100;
/** Bytes gRPC adds to every message (compressed flag and length) before HTTP/2 frames it. */
const GRPC_FRAME = 5;
/** An HTTP/2 DATA frame's header: a report fits in one frame up to 16 KiB. */
const H2_FRAME = 9;

interface Variant {
  name: string;
  intervalMs: number;
  port: number;
  peer: Peer;
  work: () => Promise<TelemetryWork>;
  runs: (LoadResult & { cpuUsPerRequest: number; cpuMs: number; telemetry: TelemetryWork })[];
}

/** What the telemetry client of a sidecar did so far: time inside its ticks (build, encode, write) and reports sent. */
interface TelemetryWork {
  cpuUs: number;
  /** The last ticks' times, µs (the median says what a tick costs when the machine does not get in the way). */
  recent: number[];
  ticks: number;
  reports: number;
  bytes: number;
}

/**
 * One sidecar in its own process (this file with --sidecar): stays up until SIGTERM. Its
 * telemetry client's ticks are timed (process CPU, not wall time) and its reports counted, and
 * the parent asks for the totals over IPC: the cost of reporting measured where it is spent,
 * beside the A/B comparison that the shared machine's noise blurs.
 */
async function sidecarChild(): Promise<void> {
  const work: TelemetryWork = { cpuUs: 0, recent: [], ticks: 0, reports: 0, bytes: 0 };
  const tick = TelemetryClient.prototype.tick;
  TelemetryClient.prototype.tick = function (this: TelemetryClient) {
    const [before, t0] = [process.cpuUsage(), process.hrtime.bigint()];
    try {
      tick.call(this);
    } finally {
      // Both bound the tick's own CPU from above: process CPU counts V8's helper threads too,
      // wall time counts the time the process waited for a core. The smaller one is kept.
      const used = process.cpuUsage(before);
      const us = Math.min(used.user + used.system, Number(process.hrtime.bigint() - t0) / 1000);
      work.cpuUs += us;
      work.ticks++;
      work.recent.push(us);
      if (work.recent.length > 200) work.recent.shift();
    }
  };
  const codec = metricsServiceDefinition().StreamMetrics;
  const serialize = codec.requestSerialize;
  codec.requestSerialize = (msg: unknown) => {
    const buf = serialize(msg);
    work.reports++;
    work.bytes += buf.length;
    return buf;
  };
  process.on('message', () => process.send!(work));
  const log = jsonLogger('warn');
  const proxy = await startProxy({
    xds: arg('xds', ''),
    service: 'bench-client',
    namespace: 'default',
    nodeId: `bench-client~${arg('name', 'sidecar')}`,
    outboundPort: Number(arg('outbound-port', '0')),
    adminPort: Number(arg('admin-port', '0')),
    log,
    telemetryIntervalMs: Number(arg('interval-ms', '2000')),
  });
  process.on('SIGTERM', () => void proxy.close().then(() => process.exit(0), () => process.exit(1)));
  // The bench was killed without stopping it: do not outlive it.
  setInterval(() => process.ppid === 1 && process.exit(0), 1000).unref();
}

async function startSidecar(name: string, xdsPort: number, intervalMs: number): Promise<{ port: number; peer: Peer; work: () => Promise<TelemetryWork> }> {
  const [port, adminPort] = [await freePort(), await freePort()];
  const child = spawn(process.execPath, [__filename, '--sidecar', '--name', name, '--xds', `127.0.0.1:${xdsPort}`, '--outbound-port', String(port), '--admin-port', String(adminPort), '--interval-ms', String(intervalMs)], {
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const work = () =>
    new Promise<TelemetryWork>((resolve) => {
      child.once('message', (m) => resolve(m as TelemetryWork));
      child.send('work');
    });
  const peer: Peer = {
    name,
    pid: child.pid!,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 3000).unref();
      }),
  };
  await waitForAdminReady(name, adminPort);
  return { port, peer, work };
}

async function loadBench(): Promise<void> {
  for (const tool of ['nginx', 'wrk']) requireTool(tool);
  const seconds = Number(arg('seconds', '8'));
  const rounds = Number(arg('rounds', '2'));
  const connections = Number(arg('connections', '32'));
  const dir = tempDir('weft-bench-');
  const peers: Peer[] = [];
  const stopAll = async () => {
    for (const p of peers.splice(0).reverse()) await p.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  process.once('SIGINT', () => void stopAll().then(() => process.exit(130)));
  try {
    const [upPort, xdsPort, apiPort] = await Promise.all([freePort(), freePort(), freePort()]);
    peers.push(await startNginxUpstream(dir, upPort, BODY_BYTES));
    const mesh = `apiVersion: weft.dev/v1
kind: Service
metadata: { name: upstream }
spec:
  ports: [{ name: http, port: 80, protocol: http }]
  endpoints: [{ address: 127.0.0.1, port: ${upPort} }]
`;
    peers.push(await startWeftControl(dir, mesh, xdsPort, apiPort));
    const variants: Variant[] = [];
    for (const [name, intervalMs] of [['telemetry off', 0], ['report every 2 s', 2000], ['report every 500 ms', 500]] as const) {
      const { port, peer, work } = await startSidecar(`sidecar-${intervalMs}`, xdsPort, intervalMs);
      peers.push(peer);
      variants.push({ name, intervalMs, port, peer, work, runs: [] });
    }
    const load = (v: Variant, secs: number) => wrk(`http://127.0.0.1:${v.port}/`, connections, secs, ['Host: upstream']);
    for (const v of variants) load(v, 2); // warm-up: connections made, JIT warm, the telemetry streams open
    await waitForReporters(apiPort, variants.filter((v) => v.intervalMs > 0).length);
    for (let round = 1; round <= rounds; round++) {
      // Alternating order: a drift of the shared machine's load does not favour one case.
      const order = round % 2 === 1 ? variants : [...variants].reverse();
      for (const v of order) {
        const [before, work0] = [procCpuMs(v.peer.pid), await v.work()];
        const r = load(v, seconds);
        const [cpuMs, work1] = [procCpuMs(v.peer.pid) - before, await v.work()];
        const cpuUsPerRequest = (cpuMs * 1000) / (r.requests ?? r.rps * seconds);
        const telemetry = { cpuUs: work1.cpuUs - work0.cpuUs, recent: work1.recent.slice(-(work1.ticks - work0.ticks)), ticks: work1.ticks - work0.ticks, reports: work1.reports - work0.reports, bytes: work1.bytes - work0.bytes };
        v.runs.push({ ...r, cpuUsPerRequest, cpuMs, telemetry });
        console.log(`round ${round}  ${v.name.padEnd(20)} ${r.rps.toFixed(0).padStart(7)} req/s  p50 ${r.p50ms.toFixed(3)} ms  p99 ${r.p99ms.toFixed(3)} ms  errors ${r.errors}  cpu ${cpuUsPerRequest.toFixed(1)} µs/req  rss ${rssMiB(v.peer.pid).toFixed(0)} MiB`);
      }
    }
    const mean = (v: Variant, k: 'rps' | 'p50ms' | 'p99ms' | 'cpuUsPerRequest') => v.runs.reduce((n, r) => n + r[k], 0) / v.runs.length;
    const off = variants[0];
    console.log(`\nmean of ${rounds} runs of ${seconds} s; ratios against telemetry off:`);
    for (const v of variants) {
      console.log(
        `${v.name.padEnd(20)} ${mean(v, 'rps').toFixed(0).padStart(7)} req/s  p50 ${mean(v, 'p50ms').toFixed(3)} ms  p99 ${mean(v, 'p99ms').toFixed(3)} ms  cpu ${mean(v, 'cpuUsPerRequest').toFixed(1)} µs/req` +
          `  | ${(mean(v, 'rps') / mean(off, 'rps')).toFixed(3)}× rps, ${(mean(v, 'cpuUsPerRequest') / mean(off, 'cpuUsPerRequest')).toFixed(3)}× cpu/req`,
      );
    }
    console.log(`\nthe telemetry client's own work during the loads (CPU inside its ticks: build, encode, write):`);
    for (const v of variants.slice(1)) {
      const sum = (k: Exclude<keyof TelemetryWork, 'recent'>) => v.runs.reduce((n, r) => n + r.telemetry[k], 0);
      const ticks = v.runs.flatMap((r) => r.telemetry.recent).sort((a, b) => a - b);
      const median = ticks[Math.floor(ticks.length / 2)] ?? NaN;
      const secs = seconds * v.runs.length;
      const cpuMs = v.runs.reduce((n, r) => n + r.cpuMs, 0);
      console.log(
        `${v.name.padEnd(20)} ${(sum('reports') / secs).toFixed(2)} reports/s of ${Math.round(sum('bytes') / Math.max(sum('reports'), 1)) + GRPC_FRAME} B, ${(sum('cpuUs') / 1000 / secs).toFixed(3)} ms CPU/s` +
          ` (${((100 * sum('cpuUs')) / 1000 / cpuMs).toFixed(3)} % of the sidecar's CPU; mean ${(sum('cpuUs') / Math.max(sum('ticks'), 1)).toFixed(0)} µs, median ${median.toFixed(0)} µs per tick)`,
      );
    }
    // The same sidecars idle: what the timers and open streams cost with no traffic (nothing changes, nothing is sent).
    const idleS = 5;
    const idleBefore = variants.map((v) => procCpuMs(v.peer.pid));
    await new Promise((r) => setTimeout(r, idleS * 1000));
    console.log(`\nidle, ${idleS} s: ` + variants.map((v, i) => `${v.name} ${((procCpuMs(v.peer.pid) - idleBefore[i]) / idleS).toFixed(1)} ms/s`).join(', '));
  } finally {
    await stopAll();
  }
  reportSizes();
}

/** Until the control plane's topology shows the reporting sidecars' edge (their streams are open and a report arrived). */
async function waitForReporters(apiPort: number, reporters: number): Promise<void> {
  if (reporters === 0) return;
  const deadline = Date.now() + 15_000;
  for (;;) {
    const topology = await fetch(`http://127.0.0.1:${apiPort}/api/v1/topology`).then((r) => r.json() as Promise<{ edges: { source: string; destination: string; requests: number }[] }>, () => undefined);
    if (topology?.edges.some((e) => e.destination === 'upstream.default')) return;
    if (Date.now() > deadline) throw new Error('the control plane shows no edge from the reporting sidecars after 15 s');
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * A report's size for a sidecar with `edges` outbound edges: each with 2xx, 404 and 503 codes
 * and a latency histogram, counters in the hundred-thousands (their varints are as long as a
 * busy sidecar's). Encoded with the codec the sidecar sends with.
 */
export function sampleStats(edges: number, perEdge: number, offset = 0): ProxyStats {
  const stats = new ProxyStats(0);
  stats.identify('bench-client', 'default');
  for (let e = 0; e < edges; e++) {
    const s = stats.forCluster('outbound', `outbound|8080||svc-${(offset + e + 1) % 1000}.default`);
    for (let i = 0; i < perEdge; i++) s.response(i % 100 === 0 ? 503 : i % 50 === 0 ? 404 : 200, 0.3 + ((i * 7919) % 1000) / 20);
  }
  return stats;
}

function reportSizes(): void {
  const codec = metricsServiceDefinition().StreamMetrics;
  const node = new XdsClient({
    server: '127.0.0.1:1',
    node: {
      id: 'bench-client~host-a~3f9a1c',
      metadata: {
        [NODE_METADATA.role]: 'sidecar',
        [NODE_METADATA.namespace]: 'default',
        [NODE_METADATA.hostname]: 'host-a',
        [NODE_METADATA.service]: 'bench-client',
        [NODE_METADATA.outboundPort]: '15001',
        [NODE_METADATA.adminPort]: '15000',
      },
    },
  }).nodeMessage();
  console.log('\nreport size on the wire (protobuf payload + 5 B gRPC + 9 B HTTP/2 frame header), and build + encode time:');
  console.log('edges  series  first report (with node)  later reports  build+encode');
  for (const edges of [1, 5, 20, 100]) {
    const stats = sampleStats(edges, 100_000);
    const { families } = metricsReport(stats, []);
    const series = families.reduce((n, f) => n + f.metric.length, 0);
    const first = codec.requestSerialize({ identifier: { node }, envoy_metrics: families }).length + GRPC_FRAME + H2_FRAME;
    const later = codec.requestSerialize({ envoy_metrics: families }).length + GRPC_FRAME + H2_FRAME;
    const n = Math.max(20, Math.round(20_000 / edges));
    for (let i = 0; i < 50; i++) codec.requestSerialize({ envoy_metrics: metricsReport(stats, []).families });
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) codec.requestSerialize({ envoy_metrics: metricsReport(stats, []).families });
    const us = Number(process.hrtime.bigint() - t0) / 1000 / n;
    console.log(`${String(edges).padStart(5)}  ${String(series).padStart(6)}  ${String(first).padStart(20)} B  ${String(later).padStart(11)} B  ${us.toFixed(1).padStart(9)} µs`);
  }
}

if (require.main === module) {
  const run = process.argv.includes('--sidecar') ? sidecarChild() : process.argv.includes('--sizes-only') ? Promise.resolve(reportSizes()) : loadBench();
  run.catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
