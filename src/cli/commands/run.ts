import { jsonLogger, type LogLevel } from '../../observe/log';
import { runApp } from '../../run/run-app';

export async function runRun(
  command: string[],
  opts: {
    service?: string;
    namespace: string;
    port?: number;
    xds: string;
    api: string;
    address: string;
    zone?: string;
    outboundPort?: number;
    inboundPort?: number;
    adminPort?: number;
    drainSeconds: number;
    logLevel: LogLevel;
  },
): Promise<void> {
  const log = jsonLogger(opts.logLevel);
  const code = await runApp({ ...opts, command, drainMs: opts.drainSeconds * 1000, stopGraceMs: 10_000, log });
  process.exit(code);
}
