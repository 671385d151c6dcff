import * as path from 'node:path';
import { startDemo } from '../../demo/run-demo';
import { jsonLogger, type LogLevel } from '../../observe/log';

export async function runDemo(opts: { dataDir: string; apiPort: number; xdsPort: number; port: number; load: number; logLevel: LogLevel; transparent?: boolean }): Promise<void> {
  const root = path.resolve(__dirname, '../../../..');
  const demo = await startDemo({
    root,
    dataDir: opts.dataDir,
    apiPort: opts.apiPort,
    xdsPort: opts.xdsPort,
    storefrontPort: opts.port,
    loadRate: opts.load,
    transparent: opts.transparent,
    log: jsonLogger(opts.logLevel),
    out: process.stdout,
  });
  process.stdout.write(
    `\nweft demo mesh is starting:\n  shop       ${demo.storefrontUrl}\n  dashboard  http://127.0.0.1:${demo.apiPort}/\n  API        http://127.0.0.1:${demo.apiPort}/api/v1/status\n  logs       ${path.join(demo.unitsDir, '<service>', 'app-log.ndjson')} (the log plugin)\n  backups    ${path.join(demo.unitsDir, 'order', 'backups')} (order's orders, restored at its start)\n  try        npx weft status · npx weft endpoints · npx weft get httproutes\n  stop       Ctrl-C\n\n`,
  );
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    process.stdout.write('stopping the demo mesh…\n');
    demo.stop().then(() => process.exit(0), () => process.exit(1));
  };
  // A demo with nothing left alive must not look like a running one.
  void demo.allExited.then((endings) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`weft demo: every unit of the demo has exited (${endings.join(', ')}); their output above says why. Stopping.\n`);
    demo.stop().finally(() => process.exit(1));
  });
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
