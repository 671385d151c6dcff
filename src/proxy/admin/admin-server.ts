// The proxy's admin port: readiness, Prometheus stats, the config it runs
// with, its xDS connection (/xds: which control plane replica it is
// connected to, of which addresses) and its clusters' endpoints. Local
// tooling only; binds 127.0.0.1. The read-only views and the tap are also
// what the control plane asks for over the sidecar's relay stream
// (proxy/telemetry/telemetry-client.ts), so they live in functions here.
import * as http from 'node:http';
import { recordFilter } from '../../observe/record-filter';
import type { RequestRecord } from '../../observe/request-record';
import type { ProxyStats } from '../stats';
import type { UnhealthyEndpoint } from '../telemetry/metrics-report';

/**
 * What the admin port and the relay read: the proxy (proxy.ts), or under
 * `--concurrency` the primary that answers for its workers
 * (workers/proxy-primary.ts), whose views ask the workers and so may be promises.
 */
export interface AdminSubject {
  /** Finished requests seen here (tap), and the drop counter of slow tap clients. */
  readonly stats: ProxyStats;
  /** The counts telemetry reports: `stats`, or the workers' sum. */
  countedStats(): ProxyStats;
  readonly xds: { status(): unknown };
  ready(): boolean;
  notReadyReason(): string;
  /** The whole /stats/prometheus text. */
  metricsText(): string | Promise<string>;
  certsView(): unknown;
  configDump(): unknown;
  clustersView(): unknown;
  listenersView(): unknown;
  /** GET /requests: the latest finished requests matching the query's filters, oldest first. */
  recentRequests(query: URLSearchParams): unknown;
  unhealthyEndpoints(): UnhealthyEndpoint[];
  /** GET /workers, under --concurrency only. */
  workersView?(): unknown;
}

/** Bytes a tap client may lag behind before records are dropped for it. */
const TAP_MAX_BUFFERED = 256 * 1024;

/** The admin views the control plane may read through the relay: JSON, read-only, no secrets. */
export const RELAYED_VIEWS = ['/clusters', '/requests', '/certs', '/xds', '/listeners'] as const;

/** The JSON of a read-only admin view (or its promise), or undefined for a path that is not one. Throws on a bad query. */
export function adminView(proxy: AdminSubject, pathname: string, query: URLSearchParams): unknown {
  switch (pathname) {
    case '/clusters':
      return proxy.clustersView();
    case '/listeners':
      return proxy.listenersView();
    case '/xds':
      return proxy.xds.status();
    case '/certs':
      return proxy.certsView();
    case '/requests':
      return proxy.recentRequests(query);
    case '/config_dump':
      return proxy.configDump();
    case '/workers':
      return proxy.workersView?.();
    default:
      return undefined;
  }
}

/** GET /requests?limit=N&<filters>: the latest finished requests from the ring, oldest first. */
export function recentRequests(stats: ProxyStats, query: URLSearchParams): { capacity: number; items: RequestRecord[] } {
  const filter = recordFilter(query);
  const limit = Number(query.get('limit') ?? 100);
  const ring = stats.records.ring;
  const all = ring ? ring.latest().filter(filter) : [];
  return { capacity: ring?.capacity ?? 0, items: all.slice(Math.max(0, all.length - limit)) };
}

/**
 * Calls `write` with each finished request matching the query's filters
 * (record-filter.ts) until the returned function is called; `since=<seconds>`
 * first replays the ring's records of the last seconds.
 */
export function subscribeTap(proxy: AdminSubject, query: URLSearchParams, write: (r: RequestRecord) => void): () => void {
  const filter = recordFilter(query);
  const records = proxy.stats.records;
  const since = Number(query.get('since') ?? 0);
  if (since > 0 && records.ring) {
    const from = Date.now() - since * 1000;
    for (const r of records.ring.latest()) if (r.time >= from && filter(r)) write(r);
  }
  return records.add((r) => {
    if (filter(r)) write(r);
  });
}

/**
 * GET /tap?<filters>[&since=<seconds>]: NDJSON, one record per finished
 * request, until the client goes away. A client that reads too slowly misses
 * records (weft_tap_dropped_total) rather than holding memory.
 */
function tap(proxy: AdminSubject, url: URL, req: http.IncomingMessage, res: http.ServerResponse): void {
  const stats = proxy.stats;
  recordFilter(url.searchParams); // a malformed filter throws here: 400, before the 200 head
  res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
  res.flushHeaders();
  const remove = subscribeTap(proxy, url.searchParams, (r) => {
    if (res.writableLength > TAP_MAX_BUFFERED) {
      stats.tapDropped++;
      return;
    }
    res.write(JSON.stringify(r) + '\n');
  });
  res.on('close', remove);
  req.on('close', remove);
}

export function startAdminServer(proxy: AdminSubject, port: number, host = '127.0.0.1'): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://admin');
    const send = (status: number, body: string, type = 'text/plain; charset=utf-8') => {
      res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) }).end(body);
    };
    const failed = (err: unknown) => {
      if (res.headersSent) return void res.destroy();
      send(url.pathname === '/tap' || url.pathname === '/requests' ? 400 : 500, `admin error: ${(err as Error).message}\n`);
    };
    // A single process answers at once; a primary's views are promises (its workers answer over IPC).
    const answer = <T>(value: T | Promise<T>, done: (v: T) => void) => (value instanceof Promise ? value.then(done, failed) : done(value));
    const json = (value: unknown) => answer(value, (v) => send(200, JSON.stringify(v, null, 1) + '\n', 'application/json'));
    const endpoints = `/ready /stats/prometheus /config_dump /xds /clusters /listeners /certs /requests /tap${proxy.workersView ? ' /workers' : ''}`;
    try {
      switch (url.pathname) {
        case '/ready':
          return proxy.ready() ? send(200, 'LIVE\n') : send(503, `NOT READY: ${proxy.notReadyReason()}\n`);
        case '/stats/prometheus':
          return answer(proxy.metricsText(), (text) => send(200, text, 'text/plain; version=0.0.4'));
        case '/workers':
          if (!proxy.workersView) return send(404, `endpoints: ${endpoints}\n`);
          return json(adminView(proxy, url.pathname, url.searchParams));
        case '/config_dump':
        case '/xds':
        case '/clusters':
        case '/listeners':
        case '/certs':
        case '/requests':
          return json(adminView(proxy, url.pathname, url.searchParams));
        case '/tap':
          return tap(proxy, url, req, res);
        default:
          return send(404, `endpoints: ${endpoints}\n`);
      }
    } catch (err) {
      failed(err);
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}
