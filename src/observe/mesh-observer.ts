// The control plane's view of live traffic. The sidecars connected to this
// replica stream their metrics reports here (telemetry/metrics-intake.ts);
// every `intervalMs` the observer takes each node's latest cumulative
// counters, keeps those of the last `windowMs`, and turns their deltas into
// this replica's edge windows (requests, errors and latency bucket deltas per
// edge). The other replicas do the same for their sidecars; the mesh's golden
// signals per service and per edge (rate, success rate, p50/p99) are the sum
// of every replica's windows (`peers`: telemetry/replica-peers.ts), so any
// replica answers for the whole mesh. It also notices changes of config
// errors and of proxies' sync state, and pushes all three to subscribers
// (the dashboard's Server-Sent Events, /api/v1/events).
import { peerAddress, type NodeStatus } from '../xds/server/node-status';
import { quantile, type EdgeCounters } from './mesh-metrics';
import type { NodeReport } from './telemetry/metrics-intake';
import type { EdgeSignals, Instance, ServiceSignals, Signals, Topology } from './topology';

export type { EdgeSignals, Instance, ServiceSignals, Signals, Topology } from './topology';

export type ObserverEvent = { type: 'topology'; data: Topology } | { type: 'errors'; data: unknown } | { type: 'nodes'; data: unknown };

/** One replica's share of the mesh's signals: what its sidecars saw over its window. */
export interface ReplicaTelemetry {
  replica: string;
  windows: EdgeWindow[];
  instances: Instance[];
  unreachable: Topology['unreachable'];
  /** false: the replica did not answer (its share is empty). */
  answered?: boolean;
}

/** Deltas of one edge over a window, as one replica's sidecars counted them. */
export interface EdgeWindow {
  direction: string;
  source: string;
  destination: string;
  requests: number;
  errors: number;
  /** Latency bucket deltas: upper bound in ms ("+Inf" for the last) → cumulative count. */
  buckets: Record<string, number>;
  /** The sum of each sidecar's rate over its own window (an idle sidecar's window is longer). */
  rps: number;
  seconds: number;
}

export interface ObserverDeps {
  /** This replica's connected nodes (its ADS streams). */
  nodes(): NodeStatus[];
  /** The latest metrics report of each sidecar streaming to this replica. */
  reports(): NodeReport[];
  /** Services the mesh declares, as {name, namespace}: shown even without traffic. */
  services(): { name: string; namespace: string }[];
  /** Config and snapshot errors, as /api/v1/errors answers. */
  errors(): unknown;
  /** The other replicas' shares (none with one replica); a replica that does not answer is left out. */
  peers?(): Promise<ReplicaTelemetry[]>;
  replica?: () => string;
  intervalMs?: number;
  windowMs?: number;
  /** How often sidecars check whether to report (their default): no report for longer means no change. */
  reportIntervalMs?: number;
}

interface Sample {
  at: number;
  edges: EdgeCounters[];
}

/** Time a report may take from the sidecar's check to this replica. */
const REPORT_SLACK_MS = 500;

export class MeshObserver {
  private readonly intervalMs: number;
  private readonly windowMs: number;
  private readonly reportIntervalMs: number;
  /** nodeId → samples, oldest first, covering the window. */
  private readonly history = new Map<string, Sample[]>();
  private latest: Topology;
  private latestLocal: ReplicaTelemetry;
  private readonly listeners = new Set<(e: ObserverEvent) => void>();
  private readonly topologyListeners = new Set<(t: Topology) => void>();
  private timer?: NodeJS.Timeout;
  private watchTimer?: NodeJS.Timeout;
  private lastErrors = '';
  private lastNodes = '';
  private ticking = false;

  constructor(private readonly deps: ObserverDeps) {
    this.intervalMs = deps.intervalMs ?? 1000;
    this.windowMs = deps.windowMs ?? 10_000;
    this.reportIntervalMs = deps.reportIntervalMs ?? 2000;
    this.latestLocal = this.local();
    this.latest = this.merge([this.latestLocal]);
  }

  /** Sampling runs while the control plane runs: it reads memory only (the sidecars push). */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.tick(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    clearInterval(this.watchTimer);
    this.timer = this.watchTimer = undefined;
    this.listeners.clear();
    this.topologyListeners.clear();
  }

  topology(): Topology {
    return this.latest;
  }

  /** This replica's share, for the other replicas (GET /api/v1/telemetry/replica). */
  replicaTelemetry(): ReplicaTelemetry {
    return this.latestLocal;
  }

  /** Hears each new topology only (a module of the control plane, such as the signal history: no watch of errors and nodes). */
  onTopology(fn: (t: Topology) => void): () => void {
    this.topologyListeners.add(fn);
    return () => this.topologyListeners.delete(fn);
  }

  subscribe(fn: (e: ObserverEvent) => void): () => void {
    this.listeners.add(fn);
    // Errors and sync state are cheap to read: checked often so a bad config shows at once.
    if (!this.watchTimer && this.timer) {
      this.lastErrors = JSON.stringify(this.deps.errors());
      this.lastNodes = this.nodesKey(this.deps.nodes());
      this.watchTimer = setInterval(() => this.watch(), 500);
      this.watchTimer.unref();
    }
    return () => {
      this.listeners.delete(fn);
      if (this.listeners.size === 0) {
        clearInterval(this.watchTimer);
        this.watchTimer = undefined;
      }
    };
  }

