// RANDOM: each pick independent, with probability proportional to weight.
import type { Endpoint } from '../../config/types';
import { AliasTable } from './alias-table';
import type { LoadBalancer } from './load-balancer';
import type { Rng } from './rng';

export class RandomLb implements LoadBalancer {
  readonly size: number;
  private readonly table: AliasTable;

  constructor(
    private readonly endpoints: Endpoint[],
    weights: readonly number[],
    private readonly rng: Rng,
  ) {
    this.size = endpoints.length;
    this.table = new AliasTable(weights);
  }

  pick(): Endpoint | undefined {
    if (this.size === 0) return undefined;
    return this.endpoints[this.table.sample(this.rng.next())];
  }
}
