// A sidecar's own listeners besides the data plane: the admin port (always)
// and the metrics listener (`--metrics-address`). One piece for both shapes
// of the sidecar, a single process (proxy.ts) or the primary of
// `--concurrency` (workers/proxy-primary.ts).
import type * as http from 'node:http';
import { formatHostPort, parseMetricsAddress } from '../../xds/metrics-address';
import { startAdminServer, type AdminSubject } from './admin-server';
import { startMetricsServer } from './metrics-server';

export class SidecarPorts {
  adminPort = 0;
  /** Where the metrics listener is bound, host:port (undefined without --metrics-address). */
  metricsAddress: string | undefined;
  private admin: http.Server | undefined;
  private metrics: http.Server | undefined;

  async listenAdmin(subject: AdminSubject, port: number): Promise<void> {
    this.admin = await startAdminServer(subject, port);
    this.adminPort = (this.admin.address() as { port: number }).port;
  }

  /** The same text as the admin port's /stats/prometheus; `dev`: a token is not required beyond loopback. */
  async listenMetrics(subject: AdminSubject, address: string, token: string | undefined, dev: boolean): Promise<void> {
    this.metrics = await startMetricsServer({ address, token, dev, render: () => subject.metricsText() });
    const bound = this.metrics.address() as { port: number };
    this.metricsAddress = formatHostPort(parseMetricsAddress(address, true).host, bound.port);
  }

  async close(): Promise<void> {
    for (const server of [this.admin, this.metrics]) {
      if (!server) continue;
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections(); // tap streams never end on their own
      });
    }
  }
}
