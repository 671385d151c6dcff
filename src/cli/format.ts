// Plain-text tables and error listings for the terminal.
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (c ?? '').padEnd(widths[i])).join('  ').trimEnd();
  return [line(headers), ...rows.map(line)].join('\n') + '\n';
}

/** Prints config errors (ConfigError JSON) one per line. */
export function formatConfigErrors(errors: { message: string }[]): string {
  return errors.map((e) => `  ✗ ${e.message}`).join('\n') + '\n';
}

/** A duration as people read it: "0.42 ms", "1.2 ms", "250 ms", "2 s", "1.5 min", "3 h". */
export function duration(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms);
  const trim = (n: number, digits: number) => String(Number(n.toFixed(digits)));
  if (ms < 1) return `${trim(ms, 2)} ms`;
  if (ms < 10) return `${trim(ms, 1)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${trim(ms / 1000, ms < 10_000 ? 2 : 1)} s`;
  if (ms < 3_600_000) return `${trim(ms / 60_000, 1)} min`;
  return `${trim(ms / 3_600_000, 1)} h`;
}

/** A moment relative to now: "3 s ago", "in 12 s" (epoch ms or an ISO string). */
export function ago(at: number | string, now = Date.now()): string {
  const t = typeof at === 'number' ? at : Date.parse(at);
  if (!Number.isFinite(t)) return String(at);
  const d = now - t;
  // A whole number of seconds at least: a sub-second "ago" reads as noise.
  const text = Math.abs(d) < 1000 ? `${Math.round(Math.abs(d) / 100) / 10} s` : duration(Math.abs(d) < 60_000 ? Math.round(Math.abs(d) / 1000) * 1000 : Math.abs(d));
  return d >= 0 ? `${text} ago` : `in ${text}`;
}
