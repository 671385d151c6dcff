// What mesh-wide telemetry costs the control plane: ONE `weft control --dev`
// process and N simulated reporting sidecars in --procs child processes
// (this file with --child). Each simulated sidecar is the sidecar's own
// TelemetryClient (src/proxy/telemetry/telemetry-client.ts) over a
// ProxyStats of its own, on its own gRPC channel (its own TCP connection):
// StreamMetrics with its node identity first, then a report every
// --interval-ms when its counters changed, and the admin relay stream, open
// and idle. Sidecar i runs beside svc-(i mod --services) and calls the next
// --edges services; --rate requests per second per edge are counted into its
// stats (1 % 503, 2 % 404, latencies spread over the histogram), so every
// report carries new counters. No ADS streams: their cost is measured by
// bench/xds-convergence.ts and bench/xds-replicas.ts.
//
// Measured from /proc: the control plane's RSS idle and with every sidecar
// connected (and its peak), and its CPU time (utime + stime) over a fixed
// window, per second and per report received; then /api/v1/topology must
// show the rate the sidecars sent (the sum over edges, within a few %).
// Loopback only; bounded by --budget-s; every process stopped at the end.
//
//   npx tsc -p tsconfig.build.json && node dist/bench/telemetry-control-plane.js [--sidecars 1000] [--procs 2]
//        [--services 100] [--edges 5] [--rate 10] [--interval-ms 2000] [--window-s 30]
//        [--budget-s 180] [--server-cpu-prof DIR]
import { fork, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { metricsServiceDefinition } from '../src/observe/telemetry/telemetry-protocol';
import type { Proxy } from '../src/proxy/proxy';
import { ProxyStats, type RequestStats } from '../src/proxy/stats';
import { TelemetryClient } from '../src/proxy/telemetry/telemetry-client';
import { XdsClient } from '../src/xds/client/ads-client';
import { NODE_METADATA } from '../src/xds/node-info';
import { freePort, procCpuMs, rssMiB } from './peers';
import { serviceYaml, Teardown, waitForPort } from './xds-convergence';

interface Options {
  sidecars: number;
  procs: number;
  services: number;
  edges: number;
  /** Requests per second per edge per sidecar. */
  rate: number;
  intervalMs: number;
  windowS: number;
  budgetS: number;
  serverCpuProf?: string;
}

function parseArgs(argv: string[]): Options {
  const opts: Options = { sidecars: 1000, procs: 2, services: 100, edges: 5, rate: 10, intervalMs: 2000, windowS: 30, budgetS: 180 };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split('=', 2);
    const value = () => inline ?? argv[++i];
    switch (flag) {
      case '--sidecars': opts.sidecars = Number(value()); break;
      case '--procs': opts.procs = Number(value()); break;
      case '--services': opts.services = Number(value()); break;
      case '--edges': opts.edges = Number(value()); break;
      case '--rate': opts.rate = Number(value()); break;
      case '--interval-ms': opts.intervalMs = Number(value()); break;
      case '--window-s': opts.windowS = Number(value()); break;
      case '--budget-s': opts.budgetS = Number(value()); break;
      case '--server-cpu-prof': opts.serverCpuProf = path.resolve(value()); break;
      default: throw new Error(`unknown flag ${argv[i]}`);
    }
  }
  for (const k of ['sidecars', 'procs', 'services', 'edges', 'rate', 'intervalMs', 'windowS', 'budgetS'] as const) {
    if (!Number.isInteger(opts[k]) || opts[k] < 1) throw new Error(`--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} must be a positive integer`);
  }
  if (opts.edges >= opts.services) throw new Error('--edges must be below --services (a service does not call itself)');
  return opts;
}

// ---- what the processes say to each other ----------------------------------------

interface ChildConfig {
  server: string;
  first: number;
  count: number;
  services: number;
  edges: number;
  rate: number;
  intervalMs: number;
}

type ToChild = { t: 'stats' } | { t: 'stop' };
interface ChildStats {
  t: 'stats';
  /** Sidecars with both streams open. */
  open: number;
  reports: number;
  /** Protobuf bytes of the reports (before gRPC's 5-byte prefix). */
  bytes: number;
  /** Requests counted into the sidecars' stats so far. */
  requests: number;
  /** Telemetry failures the clients logged (a stream refused or broken). */
  failures: number;
  cpuMs: number;
}
type FromChild = { t: 'ready'; open: number } | ChildStats;

// ---- a load process: `count` simulated sidecars ------------------------------------

const TICK_MS = 100;

