// The control plane's API as the dashboard reads it, and its live channel.

import type { Topology } from '../../src/observe/topology';
export type { EdgeSignals, ServiceSignals, Signals, Topology } from '../../src/observe/topology';
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

export async function getJson<T>(path: string): Promise<T> {
  const res = await fetch(path);
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
  return (await res.json()) as T;
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
