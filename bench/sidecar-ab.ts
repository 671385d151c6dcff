// Two (or more) builds of weft proxy against HAProxy, in one run: the same
// upstream and control plane, the same load into each in turn, rounds
// interleaved so a busy moment of the shared machine falls on all of them.
// Reports user and system CPU per request (from /proc) and the median over
// rounds: what an optimisation changed, measured before and after side by
// side rather than in two runs minutes apart.
//
//   node dist/bench/sidecar-ab.js [--protocol http1|http1-close|h2|grpc] [--rounds 8] [--seconds 4] [--gc] [--node-flags '<flags>'] <name>=<checkout> ...
//
// http1 (default): nginx upstream, wrk -t1 -c32. http1-close: the same with
// `Connection: close`, a new downstream connection per request. h2: nginx h2c upstream,
// h2load -c32 -m10, HAProxy in h2 mode. grpc: a grpc-js unary upstream,
// h2load -c32 -m10 POSTing a 100-byte gRPC message, HAProxy in h2 mode.
//
// --gc: each weft build runs with node's --trace-gc-nvp, and the report adds
// its young-generation collections per 1000 requests, the bytes each one
// promoted to the old generation, and GC pause per request (what showed that
// a call's objects were being promoted: BENCHMARKS.md, issue 15).
//
// A checkout is a directory with bin/weft.js and its dist built, e.g. a git
// worktree of the commit before: `git worktree add /tmp/base <rev> && ln -s
// $PWD/node_modules /tmp/base/ && (cd /tmp/base && npx tsc -p tsconfig.build.json)`.
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  arg,
  freePort,
  GRPC_PATH,
  grpcFrame,
  h2load,
  median,
  machineBusyMs,
  procCpuSplitMs,
  requireTool,
  startGrpcUpstream,
  startH2Upstream,
  startHaproxy,
  startNginxUpstream,
  startWeftControl,
  startWeftProxy,
  tempDir,
  treeCpuMs,
  wrk,
  type LoadResult,
  type Peer,
  upstreamServiceYaml,
} from './peers';

const protocol = arg('protocol', 'http1');
const rounds = Number(arg('rounds', '8'));
const seconds = Number(arg('seconds', '4'));
const builds = process.argv.slice(2).filter((a) => a.includes('=') && !a.startsWith('--'));
const traceGc = process.argv.includes('--gc');
const nodeFlags = arg('node-flags', '').split(' ').filter(Boolean);

/** What --trace-gc-nvp printed since the last reset: scavenges, bytes they promoted, pause of every collection. */
class GcTally {
  scavenges = 0;
  promotedBytes = 0;
  pauseMs = 0;
  private partial = '';

  read(text: string): void {
    const lines = (this.partial + text).split('\n');
    this.partial = lines.pop()!;
    for (const line of lines) {
      const pause = /\bpause=([\d.]+)/.exec(line);
      if (!pause) continue;
      this.pauseMs += Number(pause[1]);
      if (!/\bgc=s\b/.test(line)) continue;
      this.scavenges++;
      this.promotedBytes += Number(/\bpromoted=(\d+)/.exec(line)?.[1] ?? 0);
    }
  }

  reset(): void {
    this.scavenges = this.promotedBytes = this.pauseMs = 0;
  }
}

interface Target {
  name: string;
  pid: number;
  url: string;
  /** Requests name the service (weft routes by it; HAProxy has one backend). */
  viaWeft: boolean;
  samples: { userUs: number; systemUs: number; othersUs: number; machineUs: number; rps: number; p50ms: number; p99ms: number; scavengesPer1000: number; promotedKbPerScavenge: number; gcUsPerRequest: number }[];
  gc?: GcTally;
}

/** What the upstream speaks, the service weft routes to it, and the load each target gets. */
interface Setup {
  upstreamPort: number;
  haproxyMode: 'http' | 'h2';
  service: string;
  /** The load on `url`; `viaWeft`: the request names the service (weft routes by it). */
  load(url: string, viaWeft: boolean, secs: number): LoadResult;
  describe: string;
}

async function startUpstream(dir: string, peers: Peer[]): Promise<Setup> {
  const port = await freePort();
  if (protocol === 'http1' || protocol === 'http1-close') {
    peers.push(await startNginxUpstream(dir, port, 100));
    const close = protocol === 'http1-close' ? ['Connection: close'] : [];
    return {
      upstreamPort: port,
      haproxyMode: 'http',
      service: upstreamServiceYaml(port),
      load: (url, viaWeft, secs) => wrk(url, 32, secs, [...close, ...(viaWeft ? ['Host: upstream'] : [])]),
      describe: `wrk -t1 -c32${close.length ? ', a connection per request' : ''}, 100-byte responses`,
    };
  }
  requireTool('h2load');
  if (protocol === 'h2') {
    peers.push(await startH2Upstream(dir, port, 100));
    return { upstreamPort: port, haproxyMode: 'h2', service: upstreamServiceYaml(port, { name: 'upstream-h2', port: 81, protocol: 'http2' }), load: (url, viaWeft, secs) => h2load(url, 32, 10, secs, viaWeft ? [':authority: upstream-h2'] : []), describe: 'h2load -c32 -m10, h2c, 100-byte responses' };
  }
  if (protocol !== 'grpc') throw new Error(`--protocol ${protocol}: http1, http1-close, h2 or grpc`);
  peers.push(await startGrpcUpstream(port));
  const message = path.join(dir, 'grpc-request.bin');
  fs.writeFileSync(message, grpcFrame(Buffer.alloc(100, 0x61)));
  const headers = ['content-type: application/grpc', 'te: trailers'];
  return {
    upstreamPort: port,
    haproxyMode: 'h2',
    service: upstreamServiceYaml(port, { name: 'upstream-grpc', port: 82, protocol: 'grpc' }),
    load: (url, viaWeft, secs) => h2load(url + GRPC_PATH.slice(1), 32, 10, secs, [...headers, ...(viaWeft ? [':authority: upstream-grpc'] : [])], message),
    describe: 'h2load -c32 -m10, gRPC unary, 100-byte messages',
  };
}

