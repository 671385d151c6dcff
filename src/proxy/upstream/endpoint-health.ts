// What the sidecar itself learned about a cluster's endpoints: outlier
// ejections and active health check failures. One per cluster that has
// either, carried across configs like ClusterLoad. The load balancer of the
// newest runtime is rebuilt without the excluded endpoints whenever the
// verdicts change (rare), so picking costs nothing more.
//
// Panic: when the verdicts would leave no endpoint to pick, they are ignored
// and every endpoint EDS calls healthy is picked again (Envoy's panic mode at
// its floor; Envoy enters it already below 50 % healthy by default).
import type { ClusterConfig, Endpoint, EndpointSet } from '../config/types';
import type { TlsContexts } from '../tls/tls-contexts';
import { HealthChecker, type HealthCheckTransport } from './health-checker';
import { OutlierDetector } from './outlier-detector';

export class EndpointHealth {
  detector: OutlierDetector | undefined;
  checker: HealthChecker | undefined;
  private listener: (() => void) | undefined;
  /** The newest config: its transport socket matches say which endpoints health checks reach with mTLS. */
  private cluster: ClusterConfig | undefined;

  constructor(
    private readonly clusterName: string,
    private readonly tls?: TlsContexts,
  ) {}

  /** Whether a cluster config asks for any of it. */
  static wanted(config: ClusterConfig): boolean {
    return config.outlierDetection !== undefined || config.healthCheck !== undefined;
  }

  /** Settings and endpoints of the newest config. */
  configure(config: ClusterConfig, set: EndpointSet): void {
    this.cluster = config;
    const endpoints: Endpoint[] = set.localities.flatMap((l) => l.endpoints);
    const od = config.outlierDetection;
    if (!od) {
      this.detector?.stop();
      this.detector = undefined;
    } else {
      this.detector ??= new OutlierDetector(od, () => this.listener?.());
      this.detector.configure(od, endpoints.map((e) => e.key));
    }
    const hc = config.healthCheck;
    if (!hc) {
      this.checker?.stop();
      this.checker = undefined;
    } else {
      this.checker ??= new HealthChecker(hc, this.clusterName, () => this.listener?.(), (endpoint) => this.checkTransport(endpoint));
      this.checker.configure(hc, endpoints);
    }
  }

  /** How a health check reaches an endpoint: the cluster's transport socket, as its traffic does. */
  private checkTransport(endpoint: Endpoint): ReturnType<HealthCheckTransport> {
    return this.tls && this.cluster?.transportSocketMatches ? this.tls.healthCheckTransport(this.cluster, endpoint) : undefined;
  }

  /** The newest runtime's cluster listens (the previous one stops hearing). */
  onChange(listener: () => void): void {
    this.listener = listener;
  }

  isExcluded(key: string): boolean {
    return (this.detector?.isEjected(key) ?? false) || (this.checker?.isExcluded(key) ?? false);
  }

  /** The set without excluded endpoints; the same object when none is. */
  filter(set: EndpointSet): EndpointSet {
    if (!set.localities.some((l) => l.endpoints.some((e) => this.isExcluded(e.key)))) return set;
    return { ...set, localities: set.localities.map((l) => ({ ...l, endpoints: l.endpoints.filter((e) => !this.isExcluded(e.key)) })) };
  }

  /** An endpoint's verdicts for /clusters: outlier state and health check state, for what the cluster has. */
  view(key: string): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    const o = this.detector?.state(key);
    if (o) {
      const until = o.ejected ? Date.now() + Math.max(0, o.ejectedAt! + o.ejectionMs - performance.now()) : undefined;
      out.outlier = {
        ejected: o.ejected,
        ...(until !== undefined ? { ejectedUntil: new Date(until).toISOString(), ejectionMs: o.ejectionMs } : {}),
        timesEjected: o.timesEjected,
        successRate: o.successRate ?? null,
      };
    }
    const h = this.checker?.state(key);
    if (h) out.healthCheck = { state: h.state, ...(h.lastFailure ? { lastFailure: h.lastFailure } : {}) };
    return out;
  }

  stop(): void {
    this.detector?.stop();
    this.checker?.stop();
    this.listener = undefined;
  }
}
