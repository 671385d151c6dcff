// Exponential backoff with jitter for reconnecting to the control plane:
// the base doubles per attempt up to a cap, and each delay is drawn in
// [base/2, base] so a fleet of proxies cut off together does not come back
// in lockstep.

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
}

export const DEFAULT_BACKOFF: Readonly<BackoffOptions> = { initialMs: 100, maxMs: 10_000 };

export class Backoff {
  private attempt = 0;

  constructor(
    private readonly options: BackoffOptions = DEFAULT_BACKOFF,
    private readonly random: () => number = Math.random,
  ) {}

  /** The delay before the next attempt. */
  next(): number {
    const base = Math.min(this.options.maxMs, this.options.initialMs * 2 ** Math.min(this.attempt, 30));
    this.attempt++;
    return Math.round(base / 2 + (this.random() * base) / 2);
  }

  /** Attempts since the last reset. */
  get attempts(): number {
    return this.attempt;
  }

  /** The connection works again: start over from the initial delay. */
  reset(): void {
    this.attempt = 0;
  }
}
