// xDS convergence benchmark: N simulated ADS clients (each its own HTTP/2
// connection, in --procs child processes) against ONE control-plane process.
// For each config change it measures the time from the change to each
// client's ACK of the new version (p50 / p99 / max), and it reads the control
// plane's RSS from /proc. Loopback only; bounded in time; stops itself.
//
//   node dist/bench/xds-convergence.js --clients 5000 [--changes 5] [--procs 2]
//        [--services 50] [--server weft|synthetic] [--budget-s 240]
//        [--server-cpu-prof DIR]
//
// Its pieces (the client processes, the wait for convergence, /proc readings,
// teardown on a budget or Ctrl-C) are exported for bench/xds-replicas.ts.
//
// --server weft (default): `node bin/weft.js control` on a config directory
// the bench writes; a change rewrites one Service file (endpoint port), so it
// includes the store's file watch, the translator and the cache.
// --server synthetic: bench/xds-synthetic-server (SnapshotCache + XdsServer,
// a synthetic generator), changed over IPC: the cache and server alone.
import { fork, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { machineBusyMs, procCpuMs } from './peers';
import { nowMs, type FromClients, type SimClientsConfig, type ToClients } from './xds-bench-protocol';

interface Options {
  clients: number;
  changes: number;
  procs: number;
  services: number;
  server: 'weft' | 'synthetic';
  budgetS: number;
  /** Directory for a V8 CPU profile of the control plane (node --cpu-prof). */
  serverCpuProf?: string;
}

function parseArgs(argv: string[]): Options {
  const opts: Options = { clients: 1000, changes: 5, procs: 2, services: 50, server: 'weft', budgetS: 240 };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split('=', 2);
    const value = () => inline ?? argv[++i];
    switch (flag) {
      case '--clients': opts.clients = Number(value()); break;
      case '--changes': opts.changes = Number(value()); break;
      case '--procs': opts.procs = Number(value()); break;
      case '--services': opts.services = Number(value()); break;
      case '--server': opts.server = value() as Options['server']; break;
      case '--budget-s': opts.budgetS = Number(value()); break;
      case '--server-cpu-prof': opts.serverCpuProf = path.resolve(value()); break;
      default: throw new Error(`unknown flag ${argv[i]}`);
    }
  }
  if (!['weft', 'synthetic'].includes(opts.server)) throw new Error('--server is weft or synthetic');
  for (const k of ['clients', 'changes', 'procs', 'services'] as const) {
    if (!Number.isInteger(opts[k]) || opts[k] < 1) throw new Error(`--${k} must be a positive integer`);
  }
  return opts;
}

// ---- the control plane under test --------------------------------------------

interface ControlPlaneUnderTest {
  pid: number;
  port: number;
  change(k: number): void;
}

