// The data plane's compiled view of one ProxyConfig: route tables ready to
// match, a load balancer per cluster, and connection pools. A new config
// builds a new Runtime; requests in flight keep the one they started with,
// and pools of clusters whose settings did not change carry over, so a
// config change drops no connection.
import * as http from 'node:http';
import type * as net from 'node:net';
import type { Duplex } from 'node:stream';
import * as tls from 'node:tls';
import type { TlsContexts } from './tls/tls-contexts';
import { H2SessionPool } from './http2/session-pool';
import type { ClusterConfig, Endpoint, EndpointSet, HttpNetworkFilter, ProxyConfig, RouteTable } from './config/types';
import { filterTypeFor, type FilterState } from './filters/catalog';
import type { HttpFilter } from './filters/http-filter';
import type { LocalFailure } from './retry';
import { CompiledRouteTable } from './router/route-table';
import { EndpointHealth } from './upstream/endpoint-health';
import { createLoadBalancer, type LoadBalancer } from './upstream/lb/load-balancer';
import { UpstreamPool } from './upstream/pool';

/** In-flight requests of a cluster; shared by the runtimes of successive configs. */
export class ClusterLoad {
  /** For the maxRequests circuit breaker. */
  active = 0;
  /** Requests retrying now, for max_retries and the retry budget. */
  retries = 0;
  /** Per endpoint key, for LEAST_REQUEST. */
  readonly perEndpoint = new Map<string, number>();

  started(e: Endpoint): void {
    this.active++;
    this.perEndpoint.set(e.key, (this.perEndpoint.get(e.key) ?? 0) + 1);
  }

  ended(e: Endpoint): void {
    this.active--;
    this.perEndpoint.set(e.key, (this.perEndpoint.get(e.key) ?? 1) - 1);
  }
}

/** A cluster's upstream connections of every kind; carried over while the cluster's settings are unchanged. */
export class ClusterUpstreams {
  readonly pool: UpstreamPool;
  private h2?: H2SessionPool;
  private agent?: http.Agent;

  constructor(
    readonly config: ClusterConfig,
    /** Auto mTLS to endpoints with a sidecar, when the cluster has transport_socket_matches. */
    readonly tls?: TlsContexts,
  ) {
    this.pool = new UpstreamPool(config, tls);
  }

  /** HTTP/2 sessions, for clusters whose protocol is http2. */
  h2Pool(): H2SessionPool {
    return (this.h2 ??= new H2SessionPool(this.config, this.tls));
  }

  /** node:http agent, for HTTP/2 downstreams translated to HTTP/1.1 (off the HTTP/1 fast path). */
  h1Agent(): http.Agent {
    if (this.agent) return this.agent;
    const agent = new http.Agent({ keepAlive: true, maxSockets: this.config.limits.maxConnections });
    const tlsContexts = this.tls;
    if (tlsContexts && this.config.transportSocketMatches) {
      // Requests carry the endpoint's host and port: TLS for those whose transport socket match says so.
      const plain = agent.createConnection.bind(agent);
      const config = this.config;
      const endpoints = this.endpoints;
      agent.createConnection = ((opts: { host?: string; port?: number | string }, cb?: (err: Error | null, s: Duplex) => void) => {
        const endpoint = endpoints.get(`${opts.host?.includes(':') ? `[${opts.host}]` : opts.host}:${opts.port}`);
        const tlsOptions = endpoint && tlsContexts.upstream(config, endpoint);
        return tlsOptions ? tlsContexts.connect(tlsOptions) : plain(opts as net.NetConnectOpts, cb);
      }) as typeof agent.createConnection;
    }
    return (this.agent = agent);
  }

  /** The cluster's endpoints by key, as of the newest config (the HTTP/1.1 agent's TLS choice reads them). */
  private readonly endpoints = new Map<string, Endpoint>();

  retainEndpoints(set: EndpointSet): void {
    this.endpoints.clear();
    for (const l of set.localities) for (const e of l.endpoints) this.endpoints.set(e.key, e);
    const keep = new Set(this.endpoints.keys());
    this.pool.retainEndpoints(keep);
    this.h2?.retainEndpoints(keep);
  }

  close(): void {
    this.pool.close();
    this.h2?.close();
    this.agent?.destroy();
  }
}

/**
 * What became of each request sent to an endpoint, for outlier detection.
 * The exchanges report every attempt: a final response status (gRPC
 * trailers-only statuses as their HTTP equivalent), or a local failure.
 */
export interface EndpointOutcomes {
  response(endpoint: Endpoint, status: number): void;
  failure(endpoint: Endpoint, failure: LocalFailure): void;
}

