// The random source of one load balancer: mulberry32, seeded once from
// LbOptions.random. Calling that function on every pick would return a
// double, which V8 boxes on the heap whenever the call is not inlined: one
// allocation per pick. Here the state lives in a typed array and draws are
// 30-bit integers (small integers are never boxed), so picks allocate nothing.

/** Draws are uniform in [0, RNG_RANGE). */
export const RNG_RANGE = 2 ** 30;

export class Rng {
  private readonly state = new Int32Array(1);

  constructor(random: () => number) {
    this.state[0] = Math.floor(random() * 2 ** 32);
  }

  next(): number {
    const s = (this.state[0] + 0x6d2b79f5) | 0;
    this.state[0] = s;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 2;
  }
}
