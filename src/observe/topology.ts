// The mesh's golden signals as the control plane serves them (/api/v1/topology
// and the dashboard's live channel). Types only, with no imports: the
// dashboard (web/) imports this file too, so server and page agree on one shape.

export interface Signals {
  /** Requests per second over the window. */
  rps: number;
  /** Share of requests not answered 5xx, 0..1; absent without requests. */
  successRate?: number;
  p50Ms?: number;
  p99Ms?: number;
  /** Requests in the window. */
  requests: number;
}

export interface EdgeSignals extends Signals {
  source: string;
  destination: string;
  /**
   * Whether the caller's sidecar speaks mutual TLS to the destination, from
   * config (edge-security.ts): absent when it cannot be told (no endpoints,
   * undeclared destination).
   */
  security?: 'mtls' | 'plaintext';
  /** Why, in a sentence ("all 2 endpoints have a sidecar; MeshTLS strict"). */
  securityReason?: string;
  /** The destination's MeshTLS mode (permissive without a MeshTLS). */
  tlsMode?: 'strict' | 'permissive';
}

/** A connected node of the mesh and where it runs. */
export interface Instance {
  nodeId: string;
  /** "<name>.<namespace>" ('' for a node without a service). */
  service: string;
  role: string;
  /** The address its xDS connection comes from: the host it runs on, as the control plane sees it. */
  host: string;
  /** The host's name, as the node announced it. */
  hostname?: string;
  /** The control plane replica it is connected to. */
  replica: string;
}

export interface ServiceSignals extends Signals {
  /** "<name>.<namespace>" */
  name: string;
  namespace: string;
  /** Connected sidecars of the service, on every replica. */
  proxies: number;
  /** Those sidecars, and the hosts they run on. */
  instances?: Instance[];
}

export interface Topology {
  at: string;
  windowSeconds: number;
  services: ServiceSignals[];
  edges: EdgeSignals[];
  /** Sidecars connected over xDS that send no metrics, and why. */
  unreachable: { nodeId: string; reason: string }[];
  /** The control plane replicas whose sidecars are counted (every live one). */
  replicas?: string[];
}

// ---- Signals over time (/api/v1/history, signal-history.ts) ----

/** One sample of a service's or an edge's signals; `at` in epoch milliseconds. */
export interface SignalPoint {
  at: number;
  rps: number;
  successRate?: number;
  p50Ms?: number;
  p99Ms?: number;
}

/** /api/v1/history?service= or ?source=&destination=: one series, oldest first. */
export interface SignalSeries {
  stepSeconds: number;
  series: SignalPoint[];
}

/** Columns of one series over `HistoryAll.at`; null where it had no sample. */
export interface SignalColumns {
  rps: (number | null)[];
  successRate: (number | null)[];
  p50Ms: (number | null)[];
  p99Ms: (number | null)[];
}

/** /api/v1/history without a selector: every series, column-wise (one time axis, no repeated keys). */
export interface HistoryAll {
  stepSeconds: number;
  at: number[];
  services: Record<string, SignalColumns>;
  /** Keyed "<source> -> <destination>". */
  edges: Record<string, SignalColumns>;
  /** Series not kept because the cap was reached (services are kept before edges). */
  droppedSeries: number;
}

// ---- The config that applies to one edge (/api/v1/edges/:source/:destination, edge-config.ts) ----

/** One resource as the edge view shows it, with why it applies. */
export interface ConfigBlock {
  kind: string;
  name: string;
  namespace: string;
  /** "parentRef product.default", "backend of route product-canary", "namespace-wide"… */
  why: string;
  spec: unknown;
}

export interface EdgeConfig {
  source: string;
  destination: string;
  /** The edge's current signals (with its security), when it carried traffic in the window. */
  signals?: EdgeSignals;
  /** Set even without traffic: config alone tells it. */
  security?: Pick<EdgeSignals, 'security' | 'securityReason' | 'tlsMode'>;
  routes: ConfigBlock[];
  trafficPolicies: ConfigBlock[];
  meshTls: ConfigBlock[];
  authorizationPolicies: ConfigBlock[];
}
