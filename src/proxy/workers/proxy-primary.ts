// `weft proxy --concurrency N` (N > 1): the primary process. It owns the
// control-plane side, once for the whole proxy: the one xDS stream (one
// node, one registration), the certificate agent and SDS trust bundle, the
// admin port, the metrics listener and the telemetry streams. Its N workers
// (worker-main.ts) own the data plane. The primary relays what it accepted
// and answers the admin port for all of them:
//   - /stats/prometheus (and the metrics listener) is the SUM over workers,
//     asked for at each scrape (no staleness); a worker that died keeps its
//     counts in the totals as of its last report (at most REFRESH_MS old:
//     what it counted after that is lost), its gauges leave;
//   - telemetry reports and the unhealthy-endpoint list read the sum the
//     primary refreshes every REFRESH_MS;
//   - /clusters, /listeners, /requests, /tap merge the workers' answers;
//     /workers lists them (pid, state, config versions, requests served).
// Per worker, not shared (Envoy's worker threads share all but the pools):
// upstream pools, circuit-breaker counts (a limit of M admits up to N×M),
// outlier detection, health checking (each worker probes every endpoint),
// retry budgets; local rate limit buckets are divided, each worker decoding
// a 1/N share (filters/local-rate-limit.ts), so the whole stays at the rate.
import type { RequestRecord } from '../../observe/request-record';
import type { LogLevel } from '../../observe/log';
import type { XdsClient } from '../../xds/client/ads-client';
import type { AdminSubject } from '../admin/admin-server';
import { SidecarPorts } from '../admin/sidecar-ports';
import { RECENT_REQUESTS, startSidecar, waitUntilReady, xdsMetrics, type ProxyOptions } from '../proxy';
import { ProxyStats } from '../stats';
import type { UnhealthyEndpoint } from '../telemetry/metrics-report';
import type { TelemetryClient } from '../telemetry/telemetry-client';
import type { CertificateAgent } from '../tls/certificate-agent';
import { certsView } from '../tls/certs-view';
import { SecretStore, WORKLOAD_CERT_SECRET } from '../tls/secret-store';
import { DEFAULT_DRAIN_MS } from '../listener/listener-manager';
import { mergeClusters, mergeListeners, mergeRequests } from './merge-views';
import { sumExposition } from './sum-exposition';
import { WorkerPool } from './worker-pool';
import type { WorkerReport } from './worker-protocol';

/** How often the primary refreshes the sum telemetry reads (and the dead workers' counts it keeps). */
const REFRESH_MS = 1000;

export class ProxyPrimary implements AdminSubject {
  /** The primary's own: tap subscribers (fed by the workers while there are any) and tap drops. */
  readonly stats = new ProxyStats(0);
  readonly secrets = new SecretStore();
  certificateAgent: CertificateAgent | undefined;
  telemetry: TelemetryClient | undefined;
  readonly pool: WorkerPool;
  readonly ports = new SidecarPorts();
  private configAppliedAt = 0;
  /** What workers that died had counted. */
  private readonly retired = new ProxyStats(0);
  /** The last report of each running worker, by pid. */
  private readonly lastReports = new Map<number, WorkerReport>();
  private summed = new ProxyStats(0);
  private unhealthy: UnhealthyEndpoint[] = [];
  private readonly refresher: NodeJS.Timeout;

  constructor(
    readonly opts: ProxyOptions,
    readonly xds: XdsClient,
    count: number,
    logLevel: LogLevel,
  ) {
    this.stats.identify(opts.service, opts.namespace);
    this.retired.identify(opts.service, opts.namespace);
    this.pool = new WorkerPool({
      count,
      init: {
        logLevel,
        xds: opts.xds,
        nodeId: opts.nodeId,
        service: opts.service,
        namespace: opts.namespace,
        caFile: opts.caFile,
        tracing: opts.tracing,
        metrics: opts.metrics,
        recentRequests: opts.recentRequests ?? RECENT_REQUESTS,
        accessLog: opts.accessLog,
        accessLogSample: opts.accessLogSample,
      },
      secrets: this.secrets,
      log: opts.log,
      onExit: (pid) => {
        const last = this.lastReports.get(pid);
        this.lastReports.delete(pid);
        if (last) this.retired.add(last.stats, false);
      },
      onRecords: (records: RequestRecord[]) => {
        for (const r of records) this.stats.records.emit(r);
      },
    });
    this.stats.records.onObservers = (n) => this.pool.tap(n > 0);
    xds.onConfig(() => {
      this.pool.config(xds.held());
      this.configAppliedAt = Date.now();
      opts.log('info', 'config relayed to the workers', { versions: xds.current()?.versions });
    });
    this.refresher = setInterval(() => void this.refresh().catch(() => {}), REFRESH_MS);
    this.refresher.unref();
  }

