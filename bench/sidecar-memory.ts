// What an idle sidecar costs in memory, and how long one takes to start:
// `weft proxy` against a --dev control plane with one upstream service,
// measured from /proc: RSS once ready and settled, RSS after a load, and
// the time from spawn to admin /ready (what `weft run` of a batch job waits
// for before its program starts), and RSS once the traffic has stopped long
// enough for the sidecar to give its young generation back (~10 s). A `weft
// run` of a client-only program idling beside it (the sidecar runs in that
// process). A bare `node` idling (the floor of any Node process here) and
// HAProxy doing the same proxying. Beside RSS, its anonymous part: RSS less
// the pages of the binary and libraries, which the processes share.
//
// The floor beside them: a node that loads only what weft's xDS client is
// built on (grpc-js; then protobufjs and the sidecar's Envoy proto set),
// which no change to weft's own code can go below. --node-flags: flags for
// the weft proxy's node (e.g. --jitless), to see what trading CPU buys.
//
//   npx tsc -p tsconfig.build.json && node dist/bench/sidecar-memory.js [--starts 5] [--seconds 5] [--node-flags '<flags>']
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { anonMiB, arg, freePort, median, requireTool, ROOT, rssMiB, startHaproxy, startUpstreamMesh, tempDir, waitForAdminReady, wrk, type Peer } from './peers';

const starts = Number(arg('starts', '5'));
const seconds = Number(arg('seconds', '5'));
const nodeFlags = arg('node-flags', '').split(' ').filter(Boolean);
const BIN = path.join(ROOT, 'bin/weft.js');

/** Idle node processes that load only the libraries under weft's xDS client: what each weighs before weft's code. */
const FLOORS: { name: string; script: string }[] = [
  { name: 'bare node', script: '' },
  { name: 'node + grpc-js', script: "require('@grpc/grpc-js');" },
  { name: 'node + grpc-js + the sidecar proto set', script: "require('@grpc/grpc-js'); globalThis.root = require('./dist/src/xds/sidecar-protos').sidecarRoot();" },
];

/**
 * RSS and its anonymous part of an idle node that ran `script` (from the checkout, so it resolves
 * its packages). One that loads something holds its young generation at its initial size, as
 * `weft proxy` holds its own (src/proxy/young-generation.ts): else the proto set's parse alone
 * grows it to 8 MiB semi-spaces.
 */
async function floorMiB(script: string): Promise<{ rss: number; anon: number }> {
  const hold = script ? "require('v8').setFlagsFromString('--semi-space-growth-factor=1');" : '';
  const child = spawn(process.execPath, ['-e', `${hold} ${script} setInterval(() => {}, 1000)`], { cwd: ROOT, stdio: 'ignore' });
  const exited = new Promise((r) => child.once('exit', r));
  try {
    const rss = await settledRss(child.pid!);
    if (child.exitCode !== null) throw new Error(`the floor process "${script}" exited with ${child.exitCode}`);
    return { rss, anon: anonMiB(child.pid!) };
  } finally {
    child.kill();
    await exited;
  }
}

/** Waits until the RSS of `pid` stops moving (±0.5 MiB over 1 s), at most 10 s; returns it. */
async function settledRss(pid: number): Promise<number> {
  let last = rssMiB(pid);
  for (let i = 0; i < 20; i++) {
    await new Promise((r) => setTimeout(r, 500));
    const now = rssMiB(pid);
    if (Math.abs(now - last) < 0.5 && i >= 2) return now;
    last = now;
  }
  return last;
}

