// Benchmark peers started for real: nginx (as the upstream, and as a
// proxy), HAProxy, a weft control plane and weft proxies, and the load
// tools wrk and h2load. Everything listens on loopback and is stopped by
// the bench; configs live in a temporary directory.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePort } from '../src/run/free-port';
export { freePort };

/** A `--name value` command-line argument, or the fallback. */
export function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

export const ROOT = path.resolve(__dirname, '../..');
const BIN = path.join(ROOT, 'bin/weft.js');

export function requireTool(name: string): string {
  const found = spawnSync('sh', ['-c', `command -v ${name} || ls /usr/sbin/${name} 2>/dev/null`], { encoding: 'utf8' }).stdout.trim().split('\n')[0];
  if (!found) throw new Error(`${name} is not installed (apt-get install ${name === 'h2load' ? 'nghttp2-client' : name === 'nginx' ? 'nginx-light' : name})`);
  return found;
}

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface Peer {
  name: string;
  pid: number;
  stop(): Promise<void>;
}

function run(name: string, cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; onStdout?: (text: string) => void } = {}): { child: ChildProcess; peer: Peer } {
  const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', opts.onStdout ? 'pipe' : 'ignore', 'pipe'] });
  if (opts.onStdout) child.stdout!.setEncoding('utf8').on('data', opts.onStdout);
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr = (stderr + d).slice(-4000)));
  child.on('exit', (code) => {
    if (code && code !== 0 && !stopped) process.stderr.write(`${name} exited with ${code}: ${stderr}\n`);
  });
  let stopped = false;
  const peer: Peer = {
    name,
    pid: child.pid!,
    stop: () =>
      new Promise<void>((resolve) => {
        stopped = true;
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 3000).unref();
      }),
  };
  return { child, peer };
}

/** Any other process a bench needs (e.g. a scripted upstream). */
export function startProcess(name: string, cmd: string, args: string[]): Peer {
  return run(name, cmd, args).peer;
}

/** nginx answering every request with a small body: the upstream of every case. */
export async function startNginxUpstream(dir: string, port: number, bodyBytes: number): Promise<Peer> {
  const nginx = requireTool('nginx');
  fs.writeFileSync(path.join(dir, 'body.txt'), 'x'.repeat(bodyBytes - 1) + '\n');
  const conf = `daemon off; master_process off; worker_processes 1; error_log ${dir}/upstream-error.log warn; pid ${dir}/upstream.pid;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; keepalive_timeout 300s;
  server { listen 127.0.0.1:${port} reuseport backlog=4096; location / { root ${dir}; try_files /body.txt =404; default_type text/plain; } } }`;
  fs.writeFileSync(path.join(dir, 'upstream.conf'), conf);
  const { peer } = run('nginx-upstream', nginx, ['-c', path.join(dir, 'upstream.conf'), '-p', dir, '-e', `${dir}/upstream-error.log`]);
  await waitForPort(port);
  return peer;
}

export async function startNginxProxy(dir: string, port: number, upstreamPort: number): Promise<Peer> {
  const nginx = requireTool('nginx');
  const conf = `daemon off; master_process off; worker_processes 1; error_log ${dir}/proxy-error.log warn; pid ${dir}/proxy.pid;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; keepalive_timeout 300s;
  upstream backend { server 127.0.0.1:${upstreamPort}; keepalive 64; keepalive_requests 1000000; }
  server { listen 127.0.0.1:${port} backlog=4096;
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering on; } } }`;
  fs.writeFileSync(path.join(dir, 'proxy.conf'), conf);
  const { peer } = run('nginx-proxy', nginx, ['-c', path.join(dir, 'proxy.conf'), '-p', dir, '-e', `${dir}/proxy-error.log`]);
  await waitForPort(port);
  return peer;
}

/** HAProxy with one thread: HTTP or TCP mode, keep-alive to the server. */
export async function startHaproxy(dir: string, port: number, upstreamPort: number, mode: 'http' | 'tcp' | 'h2', threads = 1): Promise<Peer> {
  const haproxy = requireTool('haproxy');
  const bind = mode === 'h2' ? `bind 127.0.0.1:${port} proto h2` : `bind 127.0.0.1:${port}`;
  const server = mode === 'h2' ? `server s1 127.0.0.1:${upstreamPort} proto h2` : `server s1 127.0.0.1:${upstreamPort}`;
  const conf = `global
  nbthread ${threads}
  maxconn 4096
defaults
  mode ${mode === 'tcp' ? 'tcp' : 'http'}
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  ${mode === 'tcp' ? '' : 'http-reuse always\n  option http-keep-alive'}
frontend fe
  ${bind}
  default_backend be
backend be
  ${server}
`;
  const name = threads === 1 ? `haproxy-${mode}` : `haproxy-${mode}-${threads}t`;
  fs.writeFileSync(path.join(dir, `${name}.cfg`), conf);
  const { peer } = run(name, haproxy, ['-f', path.join(dir, `${name}.cfg`), '-db']);
  await waitForPort(port);
  return peer;
}

