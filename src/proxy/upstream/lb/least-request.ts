// LEAST_REQUEST: power of two choices. Two endpoints are drawn by weight and
// the one with fewer in-flight requests per unit of weight wins; on a tie the
// first drawn does. Idle, picks follow the weights exactly; loaded, heavier
// endpoints are allowed proportionally more requests in flight. (Envoy uses
// P2C for equal weights and a load-scaled EDF for unequal ones; weighted draws
// with a per-weight comparison give both properties with one O(1) rule.)
import type { Endpoint } from '../../config/types';
import { AliasTable } from './alias-table';
import type { LoadBalancer } from './load-balancer';
import type { Rng } from './rng';

export class LeastRequestLb implements LoadBalancer {
  readonly size: number;
  private readonly table: AliasTable;
  private readonly weights: Float64Array;

  constructor(
    private readonly endpoints: Endpoint[],
    weights: readonly number[],
    private readonly rng: Rng,
    private readonly activeRequests: (e: Endpoint) => number,
  ) {
    this.size = endpoints.length;
    this.table = new AliasTable(weights);
    this.weights = Float64Array.from(weights);
  }

  pick(): Endpoint | undefined {
    if (this.size <= 1) return this.endpoints[0];
    const a = this.table.sample(this.rng.next());
    const b = this.table.sample(this.rng.next());
    if (a === b) return this.endpoints[a];
    const ea = this.endpoints[a];
    const eb = this.endpoints[b];
    // active(b) / w(b) < active(a) / w(a), without dividing.
    return this.activeRequests(eb) * this.weights[a] < this.activeRequests(ea) * this.weights[b] ? eb : ea;
  }
}
