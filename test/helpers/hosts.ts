// Multi-host tests: one network namespace per "host", all plugged into a
// Linux bridge that lives in a namespace of its own (the "lan"), so a test
// runs real processes on separate network stacks that talk over a real L2
// segment, and can cut a host off the way a cable or a switch port fails.
//
//   lan namespace:  br0 ── v-<host> ─┐ (one veth pair per host)
//   host namespace:         eth0 ────┘ 198.18.<net>.<i>/24, plus lo up
//
// Addresses come from the benchmarking range 198.18.0.0/15 and exist only in
// namespaces made here; the root namespace gets no address, no route and no
// link (every link is created inside the lan namespace), so nothing made
// here can send a packet anywhere else. Each instance takes its own /24
// (<net>, reserved with a lock file) and its own namespace names, so test
// files running at the same time never collide.
//
// Cleanup always happens: `destroy()` kills every process in the
// namespaces (whoever started it) and deletes them; the same runs
// synchronously on process exit and on SIGINT/SIGTERM/SIGHUP; and `create`
// first removes namespaces left by an earlier run whose creator is dead.
//
// Needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN) and `ip` (iproute2). Nothing
// else: HTTP requests inside a namespace go through a small node agent, and
// isolation uses link state, not a firewall.
//
//   const SKIP = multiHostSkip();               // skip outside CI, fail under CI=true
//   before(async () => { if (!SKIP) hosts = await Hosts.create({ name: 'failover', hosts: ['cp', 'a', 'b'] }); });
//   after(() => hosts?.destroy());
//   test('…', { skip: SKIP }, async () => {
//     const cp = hosts.get('cp');
//     const control = cp.spawn(process.execPath, [BIN, 'control', '--dev', '--host', cp.address, …]);
//     await control.waitForOutput(/API on http:/, 15_000);
//     const res = await hosts.get('a').fetch(`http://${cp.address}:15000/healthz`);   // {status, headers, body}
//     await hosts.get('b').isolate(); …; await hosts.get('b').reconnect();
//     proc.killTree('SIGKILL');                   // a process and all its descendants
//   });
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { waitFor } from './tmp';

const NS_PREFIX = 'wft';
const STATE_DIR = '/run/weft-hosts';
/** 198.18.0.0/15 holds 512 /24 networks. */
const NETWORKS = 512;
const NAME_RE = /^[a-z0-9]{1,10}$/;
/** Variables that could send a request outside the namespaces; spawned processes never inherit them. */
const PROXY_VARS = ['http_proxy', 'HTTP_PROXY', 'https_proxy', 'HTTPS_PROXY', 'all_proxy', 'ALL_PROXY', 'no_proxy', 'NO_PROXY'];

// ---- can this machine run multi-host tests? ----

let unavailable: string | undefined | null = null;

/** Why network namespaces cannot be made here, or undefined when they can. */
export function multiHostUnavailable(): string | undefined {
  if (unavailable !== null) return unavailable;
  unavailable = (() => {
    if (process.platform !== 'linux') return 'network namespaces need Linux';
    if (process.getuid?.() !== 0) return 'network namespaces need root (CI runs as root)';
    const ip = spawnSync('ip', ['-V'], { encoding: 'utf8', timeout: 5000 });
    if (ip.error || ip.status !== 0) return '`ip` is missing (Debian package iproute2)';
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    const caps = m ? BigInt(`0x${m[1]}`) : 0n;
    const CAP_NET_ADMIN = 12n;
    const CAP_SYS_ADMIN = 21n;
    if (!((caps >> CAP_NET_ADMIN) & 1n) || !((caps >> CAP_SYS_ADMIN) & 1n)) return 'root here lacks CAP_NET_ADMIN/CAP_SYS_ADMIN (an unprivileged container)';
    return undefined;
  })();
  return unavailable;
}

