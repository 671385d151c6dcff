// The messages between `weft proxy --concurrency N`'s primary and its
// workers, over node:cluster's IPC channel ('advanced' serialization: Maps,
// Dates and byte arrays cross as they are). Nothing here is per request:
// config and secrets go down when they change, reports and views are asked
// for when someone scrapes or reads the admin port.
import type { LogLevel } from '../../observe/log';
import type { RequestRecord } from '../../observe/request-record';
import type { TracingOptions } from '../../observe/tracing/proxy-tracer';
import type { RawResourceSet } from '../../xds/client/config-assembly';
import type { StatsSnapshot } from '../stats';
import type { UnhealthyEndpoint } from '../telemetry/metrics-report';
import type { CertificateSecret, TrustBundleSecret } from '../tls/secret-store';

/** What a worker is started with: the proxy's options that concern the data plane. */
export interface WorkerInit {
  /** 1…N; a replacement takes the slot of the worker it replaces. */
  slot: number;
  workers: number;
  logLevel: LogLevel;
  xds: string;
  nodeId: string;
  service?: string;
  namespace: string;
  caFile?: string;
  tracing?: TracingOptions;
  metrics?: boolean;
  recentRequests?: number;
  accessLog?: string;
  accessLogSample?: number;
}

export type ToWorker =
  | { t: 'init'; init: WorkerInit }
  | { t: 'config'; raw: RawResourceSet }
  | { t: 'certificate'; name: string; secret: CertificateSecret }
  | { t: 'bundle'; name: string; secret: TrustBundleSecret }
  | { t: 'ask'; id: number; what: 'report' }
  | { t: 'ask'; id: number; what: 'view'; path: string; query: string }
  /** Someone taps the primary: send finished requests (batched) until off. */
  | { t: 'tap'; on: boolean }
  | { t: 'stop' };

/** A worker's counts and data-plane gauges, summed by the primary. */
export interface WorkerReport {
  stats: StatsSnapshot;
  /** Proxy.dataPlaneMetrics(): Prometheus lines. */
  metrics: string[];
  unhealthy: UnhealthyEndpoint[];
}

export interface WorkerState {
  ready: boolean;
  reason: string;
  /** The versions of the config it applied last ('' before the first). */
  versions: RawResourceSet['versions'] | undefined;
}

export type FromWorker = ({ t: 'state' } & WorkerState) | { t: 'answer'; id: number; body?: unknown; error?: string } | { t: 'records'; records: RequestRecord[] };
