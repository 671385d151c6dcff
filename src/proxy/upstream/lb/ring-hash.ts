// RING_HASH: a ketama ring, as Envoy's. Each endpoint puts points on a 32-bit
// ring, at hash32("<address:port>_<i>"), in number proportional to its weight;
// a request goes to the first point at or after its hash (wrapping), found by
// binary search.
//
// Point counts: the lightest endpoint gets
//   max(ceil(minRingSize × wMin / Σw), 128)
// points and the others proportionally more; the whole ring is capped at
// maxRingSize. Envoy uses the first term alone, so removing one endpoint of N
// rescales every other endpoint's count by N/(N-1) and moves about another
// 1/N of the keys besides the removed endpoint's. With the floor of 128, an
// endpoint's points do not depend on the others once the set is past
// minRingSize/128 weight units (8 with the default 1024), so a removal moves
// only the removed endpoint's keys. 128 points also keep each endpoint's share
// within about ±9% (1/√128) of its weight, where Envoy's 1024-point ring gives
// ±30% at 100 endpoints. Memory: 8 bytes per point.
import type { ClusterConfig, Endpoint } from '../../config/types';
import { hash32 } from '../../router/hash';
import type { Candidates } from './candidates';
import type { LoadBalancer, PickContext } from './load-balancer';
import type { Rng } from './rng';

const MIN_POINTS_LIGHTEST = 128;
/** Points are sorted packed as hash × 2^21 + endpoint index: exact in a double. */
const INDEX_SPACE = 2 ** 21;
/**
 * Hashes are kept as int32 with the top bit flipped: the same order as the
 * unsigned values, and small integers throughout the pick, which V8 never
 * boxes (a uint32 above 2^31 is a double, and may be).
 */
const FLIP = 0x80000000 | 0;

export class RingHashLb implements LoadBalancer {
  readonly size: number;
  private readonly endpoints: Endpoint[];
  /** Point hashes, flipped (see FLIP), ascending. */
  private readonly points: Int32Array;
  private readonly owners: Uint32Array;

  /** `candidates` in a stable order (sortedByKey): equal hashes then break ties alike everywhere. */
  constructor(
    candidates: Candidates,
    ring: ClusterConfig['ringHash'],
    private readonly rng: Rng,
  ) {
    const { endpoints, weights } = candidates;
    const n = endpoints.length;
    if (n > INDEX_SPACE) throw new RangeError(`ring hash supports at most ${INDEX_SPACE} endpoints, got ${n}`);
    this.size = n;
    this.endpoints = endpoints;

    const counts = pointCounts(weights, ring);
    const total = counts.reduce((sum, c) => sum + c, 0);
    const packed = new Float64Array(total);
    let k = 0;
    for (let i = 0; i < n; i++) {
      const prefix = `${endpoints[i].key}_`;
      for (let j = 0; j < counts[i]; j++) packed[k++] = hash32(prefix + j) * INDEX_SPACE + i;
    }
    packed.sort();
    this.points = new Int32Array(total);
    this.owners = new Uint32Array(total);
    for (let p = 0; p < total; p++) {
      const hash = Math.floor(packed[p] / INDEX_SPACE);
      this.points[p] = hash ^ FLIP;
      this.owners[p] = packed[p] - hash * INDEX_SPACE;
    }
  }

  /** Points on the ring (for tests and /clusters). */
  get ringSize(): number {
    return this.points.length;
  }

  /** Without a hash (no hash policy applied) a random point: a weighted random pick. */
  pick(ctx?: PickContext): Endpoint | undefined {
    const points = this.points;
    const len = points.length;
    if (len === 0) return undefined;
    // A 30-bit draw shifted left by 2 spans the 32-bit ring.
    const key = ctx === undefined || ctx.hash === undefined ? (this.rng.next() << 2) ^ FLIP : ctx.hash ^ FLIP;
    let lo = 0;
    let hi = len;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (points[mid] < key) lo = mid + 1;
      else hi = mid;
    }
    return this.endpoints[this.owners[lo === len ? 0 : lo]];
  }
}

function pointCounts(weights: readonly number[], ring: ClusterConfig['ringHash']): number[] {
  if (weights.length === 0) return [];
  const lightest = weights.reduce((min, w) => Math.min(min, w), Infinity);
  const relative = weights.map((w) => w / lightest);
  const units = relative.reduce((sum, r) => sum + r, 0);
  let perUnit = Math.max(Math.ceil(ring.minRingSize / units), MIN_POINTS_LIGHTEST);
  if (perUnit * units > ring.maxRingSize) perUnit = ring.maxRingSize / units;
  return relative.map((r) => Math.max(1, Math.round(perUnit * r)));
}
