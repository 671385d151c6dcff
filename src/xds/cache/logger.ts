// The logger the cache and the xDS server take: one function, so callers can
// plug in their own sink. The default writes JSON lines to stderr.
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFn = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => void;

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** JSON lines (`{"time","level","msg",...fields}`) to a stream, dropping levels below `minLevel`. */
export function jsonLinesLogger(
  out: NodeJS.WritableStream = process.stderr,
  minLevel: LogLevel = 'info',
): LogFn {
  return (level, msg, fields) => {
    if (RANK[level] < RANK[minLevel]) return;
    out.write(JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields }) + '\n');
  };
}

export const silentLogger: LogFn = () => {};
