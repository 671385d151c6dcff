// weft proxy: the sidecar. An xDS client of the control plane whose config
// becomes a Runtime (routes, load balancers, pools) and bound listeners.
// Config changes swap the runtime atomically: requests in flight finish on
// the runtime they started with.
import type { Logger } from '../observe/log';
import type { ProxyTracer, TracingOptions } from '../observe/tracing/proxy-tracer';
import { XdsClient, type XdsClientStatus } from '../xds/client/ads-client';
import { ControlPlaneAddresses } from '../xds/client/control-plane-addresses';
import { NODE_METADATA } from '../xds/node-info';
import { recentRequests, type AdminSubject } from './admin/admin-server';
import { SidecarPorts } from './admin/sidecar-ports';
import { checkMetricsListener, readMetricsToken } from './admin/metrics-server';
import type { ProxyConfig } from './config/types';
import { H2Downstream } from './http2/h2-server';
import { installLastResortGuard } from './last-resort';
import { ListenerManager } from './listener/listener-manager';
import { closeFilterEnv, filterEnv } from './filters/filter-env';
import { Runtime } from './runtime';
import type { EndpointHealth } from './upstream/endpoint-health';
import { escapeLabel, ProxyStats } from './stats';
import { SecretStore, WORKLOAD_CERT_SECRET } from './tls/secret-store';
import { TlsContexts } from './tls/tls-contexts';
import { AccessLog } from '../observe/access-log';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as grpc from '@grpc/grpc-js';
import { ControlPlaneCredentials } from '../xds/client/control-plane-tls';
import { ioErrorDetail } from '../config/errors';
import { DEFAULT_TRUST_DOMAIN, spiffeId } from '../ca/spiffe-id';
import { CertificateAgent } from './tls/certificate-agent';
import { certsView } from './tls/certs-view';
import type { UnhealthyEndpoint } from './telemetry/metrics-report';
import { TelemetryClient } from './telemetry/telemetry-client';

export interface ProxyOptions {
  /** The control plane's xDS address, host:port; replicas as a comma-separated list (the sidecar fails over between them). */
  xds: string;
  nodeId: string;
  service?: string;
  namespace: string;
  zone?: string;
  outboundPort?: number;
  inboundPort?: number;
  appPort?: number;
  /** Where the app listens when not on 127.0.0.1 (a transparent unit's address). */
  appAddress?: string;
  /** Under `weft run --transparent`: the control plane makes TCP listeners virtual (its VIP sockets hand connections over). */
  transparent?: boolean;
  adminPort: number;
  /** host:port of a listener that serves only /stats/prometheus, for a Prometheus on another host (absent: none; the admin port stays loopback-only either way). */
  metricsAddress?: string;
  /** The bearer token scrapes of the metrics listener must present; required beyond loopback unless in dev mode (no `caFile`). */
  metricsTokenFile?: string;
  log: Logger;
  /** Tracing: spans exported to an OTLP/HTTP collector; off when absent. */
  tracing?: TracingOptions;
  /** false: requests are not counted (the bench's measure of what metrics cost). Default true. */
  metrics?: boolean;
  /** Size of the ring of recent requests behind admin /requests and `weft tap --since` (default 1000; 0: none). */
  recentRequests?: number;
  /** Access log: a file path, or '-' for stdout; none by default. */
  accessLog?: string;
  /** Fraction of requests the access log keeps (default 1). */
  accessLogSample?: number;
  /** The mesh's root bundle (PEM file): xDS runs over TLS verified with it. Absent: plaintext xDS (dev mode). */
  caFile?: string;
  /** The join token that entitles this sidecar to its service's certificate (dev mode: none needed). */
  joinToken?: string;
  /** SPIFFE trust domain of the mesh (default cluster.local). */
  trustDomain?: string;
  /** Retry backoff of the certificate agent (tests shorten it). */
  certificateRetry?: { initialMs: number; maxMs: number };
  /** false: no certificate from the control plane and no trust bundle over SDS; whoever embeds the proxy fills `secrets` (tests with their own PKI). Default true. */
  sds?: boolean;
  /** false: no process-wide guard against uncaught errors (an embedder that has its own). Default true. */
  lastResortGuard?: boolean;
  /** How often the sidecar reports its metrics to the control plane (default 2000 ms; 0: no telemetry streams). */
  telemetryIntervalMs?: number;
}

