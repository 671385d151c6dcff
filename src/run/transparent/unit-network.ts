// The network of a transparent unit (`weft run --transparent`): the program
// runs in a network namespace of its own, joined to the host's by a veth pair.
//
//   host namespace                         unit namespace "weft-<pid>"
//   wu<pid>h 169.254.A.B+1/30  ── veth ──  wu<pid>u 169.254.A.B+2/30, default route via +1
//   local route 24x.y.0.0/16 dev wu<pid>h  (the unit's service VIPs: the sidecar binds them)
//   DNS responder on 169.254.A.B+1:53      /etc/resolv.conf → 169.254.A.B+1 (ip netns exec)
//
// Outbound: the program resolves a service name to a VIP, routed to the host
// side, where the VIP is a local address and the sidecar listens on VIP:port,
// one socket per service port (no SO_ORIGINAL_DST needed). Inbound: the
// program's ports exist only inside the unit; the sidecar reaches them at
// 169.254.A.B+2 (DNAT'd to the unit's 127.0.0.1, so a program that listens on
// loopback works), and other hosts reach only the sidecar's inbound port, so
// strict mTLS and authorization cannot be bypassed. Other destinations pass
// through the host (masquerade) or, with egress 'mesh-only', are refused.
//
// Everything made here lives in the unit namespace or on its veth link and
// goes with `ip netns del`, except the host's rules (tagged with the unit's
// name: its VIPs answer only the unit; masquerade and forward for egress) and /etc/netns/<name>: `cleanupCommands()`
// lists what removes them, for the unit guard (unit-guard.ts) to run even
// after a SIGKILL of weft run, and `sweepStaleUnits()` removes what a unit
// whose weft run is gone left behind.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from '../../observe/log';
import { processAlive } from '../process-alive';

/** Where `ip netns exec` finds the files it binds over /etc for a namespace. */
const ETC_NETNS = '/etc/netns';
const NAME_PREFIX = 'weft-';
/** Unit index k: link 169.254.(1 + k/64).(4·(k%64))/30, VIPs (240 + k/256).(k%256).0.0/16. 3840 keeps clear of 255.x. */
const UNITS = 3840;

export type EgressMode = 'passthrough' | 'mesh-only';

/** The network namespace of the unit whose `weft run` has this pid. */
export function unitName(pid: number): string {
  return `${NAME_PREFIX}${pid}`;
}

/** Thrown when this machine or user cannot make a transparent unit; the message names what is missing. */
export class TransparentUnavailableError extends Error {
  readonly code = 'E_TRANSPARENT_UNAVAILABLE';
}

export interface UnitNetwork {
  /** The unit's network namespace (`ip netns exec <name>`). */
  readonly name: string;
  readonly hostLink: string;
  readonly unitLink: string;
  /** The host side of the veth: the sidecar's address as the unit sees it (DNS, VIP routes). */
  readonly hostAddress: string;
  /** The unit side: where the sidecar reaches the program. */
  readonly unitAddress: string;
  /** The unit's VIP block, "a.b.0.0/16". */
  readonly vipBlock: string;
  /** The i-th VIP of the block (i ≥ 1). */
  vip(i: number): string;
  /** argv lists that remove what outlives `ip netns del` and the namespace itself, in order; then the paths to delete. */
  cleanupCommands(): { commands: string[][]; paths: string[] };
  /** Runs the clean-up now (idempotent). */
  destroy(): void;
}

export interface UnitNetworkOptions {
  egress: EgressMode;
  /** The unit's /etc/resolv.conf (unit-dns.ts writes one that names hostAddress). */
  resolvConf: (hostAddress: string) => string;
  log: Logger;
  /** Namespace name (default weft-<pid>); tests of the module set their own. */
  name?: string;
}

