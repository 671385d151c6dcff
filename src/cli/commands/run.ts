import { jsonLogger, type LogLevel } from '../../observe/log';
import { runApp, type RunOptions } from '../../run/run-app';

type RunFlags = Omit<RunOptions, 'command' | 'drainMs' | 'stopGraceMs' | 'log'> & { drainSeconds: number; logLevel: LogLevel };

export async function runRun(command: string[], opts: RunFlags): Promise<void> {
  const log = jsonLogger(opts.logLevel);
  const code = await runApp({ ...opts, command, drainMs: opts.drainSeconds * 1000, stopGraceMs: 10_000, log });
  process.exit(code);
}