const EMPTY_CONFIG: ProxyConfig = {
  listeners: new Map(),
  routeTables: new Map(),
  clusters: new Map(),
  endpoints: new Map(),
  versions: { LDS: '', RDS: '', CDS: '', EDS: '' },
};

/** Default size of the ring of recent requests. */
export const RECENT_REQUESTS = 1000;

/** Where the proxy's config comes from: the xDS client, or in a `--concurrency` worker its primary (workers/relayed-config.ts). */
export type ConfigSource = Pick<XdsClient, 'addresses' | 'onConfig' | 'status' | 'configDump' | 'stop'>;

export class Proxy implements AdminSubject {
  readonly stats: ProxyStats;
  private readonly accessLog: AccessLog | undefined;
  /** When the last config was applied (epoch ms; 0: never). */
  private configAppliedAt = 0;
  readonly listeners: ListenerManager;
  private runtime = new Runtime(EMPTY_CONFIG);
  private configured = false;
  readonly ports = new SidecarPorts();
  private applying: Promise<void> = Promise.resolve();
  private readonly h2 = new H2Downstream();
  readonly tracer: ProxyTracer | undefined;
  /** The workload certificate and trust bundle (filled by the certificate agent and SDS, read by TLS contexts). */
  readonly secrets = new SecretStore();
  /** Obtains and renews the workload certificate (absent for a sidecar without a service). */
  certificateAgent: CertificateAgent | undefined;
  /** mTLS contexts built from `secrets` (inbound termination, auto mTLS upstream). */
  readonly tls: TlsContexts;
  /** Metrics reports and the admin relay to the control plane (telemetry/telemetry-client.ts). */
  telemetry: TelemetryClient | undefined;

  constructor(
    readonly opts: ProxyOptions,
    readonly xds: ConfigSource,
  ) {
    this.stats = new ProxyStats(opts.recentRequests ?? RECENT_REQUESTS);
    this.stats.identify(opts.service, opts.namespace);
    this.stats.enabled = opts.metrics ?? true;
    if (opts.accessLog) {
      const stats = this.stats;
      this.accessLog = new AccessLog({ path: opts.accessLog, sample: opts.accessLogSample, onDrop: () => stats.accessLogDropped++ });
      stats.records.add(this.accessLog.observe);
    }
    const h2 = this.h2;
    this.tls = new TlsContexts(this.secrets, this.stats, opts.log);
    this.runtime = new Runtime(EMPTY_CONFIG, undefined, this.tls);
    // The OpenTelemetry SDK is loaded only by a sidecar that traces (it is most of an idle sidecar's memory otherwise).
    if (opts.tracing) {
      const { ProxyTracer: Tracer } = require('../observe/tracing/proxy-tracer') as typeof import('../observe/tracing/proxy-tracer');
      this.tracer = new Tracer(opts.tracing, { service: opts.service, namespace: opts.namespace, nodeId: opts.nodeId });
    }
    this.listeners = new ListenerManager({
      tracer: this.tracer,
      runtime: () => this.runtime,
      stats: this.stats,
      log: opts.log,
      h2: (socket, firstBytes, chain) => h2.take(socket, firstBytes, chain),
      tls: this.tls,
    });
    Object.assign(filterEnv(this.runtime.filterState), {
      controlPlane: xds.addresses,
      controlPlaneCredentials: controlPlaneCredentials(opts.caFile),
      stats: this.stats,
      log: opts.log,
      clusterEndpoint: (name: string) => this.runtime.cluster(name)?.lb.pick(),
    });
    xds.onConfig((config) => {
      // Serialised: binds of one config finish before the next is applied.
      this.applying = this.applying.then(() => this.apply(config)).catch((err) => opts.log('error', 'applying config failed', { error: String(err) }));
    });
  }

  private readonly configListeners: ((config: ProxyConfig) => void)[] = [];