function nodeArgs(opts: Options): string[] {
  return opts.serverCpuProf ? ['--cpu-prof', `--cpu-prof-dir=${opts.serverCpuProf}`] : [];
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export async function waitForPort(port: number, child: ChildProcess, timeoutMs: number, name = 'control plane'): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${name} exited (${child.exitCode ?? child.signalCode})`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`${name} did not listen on ${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A Service with two static endpoints; a change moves the first endpoint's port. */
export function serviceYaml(name: string, endpointPort: number): string {
  return [
    'apiVersion: weft.dev/v1',
    'kind: Service',
    `metadata: { name: ${name} }`,
    'spec:',
    '  ports: [{ name: http, port: 8080, protocol: http }]',
    '  endpoints:',
    `    - { address: 10.0.0.1, port: ${endpointPort} }`,
    '    - { address: 10.0.0.2, port: 21000 }',
  ].join('\n');
}


async function startWeftControl(opts: Options, tmp: string, teardown: Teardown): Promise<ControlPlaneUnderTest> {
  const root = path.resolve(__dirname, '../..');
  const configDir = path.join(tmp, 'config');
  const dataDir = path.join(tmp, 'data');
  fs.mkdirSync(configDir, { recursive: true });
  const others = [];
  for (let i = 1; i < opts.services; i++) others.push(serviceYaml(`svc-${i}`, 20000));
  fs.writeFileSync(path.join(configDir, 'services.yaml'), others.join('\n---\n') + '\n');
  const changing = path.join(configDir, 'svc-0.yaml');
  fs.writeFileSync(changing, serviceYaml('svc-0', 20000) + '\n');
  const [xdsPort, apiPort] = [await freePort(), await freePort()];
  const child = teardown.child(spawn(
    process.execPath,
    [...nodeArgs(opts), path.join(root, 'bin/weft.js'), 'control', '--config', configDir, '--data-dir', dataDir,
      '--xds-port', String(xdsPort), '--api-port', String(apiPort), '--log-level', 'warn', '--dev'],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  ));
  await waitForPort(xdsPort, child, 20_000);
  return {
    pid: child.pid!,
    port: xdsPort,
    // Written in place, as an editor saving the file. (Node 20's recursive fs.watch on Linux misses
    // a rename over an existing file, so a write-and-rename would wait for the store's 1 s poll.)
    change: (k) => fs.writeFileSync(changing, serviceYaml('svc-0', 20000 + k) + '\n'),
  };
}

async function startSynthetic(opts: Options, teardown: Teardown): Promise<ControlPlaneUnderTest> {
  const child = teardown.child(fork(path.join(__dirname, 'xds-synthetic-server.js'), [String(opts.services)], {
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    execArgv: nodeArgs(opts),
  }));
  const port = await new Promise<number>((resolve, reject) => {
    child.once('message', (m: { t: string; port: number }) => resolve(m.port));
    child.once('exit', (code) => reject(new Error(`synthetic server exited with code ${code}`)));
  });
  return { pid: child.pid!, port, change: () => child.send({ t: 'change' }) };
}

// ---- /proc readings ------------------------------------------------------------

/** CPU time of this process and the given ones, in ms: subtracted from machineBusyMs() it is what others used. */
export function cpuOfMs(pids: number[]): number {
  let ms = procCpuMs(process.pid);
  for (const pid of pids) {
    try {
      ms += procCpuMs(pid);
    } catch {
      // exited
    }
  }
  return ms;
}

export function procStatusKb(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'));
  return m ? Number(m[1]) : NaN;
}

export const mb = (kb: number) => `${(kb / 1024).toFixed(0)} MiB`;

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/** Latency figures of one change (ms from the change): first ACK, p50, p99, max. */
export function latencyStats(sorted: number[]): { min: number; p50: number; p99: number; max: number } {
  return { min: sorted[0] ?? NaN, p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted[sorted.length - 1] ?? NaN };
}

// ---- teardown: every child process and temp dir, on success, failure, budget or Ctrl-C ----

export class Teardown {
  private readonly children = new Set<ChildProcess>();
  private readonly dirs: string[] = [];
  private running: Promise<void> | undefined;

  /** run() has begun: children exiting now are being stopped. */
  get stopping(): boolean {
    return this.running !== undefined;
  }

  /** Stopped by run(). */
  child<T extends ChildProcess>(c: T): T {
    this.children.add(c);
    return c;
  }

  /** Removed by run(), after every child has exited. */
  dir(d: string): string {
    this.dirs.push(d);
    return d;
  }

  /** SIGTERM to every child still running, SIGKILL after graceMs; then removes the directories. Runs once. */
  run(graceMs = 5000): Promise<void> {
    this.running ??= (async () => {
      const alive = [...this.children].filter((c) => c.exitCode === null && c.signalCode === null);
      await Promise.all(
        alive.map(
          (c) =>
            new Promise<void>((resolve) => {
              const kill = setTimeout(() => c.kill('SIGKILL'), graceMs);
              const giveUp = setTimeout(resolve, graceMs + 2000);
              c.once('exit', () => {
                clearTimeout(kill);
                clearTimeout(giveUp);
                resolve();
              });
              c.kill('SIGTERM');
            }),
        ),
      );
      for (const d of this.dirs) fs.rmSync(d, { recursive: true, force: true });
    })();
    return this.running;
  }

  /** A hard stop after budgetS, on SIGINT / SIGTERM and on an uncaught error: tears everything down, then exits. */
  guard(name: string, budgetS: number): void {
    const stop = (why: string, code: number) => {
      console.error(`${name}: ${why}, stopping`);
      void this.run().finally(() => process.exit(code));
    };
    setTimeout(() => stop(`time budget of ${budgetS} s exceeded`, 2), budgetS * 1000).unref();
    process.once('SIGINT', () => stop('interrupted', 130));
    process.once('SIGTERM', () => stop('terminated', 143));
    process.once('uncaughtException', (err) => stop(`uncaught ${err.stack ?? err}`, 1));
    process.once('unhandledRejection', (err) => stop(`unhandled rejection ${err instanceof Error ? err.stack : err}`, 1));
    // Output piped into `head` that has exited: keep running to the end (and the teardown) without it.
    for (const s of [process.stdout, process.stderr]) s.on('error', () => {});
  }
}

// ---- client processes --------------------------------------------------------------

/** Simulated ADS clients of one control plane, in `procs` child processes. */
export class ClientProcs {
  readonly procs: ChildProcess[] = [];
  readonly count: number;
  private readonly progress = new Map<ChildProcess, { changed: number; lastChangeAt: number; acks: number }>();

  /** Clients first .. first+count-1 (node ids bench-<i>, node groups svc-<i mod services>) on the xDS port. */
  constructor(o: { port: number; count: number; procs: number; services: number; first?: number }, teardown: Teardown) {
    this.count = o.count;
    const per = Math.ceil(o.count / o.procs);
    for (let p = 0; p < o.procs; p++) {
      const offset = p * per;
      const count = Math.min(per, o.count - offset);
      if (count <= 0) break;
      const config: SimClientsConfig = { port: o.port, first: (o.first ?? 0) + offset, count, services: o.services, rampBatch: 200 };
      const child = teardown.child(
        fork(path.join(__dirname, 'xds-sim-clients.js'), [JSON.stringify(config)], {
          stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        }),
      );
      child.on('message', (m: FromClients) => {
        if (m.t === 'progress') this.progress.set(child, m);
      });
      this.procs.push(child);
    }
  }

  get pids(): number[] {
    return this.procs.map((c) => c.pid!);
  }

  /** Sends to every process and gathers one reply of the given type from each. */
  async all<T extends FromClients['t']>(msg: ToClients | undefined, reply: T, timeoutMs: number): Promise<Extract<FromClients, { t: T }>[]> {
    return Promise.all(
      this.procs.map(
        (child) =>
          new Promise<Extract<FromClients, { t: T }>>((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error(`no "${reply}" from a client process within ${timeoutMs} ms`)), timeoutMs);
            const onMessage = (m: FromClients) => {
              if (m.t !== reply) return;
              clearTimeout(timer);
              child.off('message', onMessage);
              resolve(m as Extract<FromClients, { t: T }>);
            };
            child.on('message', onMessage);
            if (msg) child.send(msg);
          }),
      ),
    );
  }

  /** Every process has connected its clients: how many synced (CDS, EDS, LDS, RDS ACKed) and failed. */
  async ready(timeoutMs: number): Promise<{ synced: number; failed: number }> {
    const ready = await this.all(undefined, 'ready', timeoutMs);
    return { synced: ready.reduce((s, r) => s + r.synced, 0), failed: ready.reduce((s, r) => s + r.failed, 0) };
  }

  /** Each client remembers the versions it holds; ACKs of other versions count as the change. */
  async mark(): Promise<void> {
    this.progress.clear();
    await this.all({ t: 'mark' }, 'marked', 10_000);
  }

  /** Clients that ACKed a changed version, and the latest such ACK. */
  totals(): { changed: number; lastChangeAt: number; acks: number } {
    let changed = 0;
    let lastChangeAt = 0;
    let acks = 0;
    for (const p of this.progress.values()) {
      changed += p.changed;
      lastChangeAt = Math.max(lastChangeAt, p.lastChangeAt);
      acks += p.acks;
    }
    return { changed, lastChangeAt, acks };
  }

  /** Every client's latency from t0 to its last ACK of a changed version (sorted), and the processes' CPU since the mark. */
  async collect(t0: number): Promise<{ latencies: number[]; typesChanged: number; cpuMs: number }> {
    const results = await this.all({ t: 'collect', t0 }, 'result', 10_000);
    return {
      latencies: results.flatMap((r) => r.latencies).sort((a, b) => a - b),
      typesChanged: Math.max(...results.map((r) => r.typesChanged)),
      cpuMs: results.reduce((s, r) => s + r.cpuMs, 0),
    };
  }

  stop(): void {
    for (const c of this.procs) if (c.connected) c.send({ t: 'stop' } satisfies ToClients);
  }
}

