import * as crypto from 'node:crypto';
import * as os from 'node:os';
import { jsonLogger, type LogLevel } from '../../observe/log';
import { holdYoungGeneration } from '../../proxy/young-generation';

export interface ProxyCommandOptions {
  xds: string;
  service?: string;
  namespace: string;
  nodeId?: string;
  zone?: string;
  outboundPort?: number;
  inboundPort?: number;
  appPort?: number;
  adminPort: number;
  metricsAddress?: string;
  metricsTokenFile?: string;
  logLevel: LogLevel;
  otlpEndpoint?: string;
  traceSample: number;
  accessLog?: string;
  accessLogSample?: number;
  recentRequests?: number;
  /** --no-metrics sets it false. */
  metrics?: boolean;
  caFile?: string;
  joinToken?: string;
  trustDomain?: string;
  /** Worker processes (default 1: this process serves, no node:cluster). */
  concurrency?: number;
}

export async function runProxy(opts: ProxyCommandOptions): Promise<void> {
  // Held before the proxy's modules load: they are most of what a start leaves in the heap.
  const youngGeneration = holdYoungGeneration();
  const { startProxy } = require('../../proxy/proxy') as typeof import('../../proxy/proxy');
  const log = jsonLogger(opts.logLevel);
  const nodeId = opts.nodeId ?? `${opts.service ?? 'proxy'}~${os.hostname()}~${crypto.randomBytes(3).toString('hex')}`;
  const tracing = opts.otlpEndpoint ? { endpoint: opts.otlpEndpoint, sampleRatio: opts.traceSample } : undefined;
  const metricsTokenFile = opts.metricsTokenFile ?? (process.env.WEFT_METRICS_TOKEN_FILE || undefined);
  const options = { ...opts, joinToken: opts.joinToken ?? process.env.WEFT_JOIN_TOKEN, metricsTokenFile, nodeId, log, tracing };
  const workers = opts.concurrency ?? 1;
  // Loaded only with workers: the single-process proxy pays nothing for them.
  const proxy =
    workers > 1
      ? await (require('../../proxy/workers/proxy-primary') as typeof import('../../proxy/workers/proxy-primary')).startProxyWorkers(options, workers, opts.logLevel)
      : await startProxy(options);
  void proxy.waitReady(60_000).then(() => youngGeneration.releaseUnderLoad(), () => youngGeneration.releaseUnderLoad());
  const metrics = proxy.metricsAddress ? `, metrics http://${proxy.metricsAddress}/stats/prometheus` : '';
  const many = workers > 1 ? `, ${workers} workers` : '';
  process.stdout.write(`weft proxy ${nodeId}: xDS ${opts.xds}, admin http://127.0.0.1:${proxy.adminPort}/${metrics}${many}\n`);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log('info', 'stopping', { signal });
    proxy.close().then(() => process.exit(0), () => process.exit(1));
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}