  /** Calls `fn` with each config once its listeners are bound (now, too, if one is applied). */
  onConfigApplied(fn: (config: ProxyConfig) => void): void {
    this.configListeners.push(fn);
    if (this.configured) fn(this.runtime.config);
  }

  private async apply(config: ProxyConfig): Promise<void> {
    this.runtime = new Runtime(config, this.runtime);
    await this.listeners.apply(config.listeners);
    for (const fn of this.configListeners) fn(config);
    this.configured = true;
    this.configAppliedAt = Date.now();
    this.opts.log('info', 'config applied', { versions: config.versions, listeners: config.listeners.size, clusters: config.clusters.size });
  }

  /**
   * Configured, listening, and (with a certificate agent) holding its workload certificate: as
   * Envoy waits for its SDS secrets, so the app's first calls never go out in plaintext to
   * endpoints that want mTLS.
   */
  ready(): boolean {
    return this.configured && this.listeners.allBound() && this.hasCertificate();
  }

  private hasCertificate(): boolean {
    return !this.certificateAgent || this.secrets.certificate(WORKLOAD_CERT_SECRET) !== undefined;
  }

  notReadyReason(): string {
    if (!this.configured) return 'no config from the control plane yet';
    if (!this.hasCertificate()) {
      const error = this.certificateAgent?.status().lastError;
      return `no workload certificate yet${error ? `: ${error}` : ''}`;
    }
    const failed = this.listeners.status().filter((l) => l.state !== 'bound');
    return failed.map((l) => `listener ${l.name} ${l.state}${l.error ? `: ${l.error}` : ''}`).join('; ');
  }

  /** The versions of the config applied (undefined before the first). */
  configVersions(): ProxyConfig['versions'] | undefined {
    return this.configured ? this.runtime.config.versions : undefined;
  }

  /** Waits until ready, or rejects after `timeoutMs`. */
  waitReady(timeoutMs: number): Promise<void> {
    return waitUntilReady(this, timeoutMs);
  }

  /** Admin /certs: the workload certificate and the trust bundle. */
  certsView(): unknown {
    return certsView(this.secrets, this.certificateAgent?.status());
  }

  configDump(): unknown {
    return { node: this.opts.nodeId, xds: this.xds.status(), resources: this.xds.configDump(), listeners: this.listeners.status() };
  }

  clustersView(): unknown {
    return [...this.runtime.clusters.values()].map((c) => ({
      name: c.config.name,
      lbPolicy: c.config.lbPolicy,
      protocol: c.config.protocol,
      limits: c.config.limits,
      activeRequests: c.load.active,
      connections: { open: c.pool.openConnections, pending: c.pool.pendingRequests, ...c.pool.counters },
      endpoints: (this.runtime.config.endpoints.get(c.config.edsName)?.localities ?? []).flatMap((l) =>
        l.endpoints.map((e) => ({
          address: e.key,
          zone: l.zone,
          priority: l.priority,
          weight: e.weight,
          health: e.health,
          activeRequests: c.load.perEndpoint.get(e.key) ?? 0,
          ...c.health?.view(e.key),
        })),
      ),
    }));
  }

  /** Endpoints that outlier detection or a health check took out of load balancing now (the telemetry report's). */
  unhealthyEndpoints(): UnhealthyEndpoint[] {
    const out: UnhealthyEndpoint[] = [];
    for (const c of this.runtime.clusters.values()) {
      if (!c.health) continue;
      for (const l of this.runtime.config.endpoints.get(c.config.edsName)?.localities ?? []) {
        for (const e of l.endpoints) {
          const v = c.health.view(e.key) as { outlier?: { ejected: boolean; ejectedUntil?: string; timesEjected: number }; healthCheck?: { state: string; lastFailure?: string } };
          const cluster = c.config.name;
          if (v.outlier?.ejected) out.push({ cluster, endpoint: e.key, reason: 'outlier', detail: `ejected until ${v.outlier.ejectedUntil} (${v.outlier.timesEjected}× ejected)` });
          const h = v.healthCheck;
          if (h && h.state !== 'healthy') out.push({ cluster, endpoint: e.key, reason: 'health_check', detail: `health check ${h.state}${h.lastFailure ? `: ${h.lastFailure}` : ''}` });
        }
      }
    }
    return out;
  }

