// What transparent capture (`weft run --transparent`, issue 14) costs against
// HTTP_PROXY mode, in one run: two `weft run` units of the same client
// service on one control plane and one nginx upstream (the Service `backend`,
// a static endpoint), one in HTTP_PROXY mode and one with `--transparent
// --egress mesh-only`, each running a program that only idles.
//
//   HTTP_PROXY   wrk (host namespace) → 127.0.0.1:<outbound port>, Host: backend → sidecar → nginx
//   transparent  wrk inside the unit (nsenter into the program's network and mount namespaces)
//                → http://backend/: the unit's DNS answers a VIP, routed over the veth to the
//                host side, where the sidecar's VIP socket hands the connection to the same
//                listener → nginx
//
// Load: wrk -t1 -c32 (HTTP/1.1, keep-alive) against each in turn, after a warm-up each,
// `--rounds` rounds in alternating order; per mode req/s, p50/p99 and the CPU time of the
// `weft run` process (the sidecar runs in it) per request, from /proc, user and system
// apart (the kernel's veth and netfilter work done in its context is system time), and
// wrk's own CPU per request (it pays for the packets it sends); the ratio
// transparent / HTTP_PROXY. Connection setup: `--conns` sequential new connections, each
// one request (`Connection: close`), timed from connect() to the first response byte, by a
// small Node client run where the program would run (the host namespace for HTTP_PROXY
// mode, inside the unit for transparent mode: by the VIP, and by name, so each connection
// also resolves `backend` as a program that does not cache does), and straight to nginx
// for scale; and `dns.lookup('backend')` inside the unit, `--lookups` times.
//
//   npx tsc -p tsconfig.build.json && node dist/bench/transparent.js [--seconds 8] [--rounds 2] [--connections 32] [--conns 500] [--lookups 1000]
//
// Needs root, iproute2, iptables, nsenter (util-linux), wrk and nginx. Nothing runs in the
// root network namespace: this process makes a namespace "wbt<pid>" (lo only, no link,
// no address elsewhere) and runs itself again inside it with --inner; the units make
// theirs ("weft-<weft run pid>") from there. On exit, also after a failure or SIGINT, it
// removes that namespace, the units' namespaces and /etc/netns entries, and kills what
// is left in them. Results also go to bench/results/transparent.json.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { arg, freePort, requireTool, ROOT, rssMiB, startNginxUpstream, startWeftControl, tempDir, type LoadResult, type Peer } from './peers';

const BIN = path.join(ROOT, 'bin/weft.js');
const NS_PREFIX = 'wbt';
const BODY_BYTES = 100;
/** The units' program: says its pid (the bench enters its namespaces), then idles. The marker names the bench's namespace, for the clean-up. */
const idleApp = (ns: string) => `/* ${idleMarker(ns)} */ console.log('APP PID ' + process.pid); setInterval(() => {}, 1 << 30);`;
const idleMarker = (ns: string) => `weft-bench-transparent idle ${ns};`; // ';' ends the name: wbt92 is not wbt925

/**
 * The client run where a program would run. `connect <host> <port> <n> <hostHeader>`: n sequential
 * new connections (after 20 not counted), each one GET with Connection: close, timed from connect()
 * to the first response byte; a host name is resolved per connection (net.connect's lookup; its
 * 'lookup' event is timed too).
 * `lookup <name> <n> [net]`: n sequential dns.lookup() calls (after 20 not counted), with `net` as
 * net.connect() calls it. Prints the times, ms.
 */