/** Waits (at most `maxMs`) until the RSS of `pid` is below `belowMiB`; returns it and how long that took. */
async function rssDropsBelow(pid: number, belowMiB: number, maxMs: number): Promise<{ rss: number; ms: number }> {
  const t0 = performance.now();
  for (;;) {
    const rss = rssMiB(pid);
    if (rss < belowMiB || performance.now() - t0 > maxMs) return { rss, ms: performance.now() - t0 };
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function main(): Promise<void> {
  for (const tool of ['nginx', 'wrk', 'haproxy']) requireTool(tool);
  const dir = tempDir('weft-bench-mem-');
  const peers: Peer[] = [];
  try {
    const { upstreamPort: upPort, xdsPort } = await startUpstreamMesh(dir, 100, peers);
    const haPort = await freePort();

    const floors: { name: string; rss: number; anon: number }[] = [];
    for (const floor of FLOORS) floors.push({ name: floor.name, ...(await floorMiB(floor.script)) });
    const { rss: bareRss, anon: bareAnon } = floors[0];

    const startMs: number[] = [];
    const idle: number[] = [];
    const idleAnon: number[] = [];
    let loaded = 0;
    let loadedIdle = 0;
    let givenBack = { rss: 0, ms: 0 };
    for (let i = 0; i < starts; i++) {
      const [port, adminPort] = [await freePort(), await freePort()];
      const t0 = performance.now();
      const child = spawn(process.execPath, [...nodeFlags, BIN, 'proxy', '--xds', `127.0.0.1:${xdsPort}`, '--service', 'bench-client', '--outbound-port', String(port), '--admin-port', String(adminPort), '--log-level', 'warn'], { stdio: 'ignore' });
      try {
        await waitForAdminReady('weft proxy', adminPort);
        startMs.push(performance.now() - t0);
        idle.push(await settledRss(child.pid!));
        idleAnon.push(anonMiB(child.pid!));
        if (i === starts - 1) {
          wrk(`http://127.0.0.1:${port}/`, 32, seconds, ['Host: upstream']);
          loaded = rssMiB(child.pid!);
          loadedIdle = await settledRss(child.pid!);
          givenBack = await rssDropsBelow(child.pid!, loadedIdle - 10, 30_000);
        }
      } finally {
        child.kill('SIGTERM');
        await new Promise((r) => child.once('exit', r));
      }
    }
    // `weft run` of a client-only program: its sidecar in the weft run process.
    const runAdmin = await freePort();
    const run = spawn(process.execPath, [BIN, 'run', '--xds', `127.0.0.1:${xdsPort}`, '--admin-port', String(runAdmin), '--log-level', 'warn', '--', 'sleep', '600'], { stdio: 'ignore' });
    let runIdle = 0;
    let runAnon = 0;
    try {
      await waitForAdminReady('weft run', runAdmin);
      runIdle = await settledRss(run.pid!);
      runAnon = anonMiB(run.pid!);
    } finally {
      run.kill('SIGTERM');
      await new Promise((r) => run.once('exit', r));
    }

    const ha = await startHaproxy(dir, haPort, upPort, 'http');
    peers.push(ha);
    const haIdle = await settledRss(ha.pid);
    const haAnon = anonMiB(ha.pid);
    wrk(`http://127.0.0.1:${haPort}/`, 32, seconds);
    const haLoaded = rssMiB(ha.pid);

    const f = (n: number) => n.toFixed(1);
    console.log(`weft proxy start → ready (median of ${starts}): ${f(median(startMs))} ms (min ${f(Math.min(...startMs))}, max ${f(Math.max(...startMs))})`);
    console.log(`RSS MiB: bare node ${f(bareRss)}; weft proxy idle ${f(median(idle))} (median of ${starts}; ${idle.map(f).join(', ')}), at the end of ${seconds} s of wrk -c32 ${f(loaded)}, settled after ${f(loadedIdle)}, ${f(givenBack.rss)} ${f(givenBack.ms / 1000)} s later`);
    console.log(`RSS MiB: weft run (client-only, sidecar in-process) idle ${f(runIdle)}`);
    console.log(`RSS MiB: haproxy idle ${f(haIdle)}, after load ${f(haLoaded)}`);
    console.log(`weft idle over bare node: +${f(median(idle) - bareRss)} MiB${nodeFlags.length ? ` (weft proxy's node flags: ${nodeFlags.join(' ')})` : ''}`);
    console.log(`floor, RSS MiB (anonymous): ${floors.map((x) => `${x.name} ${f(x.rss)} (${f(x.anon)})`).join('; ')}`);
    // What one more process adds to a host (the binary's pages are shared by every process running it).
    console.log(`anonymous MiB (RssAnon) idle: bare node ${f(bareAnon)}; weft proxy ${f(median(idleAnon))}; weft run ${f(runAnon)}; haproxy ${f(haAnon)}`);
  } finally {
    for (const p of peers.reverse()) await p.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

void main().catch((err) => {
  console.error(err);
  process.exit(1);
});
