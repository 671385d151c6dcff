// xDS convergence across control-plane replicas (issue 11): etcd on
// loopback, --replicas `weft control --store etcd://… --dev` processes, and
// --clients simulated ADS clients PER REPLICA (bench/xds-sim-clients, one
// HTTP/2 connection each, in --procs child processes in all). A change is
// written through replica 0's API (POST /api/v1/resources: Service svc-0
// with an endpoint's port moved); the bench measures the time from that write
// to every client's ACK of the new version, on every replica (p50, p99, max
// per replica and overall), each replica's and etcd's RSS and CPU (/proc),
// and etcd's operations per change (deltas of its own /metrics). Loopback
// only; stops itself within --budget-s and cleans up, also on Ctrl-C.
//
//   node dist/bench/xds-replicas.js --replicas 2 --store etcd --clients 2500
//        [--changes 5] [--procs 2] [--services 50] [--etcd-members 1|3]
//        [--budget-s 600]
//
// --store embedded --replicas 1: the same run against one control plane on
// its embedded store (the change through the same API), the baseline.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { machineBusyMs, procCpuMs } from './peers';
import { nowMs } from './xds-bench-protocol';
import {
  ClientProcs,
  cpuOfMs,
  freePort,
  latencyStats,
  machineLine,
  mb,
  percentile,
  procStatusKb,
  serviceYaml,
  Teardown,
  waitConverged,
  waitForPort,
} from './xds-convergence';

interface Options {
  replicas: number;
  store: 'etcd' | 'embedded';
  /** Per replica. */
  clients: number;
  changes: number;
  /** Client processes in all, shared evenly by the replicas. */
  procs: number;
  services: number;
  etcdMembers: number;
  budgetS: number;
}

function parseArgs(argv: string[]): Options {
  const opts: Options = { replicas: 2, store: 'etcd', clients: 500, changes: 5, procs: 2, services: 50, etcdMembers: 1, budgetS: 600 };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split('=', 2);
    const value = () => inline ?? argv[++i];
    switch (flag) {
      case '--replicas': opts.replicas = Number(value()); break;
      case '--store': opts.store = value() as Options['store']; break;
      case '--clients': opts.clients = Number(value()); break;
      case '--changes': opts.changes = Number(value()); break;
      case '--procs': opts.procs = Number(value()); break;
      case '--services': opts.services = Number(value()); break;
      case '--etcd-members': opts.etcdMembers = Number(value()); break;
      case '--budget-s': opts.budgetS = Number(value()); break;
      default: throw new Error(`unknown flag ${argv[i]}`);
    }
  }
  if (!['etcd', 'embedded'].includes(opts.store)) throw new Error('--store is etcd or embedded');
  for (const k of ['replicas', 'clients', 'changes', 'procs', 'services', 'etcdMembers', 'budgetS'] as const) {
    if (!Number.isInteger(opts[k]) || opts[k] < 1) throw new Error(`--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} must be a positive integer`);
  }
  if (opts.store === 'embedded' && opts.replicas !== 1) throw new Error('--store embedded runs one replica (--replicas 1)');
  if (opts.procs < opts.replicas) opts.procs = opts.replicas;
  return opts;
}

// ---- etcd ------------------------------------------------------------------------------

const ETCD_BIN = ['/usr/bin/etcd', '/usr/local/bin/etcd'].find((p) => fs.existsSync(p));

interface Etcd {
  url: string;
  members: { pid: number; clientPort: number }[];
}