  /** Asks every worker for its counts; the sum becomes what telemetry and the admin port read. */
  async refresh(): Promise<{ sum: ProxyStats; metrics: string[][] }> {
    const answers = await this.pool.ask<WorkerReport>({ what: 'report' });
    const sum = new ProxyStats(0);
    sum.identify(this.opts.service, this.opts.namespace);
    const retired = this.retired.snapshot();
    retired.scalars.uncaught = this.retired.uncaughtElsewhere; // the dead workers' only, not this process's
    sum.add(retired, false);
    const unhealthy = new Map<string, UnhealthyEndpoint>();
    for (const { slot, pid, body } of answers) {
      // By pid: an answer that arrives after its worker died must not count for the one replacing it.
      if (slot.pid === pid) this.lastReports.set(pid, body);
      sum.add(body.stats);
      for (const u of body.unhealthy) unhealthy.set(`${u.cluster}\u0000${u.endpoint}\u0000${u.reason}`, u);
    }
    sum.tapDropped += this.stats.tapDropped;
    this.summed = sum;
    this.unhealthy = [...unhealthy.values()];
    return { sum, metrics: answers.map((a) => a.body.metrics) };
  }

  countedStats(): ProxyStats {
    return this.summed;
  }

  async metricsText(): Promise<string> {
    const { sum, metrics } = await this.refresh();
    return sum.render([...sumExposition(metrics), ...xdsMetrics(this.xds.status(), this.configAppliedAt)]);
  }

  ready(): boolean {
    return this.xds.current() !== undefined && this.hasCertificate() && this.pool.slots.some((s) => s.state.ready);
  }

  private hasCertificate(): boolean {
    return !this.certificateAgent || this.secrets.certificate(WORKLOAD_CERT_SECRET) !== undefined;
  }

  notReadyReason(): string {
    if (!this.xds.current()) return 'no config from the control plane yet';
    if (!this.hasCertificate()) {
      const error = this.certificateAgent?.status().lastError;
      return `no workload certificate yet${error ? `: ${error}` : ''}`;
    }
    return this.pool.slots.map((s) => `worker ${s.slot}: ${s.state.reason || 'not ready'}`).join('; ');
  }

  /** Waits until ready, or rejects after `timeoutMs`. */
  waitReady(timeoutMs: number): Promise<void> {
    return waitUntilReady(this, timeoutMs);
  }

  certsView(): unknown {
    return certsView(this.secrets, this.certificateAgent?.status());
  }

  private async views<T>(path: string, query = ''): Promise<T[]> {
    return (await this.pool.ask<T>({ what: 'view', path, query })).map((a) => a.body);
  }

  async configDump(): Promise<unknown> {
    return { node: this.opts.nodeId, xds: this.xds.status(), resources: this.xds.configDump(), listeners: await this.listenersView() };
  }

  async clustersView(): Promise<unknown> {
    return mergeClusters(await this.views('/clusters'));
  }

  async listenersView(): Promise<unknown> {
    return mergeListeners(await this.views('/listeners'));
  }

  async recentRequests(query: URLSearchParams): Promise<unknown> {
    return mergeRequests(await this.views('/requests', query.toString()), Number(query.get('limit') ?? 100));
  }

  unhealthyEndpoints(): UnhealthyEndpoint[] {
    return this.unhealthy;
  }

  /** GET /workers: each worker's process, state and what it served. */
  async workersView(): Promise<unknown> {
    const reports = new Map((await this.pool.ask<WorkerReport>({ what: 'report' })).map((a) => [a.slot.slot, a.body.stats]));
    return this.pool.slots.map((s) => {
      const stats = reports.get(s.slot);
      return {
        worker: s.slot,
        pid: s.pid,
        ready: s.state.ready,
        ...(s.state.reason ? { reason: s.state.reason } : {}),
        versions: s.state.versions,
        startedAt: s.startedAt ? new Date(s.startedAt).toISOString() : undefined,
        restarts: s.restarts,
        requests: stats?.requests.reduce((n, r) => n + r.counts[0], 0),
        connections: stats ? stats.scalars.downstreamConnectionsTotal + stats.tcp.reduce((n, t) => n + t.counts[0], 0) : undefined,
      };
    });
  }

  get adminPort(): number {
    return this.ports.adminPort;
  }

  get metricsAddress(): string | undefined {
    return this.ports.metricsAddress;
  }

  /** Stops the control-plane side, then the workers (each drains for up to `drainMs`). */
  async close(drainMs = DEFAULT_DRAIN_MS): Promise<void> {
    clearInterval(this.refresher);
    this.xds.stop();
    this.telemetry?.stop();
    this.certificateAgent?.stop();
    await this.pool.stop(drainMs + 2000);
    await this.ports.close();
  }
}

/** weft proxy with `count` > 1 workers; the same options as startProxy. */
export async function startProxyWorkers(opts: ProxyOptions, count: number, logLevel: LogLevel): Promise<ProxyPrimary> {
  // The workers are forked once the admin port is known and before the first config arrives.
  return startSidecar(opts, (xds) => new ProxyPrimary(opts, xds, count, logLevel), (primary) => primary.pool.start());
}
