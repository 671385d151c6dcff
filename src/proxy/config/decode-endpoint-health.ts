// A Cluster's outlier_detection and health_checks → ClusterConfig.
//
// Supported subset (anything else that changes behaviour is a NACK naming it):
//   OutlierDetection   consecutive_5xx (default 5), enforcing_consecutive_5xx (100),
//                      consecutive_gateway_failure (5), enforcing_consecutive_gateway_failure (0),
//                      interval (10 s), base_ejection_time (30 s), max_ejection_time (300 s or the
//                      base, whichever is larger; not below the base),
//                      max_ejection_percent (10), always_eject_one_host (false),
//                      enforcing_success_rate (100), success_rate_minimum_hosts (5),
//                      success_rate_request_volume (100), success_rate_stdev_factor (1900),
//                      enforcing_failure_percentage (0), failure_percentage_minimum_hosts (5),
//                      failure_percentage_request_volume (50), failure_percentage_threshold (85)
//                      split_external_local_origin_errors false only: locally originated
//                      failures count as 5xx and gateway errors (Envoy's default).
//   HealthCheck        one entry: timeout, interval, unhealthy_threshold, healthy_threshold (all
//                      required, above 0), and one of http_health_check {path, host,
//                      expected_statuses (default [200, 201)), method GET}, tcp_health_check {}
//                      (connect only), grpc_health_check {service_name, authority}
// Not supported (NACK): consecutive_local_origin_failure and the
// local-origin enforcing_*, max_ejection_time_jitter, monitors,
// successful_active_health_check_uneject_host; more than one health check, jitters,
// no_traffic_interval and the other *_interval fields, alt_port, payloads (send/receive),
// request headers, codecs other than HTTP/1.1, custom/redis checks, TLS options, event logs.
import { onlyFields, type FieldPath } from './nack';
import { bool, durationMs, u32, type Obj } from './read-proto';
import type { HealthCheckConfig, OutlierDetectionConfig } from './types';

const T = 'envoy.config.cluster.v3.OutlierDetection';
const HC = 'envoy.config.core.v3.HealthCheck';

/** Envoy's defaults. */
export const OUTLIER_DEFAULTS = {
  consecutive5xx: 5,
  consecutiveGatewayFailure: 5,
  intervalMs: 10_000,
  baseEjectionTimeMs: 30_000,
  maxEjectionTimeMs: 300_000,
  maxEjectionPercent: 10,
  successRate: { minimumHosts: 5, requestVolume: 100, stdevFactor: 1900 },
  failurePercentage: { minimumHosts: 5, requestVolume: 50, threshold: 85 },
} as const;

export function decodeOutlierDetection(at: FieldPath, od: Obj): OutlierDetectionConfig {
  onlyFields(at, T, od, [
    'consecutive_5xx',
    'enforcing_consecutive_5xx',
    'consecutive_gateway_failure',
    'enforcing_consecutive_gateway_failure',
    'interval',
    'base_ejection_time',
    'max_ejection_time',
    'max_ejection_percent',
    'always_eject_one_host',
    'enforcing_success_rate',
    'success_rate_minimum_hosts',
    'success_rate_request_volume',
    'success_rate_stdev_factor',
    'enforcing_failure_percentage',
    'failure_percentage_minimum_hosts',
    'failure_percentage_request_volume',
    'failure_percentage_threshold',
  ]);
  const percent = (field: string, whenAbsent: number): number => {
    const v = u32(od[field], whenAbsent);
    if (v > 100) at.field(field).invalid(`must be 0-100, got ${v}`);
    return v;
  };
  const positiveMs = (field: string, whenAbsent: number): number => {
    const ms = durationMs(at.field(field), od[field], whenAbsent);
    if (ms === 0) at.field(field).invalid('must be above 0');
    return ms;
  };
  const D = OUTLIER_DEFAULTS;
  const out: OutlierDetectionConfig = {
    consecutive5xx: u32(od.consecutive_5xx, D.consecutive5xx),
    enforcingConsecutive5xx: percent('enforcing_consecutive_5xx', 100),
    consecutiveGatewayFailure: u32(od.consecutive_gateway_failure, D.consecutiveGatewayFailure),
    enforcingConsecutiveGatewayFailure: percent('enforcing_consecutive_gateway_failure', 0),
    intervalMs: positiveMs('interval', D.intervalMs),
    baseEjectionTimeMs: positiveMs('base_ejection_time', D.baseEjectionTimeMs),
    maxEjectionTimeMs: 0,
    maxEjectionPercent: percent('max_ejection_percent', D.maxEjectionPercent),
    alwaysEjectOneHost: bool(od.always_eject_one_host, false),
    successRate: {
      enforcing: percent('enforcing_success_rate', 100),
      minimumHosts: u32(od.success_rate_minimum_hosts, D.successRate.minimumHosts),
      requestVolume: u32(od.success_rate_request_volume, D.successRate.requestVolume),
      stdevFactor: u32(od.success_rate_stdev_factor, D.successRate.stdevFactor),
    },
    failurePercentage: {
      enforcing: percent('enforcing_failure_percentage', 0),
      minimumHosts: u32(od.failure_percentage_minimum_hosts, D.failurePercentage.minimumHosts),
      requestVolume: u32(od.failure_percentage_request_volume, D.failurePercentage.requestVolume),
      threshold: percent('failure_percentage_threshold', D.failurePercentage.threshold),
    },
  };
  // Unset, the maximum is 300 s or the base, whichever is larger (Envoy); set, it may not be below the base.
  out.maxEjectionTimeMs = od.max_ejection_time ? positiveMs('max_ejection_time', 0) : Math.max(D.maxEjectionTimeMs, out.baseEjectionTimeMs);
  if (out.maxEjectionTimeMs < out.baseEjectionTimeMs) {
    at.field('max_ejection_time').invalid(`must be at least base_ejection_time (${out.baseEjectionTimeMs} ms), got ${out.maxEjectionTimeMs} ms`);
  }
  return out;
}