export class ClusterRuntime {
  /** Rebuilt (newest runtime only) when outlier detection or health checks change what may be picked. */
  lb: LoadBalancer;
  readonly pool: UpstreamPool;
  /** Set when the cluster watches its endpoints' outcomes (outlier detection); unset, nothing is reported. */
  outcomes: EndpointOutcomes | undefined;

  constructor(
    readonly config: ClusterConfig,
    readonly upstreams: ClusterUpstreams,
    readonly load: ClusterLoad,
    readonly set: EndpointSet,
    /** Ejections and health check verdicts, when the cluster has outlier detection or health checks. */
    readonly health?: EndpointHealth,
  ) {
    this.pool = upstreams.pool;
    this.outcomes = health?.detector;
    this.lb = this.buildLb();
    health?.onChange(() => (this.lb = this.buildLb()));
  }

  private buildLb(): LoadBalancer {
    const opts = { activeRequests: (e: Endpoint) => this.load.perEndpoint.get(e.key) ?? 0 };
    const usable = this.health ? this.health.filter(this.set) : this.set;
    const lb = createLoadBalancer(this.config, usable, opts);
    // Panic (see endpoint-health.ts): nothing left to pick, so the verdicts are ignored.
    return lb.size === 0 && usable !== this.set ? createLoadBalancer(this.config, this.set, opts) : lb;
  }

  h2Pool(): H2SessionPool {
    return this.upstreams.h2Pool();
  }

  h1Agent(): http.Agent {
    return this.upstreams.h1Agent();
  }
}

export class Runtime {
  private readonly tables = new Map<string, CompiledRouteTable>();
  private readonly inlineTables = new WeakMap<RouteTable, CompiledRouteTable>();
  private readonly filterChains = new WeakMap<HttpNetworkFilter, HttpFilter[]>();
  readonly clusters = new Map<string, ClusterRuntime>();
  /** HTTP filters' state, shared with the next config's runtime. */
  readonly filterState: FilterState;

  /** The sidecar's TLS contexts (auto mTLS); carried over from the previous runtime. */
  readonly tls: TlsContexts | undefined;

  constructor(
    readonly config: ProxyConfig,
    previous?: Runtime,
    tls?: TlsContexts,
  ) {
    this.filterState = previous?.filterState ?? new Map();
    this.tls = tls ?? previous?.tls;
    for (const [name, table] of config.routeTables) this.tables.set(name, new CompiledRouteTable(table));
    for (const [name, cluster] of config.clusters) {
      const set = config.endpoints.get(cluster.edsName) ?? { clusterName: cluster.edsName, localities: [] };
      const old = previous?.clusters.get(name);
      // Keep the pool (and its warm connections) when the cluster's settings are unchanged.
      const upstreams = old && sameCluster(old.config, cluster) ? old.upstreams : new ClusterUpstreams(cluster, this.tls);
      upstreams.retainEndpoints(set);
      const health = EndpointHealth.wanted(cluster) ? (old?.health ?? new EndpointHealth(name, this.tls)) : undefined;
      health?.configure(cluster, set);
      this.clusters.set(name, new ClusterRuntime(cluster, upstreams, old?.load ?? new ClusterLoad(), set, health));
    }
    if (previous) {
      for (const [name, old] of previous.clusters) {
        if (this.clusters.get(name)?.upstreams !== old.upstreams) old.upstreams.close();
        if (old.health && this.clusters.get(name)?.health !== old.health) old.health.stop();
      }
    }
  }

  routeTable(name: string): CompiledRouteTable | undefined {
    return this.tables.get(name);
  }

  /** Inline tables (inbound listeners) compiled once per config object. */
  inlineTable(table: RouteTable): CompiledRouteTable {
    let compiled = this.inlineTables.get(table);
    if (!compiled) this.inlineTables.set(table, (compiled = new CompiledRouteTable(table)));
    return compiled;
  }

  /** A chain's HTTP filters, built once per config object. */
  httpFilters(network: HttpNetworkFilter): HttpFilter[] {
    let filters = this.filterChains.get(network);
    if (!filters) {
      filters = network.httpFilters.map((f) => filterTypeFor(f.typeUrl)!.create(f.name, f.config, this.filterState));
      this.filterChains.set(network, filters);
    }
    return filters;
  }

  cluster(name: string): ClusterRuntime | undefined {
    return this.clusters.get(name);
  }

  close(): void {
    for (const c of this.clusters.values()) {
      c.upstreams.close();
      c.health?.stop();
    }
  }
}

function sameCluster(a: ClusterConfig, b: ClusterConfig): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
