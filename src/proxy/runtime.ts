// The data plane's compiled view of one ProxyConfig: route tables ready to
// match, a load balancer per cluster, and connection pools. A new config
// builds a new Runtime; requests in flight keep the one they started with,
// and pools of clusters whose settings did not change carry over, so a
// config change drops no connection.
import type { ClusterConfig, Endpoint, EndpointSet, ProxyConfig, RouteTable } from './config/types';
import { CompiledRouteTable } from './router/route-table';
import { createLoadBalancer, type LoadBalancer } from './upstream/lb/load-balancer';
import { UpstreamPool } from './upstream/pool';

/** In-flight requests of a cluster; shared by the runtimes of successive configs. */
export class ClusterLoad {
  /** For the maxRequests circuit breaker. */
  active = 0;
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

export class ClusterRuntime {
  readonly lb: LoadBalancer;

  constructor(
    readonly config: ClusterConfig,
    readonly pool: UpstreamPool,
    readonly load: ClusterLoad,
    set: EndpointSet,
  ) {
    this.lb = createLoadBalancer(config, set, { activeRequests: (e) => load.perEndpoint.get(e.key) ?? 0 });
  }
}

export class Runtime {
  private readonly tables = new Map<string, CompiledRouteTable>();
  private readonly inlineTables = new WeakMap<RouteTable, CompiledRouteTable>();
  readonly clusters = new Map<string, ClusterRuntime>();

  constructor(
    readonly config: ProxyConfig,
    previous?: Runtime,
  ) {
    for (const [name, table] of config.routeTables) this.tables.set(name, new CompiledRouteTable(table));
    for (const [name, cluster] of config.clusters) {
      const set = config.endpoints.get(cluster.edsName) ?? { clusterName: cluster.edsName, localities: [] };
      const old = previous?.clusters.get(name);
      // Keep the pool (and its warm connections) when the cluster's settings are unchanged.
      const pool = old && sameCluster(old.config, cluster) ? old.pool : new UpstreamPool(cluster);
      pool.retainEndpoints(new Set(set.localities.flatMap((l) => l.endpoints.map((e) => e.key))));
      this.clusters.set(name, new ClusterRuntime(cluster, pool, old?.load ?? new ClusterLoad(), set));
    }
    if (previous) {
      for (const [name, old] of previous.clusters) {
        if (this.clusters.get(name)?.pool !== old.pool) old.pool.close();
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

  cluster(name: string): ClusterRuntime | undefined {
    return this.clusters.get(name);
  }

  close(): void {
    for (const c of this.clusters.values()) c.pool.close();
  }
}

function sameCluster(a: ClusterConfig, b: ClusterConfig): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