/**
 * For a test's `skip` option: `test('…', { skip: multiHostSkip() }, …)`.
 * Outside CI, a machine that cannot make namespaces skips with the reason;
 * with CI=true the test runs anyway and `Hosts.create` fails with that
 * reason, so a CI without root or iproute2 is a red build, never a silent skip.
 */
export function multiHostSkip(): string | false {
  const why = multiHostUnavailable();
  if (!why || process.env.CI === 'true') return false;
  return `multi-host test skipped: ${why} (with CI=true this fails instead)`;
}

// ---- processes inside a namespace ----

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Write this to stdin, then close it (default: stdin is closed at once). */
  input?: string | Buffer;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

const OUTPUT_CAP = 1 << 20;

/** A process running on a host: its output, its exit, and signals to it and its descendants. */
export class Proc {
  readonly pid: number;
  /** Resolves when the process has exited. */
  readonly exited: Promise<Exit>;
  /** Resolves when it has exited and its stdout/stderr have ended (all its output is in). */
  readonly closed: Promise<Exit>;
  private outputDone = false;
  private combined = '';
  private out = '';
  private err = '';
  private exit: Exit | undefined;
  private readonly listeners = new Set<() => void>();

  constructor(
    readonly host: Host,
    readonly command: string,
    readonly child: ChildProcess,
  ) {
    this.pid = child.pid ?? -1;
    const add = (which: 'out' | 'err', d: Buffer) => {
      const s = d.toString('utf8');
      this.combined = tail(this.combined + s);
      if (which === 'out') this.out = tail(this.out + s);
      else this.err = tail(this.err + s);
      for (const l of this.listeners) l();
    };
    child.stdout?.on('data', (d: Buffer) => add('out', d));
    child.stderr?.on('data', (d: Buffer) => add('err', d));
    let closed: (e: Exit) => void;
    this.closed = new Promise<Exit>((resolve) => (closed = resolve));
    this.exited = new Promise<Exit>((resolve) => {
      const done = (e: Exit) => {
        if (this.exit) return;
        this.exit = e;
        resolve(e);
      };
      child.once('exit', (code, signal) => done({ code, signal }));
      // After the exit and the end of its output (which a descendant holding the pipes can delay).
      child.once('close', (code, signal) => {
        done({ code, signal });
        this.outputDone = true;
        closed(this.exit!);
        for (const l of this.listeners) l();
      });
      child.once('error', (err) => {
        add('err', Buffer.from(`spawn failed: ${err.message}\n`));
        done({ code: 127, signal: null });
      });
    });
  }

  get stdout(): string {
    return this.out;
  }

  get stderr(): string {
    return this.err;
  }

  /** stdout and stderr interleaved as they arrived (the last MiB). */
  output(): string {
    return this.combined;
  }

  get running(): boolean {
    return this.exit === undefined;
  }

  /** Resolves with the first match of `re` in the output (already there or to come); rejects on timeout or exit. */
  waitForOutput(re: RegExp, timeoutMs: number): Promise<RegExpExecArray> {
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const finish = (err?: Error, m?: RegExpExecArray) => {
        this.listeners.delete(check);
        clearTimeout(timer);
        if (err) reject(err);
        else resolve(m!);
      };
      const check = () => {
        const m = re.exec(this.combined);
        if (m) return finish(undefined, m);
        if (this.outputDone) finish(new Error(`${this.describe()} exited (${formatExit(this.exit!)}) before printing ${re}\n${lastLines(this.combined)}`));
      };
      timer = setTimeout(() => finish(new Error(`${this.describe()}: no ${re} in its output within ${timeoutMs} ms\n${lastLines(this.combined)}`)), timeoutMs);
      this.listeners.add(check);
      check();
    });
  }

  /** Signals the process itself (as ChildProcess.kill does); false if it is gone. */
  kill(signal: NodeJS.Signals = 'SIGTERM'): boolean {
    if (!this.running) return false;
    try {
      process.kill(this.pid, signal);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Signals the process and every descendant, whatever their process group
   * (`weft run` puts its app in a group of its own). The tree is read from
   * /proc first, then every member is signalled, so a SIGKILL leaves nothing
   * of it running. Returns the pids signalled.
   */
  killTree(signal: NodeJS.Signals = 'SIGKILL'): number[] {
    if (!this.running) return [];
    const pids = descendants(this.pid);
    for (const pid of pids) {
      try {
        process.kill(pid, signal);
      } catch {
        // already gone
      }
    }
    return pids;
  }

  private describe(): string {
    return `[${this.host.name}] ${this.command}`;
  }
}

export interface ExecResult extends Exit {
  stdout: string;
  stderr: string;
}

export interface FetchOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** Send the request to this HTTP proxy (absolute-form request target), e.g. a sidecar's outbound port. */
  proxy?: string;
  /** For an https:// URL: a PEM file of the roots that verify the server (read on the host; default: Node's roots). */
  ca?: string;
  timeoutMs?: number;
}