  /** Gauges that live outside ProxyStats: pools, xDS state. */
  extraMetrics(): string[] {
    return [...this.dataPlaneMetrics(), ...xdsMetrics(this.xds.status(), this.configAppliedAt)];
  }

  /** Those of the data plane: pools, endpoint health, circuit breakers, tracing (a worker's share under --concurrency). */
  dataPlaneMetrics(): string[] {
    const out = ['# HELP weft_upstream_connections_open Open upstream connections by cluster.', '# TYPE weft_upstream_connections_open gauge'];
    for (const c of this.runtime.clusters.values()) out.push(`weft_upstream_connections_open{cluster="${c.config.name}"} ${c.pool.openConnections}`);
    out.push(...endpointHealthMetrics(this.runtime));
    out.push(...circuitBreakerMetrics(this.runtime));
    if (this.tracer) out.push(...this.tracer.metrics());
    return out;
  }

  countedStats(): ProxyStats {
    return this.stats;
  }

  metricsText(): string {
    return this.stats.render(this.extraMetrics());
  }

  listenersView(): unknown {
    return this.listeners.status();
  }

  recentRequests(query: URLSearchParams): unknown {
    return recentRequests(this.stats, query);
  }

  get adminPort(): number {
    return this.ports.adminPort;
  }

  /** Where the metrics listener is bound, host:port (undefined without --metrics-address). */
  get metricsAddress(): string | undefined {
    return this.ports.metricsAddress;
  }

  /** Stops: no new connections, open ones drain for up to `drainMs` (see ListenerManager.close). */
  async close(drainMs?: number): Promise<void> {
    this.xds.stop();
    this.telemetry?.stop();
    this.certificateAgent?.stop();
    this.h2.drain();
    await this.listeners.close(drainMs);
    this.runtime.close();
    closeFilterEnv(this.runtime.filterState);
    await this.tracer?.close();
    await this.accessLog?.close();
    await this.ports.close();
  }
}

/** The xDS stream's state and the versions applied (`appliedAt`: epoch ms of the last config applied, 0: none). */
export function xdsMetrics(xds: XdsClientStatus, appliedAt: number): string[] {
  const out = ['# HELP weft_xds_connected Whether the xDS stream to the control plane is up.', '# TYPE weft_xds_connected gauge'];
  out.push(`weft_xds_connected ${xds.connected ? 1 : 0}`);
  out.push('# HELP weft_xds_config_version_info The version_info of the config applied, by xDS type (value 1).', '# TYPE weft_xds_config_version_info gauge');
  for (const [type, t] of Object.entries(xds.types)) if (t.version !== undefined) out.push(`weft_xds_config_version_info{type="${type}",version="${escapeLabel(t.version)}"} 1`);
  out.push('# HELP weft_xds_config_rejected Whether the latest response of an xDS type was rejected (NACK).', '# TYPE weft_xds_config_rejected gauge');
  for (const [type, t] of Object.entries(xds.types)) out.push(`weft_xds_config_rejected{type="${type}"} ${t.nacked ? 1 : 0}`);
  out.push('# HELP weft_xds_last_update_timestamp_seconds When the sidecar last applied a config from the control plane.', '# TYPE weft_xds_last_update_timestamp_seconds gauge');
  out.push(`weft_xds_last_update_timestamp_seconds ${appliedAt / 1000}`);
  return out;
}

