// Weighted round robin as earliest deadline first (Envoy's EdfScheduler):
// the endpoint with the earliest deadline goes next, endpoint i's deadline
// being (times picked + ½) / weight_i; equal deadlines go in a fixed order
// that starts at a random endpoint, so sidecars do not move in lockstep. Over
// any window each endpoint gets its weight's share within one pick.
//
// Envoy's first deadlines are 1/w (a ½ here): it lets a heavy endpoint take
// all its picks of a cycle before the light ones (3:1:1 → h h h l l); the ½
// (Sainte-Laguë's divisor) centres each pick in its slot (h h l l h or
// h l h l h, by the start).
// O(log n) per pick on a binary heap in typed arrays; nothing is allocated.
import type { Endpoint } from '../../config/types';
import type { LoadBalancer } from './load-balancer';

export class RoundRobinLb implements LoadBalancer {
  readonly size: number;
  private readonly endpoints: Endpoint[];
  private readonly weights: Float64Array;
  private readonly picked: Float64Array;
  private readonly deadline: Float64Array;
  /** Tie-break rank: equal deadlines go in this order. */
  private readonly rank: Int32Array;
  private readonly heap: Int32Array;

  /** `start` in [0, n): which endpoint wins the first tie, so sidecars do not all begin at the same one. */
  constructor(endpoints: Endpoint[], weights: readonly number[], start: number) {
    const n = endpoints.length;
    this.size = n;
    this.endpoints = endpoints;
    this.weights = Float64Array.from(weights);
    this.picked = new Float64Array(n);
    this.deadline = new Float64Array(n);
    this.rank = new Int32Array(n);
    this.heap = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      this.rank[i] = (i - start + n) % n;
      this.deadline[i] = 0.5 / weights[i];
      this.heap[i] = i;
    }
    for (let i = (n >> 1) - 1; i >= 0; i--) this.siftDown(i);
  }

  pick(): Endpoint | undefined {
    if (this.size === 0) return undefined;
    const top = this.heap[0];
    const times = ++this.picked[top];
    // Computed afresh, not accumulated, so rounding never drifts.
    this.deadline[top] = (times + 0.5) / this.weights[top];
    this.siftDown(0);
    return this.endpoints[top];
  }

  private before(a: number, b: number): boolean {
    const da = this.deadline[a];
    const db = this.deadline[b];
    return da < db || (da === db && this.rank[a] < this.rank[b]);
  }

  private siftDown(pos: number): void {
    const heap = this.heap;
    const n = this.size;
    const item = heap[pos];
    for (;;) {
      let child = 2 * pos + 1;
      if (child >= n) break;
      if (child + 1 < n && this.before(heap[child + 1], heap[child])) child++;
      if (!this.before(heap[child], item)) break;
      heap[pos] = heap[child];
      pos = child;
    }
    heap[pos] = item;
  }
}