export interface FetchResult {
  status: number;
  /** Lower-case names; repeated headers joined as node:http does. */
  headers: Record<string, string | string[]>;
  body: string;
  raw: Buffer;
}

interface AgentReply {
  id: number;
  error?: string;
  code?: string;
  status?: number;
  headers?: Record<string, string | string[]>;
  body?: string;
  connected?: boolean;
}

/**
 * Runs inside a host's namespace, one per host: requests as JSON lines on
 * stdin, answers on stdout. Saves starting a process per request or poll.
 */
const AGENT = String.raw`
const http = require('node:http');
const https = require('node:https');
const fs = require('node:fs');
const net = require('node:net');
const reply = (m) => process.stdout.write(JSON.stringify(m) + '\n');
require('node:readline').createInterface({ input: process.stdin }).on('line', (line) => {
  const q = JSON.parse(line);
  let answered = false;
  const answer = (m) => { if (!answered) { answered = true; reply({ id: q.id, ...m }); } };
  if (q.op === 'connect') {
    const s = net.connect({ host: q.host, port: q.port });
    const t = setTimeout(() => { s.destroy(); answer({ connected: false, error: 'timed out' }); }, q.timeoutMs);
    s.once('connect', () => { clearTimeout(t); s.destroy(); answer({ connected: true }); });
    s.once('error', (e) => { clearTimeout(t); answer({ connected: false, error: e.code || e.message }); });
    return;
  }
  let url, via, tls;
  try {
    url = new URL(q.url);
    via = q.proxy ? new URL(q.proxy) : url;
    if (q.proxy ? url.protocol !== 'http:' || via.protocol !== 'http:' : url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(q.proxy ? 'only http:// URLs through a proxy' : 'only http:// and https:// URLs');
    if (via.protocol === 'https:') tls = q.ca ? { ca: fs.readFileSync(q.ca) } : {};
  } catch (e) { return answer({ error: e.message, code: 'EINVAL' }); }
  const body = q.body === undefined ? undefined : Buffer.from(q.body, 'base64');
  const headers = { host: url.host, ...q.headers };
  if (body !== undefined && headers['content-length'] === undefined && headers['transfer-encoding'] === undefined) headers['content-length'] = String(body.length);
  const req = (tls ? https : http).request({ host: via.hostname.replace(/^\[|\]$/g, ''), port: via.port || (tls ? 443 : 80), method: q.method, path: q.proxy ? url.href : url.pathname + url.search, headers, agent: false, ...tls });
  const t = setTimeout(() => req.destroy(Object.assign(new Error('timed out after ' + q.timeoutMs + ' ms'), { code: 'ETIMEDOUT' })), q.timeoutMs);
  req.on('response', (res) => {
    const chunks = [];
    res.on('data', (c) => chunks.push(c));
    res.on('end', () => { clearTimeout(t); answer({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('base64') }); });
    res.on('error', (e) => { clearTimeout(t); answer({ error: e.message, code: e.code }); });
  });
  req.on('error', (e) => { clearTimeout(t); answer({ error: e.message, code: e.code }); });
  req.end(body);
});
`;