async function main(): Promise<void> {
  if (builds.length === 0) throw new Error('name one or more builds: <name>=<checkout directory>');
  for (const tool of ['nginx', 'haproxy', 'wrk']) requireTool(tool);
  const dir = tempDir('weft-bench-ab-');
  const peers: Peer[] = [];
  try {
    const setup = await startUpstream(dir, peers);
    const [xdsPort, apiPort, haPort] = [await freePort(), await freePort(), await freePort()];
    peers.push(await startWeftControl(dir, setup.service, xdsPort, apiPort));
    const targets: Target[] = [];
    for (const build of builds) {
      const [name, checkout] = build.split('=');
      const [port, admin] = [await freePort(), await freePort()];
      const bin = path.resolve(checkout, 'bin/weft.js');
      if (!fs.existsSync(bin)) throw new Error(`${name}: no ${bin}`);
      const gc = traceGc ? new GcTally() : undefined;
      const flags = [...nodeFlags, ...(gc ? ['--trace-gc-nvp'] : [])];
      const node = flags.length ? { flags, onStdout: (text: string) => gc?.read(text) } : undefined;
      const proxy = await startWeftProxy(name, ['--xds', `127.0.0.1:${xdsPort}`, '--service', `bench-${name}`, '--outbound-port', String(port)], admin, bin, node);
      peers.push(proxy);
      targets.push({ name, pid: proxy.pid, url: `http://127.0.0.1:${port}/`, viaWeft: true, samples: [], gc });
    }
    const ha = await startHaproxy(dir, haPort, setup.upstreamPort, setup.haproxyMode);
    peers.push(ha);
    targets.push({ name: 'haproxy', pid: ha.pid, url: `http://127.0.0.1:${haPort}/`, viaWeft: false, samples: [] });
    for (const t of targets) setup.load(t.url, t.viaWeft, 2); // warm-up: pools filled, JIT warm
    for (let round = 0; round < rounds; round++) {
      for (const t of targets) {
        t.gc?.reset();
        const others = peers.filter((p) => p.pid !== t.pid);
        const othersBefore = others.reduce((sum, p) => sum + treeCpuMs(p.pid), 0);
        const machineBefore = machineBusyMs();
        const before = procCpuSplitMs(t.pid);
        const r = setup.load(t.url, t.viaWeft, seconds);
        const after = procCpuSplitMs(t.pid);
        const machineMs = machineBusyMs() - machineBefore;
        const othersMs = others.reduce((sum, p) => sum + treeCpuMs(p.pid), 0) - othersBefore;
        if (r.errors) throw new Error(`${t.name}: ${r.errors} errors`);
        // The load ran synchronously: what the proxy printed meanwhile is read now.
        if (t.gc) await new Promise((resolve) => setTimeout(resolve, 200));
        const per = (ms: number) => (ms * 1000) / r.requests!;
        const gc = t.gc ?? { scavenges: NaN, promotedBytes: NaN, pauseMs: NaN };
        t.samples.push({
          userUs: per(after.userMs - before.userMs),
          systemUs: per(after.systemMs - before.systemMs),
          othersUs: per(othersMs),
          machineUs: per(machineMs),
          rps: r.rps,
          p50ms: r.p50ms,
          p99ms: r.p99ms,
          scavengesPer1000: (gc.scavenges * 1000) / r.requests!,
          promotedKbPerScavenge: gc.scavenges > 0 ? gc.promotedBytes / gc.scavenges / 1024 : 0,
          gcUsPerRequest: per(gc.pauseMs),
        });
      }
    }
    const haTotal = median(targets[targets.length - 1].samples.map((s) => s.userUs + s.systemUs));
    console.log(`medians of ${rounds} rounds of ${seconds} s (${setup.describe}):`);
    for (const t of targets) {
      const m = (k: keyof Target['samples'][number]) => median(t.samples.map((s) => s[k]));
      const total = median(t.samples.map((s) => s.userUs + s.systemUs));
      const gc = t.gc ? `  gc: ${m('scavengesPer1000').toFixed(2)} scavenges/1000 req, ${m('promotedKbPerScavenge').toFixed(0)} KB promoted each, ${m('gcUsPerRequest').toFixed(1)} µs/req paused` : '';
      console.log(
        `${t.name.padEnd(10)} cpu ${total.toFixed(1).padStart(5)} µs/req (user ${m('userUs').toFixed(1)}, system ${m('systemUs').toFixed(1)})  ${(total / haTotal).toFixed(2)}× haproxy  ${m('rps').toFixed(0).padStart(6)} req/s  p50 ${m('p50ms').toFixed(2)} ms  p99 ${Number.isNaN(m('p99ms')) ? '-' : m('p99ms').toFixed(2)} ms  beside it: the bench's other processes ${m('othersUs').toFixed(1)}, the machine ${m('machineUs').toFixed(1)} µs/req${gc}`,
      );
    }
  } finally {
    for (const p of peers.reverse()) await p.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
