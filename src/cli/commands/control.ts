import { startControlPlane } from '../../control/control-plane';
import { jsonLogger, type LogLevel } from '../../observe/log';

export async function runControl(opts: {
  config?: string;
  dataDir: string;
  xdsPort: number;
  apiPort: number;
  host: string;
  logLevel: LogLevel;
}): Promise<void> {
  const log = jsonLogger(opts.logLevel);
  const cp = await startControlPlane({
    configDir: opts.config,
    dataDir: opts.dataDir,
    xdsPort: opts.xdsPort,
    apiPort: opts.apiPort,
    host: opts.host,
    log,
  });
  process.stdout.write(`weft control plane: xDS on ${opts.host}:${cp.xdsPort}, API on http://${opts.host}:${cp.apiPort}/api/v1/\n`);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log('info', 'stopping', { signal });
    cp.close().then(
      () => process.exit(0),
      (err) => {
        log('error', 'error while stopping', { error: String(err) });
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}