/** One host: a network namespace with an address on the hosts' bridge. */
export class Host {
  private agent: { child: ChildProcess; pending: Map<number, (r: AgentReply) => void>; nextId: number } | undefined;

  constructor(
    readonly hosts: Hosts,
    /** As given to Hosts.create (e.g. 'cp'). */
    readonly name: string,
    /** The network namespace (`ip netns exec <ns> …`). */
    readonly ns: string,
    /** Its IPv4 address on the bridge, e.g. 198.18.42.2. */
    readonly address: string,
    /** The bridge end of its veth pair, in the lan namespace. */
    readonly lanLink: string,
  ) {}

  /** Starts `cmd args` in this host's namespace, stdout and stderr captured. */
  spawn(cmd: string, args: string[] = [], opts: SpawnOptions = {}): Proc {
    const proc = new Proc(this, [cmd, ...args].join(' ').slice(0, 120), this.spawnChild(cmd, args, opts));
    if (opts.input !== undefined) proc.child.stdin?.end(opts.input);
    else proc.child.stdin?.end();
    return proc;
  }

  /** Runs a short command to its end (bounded: killed with its descendants after `timeoutMs`). */
  async exec(cmd: string, args: string[] = [], opts: SpawnOptions & { timeoutMs?: number } = {}): Promise<ExecResult> {
    const timeoutMs = opts.timeoutMs ?? 10_000;
    const proc = this.spawn(cmd, args, opts);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
    const result = await Promise.race([proc.closed, timedOut]);
    clearTimeout(timer);
    if (result === 'timeout') {
      proc.killTree('SIGKILL');
      await proc.exited;
      proc.child.stdout?.destroy();
      proc.child.stderr?.destroy();
      throw new Error(`[${this.name}] ${cmd} ${args.join(' ')}: still running after ${timeoutMs} ms (killed)\n${lastLines(proc.output())}`);
    }
    return { ...result, stdout: proc.stdout, stderr: proc.stderr };
  }

