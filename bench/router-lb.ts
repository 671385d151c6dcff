// Router and load balancer micro-benchmark: ns per route match on a table of
// 50 virtual hosts × 5 routes, ns per pick of each load balancer with 10 and
// 100 endpoints, ns per request hash, the build time of each balancer (paid
// once per EDS update), and how many garbage collections ran during the timed
// picks (0 means the picks allocate nothing). Median of the rounds. Short by
// design (a few seconds on a busy 2-core machine):
//
//   node dist/bench/router-lb.js [--iterations 300000] [--rounds 5]
import { PerformanceObserver } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Endpoint, LbPolicy, Route, RouteTable, VirtualHost } from '../src/proxy/config/types';
import { requestHash } from '../src/proxy/router/hash';
import { CompiledRouteTable, type RequestInfo } from '../src/proxy/router/route-table';
import { createLoadBalancer, type LoadBalancer } from '../src/proxy/upstream/lb/load-balancer';
import { cluster, endpointSet, endpoints, locality, seeded } from '../test/proxy/lb/fixtures';
import { parseArgs } from './micro';

function route(name: string, match: Route['match']): Route {
  return {
    name,
    match,
    action: { kind: 'route', clusters: [{ name, weight: 1 }], totalWeight: 1, timeoutMs: 0, hashPolicies: [], mirrors: [] },
    requestHeadersToAdd: [],
    requestHeadersToRemove: [],
    responseHeadersToAdd: [],
    responseHeadersToRemove: [],
  };
}

/** 50 services the way the translator names them, 5 routes each, most specific first. */
function table(): RouteTable {
  const virtualHosts: VirtualHost[] = [];
  for (let i = 0; i < 50; i++) {
    const svc = `svc-${i}`;
    const m = (path: Route['match']['path'], headers: Route['match']['headers'] = []) => ({
      path,
      caseSensitive: true,
      headers,
      queryParams: [],
    });
    virtualHosts.push({
      name: svc,
      domains: [svc, `${svc}:8080`, `${svc}.default`, `${svc}.default:8080`, `${svc}.default.svc`, `${svc}.default.svc:8080`],
      routes: [
        route(`${svc}/health`, m({ kind: 'exact', value: '/healthz' })),
        route(`${svc}/canary`, m({ kind: 'pathSeparatedPrefix', value: '/api/v2' }, [{ name: 'x-canary', kind: 'exact', value: 'true', invert: false }])),
        route(`${svc}/v2`, m({ kind: 'pathSeparatedPrefix', value: '/api/v2' })),
        route(`${svc}/users`, m({ kind: 'regex', regex: /^(?:\/users\/[0-9]+)$/u })),
        route(`${svc}/all`, m({ kind: 'prefix', value: '/' })),
      ],
    });
  }
  return { name: 'outbound', virtualHosts };
}

function request(host: string, path: string, headers: Record<string, string> = {}): RequestInfo {
  const map = new Map(Object.entries(headers));
  return { method: 'GET', host, path, header: (name) => map.get(name) };
}

/** A mix over hosts and route positions: first, second, third, fourth (regex) and last route. */
const MIX: RequestInfo[] = [
  request('svc-3:8080', '/healthz'),
  request('svc-17:8080', '/api/v2/orders?limit=10', { 'x-canary': 'true' }),
  request('svc-42', '/api/v2/orders/7'),
  request('svc-8.default.svc:8080', '/users/12345'),
  request('svc-29:8080', '/static/app.js'),
  request('svc-49:9999', '/api/v1/items?page=2'),
  request('svc-0.default', '/users/42?fields=name'),
  request('svc-33:8080', '/'),
];

function measure(iterations: number, rounds: number, body: (n: number) => number): number {
  body(Math.min(iterations, 20_000)); // warm up
  const samples: number[] = [];
  let sink = 0;
  for (let r = 0; r < rounds; r++) {
    const start = process.hrtime.bigint();
    sink += body(iterations);
    samples.push(Number(process.hrtime.bigint() - start) / iterations);
  }
  if (sink === -1) console.log('unreachable');
  samples.sort((a, b) => a - b);
  return samples[samples.length >> 1];
}

