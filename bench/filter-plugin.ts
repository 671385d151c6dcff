// What an http-filter Plugin costs on the HTTP/1.1 hot path: two weft proxy
// processes in one run, the same nginx upstream behind both (outbound
// listener, Host routing), one with no filter and one whose service has the
// trivial TypeScript filter examples/filters/add-header (a request header
// set on the way up, a response header on the way back). wrk -t1 -c32
// against each in turn, rounds interleaved after a warm-up; the figure is
// each sidecar's CPU time per request from /proc (user + system), which holds
// on a shared machine where requests/s does not.
//
//   node dist/bench/filter-plugin.js [--seconds 4] [--rounds 3] [--connections 32]
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { arg, freePort, procCpuMs, requireTool, startNginxUpstream, startWeftControl, startWeftProxy, tempDir, wrk, type Peer } from './peers';

const seconds = Number(arg('seconds', '4'));
const rounds = Number(arg('rounds', '3'));
const connections = Number(arg('connections', '32'));
const MODULE = path.resolve(__dirname, '../examples/filters/add-header.js');

function service(name: string, extra = ''): string {
  return `apiVersion: weft.dev/v1
kind: Service
metadata: { name: ${name} }
spec:
  ports: [{ name: http, port: 80, protocol: http }]
${extra}---
`;
}

async function main(): Promise<void> {
  for (const tool of ['nginx', 'wrk']) requireTool(tool);
  if (!fs.existsSync(MODULE)) throw new Error(`${MODULE} is missing: build first (npx tsc -p tsconfig.build.json)`);
  const dir = tempDir('weft-bench-filter-');
  const peers: Peer[] = [];
  try {
    const [upPort, xdsPort, apiPort] = await Promise.all([freePort(), freePort(), freePort()]);
    peers.push(await startNginxUpstream(dir, upPort, 64));
    const mesh =
      service('upstream', `  endpoints: [{ address: 127.0.0.1, port: ${upPort} }]\n`) +
      service('plain') +
      service('filtered') +
      `apiVersion: weft.dev/v1
kind: Plugin
metadata: { name: tagger }
spec:
  type: http-filter
  module: ${MODULE}
  direction: outbound
  config: { global: { tag: bench } }
  targetRefs: [{ name: filtered }]
`;
    peers.push(await startWeftControl(dir, mesh, xdsPort, apiPort));
    const proxies: { name: string; port: number; pid: number }[] = [];
    for (const name of ['plain', 'filtered']) {
      const [port, adminPort] = [await freePort(), await freePort()];
      const peer = await startWeftProxy(`weft-${name}`, ['--xds', `127.0.0.1:${xdsPort}`, '--service', name, '--outbound-port', String(port), '--inbound-port', String(await freePort())], adminPort);
      peers.push(peer);
      proxies.push({ name: name === 'plain' ? 'no filter' : 'add-header filter', port, pid: peer.pid });
    }
    // The filter must be in place before anything is measured.
    const tagged = await new Promise<unknown>((resolve, reject) =>
      http.get({ host: '127.0.0.1', port: proxies[1].port, path: '/', headers: { host: 'upstream' } }, (res) => {
        res.resume();
        resolve(res.headers['x-filtered-by']);
      }).on('error', reject),
    );
    if (tagged !== 'bench') throw new Error('the filtered sidecar does not run the filter');
    const load = (port: number, secs: number) => wrk(`http://127.0.0.1:${port}/`, connections, secs, ['Host: upstream']);
    for (const p of proxies) load(p.port, 1); // warm-up: connections made, JIT warm
    const perRequest = new Map<string, number[]>(proxies.map((p) => [p.name, []]));
    for (let round = 1; round <= rounds; round++) {
      for (const p of proxies) {
        const before = procCpuMs(p.pid);
        const r = load(p.port, seconds);
        const us = ((procCpuMs(p.pid) - before) * 1000) / (r.requests ?? r.rps * seconds);
        perRequest.get(p.name)!.push(us);
        console.log(`round ${round}  ${p.name.padEnd(18)} ${r.rps.toFixed(0).padStart(7)} req/s  p99 ${r.p99ms.toFixed(2)} ms  ${us.toFixed(1)} µs CPU/request${r.errors ? `  ${r.errors} errors` : ''}`);
      }
    }
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const base = mean(perRequest.get(proxies[0].name)!);
    const with_ = mean(perRequest.get(proxies[1].name)!);
    console.log(`\nmean of ${rounds} rounds: no filter ${base.toFixed(1)} µs, add-header filter ${with_.toFixed(1)} µs CPU/request: +${(with_ - base).toFixed(1)} µs (${(with_ / base).toFixed(2)}×)`);
  } finally {
    for (const p of peers.reverse()) await p.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