  /** An HTTP/1.1 request made from inside this host (by its agent process), http:// or https:// (verified with `ca`); `proxy` sends it through an HTTP proxy such as a sidecar. */
  async fetch(url: string, opts: FetchOptions = {}): Promise<FetchResult> {
    const timeoutMs = opts.timeoutMs ?? 5000;
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(opts.headers ?? {})) headers[k.toLowerCase()] = v;
    const body = opts.body === undefined ? undefined : Buffer.from(opts.body).toString('base64');
    const r = await this.ask({ op: 'fetch', url, method: opts.method ?? 'GET', headers, body, proxy: opts.proxy, ca: opts.ca, timeoutMs }, timeoutMs);
    if (r.error !== undefined) throw Object.assign(new Error(`[${this.name}] ${opts.method ?? 'GET'} ${url}${opts.proxy ? ` via ${opts.proxy}` : ''}: ${r.error}`), { code: r.code });
    const raw = Buffer.from(r.body ?? '', 'base64');
    return { status: r.status!, headers: r.headers ?? {}, body: raw.toString('utf8'), raw };
  }

  /** One TCP connect attempt from this host; true if something accepted it. */
  async canConnect(port: number, address = '127.0.0.1', timeoutMs = 1000): Promise<boolean> {
    const r = await this.ask({ op: 'connect', host: address, port, timeoutMs }, timeoutMs);
    return r.connected === true;
  }

  /** Resolves once `address:port` accepts a connection from this host; rejects after `timeoutMs`. */
  async waitForPort(port: number, address = '127.0.0.1', timeoutMs = 10_000): Promise<void> {
    await waitFor(() => this.canConnect(port, address, 500), timeoutMs, `${address}:${port} to accept connections from host ${this.name}`);
  }

  /** Cuts this host off the lan (its switch port goes down): packets to and from it are dropped silently, its own stack stays as it was. */
  async isolate(): Promise<void> {
    await ip(['-n', this.hosts.lanNs, 'link', 'set', this.lanLink, 'down']);
  }

  /** Plugs the host back in. */
  async reconnect(): Promise<void> {
    await ip(['-n', this.hosts.lanNs, 'link', 'set', this.lanLink, 'up']);
  }

  /** Every process in this host's namespace, whoever started it. */
  async pids(): Promise<number[]> {
    return namespacePids(this.ns);
  }

  /** Signals every process in this host's namespace (the harness's own agent included; it restarts when next needed). */
  async killAll(signal: NodeJS.Signals = 'SIGKILL'): Promise<number[]> {
    const pids = await this.pids();
    for (const pid of pids) {
      try {
        process.kill(pid, signal);
      } catch {
        // gone already
      }
    }
    return pids;
  }

  /** @internal */
  spawnChild(cmd: string, args: string[], opts: SpawnOptions): ChildProcess {
    if (this.hosts.destroyed) throw new Error(`hosts ${this.hosts.id} are destroyed`);
    const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env };
    for (const v of PROXY_VARS) if (!opts.env || !(v in opts.env)) delete env[v];
    const child = spawn('ip', ['netns', 'exec', this.ns, cmd, ...args], {
      cwd: opts.cwd,
      env,
      stdio: ['pipe', 'pipe', 'pipe'],
      // A group of its own: a Ctrl-C at the terminal reaches only the test, whose handler cleans up everything.
      detached: true,
    });
    this.hosts.track(child);
    return child;
  }

  private ask(msg: Record<string, unknown>, timeoutMs: number): Promise<AgentReply> {
    const agent = (this.agent ??= this.startAgent());
    const id = agent.nextId++;
    return new Promise<AgentReply>((resolve, reject) => {
      // The agent has its own deadline; this one covers an agent that never started or hangs.
      const timer = setTimeout(() => {
        agent.pending.delete(id);
        setRef(agent.child, agent.pending.size > 0);
        reject(new Error(`[${this.name}] the host's agent did not answer within ${timeoutMs + 5000} ms`));
      }, timeoutMs + 5000);
      agent.pending.set(id, (r) => {
        clearTimeout(timer);
        resolve(r);
      });
      setRef(agent.child, true);
      agent.child.stdin!.write(JSON.stringify({ id, ...msg }) + '\n');
    });
  }

  private startAgent(): NonNullable<Host['agent']> {
    const child = this.spawnChild(process.execPath, ['-e', AGENT], {});
    const agent = { child, pending: new Map<number, (r: AgentReply) => void>(), nextId: 1 };
    let buf = '';
    let errors = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString('utf8');
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const r = JSON.parse(buf.slice(0, nl)) as AgentReply;
        buf = buf.slice(nl + 1);
        const cb = agent.pending.get(r.id);
        agent.pending.delete(r.id);
        cb?.(r);
      }
      setRef(child, agent.pending.size > 0);
    });
    child.stderr!.on('data', (d: Buffer) => (errors = tail(errors + d.toString('utf8'))));
    child.stdin!.on('error', () => {}); // a killed agent: its pending requests fail below
    child.once('exit', (code, signal) => {
      if (this.agent === agent) this.agent = undefined;
      for (const cb of agent.pending.values()) cb({ id: 0, error: `the host's agent exited (${formatExit({ code, signal })}) ${errors.trim()}`, code: 'EAGENT' });
      agent.pending.clear();
    });
    setRef(child, false);
    return agent;
  }
}

// ---- the hosts ----

export interface HostsOptions {
  /** A short name for the test's namespaces ([a-z0-9], ≤ 10 characters), e.g. 'multihost'. */
  name: string;
  /** Host names ([a-z0-9], ≤ 10 characters each), e.g. ['cp', 'a', 'b']; addresses .1, .2, … in that order. */
  hosts: string[];
}