const CLIENT = `
const net = require('node:net');
const dns = require('node:dns');
const [what, host, a, b, hostHeader] = process.argv.slice(1);
const WARM = 20;
const since = (t0) => Number(process.hrtime.bigint() - t0) / 1e6;
function connectOnce(port) {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    let resolved;
    const s = net.connect(port, host, () => s.write('GET / HTTP/1.1\\r\\nHost: ' + hostHeader + '\\r\\nConnection: close\\r\\n\\r\\n'));
    s.setTimeout(5000, () => s.destroy(new Error('no response in 5 s')));
    s.once('error', reject);
    s.once('lookup', () => (resolved = since(t0)));
    s.once('data', (d) => {
      const ms = since(t0);
      s.destroy();
      const head = d.toString('latin1');
      if (!head.startsWith('HTTP/1.1 200')) reject(new Error('not a 200: ' + head.slice(0, 80)));
      else resolve([ms, resolved]);
    });
  });
}
function lookupOnce() {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    // 'net': the options net.connect() resolves a name with (Node 20: every address, for autoSelectFamily; ADDRCONFIG).
    const opts = b === 'net' ? { all: true, hints: dns.ADDRCONFIG } : {};
    dns.lookup(host, opts, (err, address) => (err ? reject(err) : resolve([since(t0), Array.isArray(address) ? address[0].address : address])));
  });
}
(async () => {
  const n = Number(what === 'connect' ? b : a);
  const times = [];
  const lookups = [];
  let address;
  for (let i = 0; i < n + (n > 1 ? WARM : 0); i++) {
    let ms, lookupMs;
    if (what === 'connect') [ms, lookupMs] = await connectOnce(Number(a));
    else [ms, address] = await lookupOnce();
    if (n === 1 || i >= WARM) (times.push(ms), lookupMs !== undefined && lookups.push(lookupMs));
  }
  console.log(JSON.stringify({ times, lookups, address }));
})().catch((err) => { console.error(String(err)); process.exit(1); });
`;

type Mode = 'HTTP_PROXY' | 'transparent';

interface Unit {
  mode: Mode;
  /** weft run's pid: the sidecar's process; a transparent unit's namespace is weft-<pid>. */
  pid: number;
  appPid: number;
  outboundPort: number;
  child: ChildProcess;
  /** argv prefix that runs a command where the unit's program runs. */
  where: string[];
  runs: (LoadResult & { cpuMs: number; cpuUsPerRequest: number; userUsPerRequest: number; sysUsPerRequest: number; wrkCpuUsPerRequest: number })[];
}

/** user and system CPU time of a process so far, ms; with `children`, those of its waited-for children instead (/proc/<pid>/stat). */
function cpuTimes(pid: number | 'self', children = false): { user: number; sys: number } {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const i = children ? 13 : 11; // utime, stime; cutime, cstime
  return { user: Number(fields[i]) * 10, sys: Number(fields[i + 1]) * 10 }; // USER_HZ is 100 on Linux
}

interface Stats {
  n: number;
  medianMs: number;
  p99Ms: number;
  meanMs: number;
}

function stats(times: number[]): Stats {
  const s = [...times].sort((x, y) => x - y);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))];
  return { n: s.length, medianMs: at(0.5), p99Ms: at(0.99), meanMs: s.reduce((n, t) => n + t, 0) / s.length };
}

// ---- the outer process: the namespace, and the clean-up ----

function outer(): void {
  if (process.getuid?.() !== 0) throw new Error('bench/transparent needs root: it makes network namespaces');
  for (const tool of ['ip', 'iptables', 'nsenter', 'wrk', 'nginx']) requireTool(tool);
  const ns = `${NS_PREFIX}${process.pid}`;
  // The inner process's work directory (configs, nginx's files) and the units' names it writes: removed here, however it ends.
  const dir = tempDir('weft-bench-tp-');
  const state = path.join(dir, 'units');
  let cleaned = false;
  const cleanup = () => {
    if (cleaned) return;
    cleaned = true;
    // Normally the inner process stopped its units and they removed their networks; this is for when it could not.
    killIdleApps(ns);
    const pids = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', timeout: 5000 }).stdout ?? '';
    for (const pid of pids.split('\n').filter(Boolean)) killQuietly(Number(pid));
    for (const unit of readUnits(state)) {
      spawnSync('ip', ['netns', 'del', unit], { stdio: 'ignore', timeout: 5000 });
      fs.rmSync(`/etc/netns/${unit}`, { recursive: true, force: true });
      fs.rmSync(`/run/netns/${unit}`, { force: true });
    }
    spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore', timeout: 5000 });
    fs.rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
    fs.rmSync(dir, { recursive: true, force: true });
  };
  process.on('exit', cleanup);
  try {
    sh(['ip', 'netns', 'add', ns]);
    sh(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
  } catch (err) {
    cleanup();
    throw err;
  }
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, __filename, '--inner', '--ns', ns, '--dir', dir, '--state', state, ...process.argv.slice(2)], { stdio: 'inherit' });
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 130 : 1)));
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      // A Ctrl-C reaches the inner process too; a kill of this one only this one: pass it on, give it time to stop its units.
      child.kill('SIGTERM');
      setTimeout(() => process.exit(130), 20_000).unref();
    });
  }
}

