// MAGLEV: Google's Maglev lookup table (Eisenbud et al., NSDI 2016), as
// Envoy's MaglevLb: a table of prime size 65537 filled by each endpoint's
// permutation (offset + j × skip) mod M, endpoints taking turns in proportion
// to their weight; a request goes to table[hash mod M]. O(1) per pick. Removing
// one endpoint of N changes about 1/N of the table plus a little (the paper's
// minimal disruption); the table costs 2 bytes per entry below 65535 endpoints.
import type { Endpoint } from '../../config/types';
import { hash32 } from '../../router/hash';
import type { Candidates } from './candidates';
import type { LoadBalancer, PickContext } from './load-balancer';
import { RNG_RANGE, type Rng } from './rng';

export const MAGLEV_TABLE_SIZE = 65537;

export class MaglevLb implements LoadBalancer {
  readonly size: number;
  private readonly endpoints: Endpoint[];
  private readonly table: Uint16Array | Uint32Array;

  /** `candidates` in a stable order (sortedByKey): the fill order decides collisions. */
  constructor(
    candidates: Candidates,
    private readonly rng: Rng,
  ) {
    this.endpoints = candidates.endpoints;
    this.size = candidates.endpoints.length;
    this.table = this.size === 0 ? new Uint16Array(0) : buildTable(candidates);
  }

  /** Without a hash (no hash policy applied) a random entry: a weighted random pick. */
  pick(ctx?: PickContext): Endpoint | undefined {
    if (this.size === 0) return undefined;
    // Two returns, not one conditional slot: merging the branches' values made V8 box a double per pick.
    if (ctx === undefined || ctx.hash === undefined) {
      return this.endpoints[this.table[Math.floor((this.rng.next() / RNG_RANGE) * MAGLEV_TABLE_SIZE)]];
    }
    return this.endpoints[this.table[(ctx.hash >>> 0) % MAGLEV_TABLE_SIZE]];
  }
}

function buildTable({ endpoints, weights }: Candidates): Uint16Array | Uint32Array {
  const m = MAGLEV_TABLE_SIZE;
  const n = endpoints.length;
  const empty = n < 0xffff ? 0xffff : 0xffffffff;
  const table = n < 0xffff ? new Uint16Array(m).fill(empty) : new Uint32Array(m).fill(empty);
  const heaviest = weights.reduce((max, w) => Math.max(max, w), 0);
  const relative = weights.map((w) => w / heaviest);
  // Each endpoint walks its permutation offset, offset + skip, offset + 2·skip, … (mod M).
  const cursor = Int32Array.from(endpoints, (e) => hash32(e.key, 0) % m);
  const skip = Int32Array.from(endpoints, (e) => (hash32(e.key, 1) % (m - 1)) + 1);
  // Envoy's turn rule: an endpoint of relative weight r takes a slot on
  // iterations where iteration × r has caught up with the slots it already has.
  const taken = new Float64Array(n);
  let filled = 0;
  for (let iteration = 0; filled < m; iteration++) {
    for (let i = 0; i < n && filled < m; i++) {
      if (iteration * relative[i] < taken[i]) continue;
      taken[i] += 1;
      let slot = cursor[i];
      while (table[slot] !== empty) {
        slot += skip[i];
        if (slot >= m) slot -= m;
      }
      table[slot] = i;
      slot += skip[i];
      cursor[i] = slot >= m ? slot - m : slot;
      filled++;
    }
  }
  return table;
}
