// Walker's alias method (Vose's construction): weighted sampling in O(1) with
// one random draw, after O(n) set-up.
import { RNG_RANGE } from './rng';

export class AliasTable {
  readonly size: number;
  private readonly keep: Float64Array;
  private readonly alias: Int32Array;

  /** `weights` positive; they need not sum to 1. */
  constructor(weights: readonly number[]) {
    const n = weights.length;
    this.size = n;
    this.keep = new Float64Array(n);
    this.alias = new Int32Array(n);
    const total = weights.reduce((sum, w) => sum + w, 0);
    const scaled = weights.map((w) => (w * n) / total);
    const small: number[] = [];
    const large: number[] = [];
    scaled.forEach((p, i) => (p < 1 ? small : large).push(i));
    while (small.length > 0 && large.length > 0) {
      const s = small.pop()!;
      const l = large[large.length - 1];
      this.keep[s] = scaled[s];
      this.alias[s] = l;
      scaled[l] -= 1 - scaled[s];
      if (scaled[l] < 1) small.push(large.pop()!);
    }
    // What is left is 1 up to rounding.
    for (const i of large) this.keep[i] = 1;
    for (const i of small) this.keep[i] = 1;
  }

  /** An index drawn with probability proportional to its weight; `draw` from Rng.next. */
  sample(draw: number): number {
    const x = (draw / RNG_RANGE) * this.size;
    const i = Math.min(x | 0, this.size - 1);
    return x - i < this.keep[i] ? i : this.alias[i];
  }
}
