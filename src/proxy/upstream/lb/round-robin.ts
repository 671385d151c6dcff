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
  /** Tie-break rank: equal deadlines go in this order. */
  private readonly rank: Int32Array;
  /** A binary min-heap by (deadline, rank): endpoint index and deadline per slot, side by side. */
  private readonly heap: Int32Array;
  private readonly deadline: Float64Array;

  /** `start` in [0, n): which endpoint wins the first tie, so sidecars do not all begin at the same one. */
  constructor(endpoints: Endpoint[], weights: readonly number[], start: number) {
    const n = endpoints.length;
    this.size = n;
    this.endpoints = endpoints;
    this.weights = Float64Array.from(weights);
    this.picked = new Float64Array(n);
    this.rank = new Int32Array(n);
    this.heap = new Int32Array(n);
    this.deadline = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      this.rank[i] = (i - start + n) % n;
      this.heap[i] = i;
      this.deadline[i] = 0.5 / weights[i];
    }
    for (let i = (n >> 1) - 1; i >= 0; i--) this.siftDown(i);
  }

  pick(): Endpoint | undefined {
    if (this.size === 0) return undefined;
    const top = this.heap[0];
    const times = ++this.picked[top];
    // Computed afresh, not accumulated, so rounding never drifts.
    this.deadline[0] = (times + 0.5) / this.weights[top];
    this.siftDown(0);
    return this.endpoints[top];
  }

  /** Moves the entry at `pos` down to its place. (Slots, not a double argument: V8 boxes those when it does not inline.) */
  private siftDown(pos: number): void {
    const heap = this.heap;
    const deadline = this.deadline;
    const rank = this.rank;
    const n = this.size;
    const item = heap[pos];
    const due = deadline[pos];
    const itemRank = rank[item];
    for (;;) {
      let child = 2 * pos + 1;
      if (child >= n) break;
      let childDue = deadline[child];
      const right = child + 1;
      if (right < n) {
        const rightDue = deadline[right];
        if (rightDue < childDue || (rightDue === childDue && rank[heap[right]] < rank[heap[child]])) {
          child = right;
          childDue = rightDue;
        }
      }
      if (childDue > due || (childDue === due && rank[heap[child]] > itemRank)) break;
      heap[pos] = heap[child];
      deadline[pos] = childDue;
      pos = child;
    }
    heap[pos] = item;
    deadline[pos] = due;
  }
}