/** `size` etcd members on loopback ports, data in `dir`; resolves once each answers /health. */
async function startEtcd(size: number, dir: string, teardown: Teardown): Promise<Etcd> {
  if (!ETCD_BIN) throw new Error('etcd is not installed (Debian package etcd-server)');
  const ports: { client: number; peer: number }[] = [];
  for (let i = 0; i < size; i++) ports.push({ client: await freePort(), peer: await freePort() });
  const initialCluster = ports.map((p, i) => `m${i}=http://127.0.0.1:${p.peer}`).join(',');
  const members = ports.map((p, i) => {
    const child = teardown.child(
      spawn(
        ETCD_BIN,
        [
          '--name', `m${i}`,
          '--data-dir', path.join(dir, `etcd-m${i}`),
          '--listen-client-urls', `http://127.0.0.1:${p.client}`,
          '--advertise-client-urls', `http://127.0.0.1:${p.client}`,
          '--listen-peer-urls', `http://127.0.0.1:${p.peer}`,
          '--initial-advertise-peer-urls', `http://127.0.0.1:${p.peer}`,
          '--initial-cluster', initialCluster,
          '--initial-cluster-state', 'new',
          '--initial-cluster-token', `weft-bench-${process.pid}`,
          '--log-level', 'warn',
        ],
        { stdio: ['ignore', 'ignore', 'pipe'] },
      ),
    );
    // etcd logs its raft chatter at every level: shown only if it dies under the bench.
    let log = '';
    child.stderr!.on('data', (d) => (log = (log + d).slice(-4000)));
    child.on('exit', (code, signal) => {
      if (!teardown.stopping) console.error(`etcd m${i} exited (${code ?? signal}): ${log}`);
    });
    return { child, pid: child.pid!, clientPort: p.client };
  });
  const deadline = Date.now() + 20_000;
  for (const m of members) {
    for (;;) {
      if (m.child.exitCode !== null) throw new Error(`etcd exited with code ${m.child.exitCode}`);
      const ok = await fetch(`http://127.0.0.1:${m.clientPort}/health`)
        .then(async (r) => r.ok && ((await r.json()) as { health?: string }).health === 'true')
        .catch(() => false);
      if (ok) break;
      if (Date.now() > deadline) throw new Error('etcd did not become healthy within 20 s');
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return { url: `etcd://${members.map((m) => `127.0.0.1:${m.clientPort}`).join(',')}`, members: members.map(({ pid, clientPort }) => ({ pid, clientPort })) };
}

/** etcd's counters that say what the replicas asked of it, summed over the members. */
type EtcdCounters = Map<string, number>;

const COUNTERS: { name: string; label: string; match: (metric: string, labels: string) => boolean }[] = [
  ...['Range', 'Put', 'Txn', 'DeleteRange', 'LeaseGrant', 'LeaseRevoke'].map((m) => ({
    name: `grpc ${m}`,
    label: `${m} calls`,
    match: (metric: string, labels: string) => metric === 'grpc_server_handled_total' && labels.includes(`grpc_method="${m}"`),
  })),
  { name: 'grpc Watch sent', label: 'watch responses sent', match: (m, l) => m === 'grpc_server_msg_sent_total' && l.includes('grpc_method="Watch"') },
  { name: 'grpc LeaseKeepAlive received', label: 'lease keep-alives', match: (m, l) => m === 'grpc_server_msg_received_total' && l.includes('grpc_method="LeaseKeepAlive"') },
  { name: 'mvcc put', label: 'mvcc puts', match: (m) => m === 'etcd_mvcc_put_total' },
  { name: 'mvcc txn', label: 'mvcc txns', match: (m) => m === 'etcd_mvcc_txn_total' },
  { name: 'mvcc range', label: 'mvcc ranges', match: (m) => m === 'etcd_mvcc_range_total' },
  { name: 'mvcc delete', label: 'mvcc deletes', match: (m) => m === 'etcd_mvcc_delete_total' },
  { name: 'watch events', label: 'watch events', match: (m) => m === 'etcd_debugging_mvcc_events_total' },
  { name: 'raft proposals', label: 'raft proposals committed', match: (m) => m === 'etcd_server_proposals_committed_total' },
];

async function etcdCounters(etcd: Etcd): Promise<EtcdCounters> {
  const out: EtcdCounters = new Map(COUNTERS.map((c) => [c.name, 0]));
  for (const m of etcd.members) {
    const text = await (await fetch(`http://127.0.0.1:${m.clientPort}/metrics`)).text();
    for (const line of text.split('\n')) {
      if (line.startsWith('#') || !line) continue;
      const match = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
      if (!match) continue;
      for (const c of COUNTERS) if (c.match(match[1], match[2] ?? '')) out.set(c.name, out.get(c.name)! + Number(match[3]));
    }
  }
  return out;
}

function addDelta(into: EtcdCounters, before: EtcdCounters, after: EtcdCounters): void {
  for (const [k, v] of after) into.set(k, (into.get(k) ?? 0) + v - (before.get(k) ?? 0));
}

// ---- the replicas ------------------------------------------------------------------------

interface Replica {
  name: string;
  pid: number;
  xdsPort: number;
  apiPort: number;
  api: string;
  rssIdleKb: number;
  rssConnectedKb: number;
}

async function startReplica(i: number, opts: Options, tmp: string, etcd: Etcd | undefined, teardown: Teardown): Promise<Replica> {
  const root = path.resolve(__dirname, '../..');
  const name = `r${i}`;
  const [xdsPort, apiPort] = [await freePort(), await freePort()];
  const store = etcd ? ['--store', etcd.url] : [];
  const child = teardown.child(
    spawn(
      process.execPath,
      [path.join(root, 'bin/weft.js'), 'control', ...store, '--data-dir', path.join(tmp, name), '--replica-id', name,
        '--xds-port', String(xdsPort), '--api-port', String(apiPort), '--log-level', 'warn', '--dev'],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    ),
  );
  await waitForPort(apiPort, child, 30_000, `replica ${name}`);
  await waitForPort(xdsPort, child, 30_000, `replica ${name}`);
  return { name, pid: child.pid!, xdsPort, apiPort, api: `http://127.0.0.1:${apiPort}`, rssIdleKb: 0, rssConnectedKb: 0 };
}

async function post(r: Replica, yaml: string): Promise<void> {
  const res = await fetch(`${r.api}/api/v1/resources`, { method: 'POST', body: yaml, headers: { 'content-type': 'application/yaml' } });
  const body = await res.text();
  if (res.status !== 200) throw new Error(`POST /api/v1/resources on ${r.name}: ${res.status} ${body}`);
}

/** Resolves once the replica's API shows svc-<last> (the store's watch brought the initial apply). */
async function waitForServices(r: Replica, services: number): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const res = await fetch(`${r.api}/api/v1/resources/Service/default/svc-${services - 1}`).catch(() => undefined);
    await res?.arrayBuffer();
    if (res?.status === 200) return;
    if (Date.now() > deadline) throw new Error(`replica ${r.name} does not show the services after 20 s`);
    await new Promise((res2) => setTimeout(res2, 100));
  }
}