/** Quiet time after the last changed ACK before a change counts as converged. */
export const QUIET_MS = 400;

/**
 * Waits until every client of every set has ACKed a changed version and no changed ACK came for
 * QUIET_MS, or until the deadline (then some clients did not converge: collect() shows it).
 */
export async function waitConverged(sets: ClientProcs[], deadline: number): Promise<void> {
  for (;;) {
    await new Promise((r) => setTimeout(r, 50));
    const totals = sets.map((s) => s.totals());
    const now = nowMs();
    const lastChangeAt = Math.max(...totals.map((t) => t.lastChangeAt));
    if (totals.every((t, i) => t.changed >= sets[i].count) && now - lastChangeAt > QUIET_MS) return;
    if (now > deadline) return;
  }
}

// ---- the run -------------------------------------------------------------------------

interface ChangeResult {
  /** The first client's ACK: the fixed part (file watch, translation, first group) before the fan-out. */
  min: number;
  p50: number;
  p99: number;
  max: number;
  converged: number;
  typesChanged: number;
  serverCpuMs: number;
  clientCpuMs: number;
  /** CPU the rest of the machine used meanwhile (other engineers' work on a shared machine). */
  othersCpuMs: number;
  /** From the change to convergence plus the quiet window. */
  windowMs: number;
  rssKb: number;
}