/** Why a transparent unit cannot be made here, or undefined when it can. */
export function transparentUnavailable(): string | undefined {
  if (process.platform !== 'linux') return 'weft run --transparent needs Linux (network namespaces); run without --transparent (HTTP_PROXY mode)';
  const caps = effectiveCapabilities();
  const CAP_NET_ADMIN = 12n;
  const CAP_SYS_ADMIN = 21n;
  const missing = [
    ...(((caps >> CAP_NET_ADMIN) & 1n) === 0n ? ['CAP_NET_ADMIN'] : []),
    ...(((caps >> CAP_SYS_ADMIN) & 1n) === 0n ? ['CAP_SYS_ADMIN'] : []),
  ];
  if (missing.length) {
    return `weft run --transparent needs ${missing.join(' and ')} to make the program's network namespace (run it as root, or grant them with setcap/systemd AmbientCapabilities); without them, run without --transparent: HTTP_PROXY mode needs no privilege`;
  }
  for (const [cmd, pkg] of [
    ['ip', 'iproute2'],
    ['iptables', 'iptables'],
  ] as const) {
    const r = spawnSync(cmd, ['-V'], { encoding: 'utf8', timeout: 5000 });
    if (r.error || r.status !== 0) return `weft run --transparent needs the \`${cmd}\` command (Debian/Ubuntu package ${pkg}): ${r.error?.message ?? r.stderr.trim()}`;
  }
  if (!canCreate(ETC_NETNS)) return `weft run --transparent cannot write ${ETC_NETNS} (the unit's resolv.conf)`;
  return undefined;
}

function effectiveCapabilities(): bigint {
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    return m ? BigInt(`0x${m[1]}`) : 0n;
  } catch {
    return 0n;
  }
}

function canCreate(dir: string): boolean {
  try {
    fs.mkdirSync(dir, { recursive: true });
    return true;
  } catch {
    return false;
  }
}

/** Runs a command; throws an error naming it and its stderr when it fails. */
function run(argv: string[]): string {
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', timeout: 10_000 });
  if (r.error) throw new Error(`${argv.join(' ')}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${(r.stderr || r.stdout).trim() || `exit ${r.status}`}`);
  return r.stdout;
}

function tryRun(argv: string[]): boolean {
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', timeout: 10_000 });
  return !r.error && r.status === 0;
}

/** The comment that tags the host rules of unit `name`. */
function ruleTag(name: string): string {
  return `weft-unit:${name}`;
}

interface HostRule {
  table: string;
  chain: string;
  /** -I (first in the chain) rather than -A. */
  insert: boolean;
  rule: string[];
}

/**
 * The host rules every unit has: its VIP sockets and the sidecar's side of
 * the veth answer only what comes from the unit. The VIPs are local
 * addresses of the host, and the sidecar behind them calls with the unit's
 * identity: without these, another process on the host, or a host on the
 * same link that routes the block here, could borrow it.
 */
function guardRules(name: string, hostLink: string, hostAddress: string, vipBlock: string): HostRule[] {
  const tag = ['-m', 'comment', '--comment', ruleTag(name)];
  return [
    { table: 'filter', chain: 'INPUT', insert: true, rule: ['-d', vipBlock, '!', '-i', hostLink, '-p', 'tcp', ...tag, '-j', 'REJECT', '--reject-with', 'tcp-reset'] },
    { table: 'filter', chain: 'INPUT', insert: true, rule: ['-d', vipBlock, '!', '-i', hostLink, ...tag, '-j', 'DROP'] },
    { table: 'filter', chain: 'INPUT', insert: true, rule: ['-d', `${hostAddress}/32`, '!', '-i', hostLink, ...tag, '-j', 'DROP'] },
  ];
}

/** The host rules of passthrough egress: the unit's other traffic leaves masqueraded as the host. */
function egressRules(name: string, hostLink: string, unitAddress: string): HostRule[] {
  const tag = ['-m', 'comment', '--comment', ruleTag(name)];
  return [
    { table: 'nat', chain: 'POSTROUTING', insert: false, rule: ['-s', `${unitAddress}/32`, '!', '-o', hostLink, ...tag, '-j', 'MASQUERADE'] },
    // First in FORWARD: a host whose FORWARD policy drops (Docker's) still lets the unit out and its replies in.
    { table: 'filter', chain: 'FORWARD', insert: true, rule: ['-i', hostLink, ...tag, '-j', 'ACCEPT'] },
    { table: 'filter', chain: 'FORWARD', insert: true, rule: ['-o', hostLink, '-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED', ...tag, '-j', 'ACCEPT'] },
  ];
}

