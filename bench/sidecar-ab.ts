// Two (or more) builds of weft proxy against HAProxy on the HTTP/1.1 path, in
// one run: the same nginx upstream and control plane, wrk -t1 -c32 into each
// in turn, rounds interleaved so a busy moment of the shared machine falls on
// all of them. Reports user and system CPU per request (from /proc) and the
// median over rounds: what an optimisation changed, measured before and after
// side by side rather than in two runs minutes apart.
//
//   node dist/bench/sidecar-ab.js [--rounds 8] [--seconds 4] <name>=<checkout> ...
//
// A checkout is a directory with bin/weft.js and its dist built, e.g. a git
// worktree of the commit before: `git worktree add /tmp/base <rev> && ln -s
// $PWD/node_modules /tmp/base/ && (cd /tmp/base && npx tsc -p tsconfig.build.json)`.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { arg, freePort, procCpuSplitMs, requireTool, startHaproxy, startUpstreamMesh, startWeftProxy, tempDir, wrk, type Peer } from './peers';

const rounds = Number(arg('rounds', '8'));
const seconds = Number(arg('seconds', '4'));
const builds = process.argv.slice(2).filter((a) => a.includes('=') && !a.startsWith('--'));

interface Target {
  name: string;
  pid: number;
  url: string;
  headers: string[];
  samples: { userUs: number; systemUs: number; rps: number; p50ms: number; p99ms: number }[];
}

const median = (xs: number[]) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  if (builds.length === 0) throw new Error('name one or more builds: <name>=<checkout directory>');
  for (const tool of ['nginx', 'haproxy', 'wrk']) requireTool(tool);
  const dir = tempDir('weft-bench-ab-');
  const peers: Peer[] = [];
  try {
    const { upstreamPort: upPort, xdsPort } = await startUpstreamMesh(dir, 100, peers);
    const haPort = await freePort();
    const targets: Target[] = [];
    for (const build of builds) {
      const [name, checkout] = build.split('=');
      const [port, admin] = [await freePort(), await freePort()];
      const bin = path.resolve(checkout, 'bin/weft.js');
      if (!fs.existsSync(bin)) throw new Error(`${name}: no ${bin}`);
      const proxy = await startWeftProxy(name, ['--xds', `127.0.0.1:${xdsPort}`, '--service', `bench-${name}`, '--outbound-port', String(port)], admin, bin);
      peers.push(proxy);
      targets.push({ name, pid: proxy.pid, url: `http://127.0.0.1:${port}/`, headers: ['Host: upstream'], samples: [] });
    }
    const ha = await startHaproxy(dir, haPort, upPort, 'http');
    peers.push(ha);
    targets.push({ name: 'haproxy', pid: ha.pid, url: `http://127.0.0.1:${haPort}/`, headers: [], samples: [] });
    for (const t of targets) wrk(t.url, 32, 2, t.headers); // warm-up: pools filled, JIT warm
    for (let round = 0; round < rounds; round++) {
      for (const t of targets) {
        const before = procCpuSplitMs(t.pid);
        const r = wrk(t.url, 32, seconds, t.headers);
        const after = procCpuSplitMs(t.pid);
        if (r.errors) throw new Error(`${t.name}: ${r.errors} errors`);
        const per = (ms: number) => (ms * 1000) / r.requests!;
        t.samples.push({ userUs: per(after.userMs - before.userMs), systemUs: per(after.systemMs - before.systemMs), rps: r.rps, p50ms: r.p50ms, p99ms: r.p99ms });
      }
    }
    const haTotal = median(targets[targets.length - 1].samples.map((s) => s.userUs + s.systemUs));
    console.log(`medians of ${rounds} rounds of ${seconds} s (wrk -t1 -c32, 100-byte responses):`);
    for (const t of targets) {
      const m = (k: keyof Target['samples'][number]) => median(t.samples.map((s) => s[k]));
      const total = median(t.samples.map((s) => s.userUs + s.systemUs));
      console.log(
        `${t.name.padEnd(10)} cpu ${total.toFixed(1).padStart(5)} µs/req (user ${m('userUs').toFixed(1)}, system ${m('systemUs').toFixed(1)})  ${(total / haTotal).toFixed(2)}× haproxy  ${m('rps').toFixed(0).padStart(6)} req/s  p50 ${m('p50ms').toFixed(2)} ms  p99 ${m('p99ms').toFixed(2)} ms`,
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
