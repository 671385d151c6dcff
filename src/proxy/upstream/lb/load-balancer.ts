// Load balancers: built once per (cluster, endpoint set) version and reused
// for every request. Candidates, priority failover and locality weighting are
// decided at build time (see candidates.ts); a pick is O(1) or O(log n) and
// allocates nothing.
import type { ClusterConfig, Endpoint, EndpointSet } from '../../config/types';
import { selectCandidates, sortedByKey } from './candidates';
import { LeastRequestLb } from './least-request';
import { MaglevLb } from './maglev';
import { RandomLb } from './random';
import { RingHashLb } from './ring-hash';
import { Rng } from './rng';
import { RoundRobinLb } from './round-robin';

export interface PickContext {
  /** The request hash (router/hash.ts requestHash); RING_HASH and MAGLEV only. */
  hash?: number;
}

export interface LoadBalancer {
  /** An endpoint for one request; undefined when there is no candidate. */
  pick(ctx?: PickContext): Endpoint | undefined;
  /** How many endpoints it picks from: the candidates of the priority in use (0: no healthy upstream). */
  readonly size: number;
}

export interface LbOptions {
  /** Uniform in [0, 1); Math.random by default. Seeds the balancer's own generator (rng.ts) and picks the round robin's start. */
  random?: () => number;
  /** LEAST_REQUEST: in-flight requests per endpoint, kept by the engine. */
  activeRequests?: (e: Endpoint) => number;
}

const EMPTY: LoadBalancer = { size: 0, pick: () => undefined };
const noLoad = (): number => 0;

export function createLoadBalancer(cluster: ClusterConfig, endpoints: EndpointSet, opts: LbOptions = {}): LoadBalancer {
  const random = opts.random ?? Math.random;
  const candidates = selectCandidates(endpoints);
  const n = candidates.endpoints.length;
  if (n === 0) return EMPTY;
  switch (cluster.lbPolicy) {
    case 'ROUND_ROBIN':
      return new RoundRobinLb(candidates.endpoints, candidates.weights, Math.floor(random() * n));
    case 'LEAST_REQUEST':
      return new LeastRequestLb(candidates.endpoints, candidates.weights, new Rng(random), opts.activeRequests ?? noLoad);
    case 'RANDOM':
      return new RandomLb(candidates.endpoints, candidates.weights, new Rng(random));
    case 'RING_HASH':
      return new RingHashLb(sortedByKey(candidates), cluster.ringHash, new Rng(random));
    case 'MAGLEV':
      return new MaglevLb(sortedByKey(candidates), new Rng(random));
  }
}
