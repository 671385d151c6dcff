// The control plane's view of live traffic: every `intervalMs` it scrapes the
// connected sidecars' admin /stats/prometheus (the admin port a sidecar
// announces, on loopback), and turns counter deltas over a sliding window
// into golden signals per service and per edge (request rate, success rate,
// p50/p99 from histogram bucket deltas). It also notices changes of config
// errors and of proxies' sync state, and pushes all three to subscribers
// (the dashboard's Server-Sent Events, /api/v1/events).
import * as http from 'node:http';
import type { NodeStatus } from '../xds/server/node-status';
import { edgeCounters, quantile, type EdgeCounters } from './mesh-metrics';
import type { EdgeSignals, ServiceSignals, Signals, Topology } from './topology';

export type { EdgeSignals, ServiceSignals, Signals, Topology } from './topology';

export type ObserverEvent = { type: 'topology'; data: Topology } | { type: 'errors'; data: unknown } | { type: 'nodes'; data: unknown };

export interface ObserverDeps {
  nodes(): NodeStatus[];
  /** Services the mesh declares, as {name, namespace}: shown even without traffic. */
  services(): { name: string; namespace: string }[];
  /** Config and snapshot errors, as /api/v1/errors answers. */
  errors(): unknown;
  intervalMs?: number;
  windowMs?: number;
}

/** With no subscriber, scraping stops this long after the last topology read. */
const IDLE_MS = 60_000;

interface Scrape {
  at: number;
  edges: EdgeCounters[];
}

/** The admin address of a node's sidecar, when it announced one on this host. */
export function adminUrl(n: NodeStatus): string | undefined {
  if (n.node.role !== 'sidecar' || !n.node.adminPort) return undefined;
  const host = n.peer.replace(/^ipv[46]:/, '').replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  if (!/^(127\.|::1$|::ffff:127\.|localhost$)/.test(host)) return undefined;
  return `http://127.0.0.1:${n.node.adminPort}`;
}

/** GET over node:http with a short timeout (sidecar admin ports). */
export function getText(url: string, timeoutMs = 1500): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: timeoutMs, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`HTTP ${res.statusCode}`))));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });
}

export class MeshObserver {
  private readonly intervalMs: number;
  private readonly windowMs: number;
  /** nodeId → scrapes, oldest first, covering the window. */
  private readonly history = new Map<string, Scrape[]>();
  private latest: Topology;
  private readonly listeners = new Set<(e: ObserverEvent) => void>();
  private timer?: NodeJS.Timeout;
  private watchTimer?: NodeJS.Timeout;
  private lastErrors = '';
  private lastNodes = '';
  private scraping = false;
  private stopped = true;
  private lastDemand = 0;

  constructor(private readonly deps: ObserverDeps) {
    this.intervalMs = deps.intervalMs ?? 2000;
    this.windowMs = deps.windowMs ?? 10_000;
    this.latest = this.compute([]);
  }

  /**
   * Scrapes only while someone looks: an event-stream subscriber, or a
   * topology read in the last minute (`weft top`). An idle control plane
   * (and every test's) costs its sidecars nothing.
   */
  start(): void {
    this.stopped = false;
  }

  stop(): void {
    this.stopped = true;
    this.pause();
    this.listeners.clear();
  }

  private demand(): void {
    this.lastDemand = Date.now();
    if (this.stopped || this.timer) return;
    this.timer = setInterval(() => {
      if (this.listeners.size === 0 && Date.now() - this.lastDemand > IDLE_MS) return this.pause();
      void this.tick();
    }, this.intervalMs);
    this.timer.unref();
    void this.tick();
  }

  private pause(): void {
    clearInterval(this.timer);
    clearInterval(this.watchTimer);
    this.timer = this.watchTimer = undefined;
    this.history.clear();
  }

  topology(): Topology {
    this.demand();
    return this.latest;
  }

