// Idle timeouts without a timer per request: connections and exchanges stamp
// their last activity with a coarse clock (one property read per chunk), and
// one sweep per listener manager, every SWEEP_MS, ends what was idle too
// long. A timeout fires between its value and its value plus two ticks.

/** How often idle connections and requests are looked for. */
export const SWEEP_MS = 250;

/** performance.now() as of the last sweep tick (or module load). */
export const activityClock = { now: performance.now() };

/** Whether something stamped at `stamp` has been idle for `timeoutMs` as of `now` (0 = never). */
export function idleFor(now: number, stamp: number, timeoutMs: number): boolean {
  // The stamp may be up to one tick older than the activity: wait one tick more.
  return timeoutMs > 0 && now - stamp >= timeoutMs + SWEEP_MS;
}