/** A weft control plane on a config directory the bench writes. */
export async function startWeftControl(dir: string, configYaml: string, xdsPort: number, apiPort: number): Promise<Peer> {
  fs.mkdirSync(path.join(dir, 'config'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'config/mesh.yaml'), configYaml);
  const { peer } = run('weft-control', process.execPath, [BIN, 'control', '--config', path.join(dir, 'config'), '--data-dir', path.join(dir, 'data'), '--xds-port', String(xdsPort), '--api-port', String(apiPort), '--log-level', 'warn', '--dev']);
  await waitForPort(apiPort);
  return peer;
}

/** The one gRPC method of startGrpcUpstream's server. */
export const GRPC_PATH = '/bench.Echo/Unary';

/** A length-prefixed gRPC message (uncompressed). */
export function grpcFrame(message: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(message.length, 1);
  return Buffer.concat([head, message]);
}

/** A grpc-js server in its own process whose one unary method answers every call with its request's bytes. */
export async function startGrpcUpstream(port: number): Promise<Peer> {
  const grpcJs = require.resolve('@grpc/grpc-js');
  const code = `const grpc = require(${JSON.stringify(grpcJs)});
const same = (b) => b;
const server = new grpc.Server();
server.addService({ Unary: { path: ${JSON.stringify(GRPC_PATH)}, requestStream: false, responseStream: false, requestSerialize: same, requestDeserialize: same, responseSerialize: same, responseDeserialize: same } },
  { Unary: (call, cb) => cb(null, call.request) });
server.bindAsync('127.0.0.1:${port}', grpc.ServerCredentials.createInsecure(), (err) => { if (err) { console.error(err); process.exit(1); } });`;
  const { peer } = run('grpc-upstream', process.execPath, ['-e', code]);
  await waitForPort(port);
  return peer;
}

/** nginx with `http2` (h2c with prior knowledge) answering every request with `bodyBytes`, as startNginxUpstream does over HTTP/1.1. */
export async function startH2Upstream(dir: string, port: number, bodyBytes: number): Promise<Peer> {
  const nginx = requireTool('nginx');
  fs.writeFileSync(path.join(dir, 'body.txt'), 'x'.repeat(bodyBytes - 1) + '\n');
  const conf = `daemon off; master_process off; worker_processes 1; error_log ${dir}/h2-error.log warn; pid ${dir}/h2.pid;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 10000000;
  server { listen 127.0.0.1:${port} http2; location / { root ${dir}; try_files /body.txt =404; default_type text/plain; } } }`;
  fs.writeFileSync(path.join(dir, 'h2.conf'), conf);
  const { peer } = run('nginx-h2', nginx, ['-c', path.join(dir, 'h2.conf'), '-p', dir, '-e', `${dir}/h2-error.log`]);
  await waitForPort(port);
  return peer;
}

/** The mesh most benches load: one service (by default HTTP `upstream` on port 80) whose endpoint is `upstreamPort`. */
export function upstreamServiceYaml(upstreamPort: number, service = { name: 'upstream', port: 80, protocol: 'http' }): string {
  return `apiVersion: weft.dev/v1
kind: Service
metadata: { name: ${service.name} }
spec:
  ports: [{ name: ${service.protocol}, port: ${service.port}, protocol: ${service.protocol} }]
  endpoints: [{ address: 127.0.0.1, port: ${upstreamPort} }]
`;
}

/** An nginx upstream answering `bodyBytes`, and a `--dev` control plane serving upstreamServiceYaml for it; both go into `peers` to be stopped. */
export async function startUpstreamMesh(dir: string, bodyBytes: number, peers: Peer[]): Promise<{ upstreamPort: number; xdsPort: number }> {
  const [upstreamPort, xdsPort, apiPort] = await Promise.all([freePort(), freePort(), freePort()]);
  peers.push(await startNginxUpstream(dir, upstreamPort, bodyBytes));
  peers.push(await startWeftControl(dir, upstreamServiceYaml(upstreamPort), xdsPort, apiPort));
  return { upstreamPort, xdsPort };
}

/**
 * One weft proxy process; resolves once its admin port says ready. `bin`: another checkout's
 * bin/weft.js, to compare builds in one run (bench/sidecar-ab.ts). `node`: flags for node itself
 * (e.g. --trace-gc-nvp), with `onStdout` to read what they print, line by line as it is printed
 * (stdbuf: V8 prints with C stdio, which a pipe would buffer).
 */
export async function startWeftProxy(name: string, args: string[], adminPort: number, bin = BIN, node: { flags: string[]; onStdout: (text: string) => void } | undefined = undefined): Promise<Peer> {
  const proxyArgs = [bin, 'proxy', '--admin-port', String(adminPort), '--log-level', 'warn', ...args];
  const { peer } = node ? run(name, requireTool('stdbuf'), ['-oL', process.execPath, ...node.flags, ...proxyArgs], { onStdout: node.onStdout }) : run(name, process.execPath, proxyArgs);
  await waitForAdminReady(name, adminPort);
  return peer;
}

