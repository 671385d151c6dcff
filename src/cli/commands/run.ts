import { jsonLogger, type LogLevel } from '../../observe/log';
import { holdYoungGeneration } from '../../proxy/young-generation';
import type { RunOptions } from '../../run/run-app';

type RunFlags = Omit<RunOptions, 'command' | 'drainMs' | 'stopGraceMs' | 'readyTimeoutMs' | 'log' | 'tracing' | 'onSidecarReady'> & { drainSeconds: number; readyTimeout: number; logLevel: LogLevel; otlpEndpoint?: string; traceSample: number };

export async function runRun(command: string[], opts: RunFlags): Promise<void> {
  if (opts.egress && !opts.transparent) throw new Error('--egress applies to --transparent units only (in HTTP_PROXY mode the program reaches other destinations directly)');
  // Held before the sidecar's modules load, as `weft proxy` does (proxy/young-generation.ts).
  const youngGeneration = holdYoungGeneration();
  const { runApp } = require('../../run/run-app') as typeof import('../../run/run-app');
  const log = jsonLogger(opts.logLevel);
  const tracing = opts.otlpEndpoint ? { endpoint: opts.otlpEndpoint, sampleRatio: opts.traceSample } : undefined;
  const code = await runApp({ ...opts, command, drainMs: opts.drainSeconds * 1000, readyTimeoutMs: opts.readyTimeout, stopGraceMs: 10_000, log, tracing, onSidecarReady: () => youngGeneration.releaseUnderLoad() });
  process.exit(code);
}
