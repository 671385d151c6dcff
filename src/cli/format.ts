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