export function createUnitNetwork(opts: UnitNetworkOptions): UnitNetwork {
  const name = opts.name ?? unitName(process.pid);
  const id = name.slice(NAME_PREFIX.length).replace(/[^a-z0-9]/gi, '').slice(-9);
  const hostLink = `wu${id}h`;
  const unitLink = `wu${id}u`;
  const commands: string[][] = [];
  const paths: string[] = [];
  let destroyed = false;
  const destroy = () => {
    if (destroyed) return;
    destroyed = true;
    for (const argv of commands) tryRun(argv);
    for (const p of paths) fs.rmSync(p, { recursive: true, force: true });
  };
  try {
    run(['ip', 'netns', 'add', name]);
    commands.push(['ip', 'netns', 'del', name]);
    paths.push(path.join(ETC_NETNS, name));
    run(['ip', 'link', 'add', hostLink, 'type', 'veth', 'peer', 'name', unitLink, 'netns', name]);
    run(['ip', 'link', 'set', hostLink, 'up']);
    // A unit index: its VIP block's local route is the claim (a second unit's `ip route add` of the same block fails).
    const k = claimIndex(hostLink);
    const base = [169, 254, 1 + (k >> 6), (k & 63) << 2];
    const hostAddress = [...base.slice(0, 3), base[3] + 1].join('.');
    const unitAddress = [...base.slice(0, 3), base[3] + 2].join('.');
    const vipA = 240 + (k >> 8);
    const vipB = k & 255;
    run(['ip', 'addr', 'add', `${hostAddress}/30`, 'dev', hostLink]);
    const inUnit = (argv: string[]) => run(['ip', 'netns', 'exec', name, ...argv]);
    inUnit(['ip', 'link', 'set', 'lo', 'up']);
    inUnit(['ip', 'addr', 'add', `${unitAddress}/30`, 'dev', unitLink]);
    inUnit(['ip', 'link', 'set', unitLink, 'up']);
    inUnit(['ip', 'route', 'add', 'default', 'via', hostAddress]);
    // The sidecar's connections to the program arrive on the veth: to the unit's loopback, port kept.
    inUnit(['sh', '-c', `echo 1 > /proc/sys/net/ipv4/conf/${unitLink}/route_localnet`]);
    inUnit(['iptables', '-t', 'nat', '-A', 'PREROUTING', '-i', unitLink, '-d', unitAddress, '-p', 'tcp', '-j', 'DNAT', '--to-destination', '127.0.0.1']);
    const addHostRules = (rules: HostRule[]) => {
      for (const r of rules) {
        run(['iptables', '-t', r.table, r.insert ? '-I' : '-A', r.chain, ...r.rule]);
        commands.push(['iptables', '-t', r.table, '-D', r.chain, ...r.rule]);
      }
    };
    addHostRules(guardRules(name, hostLink, hostAddress, `${vipA}.${vipB}.0.0/16`));
    if (opts.egress === 'mesh-only') {
      // Only the sidecar's side (DNS, replies to it) and the VIPs; anything else is refused at once, not left to time out.
      inUnit(['iptables', '-A', 'OUTPUT', '-o', unitLink, '-d', hostAddress, '-j', 'ACCEPT']);
      inUnit(['iptables', '-A', 'OUTPUT', '-o', unitLink, '-d', `${vipA}.${vipB}.0.0/16`, '-j', 'ACCEPT']);
      inUnit(['iptables', '-A', 'OUTPUT', '-o', unitLink, '-p', 'tcp', '-j', 'REJECT', '--reject-with', 'tcp-reset']);
      inUnit(['iptables', '-A', 'OUTPUT', '-o', unitLink, '-j', 'REJECT', '--reject-with', 'icmp-admin-prohibited']);
    } else {
      fs.writeFileSync(`/proc/sys/net/ipv4/conf/${hostLink}/forwarding`, '1');
      addHostRules(egressRules(name, hostLink, unitAddress));
      if (!hostForwards()) {
        opts.log('warn', 'this host does not forward IPv4 (net.ipv4.conf.all.forwarding=0): the program reaches mesh services, but not other destinations; enable forwarding (sysctl -w net.ipv4.ip_forward=1) or pass --egress mesh-only', {
          unit: name,
        });
      }
    }
    fs.mkdirSync(path.join(ETC_NETNS, name), { recursive: true });
    fs.writeFileSync(path.join(ETC_NETNS, name, 'resolv.conf'), opts.resolvConf(hostAddress));
    return {
      name,
      hostLink,
      unitLink,
      hostAddress,
      unitAddress,
      vipBlock: `${vipA}.${vipB}.0.0/16`,
      vip: (i) => `${vipA}.${vipB}.${i >> 8}.${i & 255}`,
      cleanupCommands: () => ({ commands: commands.map((c) => [...c]), paths: [...paths] }),
      destroy,
    };
  } catch (err) {
    destroy();
    throw err;
  }
}

