// A real etcd cluster for tests (Debian's etcd-server): N members on
// loopback ports, each in its own temporary data directory. Members can be
// stopped (SIGKILL) and started again on the same ports and data, so tests
// can lose one member or a majority and see the cluster come back.
// Without etcd installed, tests skip outside CI and fail under CI=true.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { freePort } from './proxy-harness';
import { tempDir } from './tmp';

export const ETCD_BIN = ['/usr/bin/etcd', '/usr/local/bin/etcd'].find((p) => fs.existsSync(p));

/** Why etcd tests cannot run here (undefined: they can). Under CI=true a missing etcd is a failure, never a skip. */
export function etcdMissing(): string | undefined {
  if (ETCD_BIN) return undefined;
  const why = 'etcd is not installed (Debian package etcd-server)';
  if (process.env.CI === 'true') throw new Error(`${why}: CI must install it (.ci/run)`);
  return why;
}

interface Member {
  name: string;
  clientPort: number;
  peerPort: number;
  dataDir: string;
  child?: ChildProcess;
  log: string;
}

export class EtcdCluster {
  private constructor(
    private readonly members: Member[],
    private readonly initialCluster: string,
  ) {}

  /** Starts `size` members and waits until the cluster answers on every one. */
  static async start(size = 3): Promise<EtcdCluster> {
    if (!ETCD_BIN) throw new Error('etcd is not installed');
    const dir = tempDir(undefined, 'weft-etcd-');
    const members: Member[] = [];
    for (let i = 0; i < size; i++) {
      members.push({ name: `m${i}`, clientPort: await freePort(), peerPort: await freePort(), dataDir: path.join(dir, `m${i}`), log: '' });
    }
    const initialCluster = members.map((m) => `${m.name}=http://127.0.0.1:${m.peerPort}`).join(',');
    const cluster = new EtcdCluster(members, initialCluster);
    // Members must not outlive the test process, also when it is stopped by a signal.
    process.once('exit', () => cluster.killAll());
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      process.once(signal, () => {
        cluster.killAll();
        process.kill(process.pid, signal);
      });
    }
    for (let i = 0; i < size; i++) cluster.startMember(i);
    await Promise.all(members.map((_, i) => cluster.waitHealthy(i)));
    return cluster;
  }

  /** `etcd://127.0.0.1:a,127.0.0.1:b,…` for --store. */
  get url(): string {
    return `etcd://${this.members.map((m) => `127.0.0.1:${m.clientPort}`).join(',')}`;
  }

  endpoint(i: number): string {
    return `127.0.0.1:${this.members[i].clientPort}`;
  }

  get size(): number {
    return this.members.length;
  }

  startMember(i: number): void {
    const m = this.members[i];
    if (m.child) return;
    const fresh = !fs.existsSync(m.dataDir);
    const args = [
      '--name', m.name,
      '--data-dir', m.dataDir,
      '--listen-client-urls', `http://127.0.0.1:${m.clientPort}`,
      '--advertise-client-urls', `http://127.0.0.1:${m.clientPort}`,
      '--listen-peer-urls', `http://127.0.0.1:${m.peerPort}`,
      '--initial-advertise-peer-urls', `http://127.0.0.1:${m.peerPort}`,
      '--initial-cluster', this.initialCluster,
      '--initial-cluster-state', fresh ? 'new' : 'existing',
      '--initial-cluster-token', `weft-test-${process.pid}`,
      // Faster elections on loopback: a killed leader is replaced within about a second.
      '--heartbeat-interval', '50',
      '--election-timeout', '500',
      '--log-level', 'warn',
    ];
    const child = spawn(ETCD_BIN!, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr!.on('data', (d) => (m.log = (m.log + d).slice(-4000)));
    child.on('exit', () => {
      if (m.child === child) m.child = undefined;
    });
    m.child = child;
  }

  /** SIGKILL: the member is gone at once, as when its machine dies. */
  async stopMember(i: number): Promise<void> {
    const child = this.members[i].child;
    if (!child) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGKILL');
    await exited;
  }

  /** Resolves when the member answers /health with a quorum behind it. */
  async waitHealthy(i: number, timeoutMs = 15_000): Promise<void> {
    const m = this.members[i];
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const ok = await fetch(`http://127.0.0.1:${m.clientPort}/health`)
        .then(async (r) => r.ok && ((await r.json()) as { health?: string }).health === "true")
        .catch(() => false);
      if (ok) return;
      if (Date.now() > deadline) throw new Error(`etcd member ${m.name} not healthy after ${timeoutMs} ms: ${m.log}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.members.map((_, i) => this.stopMember(i)));
  }

  private killAll(): void {
    for (const m of this.members) m.child?.kill('SIGKILL');
  }
}

/** True when something accepts TCP connections on the port (used to wait for a member to be gone). */
export function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

/** etcdctl against the cluster, for tests that write into etcd behind weft's back. */
export function etcdctl(endpoints: string, args: string[], input?: string): string {
  const bin = ['/usr/bin/etcdctl', '/usr/local/bin/etcdctl'].find((p) => fs.existsSync(p));
  if (!bin) throw new Error('etcdctl is not installed (Debian package etcd-client)');
  const res = spawnSync(bin, ['--endpoints', endpoints, ...args], { input, encoding: 'utf8', env: { ...process.env, ETCDCTL_API: '3' } });
  if (res.status !== 0) throw new Error(`etcdctl ${args.join(' ')}: ${res.stderr}`);
  return res.stdout;
}