async function measureChange(k: number, cp: ControlPlaneUnderTest, clients: ClientProcs): Promise<ChangeResult> {
  await clients.mark();
  const ours = [cp.pid, ...clients.pids];
  const others0 = machineBusyMs() - cpuOfMs(ours);
  const cpu0 = procCpuMs(cp.pid);
  const t0 = nowMs();
  cp.change(k);
  await waitConverged([clients], t0 + 30_000);
  const windowMs = nowMs() - t0;
  // Includes the quiet window, where the server idles.
  const serverCpuMs = procCpuMs(cp.pid) - cpu0;
  const othersCpuMs = machineBusyMs() - cpuOfMs(ours) - others0;
  const r = await clients.collect(t0);
  return {
    ...latencyStats(r.latencies),
    converged: r.latencies.length,
    typesChanged: r.typesChanged,
    serverCpuMs,
    clientCpuMs: r.cpuMs,
    othersCpuMs,
    windowMs,
    rssKb: procStatusKb(cp.pid, 'VmRSS'),
  };
}

/** The machine, for the first lines of a bench's output (the load average says how shared it was). */
export function machineLine(): string {
  return (
    `# machine: ${os.cpus().length} x ${os.cpus()[0]?.model.trim()}, ${mb(os.totalmem() / 1024)} RAM, node ${process.version}, ` +
    `load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`
  );
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const teardown = new Teardown();
  teardown.guard('xds-convergence', opts.budgetS);
  const tmp = teardown.dir(fs.mkdtempSync(path.join(os.tmpdir(), 'weft-xds-bench-')));
  let clients: ClientProcs | undefined;
  try {
    console.log(`# xDS convergence: ${opts.clients} SotW clients in ${opts.procs} processes, ${opts.services} services (node groups), server=${opts.server}`);
    console.log(machineLine());
    const cp = opts.server === 'weft' ? await startWeftControl(opts, tmp, teardown) : await startSynthetic(opts, teardown);
    const rssIdle = procStatusKb(cp.pid, 'VmRSS');
    const connectStart = nowMs();
    clients = new ClientProcs({ port: cp.port, count: opts.clients, procs: opts.procs, services: opts.services }, teardown);
    const { synced, failed } = await clients.ready(120_000);
    console.log(
      `connected and synced (CDS, EDS, LDS, RDS ACKed): ${synced}/${opts.clients} in ${(nowMs() - connectStart).toFixed(0)} ms, ${failed} failed; ` +
        `control plane RSS idle ${mb(rssIdle)} → ${mb(procStatusKb(cp.pid, 'VmRSS'))}`,
    );
    if (synced < opts.clients) throw new Error(`${opts.clients - synced} clients did not sync`);

    const rows: ChangeResult[] = [];
    console.log('change | clients ACKed | types | first ms | p50 ms | p99 ms | max ms | server CPU ms | clients CPU ms | others CPU ms | RSS');
    for (let k = 1; k <= opts.changes; k++) {
      const r = await measureChange(k, cp, clients);
      rows.push(r);
      console.log(
        `${k} | ${r.converged}/${opts.clients} | ${r.typesChanged} | ${r.min.toFixed(0)} | ${r.p50.toFixed(0)} | ${r.p99.toFixed(0)} | ${r.max.toFixed(0)} | ` +
          `${r.serverCpuMs.toFixed(0)} | ${r.clientCpuMs.toFixed(0)} | ${r.othersCpuMs.toFixed(0)} | ${mb(r.rssKb)}`,
      );
      await new Promise((res) => setTimeout(res, 300));
    }
    const all = (f: (r: ChangeResult) => number) => rows.map(f).sort((a, b) => a - b);
    const summary = {
      clients: opts.clients,
      server: opts.server,
      changes: opts.changes,
      allConverged: rows.every((r) => r.converged === opts.clients),
      p50MedianMs: Math.round(percentile(all((r) => r.p50), 50)),
      p99WorstMs: Math.round(Math.max(...all((r) => r.p99))),
      maxWorstMs: Math.round(Math.max(...all((r) => r.max))),
      rssMiB: Math.round(procStatusKb(cp.pid, 'VmRSS') / 1024),
      hwmMiB: Math.round(procStatusKb(cp.pid, 'VmHWM') / 1024),
      /** Cores' worth of CPU other processes of the machine used during the changes. */
      othersCores: +(rows.reduce((s, r) => s + r.othersCpuMs, 0) / rows.reduce((s, r) => s + r.windowMs, 0)).toFixed(2),
    };
    console.log(`summary ${JSON.stringify(summary)}`);
    const goal = summary.allConverged && summary.p99WorstMs < 1000 && summary.hwmMiB < 1024;
    console.log(`goal (all converge, p99 < 1 s, peak RSS < 1 GiB): ${goal ? 'met' : 'MISSED'}`);
  } finally {
    clients?.stop();
    await teardown.run();
  }
}

if (require.main === module) {
  main().catch((err) => {
    console.error(`xds-convergence: ${err instanceof Error ? err.message : err}`);
    process.exit(1);
  });
}
