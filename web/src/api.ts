// The control plane's API as the dashboard reads it, and its live channel.

import type { SignalPoint, SignalSeries, Signals, Topology } from '../../src/observe/topology';
export type { ConfigBlock, EdgeConfig, EdgeSignals, Instance, ServiceSignals, SignalPoint, SignalSeries, Signals, Topology } from '../../src/observe/topology';

/** A failed request as /api/v1/requests?failed=1 lists it (a RequestRecord with where it was seen). */
export interface FailedRequest {
  node: string;
  host: string;
  time: number;
  durationMs: number;
  direction: string;
  method: string;
  authority: string;
  path: string;
  status: number;
  flags: string;
  source: string;
  destination: string;
  protocol?: string;
  grpcStatus?: number;
  [k: string]: unknown;
}
export interface ConfigErrorView {
  code?: string;
  message?: string;
  file?: string;
  document?: number;
  path?: string;
  [k: string]: unknown;
}
export interface Errors {
  config: ConfigErrorView[];
  snapshots: { message?: string; [k: string]: unknown }[];
  /** Config accepted but not (wholly) in effect, e.g. a backend's retries a route does not apply. */
  warnings?: { message: string; [k: string]: unknown }[];
}
export interface TypeStatus {
  type: string;
  state: string;
  sentVersion?: string;
  ackedVersion?: string;
  lastNack?: { version: string; message: string };
}
export interface NodeStatus {
  nodeId: string;
  node: { service?: string; namespace: string; role: string; zone?: string; adminPort?: number };
  peer: string;
  connectedAt: string;
  mode: string;
  types: TypeStatus[];
}

export class HttpStatusError extends Error {
  constructor(
    readonly path: string,
    readonly status: number,
  ) {
    super(`${path}: HTTP ${status}`);
  }
}

export async function getJson<T>(path: string): Promise<T> {
  const res = await fetch(path);
  if (!res.ok) throw new HttpStatusError(path, res.status);
  return (await res.json()) as T;
}

const recent = new Map<string, { at: number; value: Promise<unknown> }>();

/**
 * getJson, answered from the last answer while it is younger than `maxAgeMs`
 * (pages re-render on every live tick, about once a second; what they fetch
 * besides the live topology — a service's endpoints as its callers see them,
 * recent requests from every host — costs the sidecars a relay round trip).
 */
export function getJsonAtMost<T>(path: string, maxAgeMs: number): Promise<T> {
  const now = Date.now();
  const hit = recent.get(path);
  if (hit && now - hit.at < maxAgeMs) return hit.value as Promise<T>;
  const value = getJson<T>(path);
  recent.set(path, { at: now, value });
  value.catch(() => recent.delete(path)); // a failure is asked again next time
  if (recent.size > 50) recent.delete(recent.keys().next().value as string);
  return value;
}

/**
 * The series shown on the current page: fetched once from /api/v1/history
 * when the page opens, then one point appended per live topology tick (no
 * polling). Only one series is held: the page's.
 */
export class LiveSeries {
  private key = '';
  points: SignalPoint[] = [];
  stepSeconds = 2;

  /** Forgets the series (its page was left: it gets no ticks until it is opened again, from the history). */
  close(): void {
    this.key = '';
    this.points = [];
  }

  /** Loads the series at `historyUrl` unless it is the one held already. */
  async open(key: string, historyUrl: string): Promise<void> {
    if (key === this.key) return;
    this.key = key;
    this.points = [];
    try {
      const h = await getJson<SignalSeries>(historyUrl);
      if (this.key !== key) return;
      // Points that arrived live while the history was on its way stay after it.
      const lastAt = h.series.length ? h.series[h.series.length - 1].at : -Infinity;
      this.points = [...h.series, ...this.points.filter((p) => p.at > lastAt)];
      this.stepSeconds = h.stepSeconds;
    } catch {
      // no history (an older control plane): the chart fills from the live ticks
    }
  }

  /** The tick's point for the held series, when the topology has a window. */
  append(key: string, t: Topology, signals: Signals | undefined): void {
    if (key !== this.key || !signals || !(t.windowSeconds > 0)) return;
    const at = Date.parse(t.at);
    // The server keeps one sample per step; so does the page (ticks may come more often).
    if (this.points.length && at - this.points[this.points.length - 1].at < this.stepSeconds * 750) return;
    const p: SignalPoint = { at, rps: signals.rps };
    if (signals.successRate !== undefined) p.successRate = signals.successRate;
    if (signals.p50Ms !== undefined) p.p50Ms = signals.p50Ms;
    if (signals.p99Ms !== undefined) p.p99Ms = signals.p99Ms;
    this.points.push(p);
    const since = at - 15 * 60_000;
    while (this.points.length && this.points[0].at < since) this.points.shift();
  }
}

export interface LiveState {
  topology?: Topology;
  errors?: Errors;
  nodes?: NodeStatus[];
}

/** Subscribes to /api/v1/events; EventSource reconnects by itself. */
export function connectLive(state: LiveState, onChange: (what: keyof LiveState) => void, onStatus: (ok: boolean) => void): void {
  const es = new EventSource('api/v1/events');
  es.onopen = () => onStatus(true);
  es.onerror = () => onStatus(false);
  es.addEventListener('topology', (e) => {
    state.topology = JSON.parse((e as MessageEvent).data);
    onChange('topology');
  });
  es.addEventListener('errors', (e) => {
    state.errors = JSON.parse((e as MessageEvent).data);
    onChange('errors');
  });
  es.addEventListener('nodes', (e) => {
    state.nodes = JSON.parse((e as MessageEvent).data).items;
    onChange('nodes');
  });
}