function sh(argv: string[]): void {
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', timeout: 10_000 });
  if (r.error || r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.error?.message ?? r.stderr.trim()}`);
}

/** The units' namespace names the inner process wrote, one a line. */
function readUnits(file: string): string[] {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

/** SIGKILLs the units' programs of this run (in namespaces of their own, so `ip netns pids` of the bench's does not list them). */
function killIdleApps(ns: string): void {
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(idleMarker(ns))) killQuietly(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone already
  }
}

// ---- the inner process, in the bench's namespace ----

async function inner(): Promise<void> {
  const seconds = Number(arg('seconds', '8'));
  const rounds = Number(arg('rounds', '2'));
  const connections = Number(arg('connections', '32'));
  const conns = Number(arg('conns', '500'));
  const lookups = Number(arg('lookups', '1000'));
  const state = arg('state', '');
  const ns = arg('ns', '');
  const dir = arg('dir', '');
  const peers: Peer[] = [];
  const units: Unit[] = [];
  const stopAll = async () => {
    // The units first (also one still starting): SIGTERM lets weft run stop its program and remove its unit's network.
    await Promise.all([...unitChildren].map(stopChild));
    for (const p of peers.splice(0).reverse()) await p.stop();
  };
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => void stopAll().then(() => process.exit(130)));
  const loadBefore = os.loadavg();
  try {
    const [upPort, xdsPort, apiPort] = await Promise.all([freePort(), freePort(), freePort()]);
    peers.push(await startNginxUpstream(dir, upPort, BODY_BYTES));
    const mesh = `apiVersion: weft.dev/v1
kind: Service
metadata: { name: client }
spec:
  ports: [{ name: http, port: 80, protocol: http }]
---
apiVersion: weft.dev/v1
kind: Service
metadata: { name: backend }
spec:
  ports: [{ name: http, port: 80, protocol: http }]
  endpoints: [{ address: 127.0.0.1, port: ${upPort} }]
`;
    peers.push(await startWeftControl(dir, mesh, xdsPort, apiPort));
    for (const mode of ['HTTP_PROXY', 'transparent'] as const) units.push(await startUnit(mode, xdsPort, apiPort, ns, state));
    const [proxyUnit, tpUnit] = units;
    // Both reach backend before anything is measured (the VIP socket and the DNS name come with the first config).
    await until(() => client(proxyUnit.where, ['connect', '127.0.0.1', String(proxyUnit.outboundPort), '1', 'backend']), 'HTTP_PROXY unit → backend');
    await until(() => client(tpUnit.where, ['connect', 'backend', '80', '1', 'backend']), 'transparent unit → backend by name');
    const vip = (client(tpUnit.where, ['lookup', 'backend', '1']) as { address: string }).address;
    console.log(`units up: HTTP_PROXY weft run ${proxyUnit.pid} (outbound 127.0.0.1:${proxyUnit.outboundPort}); transparent weft run ${tpUnit.pid} (unit weft-${tpUnit.pid}, backend → ${vip})`);

    // ---- steady-state load ----
    const load = (u: Unit, secs: number) =>
      u.mode === 'HTTP_PROXY' ? wrkIn(u.where, `http://127.0.0.1:${u.outboundPort}/`, connections, secs, ['Host: backend']) : wrkIn(u.where, 'http://backend/', connections, secs);
    for (const u of units) load(u, 3); // warm-up: connections pooled, JIT warm
    for (let round = 1; round <= rounds; round++) {
      // Alternating order: a drift of the shared machine's load does not favour one mode.
      for (const u of round % 2 === 1 ? units : [...units].reverse()) {
        // The sidecar's CPU, split: the kernel's share (system) holds the veth and netfilter work done in its context.
        // wrk is this process's child (nsenter execs it), so its CPU shows in our children's times once it is waited for.
        const [before, wrkBefore] = [cpuTimes(u.pid), cpuTimes('self', true)];
        const r = load(u, seconds);
        const [after, wrkAfter] = [cpuTimes(u.pid), cpuTimes('self', true)];
        const perRequest = (ms: number) => (ms * 1000) / (r.requests ?? r.rps * seconds);
        const cpuMs = after.user + after.sys - before.user - before.sys;
        const run = {
          ...r,
          cpuMs,
          cpuUsPerRequest: perRequest(cpuMs),
          userUsPerRequest: perRequest(after.user - before.user),
          sysUsPerRequest: perRequest(after.sys - before.sys),
          wrkCpuUsPerRequest: perRequest(wrkAfter.user + wrkAfter.sys - wrkBefore.user - wrkBefore.sys),
        };
        u.runs.push(run);
        console.log(
          `round ${round}  ${u.mode.padEnd(12)} ${r.rps.toFixed(0).padStart(7)} req/s  p50 ${r.p50ms.toFixed(3)} ms  p99 ${r.p99ms.toFixed(3)} ms  errors ${r.errors}` +
            `  sidecar cpu ${run.cpuUsPerRequest.toFixed(1)} µs/req (user ${run.userUsPerRequest.toFixed(1)}, sys ${run.sysUsPerRequest.toFixed(1)})  wrk cpu ${run.wrkCpuUsPerRequest.toFixed(1)} µs/req`,
        );
      }
    }
    type Figure = 'rps' | 'p50ms' | 'p99ms' | 'cpuUsPerRequest' | 'userUsPerRequest' | 'sysUsPerRequest' | 'wrkCpuUsPerRequest';
    const mean = (u: Unit, k: Figure) => u.runs.reduce((n, r) => n + r[k], 0) / u.runs.length;
    const ratio = (k: Figure) => mean(tpUnit, k) / mean(proxyUnit, k);
    const figures: Figure[] = ['rps', 'p50ms', 'p99ms', 'cpuUsPerRequest', 'userUsPerRequest', 'sysUsPerRequest', 'wrkCpuUsPerRequest'];
    console.log(`\nmean of ${rounds} runs of ${seconds} s (wrk -t1 -c${connections}):`);
    for (const u of units) {
      console.log(
        `${u.mode.padEnd(12)} ${mean(u, 'rps').toFixed(0).padStart(7)} req/s  p50 ${mean(u, 'p50ms').toFixed(3)} ms  p99 ${mean(u, 'p99ms').toFixed(3)} ms` +
          `  sidecar cpu ${mean(u, 'cpuUsPerRequest').toFixed(1)} µs/req (user ${mean(u, 'userUsPerRequest').toFixed(1)}, sys ${mean(u, 'sysUsPerRequest').toFixed(1)})  wrk cpu ${mean(u, 'wrkCpuUsPerRequest').toFixed(1)} µs/req  rss ${rssMiB(u.pid).toFixed(0)} MiB`,
      );
    }
    console.log(
      `transparent / HTTP_PROXY: ${ratio('rps').toFixed(3)}× req/s, ${ratio('p50ms').toFixed(3)}× p50, ${ratio('p99ms').toFixed(3)}× p99, ${ratio('cpuUsPerRequest').toFixed(3)}× sidecar cpu/req` +
        ` (user ${ratio('userUsPerRequest').toFixed(3)}×, sys ${ratio('sysUsPerRequest').toFixed(3)}×), ${ratio('wrkCpuUsPerRequest').toFixed(3)}× wrk cpu/req`,
    );

    // ---- connection setup, and name resolution ----
    const setupCases: { name: string; where: string[]; argv: string[] }[] = [
      { name: 'direct to nginx (no sidecar)', where: [], argv: ['connect', '127.0.0.1', String(upPort), String(conns), 'backend'] },
      { name: 'HTTP_PROXY', where: proxyUnit.where, argv: ['connect', '127.0.0.1', String(proxyUnit.outboundPort), String(conns), 'backend'] },
      { name: 'transparent, by VIP', where: tpUnit.where, argv: ['connect', vip, '80', String(conns), 'backend'] },
      { name: 'transparent, by name', where: tpUnit.where, argv: ['connect', 'backend', '80', String(conns), 'backend'] },
      { name: 'dns.lookup(backend) in the unit', where: tpUnit.where, argv: ['lookup', 'backend', String(lookups)] },
      { name: '  as net.connect() resolves', where: tpUnit.where, argv: ['lookup', 'backend', String(lookups), 'net'] },
    ];
    const samples = new Map<string, { times: number[]; lookups: number[] }>(setupCases.map((c) => [c.name, { times: [], lookups: [] }]));
    for (let round = 1; round <= rounds; round++) {
      for (const c of round % 2 === 1 ? setupCases : [...setupCases].reverse()) {
        const r = client(c.where, c.argv) as { times: number[]; lookups: number[] };
        samples.get(c.name)!.times.push(...r.times);
        samples.get(c.name)!.lookups.push(...r.lookups);
      }
    }
    const setup = setupCases.map((c) => {
      const { times, lookups } = samples.get(c.name)!;
      // Connecting by name: how long until net.connect()'s lookup was done, within the time.
      return { name: c.name, ...stats(times), ...(lookups.length ? { lookupPhase: stats(lookups) } : {}) };
    });
    console.log(`\nconnection setup: connect() to the first response byte, one request per connection (${rounds} × ${conns}); name resolution (${rounds} × ${lookups}):`);
    for (const s of setup) {
      const phase = s.lookupPhase ? `  (resolved after: median ${s.lookupPhase.medianMs.toFixed(3)} ms, p99 ${s.lookupPhase.p99Ms.toFixed(3)} ms)` : '';
      console.log(`${s.name.padEnd(34)} median ${s.medianMs.toFixed(3)} ms  p99 ${s.p99Ms.toFixed(3)} ms  mean ${s.meanMs.toFixed(3)} ms  (n ${s.n})${phase}`);
    }
    const loadAfter = os.loadavg();
    console.log(`\nload average before ${loadBefore.map((l) => l.toFixed(1)).join(' ')}, after ${loadAfter.map((l) => l.toFixed(1)).join(' ')}`);

    const summary = {
      date: new Date().toISOString(),
      node: process.version,
      cpus: os.cpus().length,
      loadAverage: { before: loadBefore, after: loadAfter },
      seconds,
      rounds,
      connections,
      bodyBytes: BODY_BYTES,
      load: Object.fromEntries(units.map((u) => [u.mode, { runs: u.runs, mean: Object.fromEntries(figures.map((k) => [k, mean(u, k)])), rssMiB: rssMiB(u.pid) }])),
      ratio: Object.fromEntries(figures.map((k) => [k, ratio(k)])),
      setup,
    };
    const outDir = path.join(ROOT, 'bench/results');
    fs.mkdirSync(outDir, { recursive: true });
    fs.writeFileSync(path.join(outDir, 'transparent.json'), JSON.stringify(summary, null, 1));
  } finally {
    await stopAll();
  }
}

