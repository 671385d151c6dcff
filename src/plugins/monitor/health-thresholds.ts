// Probe results to a health verdict: `failureThreshold` failures in a row make
// the app unhealthy, `successThreshold` passes in a row make it healthy again.
// A monitor that just started has no verdict until one streak reaches its
// threshold, so a restarted monitor neither clears nor raises an alarm on
// one probe (the unit channel keeps the last verdict meanwhile).
export type Verdict = 'healthy' | 'unhealthy';

export interface Thresholds {
  failureThreshold: number;
  successThreshold: number;
}

export class HealthThresholds {
  private failures = 0;
  private successes = 0;
  private current: Verdict | undefined;

  constructor(private thresholds: Thresholds) {}

  get verdict(): Verdict | undefined {
    return this.current;
  }

  /** Failed probes in a row (so far). */
  get failuresInARow(): number {
    return this.failures;
  }

  /** Counts one probe; returns the new verdict when this probe changed it. */
  observe(ok: boolean): Verdict | undefined {
    if (ok) {
      this.failures = 0;
      this.successes++;
      if (this.current !== 'healthy' && this.successes >= this.thresholds.successThreshold) return (this.current = 'healthy');
    } else {
      this.successes = 0;
      this.failures++;
      if (this.current !== 'unhealthy' && this.failures >= this.thresholds.failureThreshold) return (this.current = 'unhealthy');
    }
    return undefined;
  }

  /** New thresholds (a config reload); the verdict and the streaks so far stay. */
  update(thresholds: Thresholds): void {
    this.thresholds = thresholds;
  }
}
