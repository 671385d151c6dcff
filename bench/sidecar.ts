// The sidecar against its peers, in one run: the same nginx upstream
// reached directly, through HAProxy (1 thread), nginx proxy_pass (1 worker)
// and one weft proxy process (outbound listener, Host routing, stats on).
// HTTP/1.1 with wrk -t1 -c32; HTTP/2 (h2c) with h2load; gRPC (h2load
// POSTing a gRPC-framed message to a grpc-js server, HAProxy in h2 mode as
// the peer); TCP; two hops (client sidecar → server sidecar → app); and the
// proxy's RSS.
//
//   node dist/bench/sidecar.js [--seconds 10] [--connections 32] [--only http1,h2,grpc,tcp,twohop] [--retries | --resilience] [--tracing <ratio>] [--authz]
//
// --authz gives the two-hop server an AuthorizationPolicy its requests pass (a DENY rule on a
// path and an ALLOW rule on path and method): what RBAC costs a request on the inbound.
//
// --retries gives the upstream services a TrafficPolicy with retries (nothing fails, so
// nothing is retried): what a retry policy costs a request that succeeds.
// --resilience gives them every resilience policy at once, none of which fires: retries
// with a budget, circuit breakers, outlier detection, a stream idle timeout, a fault
// filter at 0 %, and (on the two-hop server) a local rate limit that never trips.
// --tracing <ratio> adds a second client sidecar with tracing on (`--otlp-endpoint` to a
// local sink that accepts OTLP and discards it, `--trace-sample <ratio>`); the http1 case
// then runs only the plain client sidecar and the tracing one (a warm-up and a run each).
//
//   node dist/bench/sidecar.js --observe [--seconds 8]
//
// --observe measures what observability costs on the HTTP/1.1 hot path instead: four
// sidecar processes side by side — --no-metrics --recent-requests 0 (nothing), metrics
// only (--recent-requests 0), metrics and the ring of recent requests (the default), and
// those plus --access-log /dev/null — run interleaved, twice each, after a short warm-up.
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  arg,
  freePort,
  GRPC_PATH,
  grpcFrame,
  h2load,
  procCpuMs,
  rssMiB,
  startGrpcUpstream,
  startH2Upstream,
  startHaproxy,
  startNginxProxy,
  startNginxUpstream,
  startWeftControl,
  startWeftProxy,
  tempDir,
  waitForPort,
  wrk,
  requireTool,
  type LoadResult,
  type Peer,
} from './peers';

const seconds = Number(arg('seconds', '10'));
const connections = Number(arg('connections', '32'));
const only = new Set(arg('only', 'http1,h2,grpc,tcp,twohop').split(','));
const withRetries = process.argv.includes('--retries');
const withResilience = process.argv.includes('--resilience');
const withAuthz = process.argv.includes('--authz');
const AUTHZ = `---
apiVersion: weft.dev/v1
kind: AuthorizationPolicy
metadata: { name: server-deny }
spec:
  targetRef: { name: server }
  action: DENY
  rules: [{ to: [{ operation: { paths: [/admin/*] } }] }]
---
apiVersion: weft.dev/v1
kind: AuthorizationPolicy
metadata: { name: server-allow }
spec:
  targetRef: { name: server }
  action: ALLOW
  rules: [{ to: [{ operation: { methods: [GET, HEAD], paths: ["/*"] } }] }]
`;
const tracingRatio = process.argv.includes('--tracing') ? Number(arg('tracing', '1')) : undefined;
const BODY_BYTES = 100;

interface Row {
  group: string;
  name: string;
  result: LoadResult;
  rssMiB?: number;
  /** CPU time (user + system, /proc) of the proxy process(es) under test per completed request, in µs. */
  cpuUsPerRequest?: number;
}