/** One `weft run` unit of the client service; resolves once its program runs (so its sidecar is ready). */
async function startUnit(mode: Mode, xdsPort: number, apiPort: number, ns: string, state: string): Promise<Unit> {
  const outboundPort = await freePort();
  const args = [
    BIN, 'run', '--service', 'client', '--outbound-port', String(outboundPort),
    '--xds', `127.0.0.1:${xdsPort}`, '--api', `http://127.0.0.1:${apiPort}`,
    '--drain-seconds', '0', '--log-level', 'warn',
    ...(mode === 'transparent' ? ['--transparent', '--egress', 'mesh-only'] : []),
    '--', process.execPath, '-e', idleApp(ns),
  ];
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  unitChildren.add(child);
  // Its namespace's name, for the outer process to remove if weft run cannot.
  if (mode === 'transparent') fs.appendFileSync(state, `weft-${child.pid}\n`);
  let out = '';
  let err = '';
  child.stderr!.on('data', (d) => (err = (err + d).slice(-4000)));
  const appPid = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${mode} unit: its program did not start in 30 s: ${err}`)), 30_000);
    child.stdout!.on('data', (d) => {
      out += d;
      const m = /APP PID (\d+)/.exec(out);
      if (m) (clearTimeout(timer), resolve(Number(m[1])));
    });
    child.once('exit', (code) => (clearTimeout(timer), reject(new Error(`${mode} unit: weft run exited with ${code}: ${err}`))));
  });
  child.stdout!.resume();
  child.removeAllListeners('exit');
  child.on('exit', (code, signal) => {
    if (!stopping.has(child)) process.stderr.write(`${mode} unit: weft run exited (${code ?? signal}): ${err}\n`);
  });
  const where = mode === 'transparent' ? ['nsenter', '-t', String(appPid), '-n', '-m'] : [];
  return { mode, pid: child.pid!, appPid, outboundPort, child, where, runs: [] };
}

/** Every weft run started, ready or not. */
const unitChildren = new Set<ChildProcess>();
const stopping = new Set<ChildProcess>();

function stopChild(child: ChildProcess): Promise<void> {
  stopping.add(child);
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 15_000).unref();
  });
}

/** Runs the client (CLIENT) where `where` says; returns what it printed. */
function client(where: string[], argv: string[]): unknown {
  const cmd = [...where, process.execPath, '-e', CLIENT, ...argv];
  const r = spawnSync(cmd[0], cmd.slice(1), { encoding: 'utf8', timeout: 120_000 });
  if (r.error || r.status !== 0) throw new Error(`client ${argv.join(' ')}: ${r.error?.message ?? r.stderr.trim()}`);
  return JSON.parse(r.stdout);
}

async function until(probe: () => unknown, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      probe();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`${what}: not working after ${timeoutMs / 1000} s: ${(err as Error).message}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** wrk -t1 run where `where` says (peers.ts's wrk, with a place to run it: nsenter into a unit). */
function wrkIn(where: string[], url: string, connections: number, seconds: number, headers: string[] = []): LoadResult {
  const cmd = [...where, requireTool('wrk'), '-t1', `-c${connections}`, `-d${seconds}s`, '--latency', ...headers.flatMap((h) => ['-H', h]), url];
  const res = spawnSync(cmd[0], cmd.slice(1), { encoding: 'utf8', timeout: (seconds + 30) * 1000 });
  const out = res.stdout ?? '';
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const pct = (p: string) => toMs(new RegExp(`\\s${p}%\\s+([\\d.]+)(us|ms|s)`).exec(out));
  const errors = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0) + Number(/Socket errors:.*?timeout (\d+)/.exec(out)?.[1] ?? 0);
  if (!rps) throw new Error(`wrk gave no result for ${url}: ${out} ${res.stderr}`);
  return { requests: Number(/(\d+) requests in/.exec(out)?.[1]), rps, p50ms: pct('50'), p99ms: pct('99'), errors };
}

function toMs(m: RegExpExecArray | null): number {
  if (!m) return NaN;
  const v = Number(m[1]);
  return m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : v;
}

if (require.main === module) {
  const run = process.argv.includes('--inner') ? inner() : Promise.resolve(outer());
  run.catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
