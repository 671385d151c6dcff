// Passive outlier detection for one cluster, with Envoy's semantics
// (source/common/upstream/outlier_detection_impl.cc):
//
// - consecutive 5xx: every 5xx counts, any other status resets the count; at
//   consecutive_5xx the endpoint is ejected (enforcing_consecutive_5xx % of
//   the time). consecutive gateway failures: the same with 502/503/504 only
//   (enforced 0 % by default). Locally originated failures count as a 503
//   (connect failure, reset, refused stream) or a 504 (timeout), as Envoy does
//   without split_external_local_origin_errors. The count starts over once it
//   fired, whether or not the ejection was allowed.
// - success rate: every interval, endpoints (not ejected) with at least
//   request_volume requests in that interval are compared when there are at
//   least minimum_hosts of them; one whose rate is below
//   mean − stdev_factor/1000 × stdev (population stdev) is ejected.
// - an ejection lasts min(base_ejection_time × multiplier, max_ejection_time);
//   the multiplier grows by one per ejection (while base × multiplier is
//   below the maximum) and shrinks by one at each interval the endpoint spends
//   un-ejected. Endpoints come back on the interval timer, with fresh counts.
// - max_ejection_percent: an ejection is allowed when the ejected endpoints,
//   this one included, are at most that percentage of the cluster's (so 10 %
//   ejects nothing in a cluster of fewer than 10), or, with
//   always_eject_one_host, when none is ejected yet.
//
// The state outlives config changes of the cluster (the runtime carries the
// detector over); endpoints that leave the cluster are forgotten.
import type { Endpoint, OutlierDetectionConfig } from '../config/types';
import type { LocalFailure } from '../retry';

/** gRPC statuses as HTTP ones (Envoy's Grpc::Utility::grpcToHttpStatus); OK and unknown codes: none. */
const GRPC_AS_HTTP = [0, 499, 500, 400, 504, 404, 409, 403, 429, 400, 409, 400, 501, 500, 503, 500, 401];

/**
 * The status outlier detection sees for a response: a trailers-only gRPC
 * answer's grpc-status as its HTTP equivalent (UNAVAILABLE → 503), else the
 * HTTP status.
 */
export function effectiveStatus(status: number, grpcStatus: string | string[] | undefined): number {
  if (grpcStatus === undefined) return status;
  return GRPC_AS_HTTP[Number(grpcStatus)] || status;
}

export interface HostOutlierState {
  ejected: boolean;
  /** performance.now() of the current (or last) ejection. */
  ejectedAt?: number;
  /** How long the current ejection lasts at least (it ends on the first interval tick after). */
  ejectionMs: number;
  timesEjected: number;
  /** The last interval's success rate in %, when the endpoint had request_volume requests. */
  successRate?: number;
}

class HostMonitor implements HostOutlierState {
  ejected = false;
  ejectedAt: number | undefined;
  ejectionMs = 0;
  timesEjected = 0;
  successRate: number | undefined;
  multiplier = 0;
  consecutive5xx = 0;
  consecutiveGateway = 0;
  requests = 0;
  failures = 0;
}

export class OutlierDetector {
  private readonly hosts = new Map<string, HostMonitor>();
  private timer: NodeJS.Timeout | undefined;
  private ejectedCount = 0;
  /** Ejections since the detector started (weft_outlier_ejections_total). */
  ejectionsTotal = 0;

  constructor(
    private config: OutlierDetectionConfig,
    /** Called when an endpoint is ejected or comes back. */
    private readonly changed: () => void,
    private readonly random: () => number = Math.random,
  ) {
    this.startTimer();
  }

  /** A new config of the same cluster: settings and endpoints; state is kept for endpoints that stay. */
  configure(config: OutlierDetectionConfig, keys: Iterable<string>): void {
    const restart = config.intervalMs !== this.config.intervalMs;
    this.config = config;
    const keep = new Set(keys);
    for (const key of keep) if (!this.hosts.has(key)) this.hosts.set(key, new HostMonitor());
    for (const [key, h] of this.hosts) {
      if (keep.has(key)) continue;
      if (h.ejected) this.ejectedCount--;
      this.hosts.delete(key);
    }
    if (restart) this.startTimer();
  }