function line(r: Row, peer?: Row): string {
  const ratio = (a: number, b: number) => (b ? (a / b).toFixed(2) : '-');
  const rel = peer ? ` | ${ratio(r.result.rps, peer.result.rps)}× rps, ${ratio(r.result.p50ms, peer.result.p50ms)}× p50, ${ratio(r.result.p99ms, peer.result.p99ms)}× p99 vs ${peer.name}` : '';
  const cpu = r.cpuUsPerRequest !== undefined ? `  cpu ${r.cpuUsPerRequest.toFixed(1)} µs/req` : '';
  const cpuRel = peer?.cpuUsPerRequest && r.cpuUsPerRequest !== undefined ? `, ${ratio(r.cpuUsPerRequest, peer.cpuUsPerRequest)}× cpu/req` : '';
  return `${r.group.padEnd(7)} ${r.name.padEnd(22)} ${r.result.rps.toFixed(0).padStart(8)} req/s  p50 ${r.result.p50ms.toFixed(3)} ms  p99 ${Number.isNaN(r.result.p99ms) ? '  -  ' : r.result.p99ms.toFixed(3)} ms  errors ${r.result.errors}${cpu}${r.rssMiB ? `  rss ${r.rssMiB.toFixed(0)} MiB` : ''}${rel}${cpuRel}`;
}

/** The tracing client (--tracing) calls only \`upstream\`: no TCP listener that would clash with the plain client's. */
const TRACED_SERVICE = `---
apiVersion: weft.dev/v1
kind: Service
metadata: { name: bench-traced }
spec:
  ports: [{ name: http, port: 80, protocol: http }]
  dependsOn: [{ name: upstream }]
`;

/** TrafficPolicies for --retries or --resilience. */
function policies(): string {
  const policy = (name: string, spec: string) => `---
apiVersion: weft.dev/v1
kind: TrafficPolicy
metadata: { name: ${name} }
spec:
  targetRef: { name: ${name} }
${spec}`;
  const retries = '  retries: { attempts: 2, retryOn: [5xx, reset, connect-failure], perTryTimeout: 1s }\n';
  if (!withResilience) return ['upstream', 'upstream-h2'].map((n) => policy(n, retries)).join('');
  const all =
    retries.replace(' }\n', ', budget: { percent: 20, minRetriesPerSecond: 10 } }\n') +
    '  connectionPool: { maxConnections: 4096, maxPendingRequests: 4096, maxRequests: 4096 }\n' +
    '  outlierDetection: { consecutive5xx: 5, interval: 10s, baseEjectionTime: 30s }\n' +
    '  timeouts: { request: 10s, streamIdle: 60s }\n' +
    '  fault: { abort: { httpStatus: 503, percent: 0 } }\n';
  return ['upstream', 'upstream-h2'].map((n) => policy(n, all)).join('') + policy('server', '  rateLimit: { local: { requests: 1000000000, per: 1s } }\n');
}

