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
}

export interface ServiceSignals extends Signals {
  /** "<name>.<namespace>" */
  name: string;
  namespace: string;
  /** Connected sidecars of the service. */
  proxies: number;
}

export interface Topology {
  at: string;
  windowSeconds: number;
  services: ServiceSignals[];
  edges: EdgeSignals[];
  /** Sidecars whose admin port could not be read, and why. */
  unreachable: { nodeId: string; reason: string }[];
}