  response(endpoint: Endpoint, status: number): void {
    const h = this.hosts.get(endpoint.key);
    if (h === undefined) return; // an endpoint of an older config
    h.requests++;
    if (status < 500) {
      h.consecutive5xx = 0;
      h.consecutiveGateway = 0;
      return;
    }
    h.failures++;
    const c = this.config;
    if (status === 502 || status === 503 || status === 504) {
      if (++h.consecutiveGateway === c.consecutiveGatewayFailure) {
        h.consecutiveGateway = 0;
        this.consider(h, c.enforcingConsecutiveGatewayFailure);
      }
    } else {
      h.consecutiveGateway = 0;
    }
    if (++h.consecutive5xx === c.consecutive5xx) {
      h.consecutive5xx = 0;
      this.consider(h, c.enforcingConsecutive5xx);
    }
  }

  failure(endpoint: Endpoint, failure: LocalFailure): void {
    this.response(endpoint, failure === 'timeout' ? 504 : 503);
  }

  isEjected(key: string): boolean {
    return this.hosts.get(key)?.ejected ?? false;
  }

  state(key: string): HostOutlierState | undefined {
    return this.hosts.get(key);
  }

  get ejected(): number {
    return this.ejectedCount;
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private startTimer(): void {
    clearInterval(this.timer);
    this.timer = setInterval(() => this.tick(), this.config.intervalMs);
    this.timer.unref();
  }

  /** A detector fired: eject when enforcement and max_ejection_percent allow. */
  private consider(h: HostMonitor, enforcing: number): void {
    if (h.ejected || enforcing <= 0) return;
    if (enforcing < 100 && this.random() * 100 >= enforcing) return;
    if (this.eject(h, performance.now())) this.changed();
  }

  private eject(h: HostMonitor, now: number): boolean {
    const c = this.config;
    const percent = (100 * (this.ejectedCount + 1)) / this.hosts.size;
    if (percent > c.maxEjectionPercent && !(c.alwaysEjectOneHost && this.ejectedCount === 0)) return false;
    if (h.multiplier * c.baseEjectionTimeMs < c.maxEjectionTimeMs) h.multiplier++;
    h.ejected = true;
    h.ejectedAt = now;
    h.ejectionMs = Math.min(c.baseEjectionTimeMs * h.multiplier, c.maxEjectionTimeMs);
    h.timesEjected++;
    this.ejectedCount++;
    this.ejectionsTotal++;
    return true;
  }

  private tick(): void {
    const now = performance.now();
    let changed = false;
    for (const h of this.hosts.values()) {
      if (!h.ejected) {
        if (h.multiplier > 0) h.multiplier--;
      } else if (now - h.ejectedAt! >= h.ejectionMs) {
        h.ejected = false;
        h.consecutive5xx = 0;
        h.consecutiveGateway = 0;
        this.ejectedCount--;
        changed = true;
      }
    }
    if (this.successRateEjections(now)) changed = true;
    if (changed) this.changed();
  }

  /**
   * Closes the interval's bucket and ejects the outliers: by success rate
   * (below mean − factor × stdev) and by failure percentage (at or above the
   * threshold), each among the hosts with enough requests.
   */
  private successRateEjections(now: number): boolean {
    const sr = this.config.successRate;
    const fp = this.config.failurePercentage;
    const rated: HostMonitor[] = [];
    const failing: { h: HostMonitor; percent: number }[] = [];
    for (const h of this.hosts.values()) {
      h.successRate = h.requests >= sr.requestVolume && h.requests > 0 ? (100 * (h.requests - h.failures)) / h.requests : undefined;
      if (h.requests >= fp.requestVolume && h.requests > 0 && !h.ejected) failing.push({ h, percent: (100 * h.failures) / h.requests });
      h.requests = 0;
      h.failures = 0;
      if (h.successRate !== undefined && !h.ejected) rated.push(h);
    }
    let ejected = false;
    if (fp.enforcing > 0 && failing.length > 0 && failing.length >= fp.minimumHosts) {
      for (const { h, percent } of failing) {
        if (percent < fp.threshold || h.ejected) continue;
        if (fp.enforcing < 100 && this.random() * 100 >= fp.enforcing) continue;
        if (this.eject(h, now)) ejected = true;
      }
    }
    if (sr.enforcing <= 0 || rated.length === 0 || rated.length < sr.minimumHosts) return ejected;
    const mean = rated.reduce((sum, h) => sum + h.successRate!, 0) / rated.length;
    const variance = rated.reduce((sum, h) => sum + (h.successRate! - mean) ** 2, 0) / rated.length;
    const threshold = mean - (sr.stdevFactor / 1000) * Math.sqrt(variance);
    for (const h of rated) {
      if (h.successRate! >= threshold || h.ejected) continue;
      if (sr.enforcing < 100 && this.random() * 100 >= sr.enforcing) continue;
      if (this.eject(h, now)) ejected = true;
    }
    return ejected;
  }
}