  private emit(e: ObserverEvent): void {
    for (const fn of this.listeners) {
      try {
        fn(e);
      } catch {
        // a subscriber's failure (a closed stream) is its own
      }
    }
  }

  private watch(): void {
    const errors = this.deps.errors();
    const errorsJson = JSON.stringify(errors);
    if (errorsJson !== this.lastErrors) {
      this.lastErrors = errorsJson;
      this.emit({ type: 'errors', data: errors });
    }
    const nodes = this.deps.nodes();
    const nodesJson = this.nodesKey(nodes);
    if (nodesJson !== this.lastNodes) {
      this.lastNodes = nodesJson;
      this.emit({ type: 'nodes', data: { items: nodes } });
    }
  }

  /** Only what changes the sync state (not timestamps of each push). */
  private nodesKey(nodes: NodeStatus[]): string {
    return JSON.stringify(nodes.map((n) => [n.nodeId, n.types.map((t) => [t.type, t.state, t.ackedVersion])]));
  }

  /** Samples every report, computes this replica's share, adds the other replicas' and tells subscribers. */
  async tick(): Promise<Topology> {
    if (this.ticking) return this.latest;
    this.ticking = true;
    try {
      this.sample(Date.now());
      this.latestLocal = this.local();
      const peers = this.deps.peers ? await this.deps.peers().catch(() => []) : [];
      this.latest = this.merge([this.latestLocal, ...peers]);
      for (const fn of this.topologyListeners) fn(this.latest);
      this.emit({ type: 'topology', data: this.latest });
      return this.latest;
    } finally {
      this.ticking = false;
    }
  }

  private sample(now: number): void {
    const reports = this.deps.reports();
    for (const r of reports) {
      const list = this.history.get(r.node.id) ?? [];
      const last = list[list.length - 1];
      if (!last || r.receivedAt > last.at) list.push({ at: r.receivedAt, edges: r.edges });
      else {
        // No report since: the sidecar checks every reportIntervalMs and sends on change, so its
        // counters were unchanged until one interval (and the trip here) ago.
        const unchangedUntil = now - this.reportIntervalMs - REPORT_SLACK_MS;
        if (unchangedUntil > last.at) list.push({ at: unchangedUntil, edges: last.edges });
      }
      while (list.length > 2 && now - list[1].at >= this.windowMs) list.shift();
      this.history.set(r.node.id, list);
    }
    const live = new Set(reports.map((r) => r.node.id));
    for (const id of this.history.keys()) if (!live.has(id)) this.history.delete(id);
  }

  /** This replica's edge windows, instances, and sidecars without a metrics stream. */
  private local(): ReplicaTelemetry {
    const acc = new Map<string, EdgeWindow & { bucketMap: Map<number, number> }>();
    for (const samples of this.history.values()) {
      if (samples.length < 2) {
        // One report: the edges show, with no rate yet.
        for (const e of samples[0]?.edges ?? []) edgeAcc(acc, e);
        continue;
      }
      const first = samples[0];
      const last = samples[samples.length - 1];
      const seconds = (last.at - first.at) / 1000;
      const before = new Map(first.edges.map((e) => [edgeKey(e), e]));
      for (const e of last.edges) {
        const prev = before.get(edgeKey(e));
        // A counter that went down: the sidecar restarted; count from zero.
        const base = prev !== undefined && e.requests < prev.requests ? undefined : prev;
        const a = edgeAcc(acc, e);
        const requests = e.requests - (base?.requests ?? 0);
        a.requests += requests;
        if (seconds > 0) a.rps += requests / seconds;
        a.errors += e.errors - (base?.errors ?? 0);
        for (const [le, n] of e.buckets) a.bucketMap.set(le, (a.bucketMap.get(le) ?? 0) + n - (base?.buckets.get(le) ?? 0));
        a.seconds = Math.max(a.seconds, seconds);
      }
    }
    const windows = [...acc.values()].map(({ bucketMap, ...w }) => ({ ...w, buckets: Object.fromEntries([...bucketMap].map(([le, n]) => [le === Infinity ? '+Inf' : String(le), n])) }));
    const reported = new Set(this.deps.reports().map((r) => r.node.id));
    const nodes = this.deps.nodes();
    const replica = this.deps.replica?.() ?? '';
    const instances: Instance[] = nodes.map((n) => ({ nodeId: n.nodeId, service: n.node.service ? `${n.node.service}.${n.node.namespace}` : '', role: n.node.role, host: hostOf(n.peer), ...(n.node.hostname ? { hostname: n.node.hostname } : {}), replica: n.replica ?? replica }));
    const unreachable = nodes.filter((n) => n.node.role === 'sidecar' && !reported.has(n.nodeId) && Date.now() - new Date(n.connectedAt).getTime() > 2 * this.reportIntervalMs + REPORT_SLACK_MS).map((n) => ({ nodeId: n.nodeId, reason: 'no metrics stream from this sidecar' }));
    return { replica, windows, instances, unreachable };
  }

