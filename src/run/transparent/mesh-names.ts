// Which DNS names are the mesh's, for `weft run --transparent`: the app in
// its unit resolves service names through weft's DNS responder, which
// answers mesh names with the service's virtual IP (where the sidecar
// listens) and hands every other name to the host's own resolvers.
//
// Names answered, case-insensitive, trailing dot ignored, the Kubernetes
// shapes users already type:
//   <name>                          a service in the unit's own namespace
//   <name>.<ns>  <name>.<ns>.svc  <name>.<ns>.svc.cluster.local
// and each of these with one of the host's search suffixes appended: the
// unit keeps the host's search list, so glibc asks `backend.corp.example`
// before `backend`, and that first question already gets the VIP.
//
// NXDOMAIN at once (never forwarded, so a typo costs no upstream round trip
// and leaks no mesh name): unknown single labels, unknown `<x>.<ns>` when
// <ns> holds services, anything under `.svc` / `.svc.cluster.local`.
// Everything else is forwarded, including unknown names under a search
// suffix: `printer.corp.example` is the corporate network's to answer.
import * as net from 'node:net';

export type MeshAnswer = { kind: 'vip'; address: string } | { kind: 'nxdomain' } | { kind: 'forward' };

export interface MeshService {
  name: string;
  namespace: string;
  /** The service's virtual IP (IPv4) in the unit. */
  vip: string;
}

const FORWARD: MeshAnswer = { kind: 'forward' };
const NXDOMAIN: MeshAnswer = { kind: 'nxdomain' };
const CLUSTER_SUFFIX = '.svc.cluster.local';

/** Lower case, no trailing dot: the form names are compared in. */
function normalize(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

export class MeshNames {
  private readonly namespace: string;
  private readonly suffixes: string[];
  /** Every answered form (without search suffix) → its answer. */
  private table = new Map<string, MeshAnswer>();
  /** Namespaces that hold at least one service. */
  private namespaces = new Set<string>();

  constructor(opts: { namespace: string; searchSuffixes: string[] }) {
    this.namespace = normalize(opts.namespace);
    // '.' is a legal search entry (the root) and means nothing here.
    this.suffixes = opts.searchSuffixes.map(normalize).filter((s) => s !== '' && !s.startsWith('.'));
  }

  /** Replaces the table with these services. */
  set(services: readonly MeshService[]): void {
    const table = new Map<string, MeshAnswer>();
    const namespaces = new Set<string>();
    for (const s of services) {
      if (!net.isIPv4(s.vip)) throw new Error(`service ${s.namespace}/${s.name}: VIP ${JSON.stringify(s.vip)} is not an IPv4 address`);
      const name = normalize(s.name);
      const ns = normalize(s.namespace);
      if (!name || name.includes('.') || !ns || ns.includes('.')) throw new Error(`service ${s.namespace}/${s.name}: name and namespace must be single DNS labels`);
      const answer: MeshAnswer = { kind: 'vip', address: s.vip };
      namespaces.add(ns);
      if (ns === this.namespace) table.set(name, answer);
      table.set(`${name}.${ns}`, answer);
      table.set(`${name}.${ns}.svc`, answer);
      table.set(`${name}.${ns}${CLUSTER_SUFFIX}`, answer);
    }
    this.table = table;
    this.namespaces = namespaces;
  }

  lookup(qname: string): MeshAnswer {
    const name = normalize(qname);
    if (name === '') return FORWARD; // the root
    const hit = this.table.get(name);
    if (hit) return hit;
    for (const suffix of this.suffixes) {
      if (name.length > suffix.length + 1 && name.endsWith(suffix) && name[name.length - suffix.length - 1] === '.') {
        const found = this.table.get(name.slice(0, -suffix.length - 1));
        if (found) return found;
      }
    }
    // Under a search suffix the name may be a real host of that domain: the
    // rules below are for names the mesh owns outright.
    const dot = name.indexOf('.');
    if (dot < 0) return NXDOMAIN;
    if (name.endsWith('.svc') || name.endsWith(CLUSTER_SUFFIX)) return NXDOMAIN;
    const rest = name.slice(dot + 1);
    if (!rest.includes('.') && this.namespaces.has(rest)) return NXDOMAIN;
    return FORWARD;
  }
}

export interface ResolvConf {
  nameservers: string[];
  search: string[];
  options: string[];
}

/**
 * The parts of resolv.conf(5) the unit needs. As in glibc, the last
 * `search` or `domain` line wins, and options accumulate.
 */
export function parseResolvConf(text: string): ResolvConf {
  const out: ResolvConf = { nameservers: [], search: [], options: [] };
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim();
    if (!line) continue;
    const [key, ...values] = line.split(/\s+/);
    switch (key) {
      case 'nameserver':
        if (values[0]) out.nameservers.push(values[0]);
        break;
      case 'search':
        out.search = values;
        break;
      case 'domain':
        out.search = values.slice(0, 1);
        break;
      case 'options':
        out.options.push(...values);
        break;
    }
  }
  return out;
}

/**
 * The unit's resolv.conf: weft's responder only, the host's search list.
 * ndots:1 so a dotted name (`backend.default`) is asked as written first;
 * timeout:2 attempts:2 so a lost packet costs seconds, not the default 5×2.
 */
export function unitResolvConf(nameserver: string, search: string[]): string {
  if (!net.isIP(nameserver)) throw new Error(`unit resolv.conf: nameserver ${JSON.stringify(nameserver)} is not an IP address`);
  const lines = ['# written by weft run --transparent: mesh names resolve through weft, others through the host\'s resolvers', `nameserver ${nameserver}`];
  if (search.length > 0) lines.push(`search ${search.join(' ')}`);
  lines.push('options ndots:1 timeout:2 attempts:2');
  return lines.join('\n') + '\n';
}
