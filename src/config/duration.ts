// Durations in the Gateway API format (GEP-2257): one to four groups of
// a number and a unit, e.g. "1h", "500ms", "1m30s". Kept as strings in the
// resources so what the user wrote is what the API shows.

export const DURATION_PATTERN = /^([0-9]{1,5}(h|m|s|ms)){1,4}$/;

const UNIT_MS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1 };

/** Milliseconds in a duration string; throws on a malformed one. */
export function durationToMs(text: string): number {
  if (!DURATION_PATTERN.test(text)) throw new Error(`malformed duration "${text}"`);
  let total = 0;
  for (const [, amount, unit] of text.matchAll(/([0-9]+)(ms|h|m|s)/g)) {
    total += Number(amount) * UNIT_MS[unit];
  }
  return total;
}

/** A google.protobuf.Duration object for protobufjs. */
export function msToProtoDuration(ms: number): { seconds: number; nanos: number } {
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 };
}