/** Resolves once a proxy's admin port says ready (15 s at most). */
export async function waitForAdminReady(name: string, adminPort: number): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const ready = await fetch(`http://127.0.0.1:${adminPort}/ready`).then((r) => r.ok, () => false);
    if (ready) return;
    if (Date.now() > deadline) throw new Error(`${name} not ready after 15 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface LoadResult {
  /** Requests completed. */
  requests?: number;
  rps: number;
  p50ms: number;
  p99ms: number;
  errors: number;
}

/** wrk with one thread; latency percentiles from its --latency output. */
export function wrk(url: string, connections: number, seconds: number, headers: string[] = [], threads = 1): LoadResult {
  const tool = requireTool('wrk');
  const args = [`-t${threads}`, `-c${connections}`, `-d${seconds}s`, '--latency', ...headers.flatMap((h) => ['-H', h]), url];
  const res = spawnSync(tool, args, { encoding: 'utf8', timeout: (seconds + 30) * 1000 });
  const out = res.stdout;
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const pct = (p: string) => toMs(new RegExp(`\\s${p}%\\s+([\\d.]+)(us|ms|s)`).exec(out));
  const errors = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0) + Number(/Socket errors:.*?timeout (\d+)/.exec(out)?.[1] ?? 0);
  if (!rps) throw new Error(`wrk gave no result for ${url}: ${out} ${res.stderr}`);
  const requests = Number(/(\d+) requests in/.exec(out)?.[1]);
  return { requests, rps, p50ms: pct('50'), p99ms: pct('99'), errors };
}

/** h2load over h2c with prior knowledge; `dataFile`: every request POSTs that file's bytes. */
export function h2load(url: string, clients: number, streams: number, seconds: number, headers: string[] = [], dataFile?: string): LoadResult {
  const tool = requireTool('h2load');
  const data = dataFile ? ['-d', dataFile] : [];
  const args = ['-c', String(clients), '-m', String(streams), '-D', String(seconds), '-t', '1', ...data, ...headers.flatMap((h) => ['-H', h]), url];
  const res = spawnSync(tool, args, { encoding: 'utf8', timeout: (seconds + 30) * 1000 });
  const out = res.stdout;
  const rps = Number(/finished in [\d.]+\w+, ([\d.]+) req\/s/.exec(out)?.[1]);
  const failed = Number(/(\d+) failed/.exec(out)?.[1] ?? 0) + Number(/(\d+) errored/.exec(out)?.[1] ?? 0);
  // h2load prints "time for request: min max mean sd" — it has no percentiles; report the mean as p50.
  const mean = toMs(/time for request:\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)/.exec(out));
  if (!rps) throw new Error(`h2load gave no result for ${url}: ${out} ${res.stderr}`);
  const requests = Number(/(\d+) done/.exec(out)?.[1]);
  return { requests, rps, p50ms: mean, p99ms: NaN, errors: failed };
}

function toMs(m: RegExpExecArray | null): number {
  if (!m) return NaN;
  const v = Number(m[1]);
  return m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : v;
}

/** user + system CPU time of a process so far, in ms (from /proc: the figure that holds on a shared machine). */
/** The middle value of `xs` (the upper one of an even count), which is left as it is. */
export function median(xs: number[]): number {
  return [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
}

export function procCpuMs(pid: number): number {
  const { userMs, systemMs } = procCpuSplitMs(pid);
  return userMs + systemMs;
}

/** A process's user and system CPU time so far, in ms, from /proc/<pid>/stat. */
export function procCpuSplitMs(pid: number): { userMs: number; systemMs: number } {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime, in ticks of USER_HZ (100 on Linux)
  return { userMs: Number(fields[11]) * 10, systemMs: Number(fields[12]) * 10 };
}

/** CPU (user + system, ms) of a process and every process below it: nginx's workers run under its master. */
export function treeCpuMs(pid: number): number {
  let children: number[] = [];
  try {
    for (const task of fs.readdirSync(`/proc/${pid}/task`)) {
      children = children.concat(fs.readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').split(' ').filter(Boolean).map(Number));
    }
    const own = procCpuSplitMs(pid);
    return own.userMs + own.systemMs + children.reduce((sum, child) => sum + treeCpuMs(child), 0);
  } catch {
    return 0; // exited meanwhile
  }
}

/** CPU time the whole machine spent busy so far (every core, /proc/stat: all but idle and iowait), in ms. */
export function machineBusyMs(): number {
  const cpu = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = cpu;
  return ((user + nice + system + irq + softirq + (steal ?? 0)) * 1000) / 100; // USER_HZ is 100 on Linux
}

/** Resident memory of a process, in MiB. */
export function rssMiB(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024;
}

/**
 * The anonymous part of `pid`'s RSS (heap, stacks), in MiB: what the process
 * allocated itself. The rest is file pages of its binary and libraries, which
 * every process running them shares: one more sidecar on a host adds this.
 */
export function anonMiB(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/RssAnon:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024;
}