// ---- the run -------------------------------------------------------------------------------

interface ReplicaChange {
  latencies: number[];
  min: number;
  p50: number;
  p99: number;
  max: number;
  cpuMs: number;
  clientCpuMs: number;
  rssKb: number;
}

interface ChangeRow {
  /** The POST on replica 0 until its answer (its own copy holds the change then). */
  writeMs: number;
  perReplica: ReplicaChange[];
  overall: { min: number; p50: number; p99: number; max: number; converged: number };
  etcdCpuMs: number;
  /** CPU the rest of the machine used meanwhile (other engineers' work on a shared machine). */
  othersCpuMs: number;
  /** From the write to convergence plus the quiet window. */
  windowMs: number;
}

const fmt = (n: number) => (Number.isFinite(n) ? n.toFixed(0) : '-');

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const teardown = new Teardown();
  teardown.guard('xds-replicas', opts.budgetS);
  const tmp = teardown.dir(fs.mkdtempSync(path.join(os.tmpdir(), 'weft-xds-replicas-')));
  const sets: ClientProcs[] = [];
  try {
    const perReplicaProcs = Math.max(1, Math.floor(opts.procs / opts.replicas));
    console.log(
      `# xDS convergence across replicas: ${opts.replicas} × weft control (store ${opts.store}${opts.store === 'etcd' ? `, ${opts.etcdMembers} etcd member(s)` : ''}), ` +
        `${opts.clients} SotW clients per replica in ${perReplicaProcs} process(es) each, ${opts.services} services (node groups), changes written through r0's API`,
    );
    console.log(machineLine());
    const etcd = opts.store === 'etcd' ? await startEtcd(opts.etcdMembers, tmp, teardown) : undefined;
    const replicas: Replica[] = [];
    // One after the other: the first creates the mesh's CA in etcd, the others load it.
    for (let i = 0; i < opts.replicas; i++) replicas.push(await startReplica(i, opts, tmp, etcd, teardown));
    const services: string[] = [];
    for (let i = 0; i < opts.services; i++) services.push(serviceYaml(`svc-${i}`, 20000));
    await post(replicas[0], services.join('\n---\n') + '\n');
    for (const r of replicas) await waitForServices(r, opts.services);
    for (const r of replicas) r.rssIdleKb = procStatusKb(r.pid, 'VmRSS');

    const connectStart = nowMs();
    replicas.forEach((r, i) =>
      sets.push(new ClientProcs({ port: r.xdsPort, count: opts.clients, procs: perReplicaProcs, services: opts.services, first: i * opts.clients }, teardown)),
    );
    const ready = await Promise.all(sets.map((s) => s.ready(Math.max(120_000, opts.clients * 40))));
    for (const [i, r] of replicas.entries()) {
      r.rssConnectedKb = procStatusKb(r.pid, 'VmRSS');
      console.log(
        `${r.name}: ${ready[i].synced}/${opts.clients} clients synced (CDS, EDS, LDS, RDS ACKed), ${ready[i].failed} failed, ` +
          `all replicas in ${(nowMs() - connectStart).toFixed(0)} ms; RSS idle ${mb(r.rssIdleKb)} → ${mb(r.rssConnectedKb)}`,
      );
      if (ready[i].synced < opts.clients) throw new Error(`${opts.clients - ready[i].synced} clients of ${r.name} did not sync`);
    }

    // What etcd and the replicas do with no change at all (leases, elections, the registry's sweep).
    const IDLE_MS = 5000;
    const idle = new Map<string, number>();
    let idleCpu = { replicas: 0, etcd: 0 };
    if (etcd) {
      const c0 = await etcdCounters(etcd);
      const cpu0 = { replicas: replicas.reduce((s, r) => s + procCpuMs(r.pid), 0), etcd: etcd.members.reduce((s, m) => s + procCpuMs(m.pid), 0) };
      await new Promise((r) => setTimeout(r, IDLE_MS));
      addDelta(idle, c0, await etcdCounters(etcd));
      idleCpu = {
        replicas: replicas.reduce((s, r) => s + procCpuMs(r.pid), 0) - cpu0.replicas,
        etcd: etcd.members.reduce((s, m) => s + procCpuMs(m.pid), 0) - cpu0.etcd,
      };
    }

    const rows: ChangeRow[] = [];
    const changeOps = new Map<string, number>();
    let changeWindowMs = 0;
    console.log('change | replica | clients ACKed | first ms | p50 ms | p99 ms | max ms | replica CPU ms | clients CPU ms | RSS');
    for (let k = 1; k <= opts.changes; k++) {
      await Promise.all(sets.map((s) => s.mark()));
      const c0 = etcd ? await etcdCounters(etcd) : undefined;
      const ours = [...replicas.map((r) => r.pid), ...(etcd?.members.map((m) => m.pid) ?? []), ...sets.flatMap((s) => s.pids)];
      const others0 = machineBusyMs() - cpuOfMs(ours);
      const cpu0 = replicas.map((r) => procCpuMs(r.pid));
      const etcdCpu0 = etcd ? etcd.members.reduce((s, m) => s + procCpuMs(m.pid), 0) : 0;
      const t0 = nowMs();
      await post(replicas[0], serviceYaml('svc-0', 20000 + k) + '\n');
      const writeMs = nowMs() - t0;
      await waitConverged(sets, t0 + 30_000);
      const cpu1 = replicas.map((r) => procCpuMs(r.pid));
      const etcdCpuMs = etcd ? etcd.members.reduce((s, m) => s + procCpuMs(m.pid), 0) - etcdCpu0 : 0;
      const windowMs = nowMs() - t0;
      const othersCpuMs = machineBusyMs() - cpuOfMs(ours) - others0;
      changeWindowMs += windowMs;
      if (etcd) addDelta(changeOps, c0!, await etcdCounters(etcd));
      const results = await Promise.all(sets.map((s) => s.collect(t0)));
      const perReplica = results.map((res, i) => ({
        latencies: res.latencies,
        ...latencyStats(res.latencies),
        cpuMs: cpu1[i] - cpu0[i],
        clientCpuMs: res.cpuMs,
        rssKb: procStatusKb(replicas[i].pid, 'VmRSS'),
      }));
      const everyone = results.flatMap((r) => r.latencies).sort((a, b) => a - b);
      const row: ChangeRow = { writeMs, perReplica, overall: { ...latencyStats(everyone), converged: everyone.length }, etcdCpuMs, othersCpuMs, windowMs };
      rows.push(row);
      perReplica.forEach((p, i) =>
        console.log(
          `${k} | ${replicas[i].name} | ${p.latencies.length}/${opts.clients} | ${fmt(p.min)} | ${fmt(p.p50)} | ${fmt(p.p99)} | ${fmt(p.max)} | ` +
            `${fmt(p.cpuMs)} | ${fmt(p.clientCpuMs)} | ${mb(p.rssKb)}`,
        ),
      );
      console.log(
        `${k} | all | ${row.overall.converged}/${opts.clients * opts.replicas} | ${fmt(row.overall.min)} | ${fmt(row.overall.p50)} | ${fmt(row.overall.p99)} | ${fmt(row.overall.max)} | ` +
          `write (POST on r0) ${fmt(writeMs)} ms${etcd ? `, etcd CPU ${fmt(etcdCpuMs)} ms` : ''}, others' CPU ${fmt(othersCpuMs)} ms over ${fmt(windowMs)} ms`,
      );
      await new Promise((res) => setTimeout(res, 300));
    }

    // ---- summary ----
    const median = (xs: number[]) => percentile([...xs].sort((a, b) => a - b), 50);
    const agg = (pick: (r: ChangeRow) => { p50: number; p99: number; max: number; min: number }) => ({
      firstMs: `${fmt(Math.min(...rows.map((r) => pick(r).min)))}–${fmt(Math.max(...rows.map((r) => pick(r).min)))}`,
      p50MedianMs: Math.round(median(rows.map((r) => pick(r).p50))),
      p99WorstMs: Math.round(Math.max(...rows.map((r) => pick(r).p99))),
      maxWorstMs: Math.round(Math.max(...rows.map((r) => pick(r).max))),
      /** The first change after the clients connected costs the most on every store (warm-up): without it. */
      p99WorstAfterFirstMs: rows.length > 1 ? Math.round(Math.max(...rows.slice(1).map((r) => pick(r).p99))) : undefined,
      p99PerChange: rows.map((r) => Math.round(pick(r).p99)),
    });
    const allConverged = rows.every((r) => r.overall.converged === opts.clients * opts.replicas);
    const summary = {
      replicas: opts.replicas,
      store: opts.store,
      etcdMembers: etcd ? opts.etcdMembers : 0,
      clientsPerReplica: opts.clients,
      changes: opts.changes,
      allConverged,
      /** Cores' worth of CPU other processes of the machine used during the changes. */
      othersCores: +(rows.reduce((s, r) => s + r.othersCpuMs, 0) / rows.reduce((s, r) => s + r.windowMs, 0)).toFixed(2),
      writeMs: { median: Math.round(median(rows.map((r) => r.writeMs))), max: Math.round(Math.max(...rows.map((r) => r.writeMs))) },
      overall: agg((r) => r.overall),
      perReplica: replicas.map((rep, i) => ({
        replica: rep.name,
        ...agg((r) => r.perReplica[i]),
        cpuMsPerChange: { median: Math.round(median(rows.map((r) => r.perReplica[i].cpuMs))), max: Math.round(Math.max(...rows.map((r) => r.perReplica[i].cpuMs))) },
        clientsCpuMsPerChange: Math.round(median(rows.map((r) => r.perReplica[i].clientCpuMs))),
        rssMiB: { idle: Math.round(rep.rssIdleKb / 1024), connected: Math.round(rep.rssConnectedKb / 1024), peak: Math.round(procStatusKb(rep.pid, 'VmHWM') / 1024) },
      })),
      etcd: etcd && {
        cpuMsPerChange: { median: Math.round(median(rows.map((r) => r.etcdCpuMs))), max: Math.round(Math.max(...rows.map((r) => r.etcdCpuMs))) },
        rssMiB: etcd.members.map((m) => Math.round(procStatusKb(m.pid, 'VmRSS') / 1024)),
        /** Deltas over the change windows (POST → converged + quiet), divided by the changes. */
        opsPerChange: Object.fromEntries([...changeOps].filter(([, v]) => v > 0).map(([k, v]) => [k, +(v / opts.changes).toFixed(1)])),
        meanChangeWindowMs: Math.round(changeWindowMs / opts.changes),
        /** The same counters with no change, per second: background to subtract from the above. */
        idlePerSecond: Object.fromEntries([...idle].filter(([, v]) => v > 0).map(([k, v]) => [k, +((v * 1000) / IDLE_MS).toFixed(1)])),
        idleCpuMsPerSecond: { replicas: Math.round((idleCpu.replicas * 1000) / IDLE_MS), etcd: Math.round((idleCpu.etcd * 1000) / IDLE_MS) },
      },
    };
    console.log(`summary ${JSON.stringify(summary, null, 1)}`);
    const goal = allConverged && summary.overall.p99WorstMs < 1000;
    console.log(`goal (every client of every replica converges, p99 < 1 s): ${goal ? 'met' : 'MISSED'}`);
    console.log(machineLine().replace('# machine', '# at the end'));
  } finally {
    for (const s of sets) s.stop();
    await teardown.run();
  }
}

main().catch((err) => {
  console.error(`xds-replicas: ${err instanceof Error ? err.message : err}`);
  process.exit(1);
});
