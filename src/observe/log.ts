// Structured logs: one JSON object per line on stderr. Components take a
// Logger so tests can silence or capture them.
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type Logger = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => void;

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export function jsonLogger(minLevel: LogLevel = 'info', out: NodeJS.WritableStream = process.stderr): Logger {
  return (level, msg, fields) => {
    if (RANK[level] < RANK[minLevel]) return;
    out.write(JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields }) + '\n');
  };
}

export const silentLogger: Logger = () => {};