function benchRouter(iterations: number, rounds: number): void {
  const t = new CompiledRouteTable(table());
  for (const req of MIX) if (!t.match(req)) throw new Error(`no route for ${req.host}${req.path}`);
  const mix = measure(iterations, rounds, (n) => {
    let found = 0;
    for (let i = 0; i < n; i++) if (t.match(MIX[i & 7]) !== undefined) found++;
    return found;
  });
  const first = MIX[0];
  const best = measure(iterations, rounds, (n) => {
    let found = 0;
    for (let i = 0; i < n; i++) if (t.match(first) !== undefined) found++;
    return found;
  });
  const last = MIX[4];
  const worst = measure(iterations, rounds, (n) => {
    let found = 0;
    for (let i = 0; i < n; i++) if (t.match(last) !== undefined) found++;
    return found;
  });
  const hashReq = request('svc-1', '/', { 'x-user': 'alice' });
  const policies = [{ kind: 'header' as const, name: 'x-user', terminal: true }];
  const hash = measure(iterations, rounds, (n) => {
    let acc = 0;
    for (let i = 0; i < n; i++) acc ^= requestHash(policies, hashReq, '10.0.0.1') ?? 0;
    return acc;
  });
  console.log('router (50 virtual hosts × 5 routes)');
  console.log(`  match, mix of 8 requests     ${mix.toFixed(0).padStart(5)} ns`);
  console.log(`  match, exact host, 1st route ${best.toFixed(0).padStart(5)} ns`);
  console.log(`  match, 5th route (4 misses)  ${worst.toFixed(0).padStart(5)} ns`);
  console.log(`  requestHash, one header      ${hash.toFixed(0).padStart(5)} ns`);
}

const POLICIES: LbPolicy[] = ['ROUND_ROBIN', 'LEAST_REQUEST', 'RANDOM', 'RING_HASH', 'MAGLEV'];

// A full collection before the timed picks empties the young generation, so a
// collection during them can only come from what they allocate. GC entries
// arrive asynchronously: keep their start times, wait a little, then count
// those inside the timed window.
setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;
const gcStarts: number[] = [];
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) gcStarts.push(entry.startTime);
}).observe({ entryTypes: ['gc'] });
const settle = () => new Promise((resolve) => setTimeout(resolve, 20));

async function gcsDuring(work: () => void): Promise<number> {
  collectGarbage();
  await settle();
  const from = performance.now();
  work();
  const to = performance.now();
  await settle();
  return gcStarts.filter((t) => t >= from && t <= to).length;
}

async function benchLb(iterations: number, rounds: number): Promise<void> {
  console.log('load balancers: ns per pick (build time) [GCs during the timed picks]');
  for (const policy of POLICIES) {
    const cells: string[] = [];
    for (const n of [10, 100]) {
      // Weights 1..4 so weighted paths are exercised; the engine's load map for LEAST_REQUEST.
      const eps: Endpoint[] = endpoints(n).map((e, i) => ({ ...e, weight: 1 + (i % 4) }));
      const load = new Map(eps.map((e, i) => [e.key, i % 7]));
      const set = endpointSet(locality(eps));
      const options = { random: seeded(n), activeRequests: (e: Endpoint) => load.get(e.key) ?? 0 };
      let lb: LoadBalancer | undefined;
      const builds: number[] = [];
      for (let i = 0; i < 5; i++) {
        const start = process.hrtime.bigint();
        lb = createLoadBalancer(cluster(policy), set, options);
        builds.push(Number(process.hrtime.bigint() - start) / 1e6);
      }
      const buildMs = builds.sort((a, b) => a - b)[2];
      const balancer = lb!;
      // Contexts made up front, as the engine makes one per request: the loop itself allocates nothing.
      const contexts = Array.from({ length: 1024 }, (_, i) => ({ hash: Math.imul(i + 1, 0x9e3779b1) >>> 0 }));
      // Warm-up: the timed picks run optimized code.
      measure(20_000, 1, (count) => {
        let acc = 0;
        for (let i = 0; i < count; i++) acc = (acc + balancer.pick(contexts[i & 1023])!.port) | 0;
        return acc;
      });
      let ns = 0;
      const gcs = await gcsDuring(() => {
        ns = measure(iterations, rounds, (count) => {
          let acc = 0;
          for (let i = 0; i < count; i++) acc = (acc + balancer.pick(contexts[i & 1023])!.port) | 0;
          return acc;
        });
      });
      cells.push(`${n} endpoints ${ns.toFixed(0).padStart(4)} ns (${buildMs.toFixed(2)} ms) [${gcs}]`);
    }
    console.log(`  ${policy.padEnd(14)} ${cells.join('   ')}`);
  }
}

async function main(): Promise<void> {
  const { iterations, rounds } = parseArgs(process.argv.slice(2), { iterations: 300_000, rounds: 5 });
  console.log(`node ${process.version}, ${iterations} iterations × ${rounds} rounds, median`);
  benchRouter(iterations, rounds);
  await benchLb(iterations, rounds);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