interface StateFile {
  pid: number;
  start: string | undefined;
  net: number;
  namespaces: string[];
}

const live = new Set<Hosts>();

/** Hosts on one bridge. Make them with `Hosts.create`, always end with `destroy()`. */
export class Hosts {
  /** `<pid>-<random>`: in every namespace name and state file of this instance. */
  readonly id: string;
  /** The /24 of 198.18.0.0/15 this instance owns (0…511). */
  readonly net: number;
  /** e.g. 198.18.42.0/24 */
  readonly subnet: string;
  readonly lanNs: string;
  destroyed = false;
  private readonly byName = new Map<string, Host>();
  private readonly children = new Set<ChildProcess>();

  private constructor(id: string, net: number, name: string, hostNames: string[]) {
    this.id = id;
    this.net = net;
    const [a, b] = [18 + (net >> 8), net & 255];
    this.subnet = `198.${a}.${b}.0/24`;
    this.lanNs = `${NS_PREFIX}-${id}-${name}-lan`;
    hostNames.forEach((h, i) => this.byName.set(h, new Host(this, h, `${NS_PREFIX}-${id}-${name}-${h}`, `198.${a}.${b}.${i + 1}`, `v-${h}`)));
  }

  static async create(opts: HostsOptions): Promise<Hosts> {
    const why = multiHostUnavailable();
    if (why) throw new Error(`multi-host tests cannot run here: ${why}${process.env.CI === 'true' ? ' (CI=true: failing rather than skipping)' : ''}`);
    if (!NAME_RE.test(opts.name)) throw new Error(`Hosts name ${JSON.stringify(opts.name)}: expected [a-z0-9], 1-10 characters`);
    const names = opts.hosts;
    if (names.length === 0 || names.length > 250) throw new Error('Hosts: between 1 and 250 hosts');
    for (const h of names) if (!NAME_RE.test(h) || h === 'lan') throw new Error(`host name ${JSON.stringify(h)}: expected [a-z0-9], 1-10 characters, not "lan"`);
    if (new Set(names).size !== names.length) throw new Error('Hosts: host names must differ');

    const dir = stateDir();
    await removeStale(dir);
    const id = `${process.pid}-${crypto.randomBytes(3).toString('hex')}`;
    const net = reserveNetwork(dir, id);
    const hosts = new Hosts(id, net, opts.name, names);
    const state: StateFile = { pid: process.pid, start: startTime(process.pid), net, namespaces: hosts.namespaces() };
    fs.writeFileSync(path.join(dir, `${id}.json`), JSON.stringify(state));
    live.add(hosts);
    installExitHooks();
    try {
      await hosts.build();
    } catch (err) {
      await hosts.destroy().catch(() => {});
      throw err;
    }
    return hosts;
  }

  get(name: string): Host {
    const h = this.byName.get(name);
    if (!h) throw new Error(`no host ${name} (hosts: ${[...this.byName.keys()].join(', ')})`);
    return h;
  }

  get list(): Host[] {
    return [...this.byName.values()];
  }

  /** Every namespace of this instance, the lan's last. */
  namespaces(): string[] {
    return [...this.list.map((h) => h.ns), this.lanNs];
  }

  /** @internal every child spawned on a host, so destroy can wait for them */
  track(child: ChildProcess): void {
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
  }

  /**
   * Kills every process in the namespaces (SIGKILL), waits for the ones this
   * process started, deletes the namespaces (their links go with them) and
   * frees the network. Safe to call twice; bounded in time.
   */
  async destroy(): Promise<void> {
    if (!live.has(this)) return;
    this.destroyed = true;
    const mine = [...this.children];
    const exited = Promise.all(mine.map((c) => (c.exitCode !== null || c.signalCode !== null ? undefined : new Promise((r) => c.once('exit', r)))));
    for (const ns of this.namespaces()) await killNamespace(ns);
    for (const c of mine) c.kill('SIGKILL'); // one still inside `ip netns exec`, not yet in its namespace
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([exited, new Promise((r) => (timer = setTimeout(r, 5000)))]);
    clearTimeout(timer);
    const failures: string[] = [];
    for (const ns of this.namespaces()) {
      await ip(['netns', 'del', ns]).catch((err: Error) => {
        if (!/No such file|not found|does not exist/i.test(err.message)) failures.push(err.message);
      });
    }
    if (failures.length > 0) throw new Error(`could not delete namespaces: ${failures.join('; ')}`);
    releaseState(this.id, this.net);
    live.delete(this);
  }