async function child(config: ChildConfig): Promise<void> {
  // Every report goes through the codec the clients share: counted here, on its way to the wire.
  const codec = metricsServiceDefinition().StreamMetrics;
  const serialize = codec.requestSerialize;
  let reports = 0;
  let bytes = 0;
  codec.requestSerialize = (msg: unknown) => {
    const buf = serialize(msg);
    reports++;
    bytes += buf.length;
    return buf;
  };
  let failures = 0;
  const log = (level: string) => void (level === 'warn' || level === 'error' ? failures++ : undefined);
  const sidecars: { client: TelemetryClient; edges: { stats: RequestStats; seq: number }[] }[] = [];
  for (let i = config.first; i < config.first + config.count; i++) {
    const service = `svc-${i % config.services}`;
    const stats = new ProxyStats(0);
    stats.identify(service, 'default');
    const edges: { stats: RequestStats; seq: number }[] = [];
    for (let k = 1; k <= config.edges; k++) edges.push({ stats: stats.forCluster('outbound', `outbound|8080||svc-${(i + k) % config.services}.default`), seq: 0 });
    const metadata = { [NODE_METADATA.role]: 'sidecar', [NODE_METADATA.namespace]: 'default', [NODE_METADATA.hostname]: os.hostname(), [NODE_METADATA.service]: service, [NODE_METADATA.outboundPort]: '15001', [NODE_METADATA.adminPort]: '15000' };
    const node = new XdsClient({ server: config.server, node: { id: `${service}~sim-${i}`, metadata } }).nodeMessage();
    // The client follows the xDS stream's replica; here that stream is "connected" to the bench's control plane.
    const xds = { status: () => ({ connected: true, server: config.server }), nodeMessage: () => node };
    const proxy = { stats, unhealthyEndpoints: () => [] };
    const client = new TelemetryClient({ proxy: proxy as unknown as Proxy, xds: xds as unknown as XdsClient, log: log as never, intervalMs: config.intervalMs });
    // A sidecar is its own process with its own gRPC subchannel pool; hundreds in one process would
    // share one HTTP/2 connection through grpc-js's global pool. A local pool: one connection each.
    (client as unknown as { channel: (server: string) => grpc.Client }).channel = function (this: { client?: grpc.Client }, server: string) {
      this.client ??= new grpc.Client(server, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
      return this.client;
    };
    sidecars.push({ client, edges });
  }
  const isOpen = (c: TelemetryClient) => {
    const s = c as unknown as { metrics?: unknown; relay?: unknown };
    return s.metrics !== undefined && s.relay !== undefined;
  };
  // Requests, counted every TICK_MS at `rate` per edge by the time that passed (a late timer on a
  // busy machine does not lower the rate; fractions carry over).
  let requests = 0;
  let owed = 0;
  let last = performance.now();
  const traffic = setInterval(() => {
    const now = performance.now();
    owed += (config.rate * (now - last)) / 1000;
    last = now;
    const n = Math.floor(owed);
    owed -= n;
    for (const s of sidecars) {
      for (const e of s.edges) {
        for (let j = 0; j < n; j++) {
          const seq = e.seq++;
          e.stats.response(seq % 100 === 0 ? 503 : seq % 50 === 0 ? 404 : 200, 0.3 + ((seq * 7919) % 1000) / 20);
        }
        requests += n;
      }
    }
  }, TICK_MS);
  // Started over one interval, as sidecars started at different times would be: reports spread evenly.
  for (let i = 0; i < sidecars.length; i++) setTimeout(() => sidecars[i].client.start(), (i * config.intervalMs) / sidecars.length);
  const until = Date.now() + 60_000;
  const waitOpen = setInterval(() => {
    const open = sidecars.filter((s) => isOpen(s.client)).length;
    if (open === sidecars.length || Date.now() > until) {
      clearInterval(waitOpen);
      process.send!({ t: 'ready', open } satisfies FromChild);
    }
  }, 100);
  process.on('message', (m: ToChild) => {
    if (m.t === 'stats') {
      const cpu = process.cpuUsage();
      process.send!({ t: 'stats', open: sidecars.filter((s) => isOpen(s.client)).length, reports, bytes, requests, failures, cpuMs: (cpu.user + cpu.system) / 1000 } satisfies FromChild);
    } else if (m.t === 'stop') {
      clearInterval(traffic);
      for (const s of sidecars) s.client.stop();
      setTimeout(() => process.exit(0), 200);
    }
  });
  process.on('disconnect', () => process.exit(0));
}

// ---- the coordinator -----------------------------------------------------------------

interface LoadProcess {
  child: ChildProcess;
  ready: Promise<number>;
  stats(): Promise<ChildStats>;
}

function startLoad(teardown: Teardown, config: ChildConfig): LoadProcess {
  const c = teardown.child(fork(__filename, ['--child', JSON.stringify(config)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  const ready = new Promise<number>((resolve, reject) => {
    c.on('message', (m: FromChild) => m.t === 'ready' && resolve(m.open));
    c.once('exit', (code) => reject(new Error(`load process exited with ${code}`)));
  });
  return {
    child: c,
    ready,
    stats: () =>
      new Promise((resolve) => {
        const on = (m: FromChild) => {
          if (m.t !== 'stats') return;
          c.off('message', on);
          resolve(m);
        };
        c.on('message', on);
        c.send({ t: 'stats' } satisfies ToChild);
      }),
  };
}

function hwmMiB(pid: number): number {
  return Number(/VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Topology {
  windowSeconds: number;
  edges: { source: string; destination: string; rps: number; requests: number; successRate?: number; p50Ms?: number; p99Ms?: number }[];
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const teardown = new Teardown();
  teardown.guard('telemetry-control-plane', opts.budgetS);
  const loads: LoadProcess[] = [];
  try {
    const tmp = teardown.dir(fs.mkdtempSync(path.join(os.tmpdir(), 'weft-telemetry-bench-')));
    fs.mkdirSync(path.join(tmp, 'config'));
    const services = Array.from({ length: opts.services }, (_, i) => serviceYaml(`svc-${i}`, 20000));
    fs.writeFileSync(path.join(tmp, 'config/services.yaml'), services.join('\n---\n') + '\n');
    const [xdsPort, apiPort] = [await freePort(), await freePort()];
    const prof = opts.serverCpuProf ? ['--cpu-prof', `--cpu-prof-dir=${opts.serverCpuProf}`] : [];
    const root = path.resolve(__dirname, '../..');
    const cp = teardown.child(
      spawn(
        process.execPath,
        [...prof, path.join(root, 'bin/weft.js'), 'control', '--config', path.join(tmp, 'config'), '--data-dir', path.join(tmp, 'data'), '--xds-port', String(xdsPort), '--api-port', String(apiPort), '--log-level', 'warn', '--dev'],
        { stdio: ['ignore', 'ignore', 'inherit'] },
      ),
    );
    await waitForPort(xdsPort, cp, 20_000);
    await waitForPort(apiPort, cp, 20_000);
    const pid = cp.pid!;
    const topology = async () => (await (await fetch(`http://127.0.0.1:${apiPort}/api/v1/topology`)).json()) as Topology;
    await topology();

    // Idle: the control plane with its config and no sidecar (the observer still ticks every second).
    await sleep(3000);
    const idleS = 5;
    const idleCpu0 = procCpuMs(pid);
    await sleep(idleS * 1000);
    const idleCpuPerS = (procCpuMs(pid) - idleCpu0) / idleS;
    const rssIdle = rssMiB(pid);
    console.log(`control plane idle: ${rssIdle.toFixed(0)} MiB RSS, ${idleCpuPerS.toFixed(1)} ms CPU/s`);

    const t0 = Date.now();
    const per = Math.ceil(opts.sidecars / opts.procs);
    for (let p = 0, first = 0; first < opts.sidecars; p++, first += per) {
      loads.push(startLoad(teardown, { server: `127.0.0.1:${xdsPort}`, first, count: Math.min(per, opts.sidecars - first), services: opts.services, edges: opts.edges, rate: opts.rate, intervalMs: opts.intervalMs }));
    }
    const open = (await Promise.all(loads.map((l) => l.ready))).reduce((a, b) => a + b, 0);
    console.log(`${open} of ${opts.sidecars} sidecars have both streams open after ${Date.now() - t0} ms`);
    if (open < opts.sidecars) throw new Error(`only ${open} of ${opts.sidecars} sidecars opened their telemetry streams`);
    // The observer's rate window (10 s) fills with reports of every sidecar before anything is measured.
    await sleep(12_000);
    const rssConnected = rssMiB(pid);

    const gather = async () => {
      const all = await Promise.all(loads.map((l) => l.stats()));
      return all.reduce((a, s) => ({ ...a, open: a.open + s.open, reports: a.reports + s.reports, bytes: a.bytes + s.bytes, requests: a.requests + s.requests, failures: a.failures + s.failures, cpuMs: a.cpuMs + s.cpuMs }));
    };
    const before = await gather();
    const cpu0 = procCpuMs(pid);
    const w0 = Date.now();
    // The topology every 2 s through the window: its rate against what the sidecars counted, sample by sample.
    const shown: number[] = [];
    while (Date.now() - w0 < opts.windowS * 1000) {
      await sleep(Math.min(2000, w0 + opts.windowS * 1000 - Date.now()));
      shown.push((await topology()).edges.reduce((n, e) => n + e.rps, 0));
    }
    const cpuMs = procCpuMs(pid) - cpu0;
    const seconds = (Date.now() - w0) / 1000;
    const after = await gather();
    const rssEnd = rssMiB(pid);
    const reports = after.reports - before.reports;
    const topo = await topology();

    const expectedRps = opts.sidecars * opts.edges * opts.rate;
    const shownRps = topo.edges.reduce((n, e) => n + e.rps, 0);
    const sentRps = (after.requests - before.requests) / seconds;
    const ratios = shown.map((r) => r / sentRps).sort((a, b) => a - b);
    const medianRatio = ratios[Math.floor(ratios.length / 2)];
    const success = topo.edges.reduce((n, e) => n + (e.successRate ?? 0) * e.rps, 0) / (shownRps || 1);
    const summary = {
      sidecars: opts.sidecars,
      edges: opts.edges,
      intervalMs: opts.intervalMs,
      windowS: Number(seconds.toFixed(1)),
      reportsPerS: Number((reports / seconds).toFixed(1)),
      bytesPerReport: Math.round((after.bytes - before.bytes) / Math.max(reports, 1)),
      cpuMsPerS: Number((cpuMs / seconds).toFixed(1)),
      idleCpuMsPerS: Number(idleCpuPerS.toFixed(1)),
      cpuUsPerReport: Math.round((cpuMs * 1000) / Math.max(reports, 1)),
      cpuUsPerReportNet: Math.round(((cpuMs - idleCpuPerS * seconds) * 1000) / Math.max(reports, 1)),
      rssIdleMiB: Math.round(rssIdle),
      rssConnectedMiB: Math.round(rssConnected),
      rssEndMiB: Math.round(rssEnd),
      rssHwmMiB: Math.round(hwmMiB(pid)),
      rssMiBPer1000: Number((((rssEnd - rssIdle) * 1000) / opts.sidecars).toFixed(1)),
      loadCpuMsPerS: Number(((after.cpuMs - before.cpuMs) / seconds).toFixed(1)),
      streamsOpenAtEnd: after.open,
      clientFailures: after.failures,
      topology: { windowSeconds: topo.windowSeconds, edges: topo.edges.length, rps: Math.round(shownRps), expectedRps, sentRps: Math.round(sentRps), ratio: Number((shownRps / sentRps).toFixed(4)), successRate: Number(success.toFixed(4)), samples: ratios.length, ratioMedian: Number(medianRatio.toFixed(4)), ratioMin: Number(ratios[0].toFixed(4)), ratioMax: Number(ratios[ratios.length - 1].toFixed(4)) },
    };
    console.log(
      [
        `window ${summary.windowS} s: ${summary.reportsPerS} reports/s of ${summary.bytesPerReport} B from ${after.open} sidecars (${after.failures} client failures)`,
        `control plane CPU: ${summary.cpuMsPerS} ms/s (idle ${summary.idleCpuMsPerS}), ${summary.cpuUsPerReport} µs per report (${summary.cpuUsPerReportNet} net of idle)`,
        `control plane RSS: idle ${summary.rssIdleMiB} → connected ${summary.rssConnectedMiB} → end ${summary.rssEndMiB} MiB (peak ${summary.rssHwmMiB}); ${summary.rssMiBPer1000} MiB per 1,000 sidecars`,
        `load processes: ${summary.loadCpuMsPerS} ms CPU/s together`,
        `topology: ${topo.edges.length} edges, ${summary.topology.rps} req/s shown, ${expectedRps} configured, ${summary.topology.sentRps} counted by the sidecars (shown/counted ${summary.topology.ratio}×, over the observer's ${topo.windowSeconds} s window); success rate ${summary.topology.successRate} (sent 0.99)`,
        `topology every 2 s through the window, shown/counted: median ${summary.topology.ratioMedian}×, range ${summary.topology.ratioMin}–${summary.topology.ratioMax}× (${ratios.length} samples)`,
      ].join('\n'),
    );
    console.log(`summary ${JSON.stringify(summary)}`);
    const ok = after.open === opts.sidecars && Math.abs(medianRatio - 1) <= 0.05 && Math.abs(success - 0.99) <= 0.005;
    console.log(`sanity (every stream open, topology rate within 5 % of what the sidecars counted (median of the window), success rate 0.99): ${ok ? 'ok' : 'FAILED'}`);
    if (!ok) process.exitCode = 1;
  } finally {
    for (const l of loads) if (l.child.connected) l.child.send({ t: 'stop' } satisfies ToChild);
    await teardown.run();
  }
}

if (require.main === module) {
  const i = process.argv.indexOf('--child');
  const run = i >= 0 ? child(JSON.parse(process.argv[i + 1]) as ChildConfig) : main();
  run.catch((err) => {
    console.error(`telemetry-control-plane: ${err instanceof Error ? err.stack ?? err.message : err}`);
    process.exit(1);
  });
}
