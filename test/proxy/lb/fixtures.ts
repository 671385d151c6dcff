// Builders for load balancer tests, and a seeded PRNG so distributions are reproducible.
import type { ClusterConfig, Endpoint, EndpointSet, LbPolicy, Locality } from '../../../src/proxy/config/types';

export { seeded } from '../../helpers/prng';

export function cluster(lbPolicy: LbPolicy, ringHash = { minRingSize: 1024, maxRingSize: 8_388_608 }): ClusterConfig {
  return {
    name: 'c',
    discovery: 'EDS',
    edsName: 'c',
    lbPolicy,
    ringHash,
    connectTimeoutMs: 1000,
    protocol: 'http1',
    limits: { maxConnections: 1024, maxPendingRequests: 1024, maxRequests: 1024, maxRetries: 3 },
    maxRequestsPerConnection: 0,
    idleTimeoutMs: 0,
  };
}

export function endpoint(address: string, opts: Partial<Pick<Endpoint, 'weight' | 'health' | 'zone' | 'port'>> = {}): Endpoint {
  const port = opts.port ?? 8080;
  return {
    address,
    port,
    weight: opts.weight ?? 1,
    health: opts.health ?? 'healthy',
    zone: opts.zone ?? 'z',
    key: `${address}:${port}`,
  };
}

export function locality(endpoints: Endpoint[], opts: Partial<Pick<Locality, 'zone' | 'priority' | 'weight'>> = {}): Locality {
  return { zone: opts.zone ?? 'z', priority: opts.priority ?? 0, weight: opts.weight ?? 1, endpoints };
}

export function endpointSet(...localities: Locality[]): EndpointSet {
  return { clusterName: 'c', localities };
}

/** n healthy endpoints 10.0.0.1 … 10.0.0.n. */
export function endpoints(n: number): Endpoint[] {
  return Array.from({ length: n }, (_, i) => endpoint(`10.0.${(i + 1) >> 8}.${(i + 1) & 255}`));
}

/** How often each endpoint key was picked. */
export function tally(pick: () => Endpoint | undefined, times: number): Map<string, number> {
  const counts = new Map<string, number>();
  for (let i = 0; i < times; i++) {
    const e = pick();
    if (e === undefined) throw new Error('no endpoint picked');
    counts.set(e.key, (counts.get(e.key) ?? 0) + 1);
  }
  return counts;
}