  /** The mesh's signals from every replica's share. */
  private merge(shares: ReplicaTelemetry[]): Topology {
    interface Acc {
      requests: number;
      errors: number;
      buckets: Map<number, number>;
      /** Rates add up (windows of different spans: an idle sidecar's is long), counts do for the rest. */
      rps: number;
      seconds: number;
    }
    const all = shares.flatMap((s) => s.windows);
    const toAcc = (list: EdgeWindow[]): Acc | undefined => {
      if (list.length === 0) return undefined;
      const m: Acc = { requests: 0, errors: 0, buckets: new Map(), rps: 0, seconds: 0 };
      for (const w of list) {
        m.requests += w.requests;
        m.errors += w.errors;
        m.rps += w.rps;
        m.seconds = Math.max(m.seconds, w.seconds);
        for (const [le, n] of Object.entries(w.buckets)) {
          const bound = le === '+Inf' ? Infinity : Number(le);
          m.buckets.set(bound, (m.buckets.get(bound) ?? 0) + n);
        }
      }
      return m;
    };
    const signals = (a: Acc | undefined): Signals => {
      if (!a || a.seconds <= 0) return { rps: 0, requests: 0 };
      const s: Signals = { rps: round(a.rps), requests: a.requests };
      if (a.requests > 0) {
        s.successRate = round((a.requests - a.errors) / a.requests, 4);
        const p50 = quantile(0.5, a.buckets);
        const p99 = quantile(0.99, a.buckets);
        if (p50 !== undefined) s.p50Ms = round(p50);
        if (p99 !== undefined) s.p99Ms = round(p99);
      }
      return s;
    };

    // Windows grouped once: by call (outbound), by callee as its callers saw it, and as it saw itself (inbound).
    const byCall = new Map<string, EdgeWindow[]>();
    const sentTo = new Map<string, EdgeWindow[]>();
    const arrivedAt = new Map<string, EdgeWindow[]>();
    const push = <T>(m: Map<string, T[]>, key: string, v: T) => (m.get(key) ?? m.set(key, []).get(key)!).push(v);
    for (const w of all) {
      if (w.direction === 'inbound') push(arrivedAt, w.destination, w);
      else if (w.destination !== '-') {
        push(byCall, `${w.source}\u0000${w.destination}`, w);
        push(sentTo, w.destination, w);
      }
    }
    const edges: EdgeSignals[] = [...byCall.keys()].sort().map((key) => {
      const [source, destination] = key.split('\u0000');
      return { source, destination, ...signals(toAcc(byCall.get(key)!)) };
    });

    const instances = shares.flatMap((s) => s.instances);
    const names = new Map<string, { name: string; namespace: string }>();
    for (const s of this.deps.services()) names.set(`${s.name}.${s.namespace}`, s);
    for (const i of instances) if (i.service) names.set(i.service, { name: i.service.split('.')[0], namespace: i.service.split('.').slice(1).join('.') });
    for (const e of edges) {
      for (const end of [e.source, e.destination]) {
        if (!names.has(end)) names.set(end, { name: end.split('.')[0], namespace: end.split('.').slice(1).join('.') || 'default' });
      }
    }
    const sidecarsOf = new Map<string, Instance[]>();
    for (const i of instances) if (i.role === 'sidecar') push(sidecarsOf, i.service, i);
    const services: ServiceSignals[] = [...names.keys()].sort().map((key) => {
      // What the service's own sidecars saw arrive; else what its callers' sidecars sent it.
      const seen = arrivedAt.get(key) ?? sentTo.get(key) ?? [];
      const own = sidecarsOf.get(key) ?? [];
      return { name: key, namespace: names.get(key)!.namespace, proxies: own.length, instances: own, ...signals(toAcc(seen)) };
    });
    const windowSeconds = Math.max(0, ...all.map((w) => w.seconds));
    return { at: new Date().toISOString(), windowSeconds: round(windowSeconds, 1), services, edges, unreachable: shares.flatMap((s) => s.unreachable), replicas: shares.filter((s) => s.answered !== false).map((s) => s.replica) };
  }
}

function edgeKey(e: { direction: string; source: string; destination: string }): string {
  return `${e.direction}\u0000${e.source}\u0000${e.destination}`;
}

function edgeAcc(acc: Map<string, EdgeWindow & { bucketMap: Map<number, number> }>, e: EdgeCounters): EdgeWindow & { bucketMap: Map<number, number> } {
  const key = edgeKey(e);
  let a = acc.get(key);
  if (!a) acc.set(key, (a = { direction: e.direction, source: e.source, destination: e.destination, requests: 0, errors: 0, buckets: {}, bucketMap: new Map(), rps: 0, seconds: 0 }));
  return a;
}

/** The host a node runs on, from its xDS stream's peer ("198.18.3.2:51234" → "198.18.3.2"). */
export function hostOf(peer: string): string {
  return peerAddress(peer) ?? peer;
}

function round(n: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}
