import { jsonLogger, type LogLevel } from '../../observe/log';
import { runApp, type RunOptions } from '../../run/run-app';

type RunFlags = Omit<RunOptions, 'command' | 'drainMs' | 'stopGraceMs' | 'readyTimeoutMs' | 'log' | 'tracing'> & { drainSeconds: number; readyTimeout: number; logLevel: LogLevel; otlpEndpoint?: string; traceSample: number };

export async function runRun(command: string[], opts: RunFlags): Promise<void> {
  if (opts.egress && !opts.transparent) throw new Error('--egress applies to --transparent units only (in HTTP_PROXY mode the program reaches other destinations directly)');
  const log = jsonLogger(opts.logLevel);
  const tracing = opts.otlpEndpoint ? { endpoint: opts.otlpEndpoint, sampleRatio: opts.traceSample } : undefined;
  const code = await runApp({ ...opts, command, drainMs: opts.drainSeconds * 1000, readyTimeoutMs: opts.readyTimeout, stopGraceMs: 10_000, log, tracing });
  process.exit(code);
}