/** Claims a free unit index by adding its VIP block's local route on `hostLink`. */
function claimIndex(hostLink: string): number {
  const start = Math.floor(Math.random() * UNITS);
  let lastError = '';
  for (let i = 0; i < 64; i++) {
    const k = (start + i * 61) % UNITS;
    const block = `${240 + (k >> 8)}.${k & 255}.0.0/16`;
    const r = spawnSync('ip', ['route', 'add', 'local', block, 'dev', hostLink], { encoding: 'utf8', timeout: 10_000 });
    if (r.status === 0) return k;
    lastError = r.stderr.trim();
    if (!/exists/i.test(lastError)) throw new Error(`ip route add local ${block} dev ${hostLink}: ${lastError}`);
  }
  throw new Error(`no free VIP block for the unit (last: ${lastError})`);
}

/** True when replies from other hosts can be forwarded back to a unit. */
function hostForwards(): boolean {
  const read = (p: string) => {
    try {
      return fs.readFileSync(p, 'utf8').trim() === '1';
    } catch {
      return false;
    }
  };
  if (read('/proc/sys/net/ipv4/conf/all/forwarding')) return true;
  // Forwarding may be on per interface: replies arrive on an uplink, so one that forwards will do.
  try {
    return fs.readdirSync('/proc/sys/net/ipv4/conf').some((i) => !['all', 'default', 'lo'].includes(i) && !i.startsWith('wu') && read(`/proc/sys/net/ipv4/conf/${i}/forwarding`));
  } catch {
    return false;
  }
}

/**
 * Removes what units whose weft run is gone left behind (a SIGKILL of both
 * weft run and its guard): their namespaces, the host rules tagged with their
 * names, their /etc/netns directories. Returns the names removed.
 */
export function sweepStaleUnits(log: Logger): string[] {
  const r = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8', timeout: 10_000 });
  const names = (r.stdout ?? '')
    .split('\n')
    .map((l) => l.split(' ')[0])
    .filter((n) => n.startsWith(NAME_PREFIX));
  let dirs: string[] = [];
  try {
    dirs = fs.readdirSync(ETC_NETNS).filter((n) => n.startsWith(NAME_PREFIX));
  } catch {
    // no /etc/netns: nothing left there
  }
  const stale = [...new Set([...names, ...dirs])].filter((n) => {
    const pid = Number(n.slice(NAME_PREFIX.length));
    return Number.isInteger(pid) && pid > 0 && !processAlive(pid);
  });
  for (const n of stale) {
    tryRun(['ip', 'netns', 'del', n]);
    removeTaggedRules(n);
    fs.rmSync(path.join(ETC_NETNS, n), { recursive: true, force: true });
    log('info', 'removed what a stopped transparent unit left behind', { unit: n });
  }
  return stale;
}


/** Deletes the host's iptables rules tagged for unit `name` (iptables-save lists them as -A lines). */
function removeTaggedRules(name: string): void {
  for (const table of ['nat', 'filter']) {
    const r = spawnSync('iptables-save', ['-t', table], { encoding: 'utf8', timeout: 10_000 });
    for (const line of (r.stdout ?? '').split('\n')) {
      if (!line.startsWith('-A ') || !line.includes(ruleTag(name))) continue;
      tryRun(['sh', '-c', `iptables -t ${table} -D ${line.slice(3)}`]);
    }
  }
}