export function decodeHealthChecks(at: FieldPath, list: Obj[]): HealthCheckConfig | undefined {
  if (list.length === 0) return undefined;
  if (list.length > 1) at.index(1).unsupported('more than one health check is not supported by weft proxy yet');
  const here = at.index(0);
  const hc = list[0];
  onlyFields(here, HC, hc, ['timeout', 'interval', 'unhealthy_threshold', 'healthy_threshold', 'http_health_check', 'tcp_health_check', 'grpc_health_check']);
  const required = (field: string): Obj => {
    if (!hc[field]) here.field(field).invalid('is required');
    return hc[field];
  };
  const timeoutMs = durationMs(here.field('timeout'), required('timeout'), 0);
  const intervalMs = durationMs(here.field('interval'), required('interval'), 0);
  if (timeoutMs === 0) here.field('timeout').invalid('must be above 0');
  if (intervalMs === 0) here.field('interval').invalid('must be above 0');
  const threshold = (field: string): number => {
    const v = u32(required(field), 0);
    if (v === 0) here.field(field).invalid('must be above 0');
    return v;
  };
  const base = { intervalMs, timeoutMs, unhealthyThreshold: threshold('unhealthy_threshold'), healthyThreshold: threshold('healthy_threshold') };
  if (hc.http_health_check) {
    const h = here.field('http_health_check');
    const http = hc.http_health_check;
    onlyFields(h, `${HC}.HttpHealthCheck`, http, ['path', 'host', 'expected_statuses', 'method']);
    if (http.method !== undefined && http.method !== 'GET' && http.method !== 'METHOD_UNSPECIFIED') h.field('method').unsupported(`${http.method} is not supported by weft proxy yet (GET only)`);
    const path: string = http.path ?? '';
    if (!path.startsWith('/') || /[\s\x00-\x1f]/.test(path)) h.field('path').invalid(`must be an absolute path, got "${path}"`);
    const expected: [number, number][] = (http.expected_statuses ?? []).map((r: Obj, i: number) => {
      const start = Number(r.start ?? 0);
      const end = Number(r.end ?? 0);
      if (!(start >= 100 && end <= 600 && start < end)) h.field('expected_statuses').index(i).invalid(`must be a range [start, end) within [100, 600), got [${start}, ${end})`);
      return [start, end];
    });
    return { kind: 'http', ...base, path, host: http.host || undefined, expectedStatuses: expected.length ? expected : [[200, 201]] };
  }
  if (hc.tcp_health_check) {
    onlyFields(here.field('tcp_health_check'), `${HC}.TcpHealthCheck`, hc.tcp_health_check, []);
    return { kind: 'tcp', ...base };
  }
  if (hc.grpc_health_check) {
    const g = hc.grpc_health_check;
    onlyFields(here.field('grpc_health_check'), `${HC}.GrpcHealthCheck`, g, ['service_name', 'authority']);
    return { kind: 'grpc', ...base, serviceName: g.service_name ?? '', authority: g.authority || undefined };
  }
  return here.field('health_checker').invalid('needs http_health_check, tcp_health_check or grpc_health_check');
}