async function observeBench(): Promise<void> {
  for (const tool of ['nginx', 'wrk']) requireTool(tool);
  const dir = tempDir('weft-bench-');
  const peers: Peer[] = [];
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
    const variants: [name: string, flags: string[]][] = [
      ['no metrics', ['--no-metrics', '--recent-requests', '0']],
      ['metrics', ['--recent-requests', '0']],
      ['metrics + recent ring', []],
      ['metrics + ring + access log', ['--access-log', '/dev/null']],
    ];
    const proxies: { name: string; port: number }[] = [];
    for (const [name, flags] of variants) {
      const [port, adminPort] = [await freePort(), await freePort()];
      peers.push(await startWeftProxy(`weft-${proxies.length}`, ['--xds', `127.0.0.1:${xdsPort}`, '--service', 'bench-client', '--outbound-port', String(port), ...flags], adminPort));
      proxies.push({ name, port });
    }
    const load = (port: number, secs: number) => wrk(`http://127.0.0.1:${port}/`, connections, secs, ['Host: upstream']);
    for (const p of proxies) load(p.port, 2); // warm-up: connections made, JIT warm
    const results = new Map<string, LoadResult[]>(proxies.map((p) => [p.name, []]));
    for (let round = 1; round <= 2; round++) {
      for (const p of proxies) {
        const r = load(p.port, seconds);
        results.get(p.name)!.push(r);
        console.log(line({ group: `round ${round}`, name: p.name, result: r }));
      }
    }
    const mean = (rs: LoadResult[], k: 'rps' | 'p50ms' | 'p99ms') => rs.reduce((n, r) => n + r[k], 0) / rs.length;
    const base = results.get(proxies[0].name)!;
    console.log('\nmean of 2 runs; ratios against no metrics:');
    for (const p of proxies) {
      const rs = results.get(p.name)!;
      console.log(
        `${p.name.padEnd(30)} ${mean(rs, 'rps').toFixed(0).padStart(7)} req/s  p50 ${mean(rs, 'p50ms').toFixed(3)} ms  p99 ${mean(rs, 'p99ms').toFixed(3)} ms  | ${(mean(rs, 'rps') / mean(base, 'rps')).toFixed(3)}× rps, ${(mean(rs, 'p99ms') / mean(base, 'p99ms')).toFixed(2)}× p99`,
      );
    }
  } finally {
    for (const p of peers.reverse()) await p.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  if (process.argv.includes('--observe')) return observeBench();
  for (const tool of ['nginx', 'haproxy', 'wrk', 'h2load']) requireTool(tool);
  const dir = tempDir('weft-bench-');
  const peers: Peer[] = [];
  const rows: Row[] = [];
  const stopAll = async () => {
    for (const p of peers.reverse()) await p.stop();
  };
  process.on('SIGINT', () => void stopAll().then(() => process.exit(130)));
  try {
    const [upPort, h2UpPort, haPort, haTcpPort, haH2Port, ngxPort, xdsPort, apiPort, outPort, admin1, inPort, admin2, out2Port, tcpPort, grpcUpPort, haGrpcPort] = await Promise.all(
      Array.from({ length: 16 }, () => freePort()),
    );
    peers.push(await startNginxUpstream(dir, upPort, BODY_BYTES));
    // An h2c upstream for the HTTP/2 case: the same nginx binary with `http2` on a second listener.
    peers.push(await startH2Upstream(dir, h2UpPort, BODY_BYTES));
    const haHttp = await startHaproxy(dir, haPort, upPort, 'http');
    const haTcp = await startHaproxy(dir, haTcpPort, upPort, 'tcp');
    const haH2 = await startHaproxy(dir, haH2Port, h2UpPort, 'h2');
    const ngxProxy = await startNginxProxy(dir, ngxPort, upPort);
    peers.push(haHttp, haTcp, haH2, ngxProxy);
    let haGrpc: Peer | undefined;
    if (only.has('grpc')) {
      peers.push(await startGrpcUpstream(grpcUpPort));
      haGrpc = await startHaproxy(dir, haGrpcPort, grpcUpPort, 'h2');
      peers.push(haGrpc);
    }

    const mesh = `apiVersion: weft.dev/v1
kind: Service
metadata: { name: upstream }
spec:
  ports: [{ name: http, port: 80, protocol: http }]
  endpoints: [{ address: 127.0.0.1, port: ${upPort} }]
---
apiVersion: weft.dev/v1
kind: Service
metadata: { name: upstream-h2 }
spec:
  ports: [{ name: h2, port: 81, protocol: http2 }]
  endpoints: [{ address: 127.0.0.1, port: ${h2UpPort} }]
---
apiVersion: weft.dev/v1
kind: Service
metadata: { name: upstream-grpc }
spec:
  ports: [{ name: grpc, port: 82, protocol: grpc }]
  endpoints: [{ address: 127.0.0.1, port: ${grpcUpPort} }]
---
apiVersion: weft.dev/v1
kind: Service
metadata: { name: upstream-tcp }
spec:
  ports: [{ name: tcp, port: ${tcpPort}, protocol: tcp }]
  endpoints: [{ address: 127.0.0.1, port: ${upPort} }]
---
apiVersion: weft.dev/v1
kind: Service
metadata: { name: server }
spec:
  ports: [{ name: http, port: 80, protocol: http }]
  endpoints: [{ address: 127.0.0.1, port: ${inPort} }]
  # It calls nothing: its sidecar binds no outbound TCP listener that would clash with the client's.
  dependsOn: []
${withRetries || withResilience ? policies() : ''}${tracingRatio !== undefined ? TRACED_SERVICE : ''}${withAuthz ? AUTHZ : ''}`;
    peers.push(await startWeftControl(dir, mesh, xdsPort, apiPort));
    const client = await startWeftProxy('weft-client', ['--xds', `127.0.0.1:${xdsPort}`, '--service', 'bench-client', '--outbound-port', String(outPort)], admin1);
    peers.push(client);
    const server = await startWeftProxy(
      'weft-server',
      ['--xds', `127.0.0.1:${xdsPort}`, '--service', 'server', '--inbound-port', String(inPort), '--app-port', String(upPort), '--outbound-port', String(out2Port)],
      admin2,
    );
    peers.push(server);
    let traced: Peer | undefined;
    let tracedPort = 0;
    if (tracingRatio !== undefined) {
      const [sinkPort, admin3] = await Promise.all([freePort(), freePort()]);
      tracedPort = await freePort();
      peers.push(await startOtlpSink(sinkPort));
      traced = await startWeftProxy(
        'weft-traced',
        ['--xds', `127.0.0.1:${xdsPort}`, '--service', 'bench-traced', '--outbound-port', String(tracedPort), '--otlp-endpoint', `http://127.0.0.1:${sinkPort}/v1/traces`, '--trace-sample', String(tracingRatio)],
        admin3,
      );
      peers.push(traced);
    }
    await waitForPort(tcpPort);
    const idleRss = rssMiB(client.pid);

    /** One measured load (after a warm-up run); `proxyPids`: the proxy processes whose CPU per request is reported (the first one's RSS too, when it is weft). */
    const run = (group: string, name: string, load: () => LoadResult, proxyPids: number[] = [], weftPid?: number): Row => {
      load(); // warm-up: connections made, JIT warm
      const cpuBefore = proxyPids.reduce((n, pid) => n + procCpuMs(pid), 0);
      const result = load();
      const cpuMs = proxyPids.reduce((n, pid) => n + procCpuMs(pid), 0) - cpuBefore;
      const cpuUsPerRequest = proxyPids.length > 0 && result.requests ? (cpuMs * 1000) / result.requests : undefined;
      const row: Row = { group, name, result, rssMiB: weftPid ? rssMiB(weftPid) : undefined, cpuUsPerRequest };
      rows.push(row);
      console.log(line(row));
      return row;
    };
    const w = (url: string, headers: string[] = []) => () => wrk(url, connections, seconds, headers);

    if (only.has('http1') && traced) {
      const plain = run('http1', 'weft', w(`http://127.0.0.1:${outPort}/`, ['Host: upstream']), [client.pid], client.pid);
      const withTracing = run('http1', `weft tracing ${tracingRatio}`, w(`http://127.0.0.1:${tracedPort}/`, ['Host: upstream']), [traced.pid], traced.pid);
      console.log('\n' + line(withTracing, plain) + '\n');
    } else if (only.has('http1')) {
      const direct = run('http1', 'direct', w(`http://127.0.0.1:${upPort}/`));
      const ha = run('http1', 'haproxy', w(`http://127.0.0.1:${haPort}/`), [haHttp.pid]);
      const ngx = run('http1', 'nginx proxy_pass', w(`http://127.0.0.1:${ngxPort}/`), [ngxProxy.pid]);
      const weft = run('http1', 'weft', w(`http://127.0.0.1:${outPort}/`, ['Host: upstream']), [client.pid], client.pid);
      console.log('\n' + [line(ha, direct), line(ngx, ha), line(weft, ha)].join('\n') + '\n');
    }
    if (only.has('twohop')) {
      const direct = rows.find((r) => r.name === 'direct') ?? run('http1', 'direct', w(`http://127.0.0.1:${upPort}/`));
      const two = run('twohop', 'weft → weft → app', w(`http://127.0.0.1:${outPort}/`, ['Host: server']), [client.pid, server.pid], client.pid);
      console.log(line(two, direct) + '\n');
    }
    if (only.has('tcp')) {
      const direct = run('tcp', 'direct', w(`http://127.0.0.1:${upPort}/`));
      const ha = run('tcp', 'haproxy (tcp mode)', w(`http://127.0.0.1:${haTcpPort}/`), [haTcp.pid]);
      const weft = run('tcp', 'weft (tcp listener)', w(`http://127.0.0.1:${tcpPort}/`), [client.pid], client.pid);
      console.log('\n' + [line(ha, direct), line(weft, ha)].join('\n') + '\n');
    }
    if (only.has('h2')) {
      const h = (url: string, headers: string[] = []) => () => h2load(url, connections, 10, seconds, headers);
      const direct = run('h2', 'direct', h(`http://127.0.0.1:${h2UpPort}/`));
      const ha = run('h2', 'haproxy', h(`http://127.0.0.1:${haH2Port}/`), [haH2.pid]);
      // h2load sends :authority from the URL; the weft listener routes by it, so name the service.
      const weft = run('h2', 'weft', h(`http://127.0.0.1:${outPort}/`, [':authority: upstream-h2']), [client.pid], client.pid);
      console.log('\n' + [line(ha, direct), line(weft, ha)].join('\n') + '\n');
    }
    if (only.has('grpc')) {
      // One unary call per request: a 5-byte gRPC frame header and a 100-byte message, answered in kind.
      const message = path.join(dir, 'grpc-request.bin');
      fs.writeFileSync(message, grpcFrame(Buffer.alloc(BODY_BYTES, 0x61)));
      const headers = ['content-type: application/grpc', 'te: trailers'];
      const g = (url: string, extra: string[] = []) => () => h2load(url, connections, 10, seconds, [...headers, ...extra], message);
      const direct = run('grpc', 'direct', g(`http://127.0.0.1:${grpcUpPort}${GRPC_PATH}`));
      const ha = run('grpc', 'haproxy', g(`http://127.0.0.1:${haGrpcPort}${GRPC_PATH}`), [haGrpc!.pid]);
      const weft = run('grpc', 'weft', g(`http://127.0.0.1:${outPort}${GRPC_PATH}`, [':authority: upstream-grpc']), [client.pid], client.pid);
      console.log('\n' + [line(ha, direct), line(weft, ha)].join('\n') + '\n');
    }
    const summary = { seconds, connections, bodyBytes: BODY_BYTES, weftRssIdleMiB: idleRss, weftRssAfterMiB: rssMiB(client.pid), rows };
    const outDir = path.join(__dirname, '../../bench/results');
    fs.mkdirSync(outDir, { recursive: true });
    fs.writeFileSync(path.join(outDir, 'sidecar.json'), JSON.stringify(summary, null, 1));
    console.log(`weft proxy RSS: idle ${idleRss.toFixed(0)} MiB, after load ${summary.weftRssAfterMiB.toFixed(0)} MiB`);
  } finally {
    await stopAll();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** An OTLP/HTTP collector that accepts every export and keeps nothing, in its own process (wrk blocks this one). */
async function startOtlpSink(port: number): Promise<Peer> {
  const { spawn } = await import('node:child_process');
  const code = `require('node:http').createServer((q, s) => { q.resume(); q.on('end', () => s.writeHead(200, { 'content-type': 'application/x-protobuf', 'content-length': 0 }).end()); }).listen(${port}, '127.0.0.1');`;
  const child = spawn(process.execPath, ['-e', code], { stdio: 'ignore' });
  await waitForPort(port);
  return {
    name: 'otlp-sink',
    pid: child.pid!,
    stop: () => new Promise((resolve) => (child.exitCode !== null ? resolve() : (child.once('exit', () => resolve()), child.kill('SIGTERM')))),
  };
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
