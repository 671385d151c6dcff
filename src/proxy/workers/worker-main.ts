// A `weft proxy --concurrency N` worker: the data plane only. Its listeners
// share the primary's sockets (node:cluster, the kernel spreads accepts),
// its runtime has its own upstream pools, health checkers, outlier
// detectors, circuit-breaker counts and retry budgets (not divided: a limit
// of M admits up to N×M over the proxy), and local rate limit buckets (a 1/N
// share, local-rate-limit.ts, so the whole stays at the configured rate). Config and secrets
// come from the primary (worker-protocol.ts); the worker has no xDS stream,
// no certificate agent, no admin port and no telemetry of its own. It stops
// when the primary says so or goes away, never on a signal of its own (a
// Ctrl-C reaches the whole process group: the primary drains it).
import { jsonLogger, type Logger } from '../../observe/log';
import type { RequestRecord } from '../../observe/request-record';
import { adminView } from '../admin/admin-server';
import { shareLocalRateLimits } from '../filters/local-rate-limit';
import { installLastResortGuard } from '../last-resort';
import { Proxy } from '../proxy';
import { RelayedConfig } from './relayed-config';
import type { FromWorker, ToWorker, WorkerInit } from './worker-protocol';

/** Tap records are sent to the primary in batches at most this often (only while someone taps). */
const RECORDS_FLUSH_MS = 100;

function send(msg: FromWorker): void {
  if (process.connected) process.send!(msg);
}

function start(init: WorkerInit): (msg: ToWorker) => void {
  const base = jsonLogger(init.logLevel);
  const log: Logger = (level, msg, fields) => base(level, msg, { worker: init.slot, pid: process.pid, ...fields });
  installLastResortGuard(log);
  shareLocalRateLimits(init.workers);
  const source = new RelayedConfig(init.xds);
  const proxy = new Proxy({ ...init, adminPort: 0, log, telemetryIntervalMs: 0 }, source);
  const state = () => send({ t: 'state', ready: proxy.ready(), reason: proxy.ready() ? '' : proxy.notReadyReason(), versions: proxy.configVersions() });
  // After the listeners of onConfigApplied have run: the proxy counts as configured only then.
  proxy.onConfigApplied(() => setImmediate(state));
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    proxy.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  // The primary is gone (killed): no orphan keeps the ports.
  process.on('disconnect', stop);
  let untap: (() => void) | undefined;
  return (msg) => {
    switch (msg.t) {
      case 'config':
        try {
          source.apply(msg.raw);
        } catch (err) {
          // The primary decoded the same bytes: a failure here is a bug, and the last config keeps serving.
          log('error', 'relayed config does not decode in the worker', { error: String(err) });
        }
        return;
      case 'certificate':
        return proxy.secrets.setCertificate(msg.name, msg.secret);
      case 'bundle':
        return proxy.secrets.setTrustBundle(msg.name, msg.secret);
      case 'ask':
        if (msg.what === 'report') {
          return send({ t: 'answer', id: msg.id, body: { stats: proxy.stats.snapshot(), metrics: proxy.dataPlaneMetrics(), unhealthy: proxy.unhealthyEndpoints() } });
        }
        try {
          Promise.resolve(adminView(proxy, msg.path, new URLSearchParams(msg.query))).then(
            (body) => send({ t: 'answer', id: msg.id, body }),
            (err: Error) => send({ t: 'answer', id: msg.id, error: err.message }),
          );
        } catch (err) {
          send({ t: 'answer', id: msg.id, error: (err as Error).message });
        }
        return;
      case 'tap': {
        untap?.();
        untap = undefined;
        if (!msg.on) return;
        let batch: RequestRecord[] = [];
        let timer: NodeJS.Timeout | undefined;
        untap = proxy.stats.records.add((r) => {
          batch.push(r);
          timer ??= setTimeout(() => {
            timer = undefined;
            send({ t: 'records', records: batch });
            batch = [];
          }, RECORDS_FLUSH_MS);
        });
        return;
      }
      case 'stop':
        return stop();
    }
  };
}

export function runWorker(): void {
  // Signals are the primary's to act on (see above).
  process.on('SIGINT', () => {});
  process.on('SIGTERM', () => {});
  let handle: ((msg: ToWorker) => void) | undefined;
  process.on('message', (msg: ToWorker) => {
    if (msg.t === 'init') handle ??= start(msg.init);
    else handle?.(msg);
  });
  // Nothing arrives before init; if the primary is gone already, leave.
  process.on('disconnect', () => handle ?? process.exit(0));
}

if (require.main === module) runWorker();
