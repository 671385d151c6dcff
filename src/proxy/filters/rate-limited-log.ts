// A filter's log line for something that may happen on every request (an
// RBAC denial, a failing http-filter plugin): at most `perSecond` lines a
// second per proxy, the lines left out counted in the next one written.
// Kept in the FilterState, so the count survives config changes.
import type { LogLevel } from '../../observe/log';
import type { FilterState } from './catalog';
import type { FilterEnv } from './filter-env';

export class RateLimitedLog {
  private windowStart = 0;
  private inWindow = 0;
  private suppressed = 0;

  private constructor(
    private readonly level: LogLevel,
    private readonly msg: string,
    private readonly perSecond: number,
  ) {}

  /** The proxy's log under `key` (made on first use). */
  static of(state: FilterState, key: string, level: LogLevel, msg: string, perSecond: number): RateLimitedLog {
    let log = state.get(key) as RateLimitedLog | undefined;
    if (!log) state.set(key, (log = new RateLimitedLog(level, msg, perSecond)));
    return log;
  }

  write(env: FilterEnv, fields: Record<string, unknown>): void {
    const now = Date.now();
    if (now - this.windowStart >= 1000) {
      this.windowStart = now;
      this.inWindow = 0;
      if (this.suppressed) fields = { ...fields, notLoggedBefore: this.suppressed };
      this.suppressed = 0;
    }
    if (this.inWindow++ < this.perSecond) env.log?.(this.level, this.msg, fields);
    else this.suppressed++;
  }
}
