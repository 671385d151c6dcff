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
