// Structured logs: one JSON object per line on stderr. Components take a
// Logger so tests can silence or capture them.
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type Logger = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => void;

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Outputs that failed (EPIPE: whoever read our stderr is gone), and those already watched for it. */
const broken = new WeakSet<NodeJS.WritableStream>();
const watched = new WeakSet<NodeJS.WritableStream>();

export function jsonLogger(minLevel: LogLevel = 'info', out: NodeJS.WritableStream = process.stderr): Logger {
  // A write error must neither end the process nor reach the last-resort guard, whose log line
  // would fail the same way, forever: the output is dropped once it fails.
  if (!watched.has(out)) {
    watched.add(out);
    out.on('error', () => broken.add(out));
  }
  return (level, msg, fields) => {
    if (RANK[level] < RANK[minLevel] || broken.has(out)) return;
    out.write(JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields }) + '\n');
  };
}

export const silentLogger: Logger = () => {};
