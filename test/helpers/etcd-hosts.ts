// A real etcd cluster on multi-host test hosts (test/helpers/hosts.ts): one
// member per host, listening on the host's own address, so the control
// plane replicas on other hosts reach it over the bridge as they would reach
// etcd machines. Members can be SIGKILLed and started again on the same
// address and data, to lose one member or a majority and see it come back.
// Data directories are temporary (removed when the test process exits).
// Whether etcd is installed: ETCD_BIN / etcdMissing() in etcd-cluster.ts.
import * as path from 'node:path';
import { ETCD_BIN } from './etcd-cluster';
import type { Host, Proc } from './hosts';
import { tempDir, waitFor } from './tmp';

export const ETCD_CLIENT_PORT = 2379;
export const ETCD_PEER_PORT = 2380;

interface Member {
  name: string;
  host: Host;
  dataDir: string;
  proc?: Proc;
}

export class EtcdOnHosts {
  private constructor(
    private readonly members: Member[],
    private readonly initialCluster: string,
    private readonly token: string,
  ) {}

  /** One member on each host (named after it), started at once; resolves when every member answers /health with a quorum. */
  static async start(hosts: Host[], timeoutMs = 20_000): Promise<EtcdOnHosts> {
    if (!ETCD_BIN) throw new Error('etcd is not installed (Debian package etcd-server)');
    const dir = tempDir(undefined, 'weft-etcd-hosts-');
    const members = hosts.map((host) => ({ name: host.name, host, dataDir: path.join(dir, host.name) }));
    const initialCluster = members.map((m) => `${m.name}=http://${m.host.address}:${ETCD_PEER_PORT}`).join(',');
    const cluster = new EtcdOnHosts(members, initialCluster, `weft-hosts-${process.pid}-${hosts[0].hosts.id}`);
    members.forEach((_, i) => cluster.startMember(i));
    await Promise.all(members.map((_, i) => cluster.waitHealthy(i, timeoutMs)));
    return cluster;
  }

  get size(): number {
    return this.members.length;
  }

  /** `etcd://a:2379,b:2379,…` for `weft control --store`. */
  get url(): string {
    return `etcd://${this.members.map((m) => `${m.host.address}:${ETCD_CLIENT_PORT}`).join(',')}`;
  }

  name(i: number): string {
    return this.members[i].name;
  }

  running(i: number): boolean {
    return this.members[i].proc?.running ?? false;
  }

  /** Starts member i on its host (again, on the same data, after a stop). */
  startMember(i: number): Proc {
    const m = this.members[i];
    if (m.proc?.running) return m.proc;
    const peer = `http://${m.host.address}:${ETCD_PEER_PORT}`;
    const client = `http://${m.host.address}:${ETCD_CLIENT_PORT}`;
    m.proc = m.host.spawn(ETCD_BIN!, [
      '--name', m.name,
      '--data-dir', m.dataDir,
      '--listen-client-urls', `${client},http://127.0.0.1:${ETCD_CLIENT_PORT}`,
      '--advertise-client-urls', client,
      '--listen-peer-urls', peer,
      '--initial-advertise-peer-urls', peer,
      '--initial-cluster', this.initialCluster,
      // Ignored when the data directory exists (a restart): the member rejoins with what it holds.
      '--initial-cluster-state', 'new',
      '--initial-cluster-token', this.token,
      // Faster elections on a LAN of namespaces: a killed leader is replaced within about a second.
      '--heartbeat-interval', '50',
      '--election-timeout', '500',
      '--log-level', 'warn',
    ]);
    return m.proc;
  }

  /** SIGKILL: the member is gone at once, as when its machine dies. */
  async stopMember(i: number): Promise<void> {
    const proc = this.members[i].proc;
    if (!proc?.running) return;
    proc.killTree('SIGKILL');
    await proc.exited;
  }

  /** Resolves when member i answers /health with a quorum behind it. */
  async waitHealthy(i: number, timeoutMs = 15_000): Promise<number> {
    const m = this.members[i];
    return waitFor(() => this.healthy(i), timeoutMs, `etcd member ${m.name} on ${m.host.address} healthy\n${m.proc?.output().slice(-2000) ?? ''}`);
  }

  /** Member i answers /health with a quorum (asked from its own host). */
  async healthy(i: number): Promise<boolean> {
    const m = this.members[i];
    if (!m.proc?.running) return false;
    try {
      const res = await m.host.fetch(`http://${m.host.address}:${ETCD_CLIENT_PORT}/health`, { timeoutMs: 1000 });
      return res.status === 200 && (JSON.parse(res.body) as { health?: string }).health === 'true';
    } catch {
      return false;
    }
  }

  /** The index of the member that is the Raft leader, as a running member sees it (undefined: none known). */
  async leader(): Promise<number | undefined> {
    for (const m of this.members) {
      if (!m.proc?.running) continue;
      try {
        // etcd's JSON gateway: Maintenance.Status names the member asked and the leader, both as uint64 strings.
        const res = await m.host.fetch(`http://${m.host.address}:${ETCD_CLIENT_PORT}/v3/maintenance/status`, { method: 'POST', body: '{}', timeoutMs: 1000 });
        const status = JSON.parse(res.body) as { header?: { member_id?: string }; leader?: string };
        if (!status.leader || status.leader === '0') continue;
        const members = await m.host.fetch(`http://${m.host.address}:${ETCD_CLIENT_PORT}/v3/cluster/member/list`, { method: 'POST', body: '{}', timeoutMs: 1000 });
        const list = (JSON.parse(members.body) as { members?: Array<{ ID: string; name: string }> }).members ?? [];
        const name = list.find((x) => x.ID === status.leader)?.name;
        const i = this.members.findIndex((x) => x.name === name);
        if (i >= 0) return i;
      } catch {
        // ask the next one
      }
    }
    return undefined;
  }

  /** The value of `key` (read through etcd's JSON gateway from a running member), or undefined when there is none. */
  async get(key: string): Promise<string | undefined> {
    const m = this.members.find((x) => x.proc?.running);
    if (!m) throw new Error('no etcd member is running');
    const res = await m.host.fetch(`http://${m.host.address}:${ETCD_CLIENT_PORT}/v3/kv/range`, { method: 'POST', body: JSON.stringify({ key: Buffer.from(key).toString('base64') }), timeoutMs: 2000 });
    const kvs = (JSON.parse(res.body) as { kvs?: Array<{ value?: string }> }).kvs;
    return kvs?.[0]?.value === undefined ? undefined : Buffer.from(kvs[0].value, 'base64').toString('utf8');
  }

  /** The last lines each member printed (for failure messages). */
  logs(): string {
    return this.members.map((m) => `--- etcd ${m.name} (${m.host.address})\n${(m.proc?.output() ?? '').trimEnd().split('\n').slice(-10).join('\n')}`).join('\n');
  }

  async stop(): Promise<void> {
    await Promise.all(this.members.map((_, i) => this.stopMember(i)));
  }
}