  subscribe(fn: (e: ObserverEvent) => void): () => void {
    this.listeners.add(fn);
    this.demand();
    // Errors and sync state are cheap to read: checked often so a bad config shows at once.
    if (!this.watchTimer && !this.stopped) {
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

  /** One scrape of every sidecar, then new signals for subscribers. */
  async tick(): Promise<Topology> {
    if (this.scraping) return this.latest;
    this.scraping = true;
    try {
      const nodes = this.deps.nodes();
      const unreachable: Topology['unreachable'] = [];
      const now = Date.now();
      await Promise.all(
        nodes.map(async (n) => {
          const url = adminUrl(n);
          if (!url) return;
          try {
            const text = await getText(`${url}/stats/prometheus`);
            const self = `${n.node.service ?? n.nodeId}.${n.node.namespace}`;
            const list = this.history.get(n.nodeId) ?? [];
            list.push({ at: now, edges: edgeCounters(text, self) });
            while (list.length > 2 && now - list[1].at >= this.windowMs) list.shift();
            this.history.set(n.nodeId, list);
          } catch (err) {
            unreachable.push({ nodeId: n.nodeId, reason: (err as Error).message });
          }
        }),
      );
      const live = new Set(nodes.map((n) => n.nodeId));
      for (const id of this.history.keys()) if (!live.has(id)) this.history.delete(id);
      this.latest = this.compute(unreachable);
      this.emit({ type: 'topology', data: this.latest });
      return this.latest;
    } finally {
      this.scraping = false;
    }
  }

  private compute(unreachable: Topology['unreachable']): Topology {
    interface Acc {
      requests: number;
      errors: number;
      buckets: Map<number, number>;
      seconds: number;
    }
    const acc = new Map<string, Acc & { direction: string; source: string; destination: string }>();
    let windowSeconds = 0;
    for (const scrapes of this.history.values()) {
      const last = scrapes[scrapes.length - 1];
      const first = scrapes.length > 1 ? scrapes[0] : undefined;
      const seconds = first ? (last.at - first.at) / 1000 : 0;
      windowSeconds = Math.max(windowSeconds, seconds);
      const before = new Map((first?.edges ?? []).map((e) => [`${e.direction}\u0000${e.source}\u0000${e.destination}`, e]));
      for (const e of last.edges) {
        const key = `${e.direction}\u0000${e.source}\u0000${e.destination}`;
        const prev = before.get(key);
        // A counter that went down: the sidecar restarted; count from zero.
        const reset = prev !== undefined && e.requests < prev.requests;
        const base = reset ? undefined : prev;
        let a = acc.get(key);
        if (!a) acc.set(key, (a = { direction: e.direction, source: e.source, destination: e.destination, requests: 0, errors: 0, buckets: new Map(), seconds: 0 }));
        // Without two scrapes there is no rate yet: the edge shows, with no traffic.
        if (!first) continue;
        a.requests += e.requests - (base?.requests ?? 0);
        a.errors += e.errors - (base?.errors ?? 0);
        for (const [le, n] of e.buckets) a.buckets.set(le, (a.buckets.get(le) ?? 0) + n - (base?.buckets.get(le) ?? 0));
        a.seconds = Math.max(a.seconds, seconds);
      }
    }
    const signals = (a: Acc | undefined): Signals => {
      if (!a || a.seconds <= 0) return { rps: 0, requests: 0 };
      const s: Signals = { rps: round(a.requests / a.seconds), requests: a.requests };
      if (a.requests > 0) {
        s.successRate = round((a.requests - a.errors) / a.requests, 4);
        const p50 = quantile(0.5, a.buckets);
        const p99 = quantile(0.99, a.buckets);
        if (p50 !== undefined) s.p50Ms = round(p50);
        if (p99 !== undefined) s.p99Ms = round(p99);
      }
      return s;
    };
    const merge = (list: Acc[]): Acc | undefined => {
      if (list.length === 0) return undefined;
      const m: Acc = { requests: 0, errors: 0, buckets: new Map(), seconds: 0 };
      for (const a of list) {
        m.requests += a.requests;
        m.errors += a.errors;
        m.seconds = Math.max(m.seconds, a.seconds);
        for (const [le, n] of a.buckets) m.buckets.set(le, (m.buckets.get(le) ?? 0) + n);
      }
      return m;
    };

    const all = [...acc.values()];
    const edges: EdgeSignals[] = [];
    const outbound = all.filter((a) => a.direction !== 'inbound' && a.destination !== '-');
    const edgeKeys = new Set<string>();
    for (const a of outbound) edgeKeys.add(`${a.source}\u0000${a.destination}`);
    for (const key of [...edgeKeys].sort()) {
      const [source, destination] = key.split('\u0000');
      edges.push({ source, destination, ...signals(merge(outbound.filter((a) => a.source === source && a.destination === destination))) });
    }

    const nodes = this.deps.nodes();
    const names = new Map<string, { name: string; namespace: string }>();
    for (const s of this.deps.services()) names.set(`${s.name}.${s.namespace}`, s);
    for (const n of nodes) if (n.node.service) names.set(`${n.node.service}.${n.node.namespace}`, { name: n.node.service, namespace: n.node.namespace });
    for (const e of edges) {
      for (const end of [e.source, e.destination]) {
        if (!names.has(end)) names.set(end, { name: end.split('.')[0], namespace: end.split('.').slice(1).join('.') || 'default' });
      }
    }
    const services: ServiceSignals[] = [...names.keys()].sort().map((key) => {
      // What the service's own sidecars saw arrive; else what its callers' sidecars sent it.
      const inbound = all.filter((a) => a.direction === 'inbound' && a.destination === key);
      const seen = inbound.length > 0 ? inbound : outbound.filter((a) => a.destination === key);
      return {
        name: key,
        namespace: names.get(key)!.namespace,
        proxies: nodes.filter((n) => n.node.role === 'sidecar' && `${n.node.service}.${n.node.namespace}` === key).length,
        ...signals(merge(seen)),
      };
    });
    return { at: new Date().toISOString(), windowSeconds: round(windowSeconds, 1), services, edges, unreachable };
  }
}

function round(n: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}