  /** destroy() without the event loop: for process exit and signals. */
  destroySync(): void {
    if (!live.has(this)) return;
    this.destroyed = true;
    for (const ns of this.namespaces()) {
      const pids = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', timeout: 5000 });
      for (const pid of (pids.stdout ?? '').split(/\s+/).filter(Boolean).map(Number)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
    }
    for (const c of this.children) c.kill('SIGKILL');
    for (const ns of this.namespaces()) spawnSync('ip', ['netns', 'del', ns], { timeout: 5000, stdio: 'ignore' });
    releaseState(this.id, this.net);
    live.delete(this);
  }

  private async build(): Promise<void> {
    for (const ns of this.namespaces()) {
      await ip(['netns', 'add', ns]);
      await ip(['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    // Every link is made inside the lan namespace and moved straight into its host's: none ever exists in the root namespace.
    await ip(['-n', this.lanNs, 'link', 'add', 'br0', 'type', 'bridge']);
    await ip(['-n', this.lanNs, 'link', 'set', 'br0', 'up']);
    const prefix = this.subnet.split('/')[1];
    for (const h of this.list) {
      await ip(['-n', this.lanNs, 'link', 'add', h.lanLink, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', h.ns]);
      await ip(['-n', this.lanNs, 'link', 'set', h.lanLink, 'master', 'br0', 'up']);
      await ip(['-n', h.ns, 'addr', 'add', `${h.address}/${prefix}`, 'dev', 'eth0']);
      await ip(['-n', h.ns, 'link', 'set', 'eth0', 'up']);
    }
  }
}

// ---- cleanup on exit and signals ----

let hooked = false;

function installExitHooks(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', () => {
    for (const h of [...live]) h.destroySync();
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = () => {
      for (const h of [...live]) h.destroySync();
      process.off(sig, onSignal);
      // Nobody else handles it: die of it, as without this hook.
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.on(sig, onSignal);
  }
}

// ---- state: which networks are taken, by whom ----

function stateDir(): string {
  fs.mkdirSync(STATE_DIR, { recursive: true, mode: 0o700 });
  return STATE_DIR;
}

/** Takes a free /24 by creating its lock file exclusively (two creators at once cannot both win). */
function reserveNetwork(dir: string, id: string): number {
  const first = crypto.randomInt(NETWORKS);
  for (let i = 0; i < NETWORKS; i++) {
    const net = (first + i) % NETWORKS;
    try {
      fs.writeFileSync(path.join(dir, `net-${net}`), id, { flag: 'wx' });
      return net;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  throw new Error(`all ${NETWORKS} networks of 198.18.0.0/15 are taken (see ${dir})`);
}

function releaseState(id: string, net: number): void {
  for (const f of [`${id}.json`, `net-${net}`]) fs.rmSync(path.join(STATE_DIR, f), { force: true });
}

/** Removes namespaces and state files whose creating process is gone (an earlier run that crashed or was killed). */
async function removeStale(dir: string): Promise<void> {
  const verdicts = new Map<string, boolean>();
  const ownerAlive = (id: string): boolean => {
    let alive = verdicts.get(id);
    if (alive === undefined) {
      const pid = Number(id.split('-')[0]);
      let start: string | undefined;
      try {
        start = (JSON.parse(fs.readFileSync(path.join(dir, `${id}.json`), 'utf8')) as StateFile).start;
      } catch {
        // no state file: judge by the pid alone
      }
      const now = startTime(pid);
      // Alive only if that pid exists and (when known) started when our creator did: a reused pid is not the creator.
      alive = now !== undefined && (start === undefined || start === now);
      verdicts.set(id, alive);
    }
    return alive;
  };
  const idOf = new RegExp(`^${NS_PREFIX}-(\\d+-[0-9a-f]+)-`);
  for (const ns of await listNamespaces()) {
    const m = idOf.exec(ns);
    if (!m || ownerAlive(m[1])) continue;
    await killNamespace(ns);
    await ip(['netns', 'del', ns]).catch(() => {});
  }
  for (const f of fs.readdirSync(dir)) {
    const file = path.join(dir, f);
    let id: string | undefined;
    if (f.endsWith('.json')) id = f.slice(0, -5);
    else if (f.startsWith('net-')) id = fs.readFileSync(file, 'utf8').trim();
    // An empty lock is one being written right now by its creator: not stale.
    if (id && /^\d+-[0-9a-f]+$/.test(id) && !ownerAlive(id)) fs.rmSync(file, { force: true });
  }
}

/** Field 22 of /proc/<pid>/stat (start time in clock ticks since boot), or undefined if there is no such process. */
function startTime(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

// ---- small tools ----

/** Runs `ip` (root namespace tools only, never a process inside a namespace); rejects with its stderr. */
function ip(args: string[], timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`ip ${args.join(' ')}: ${e.message}`));
    });
    // 'close', not 'exit': a process can exit before its stdout has been read, and `ip netns pids`
    // then looked empty, so destroy() killed nothing in that namespace and left its processes running.
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`ip ${args.join(' ')}: ${err.trim() || formatExit({ code, signal })}`));
    });
  });
}