/** Circuit breakers at their limit now, and the requests the pools refused. */
function circuitBreakerMetrics(runtime: Runtime): string[] {
  const open: string[] = [];
  const overflow: string[] = [];
  const failures: string[] = [];
  for (const c of runtime.clusters.values()) {
    const l = c.config.limits;
    const cluster = `cluster="${escapeLabel(c.config.name)}"`;
    const kinds: [string, boolean][] = [
      ['requests', c.load.active >= l.maxRequests],
      ['pending', c.pool.pendingRequests >= l.maxPendingRequests],
      ['connections', c.pool.openConnections >= l.maxConnections],
      ['retries', c.load.retries >= l.maxRetries],
    ];
    for (const [kind, full] of kinds) open.push(`weft_circuit_breaker_open{${cluster},kind="${kind}"} ${full ? 1 : 0}`);
    overflow.push(`weft_upstream_pending_overflow_total{${cluster}} ${c.pool.counters.pendingOverflow}`);
    failures.push(`weft_upstream_connect_failures_total{${cluster}} ${c.pool.counters.connectFailures}`);
  }
  return [
    '# HELP weft_circuit_breaker_open Whether a cluster is at a circuit breaker limit now (requests, pending, connections, retries).',
    '# TYPE weft_circuit_breaker_open gauge',
    ...open,
    '# HELP weft_upstream_pending_overflow_total Requests refused because the pending queue was full (UO).',
    '# TYPE weft_upstream_pending_overflow_total counter',
    ...overflow,
    '# HELP weft_upstream_connect_failures_total Upstream connections that could not be made.',
    '# TYPE weft_upstream_connect_failures_total counter',
    ...failures,
  ];
}

/** Outlier detection and health check metrics of the clusters that have them. */
function endpointHealthMetrics(runtime: Runtime): string[] {
  const series: [name: string, type: string, help: string, value: (h: EndpointHealth) => number | undefined][] = [
    ['weft_outlier_ejections_total', 'counter', 'Endpoints ejected by outlier detection.', (h) => h.detector?.ejectionsTotal],
    ['weft_outlier_ejected', 'gauge', 'Endpoints ejected by outlier detection now.', (h) => h.detector?.ejected],
    ['weft_health_checks_total', 'counter', 'Active health checks run.', (h) => h.checker?.checks],
    ['weft_health_check_failures_total', 'counter', 'Active health checks failed.', (h) => h.checker?.failures],
    ['weft_health_check_unhealthy', 'gauge', 'Endpoints failing (or not yet passing) active health checks now.', (h) => h.checker?.unhealthy],
  ];
  const out: string[] = [];
  for (const [name, type, help, value] of series) {
    const lines: string[] = [];
    for (const c of runtime.clusters.values()) {
      const v = c.health ? value(c.health) : undefined;
      if (v !== undefined) lines.push(`${name}{cluster="${escapeLabel(c.config.name)}"} ${v}`);
    }
    if (lines.length) out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, ...lines);
  }
  return out;
}

/** The metrics listener's token, checked before anything starts: beyond loopback it needs one outside dev mode (no --ca-file). */
function metricsTokenOf(opts: ProxyOptions): string | undefined {
  const metricsToken = opts.metricsAddress !== undefined && opts.metricsTokenFile !== undefined ? readMetricsToken(opts.metricsTokenFile) : undefined;
  if (opts.metricsAddress !== undefined) checkMetricsListener({ address: opts.metricsAddress, token: metricsToken, dev: !opts.caFile });
  return metricsToken;
}

/** The node metadata the sidecar announces on its xDS stream. */
function nodeMetadata(opts: ProxyOptions): Record<string, string> {
  const metadata: Record<string, string> = { [NODE_METADATA.role]: 'sidecar', [NODE_METADATA.namespace]: opts.namespace, [NODE_METADATA.hostname]: os.hostname() };
  if (opts.service) metadata[NODE_METADATA.service] = opts.service;
  if (opts.outboundPort !== undefined) metadata[NODE_METADATA.outboundPort] = String(opts.outboundPort);
  if (opts.inboundPort !== undefined) metadata[NODE_METADATA.inboundPort] = String(opts.inboundPort);
  if (opts.appPort !== undefined) metadata[NODE_METADATA.appPort] = String(opts.appPort);
  if (opts.appAddress !== undefined) metadata[NODE_METADATA.appAddress] = opts.appAddress;
  if (opts.transparent) metadata[NODE_METADATA.transparent] = 'true';
  return metadata;
}

export async function startProxy(opts: ProxyOptions): Promise<Proxy> {
  return startSidecar(opts, (xds) => new Proxy(opts, xds));
}