async function listNamespaces(): Promise<string[]> {
  const out = await ip(['netns', 'list']);
  return out
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0])
    .filter(Boolean);
}

async function namespacePids(ns: string): Promise<number[]> {
  const out = await ip(['netns', 'pids', ns]).catch(() => '');
  return out.split(/\s+/).filter(Boolean).map(Number);
}

async function killNamespace(ns: string): Promise<void> {
  for (const pid of await namespacePids(ns)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

/** `pid` and all its descendants, from /proc (parents before children). */
export function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(entry));
      children.set(ppid, list);
    } catch {
      // exited while we looked
    }
  }
  const out = [pid];
  for (let i = 0; i < out.length; i++) out.push(...(children.get(out[i]) ?? []));
  return out;
}

function setRef(child: ChildProcess, on: boolean): void {
  for (const h of [child, child.stdin, child.stdout, child.stderr] as Array<{ ref?(): void; unref?(): void } | null>) {
    if (on) h?.ref?.();
    else h?.unref?.();
  }
}

function tail(s: string): string {
  return s.length > OUTPUT_CAP ? s.slice(s.length - OUTPUT_CAP) : s;
}

function lastLines(s: string, n = 20): string {
  return s.trimEnd().split('\n').slice(-n).join('\n');
}

function formatExit(e: Exit): string {
  return e.signal ? `signal ${e.signal}` : `code ${e.code}`;
}

/**
 * Runs `fn`; when it fails, the tails of the processes' output join the error (message and stack,
 * which the reporter prints): a multi-host failure is unreadable without them. `extra`: more to add
 * (e.g. etcd's logs).
 */
export async function withProcessLogs(procs: readonly Proc[], fn: () => Promise<void>, extra: () => string = () => ''): Promise<void> {
  try {
    await fn();
  } catch (err) {
    const logs = [...procs.map((p) => `--- [${p.host.name}] ${p.command}\n${p.output().trimEnd().split('\n').slice(-25).join('\n')}`), extra()].filter(Boolean).join('\n');
    if (err instanceof Error) {
      err.message += `\n${logs}`;
      if (err.stack) err.stack += `\n${logs}`;
    }
    throw err;
  }
}