/** Polls `side.ready()` until it holds, or rejects after `timeoutMs` naming what is missing. */
export async function waitUntilReady(side: { ready(): boolean; notReadyReason(): string }, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!side.ready()) {
    if (Date.now() > deadline) throw new Error(`proxy not ready after ${timeoutMs} ms: ${side.notReadyReason()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** What a sidecar's control-plane side is: this process's Proxy, or the primary of `--concurrency` (workers/proxy-primary.ts). */
export interface SidecarSide extends AdminSubject {
  readonly secrets: SecretStore;
  certificateAgent: CertificateAgent | undefined;
  telemetry: TelemetryClient | undefined;
  readonly ports: SidecarPorts;
  close(): Promise<void>;
}

/**
 * Starts a sidecar's side of the control plane, the same for both shapes: the
 * xDS stream, the certificate agent, the admin and metrics ports (named in
 * the node's metadata before the stream opens), then telemetry.
 * `beforeStream` runs once the ports are up, before the first config arrives.
 */
export async function startSidecar<T extends SidecarSide>(opts: ProxyOptions, make: (xds: XdsClient) => T, beforeStream?: (side: T) => void): Promise<T> {
  if (opts.lastResortGuard ?? true) installLastResortGuard(opts.log);
  const metricsToken = metricsTokenOf(opts);
  const metadata = nodeMetadata(opts);
  const credentials = controlPlaneCredentials(opts.caFile);
  const sds = opts.sds ?? true;
  // One list of the control plane's replicas, and one preference among them, for the xDS stream, SDS and rate limit calls.
  const addresses = ControlPlaneAddresses.xds(opts.xds);
  const xds = new XdsClient({ server: addresses, node: { id: opts.nodeId, metadata, zone: opts.zone }, token: opts.joinToken, log: opts.log, credentials, secretNames: sds ? ['ROOTCA'] : [] });
  const side = make(xds);
  xds.onSecret((secret) => side.secrets.setTrustBundle(secret.name, secret.trustBundle));
  if (opts.service && sds) {
    side.certificateAgent = new CertificateAgent({
      server: addresses,
      credentials,
      nodeId: opts.nodeId,
      metadata,
      spiffeId: spiffeId(opts.trustDomain ?? DEFAULT_TRUST_DOMAIN, opts.namespace, opts.service),
      joinToken: opts.joinToken,
      secrets: side.secrets,
      log: opts.log,
      backoff: opts.certificateRetry,
    });
  }
  await side.ports.listenAdmin(side, opts.adminPort);
  // Read when the stream opens: `weft status` finds the sidecar's /clusters with it.
  metadata[NODE_METADATA.adminPort] = String(side.ports.adminPort);
  if (opts.metricsAddress !== undefined) {
    try {
      await side.ports.listenMetrics(side, opts.metricsAddress, metricsToken, !opts.caFile);
    } catch (err) {
      await side.close();
      throw err;
    }
    // The control plane's Prometheus service discovery lists it (an unspecified host becomes the stream's peer address).
    metadata[NODE_METADATA.metricsAddress] = side.ports.metricsAddress!;
  }
  beforeStream?.(side);
  xds.start();
  side.certificateAgent?.start();
  if (opts.telemetryIntervalMs !== 0) {
    side.telemetry = new TelemetryClient({ proxy: side, xds, token: opts.joinToken, credentials, log: opts.log, intervalMs: opts.telemetryIntervalMs });
    side.telemetry.start();
  }
  return side;
}

/** TLS verified with the bundle in `caFile`, or plaintext (dev mode) without one. */
export function controlPlaneCredentials(caFile: string | undefined): grpc.ChannelCredentials | undefined {
  if (!caFile) return undefined;
  let pem: Buffer;
  try {
    pem = fs.readFileSync(caFile);
  } catch (err) {
    throw new Error(`--ca-file ${caFile}: ${ioErrorDetail(err)}`);
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new Error(`--ca-file ${caFile}: holds no PEM certificate`);
  // Not grpc.credentials.createSsl: it sends an IP target as SNI (control-plane-tls.ts).
  return new ControlPlaneCredentials(pem);
}
