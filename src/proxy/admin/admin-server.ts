// The proxy's admin port: readiness, Prometheus stats, the config it runs
// with, its xDS connection (/xds: which control plane replica it is
// connected to, of which addresses) and its clusters' endpoints. Local
// tooling only; binds 127.0.0.1.
import * as http from 'node:http';
import type { Proxy } from '../proxy';
import { recordFilter } from '../../observe/record-filter';
import type { RequestRecord } from '../../observe/request-record';

/** Bytes a tap client may lag behind before records are dropped for it. */
const TAP_MAX_BUFFERED = 256 * 1024;

/** GET /requests?limit=N&<filters>: the latest finished requests from the ring, oldest first. */
function recentRequests(proxy: Proxy, url: URL, json: (value: unknown) => void): void {
  const filter = recordFilter(url.searchParams);
  const limit = Number(url.searchParams.get('limit') ?? 100);
  const ring = proxy.stats.records.ring;
  const all = ring ? ring.latest().filter(filter) : [];
  json({ capacity: ring?.capacity ?? 0, items: all.slice(Math.max(0, all.length - limit)) });
}

/**
 * GET /tap?<filters>[&since=<seconds>]: NDJSON, one record per finished
 * request, until the client goes away; `since` first replays the ring's
 * records of the last seconds. A client that reads too slowly misses records
 * (weft_tap_dropped_total) rather than holding memory.
 */
function tap(proxy: Proxy, url: URL, req: http.IncomingMessage, res: http.ServerResponse): void {
  const filter = recordFilter(url.searchParams);
  const stats = proxy.stats;
  res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
  res.flushHeaders();
  const write = (r: RequestRecord) => {
    if (!filter(r)) return;
    if (res.writableLength > TAP_MAX_BUFFERED) {
      stats.tapDropped++;
      return;
    }
    res.write(JSON.stringify(r) + '\n');
  };
  const since = Number(url.searchParams.get('since') ?? 0);
  if (since > 0 && stats.records.ring) {
    const from = Date.now() - since * 1000;
    for (const r of stats.records.ring.latest()) if (r.time >= from) write(r);
  }
  const remove = stats.records.add(write);
  res.on('close', remove);
  req.on('close', remove);
}

export function startAdminServer(proxy: Proxy, port: number, host = '127.0.0.1'): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://admin');
    const send = (status: number, body: string, type = 'text/plain; charset=utf-8') => {
      res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) }).end(body);
    };
    const json = (value: unknown) => send(200, JSON.stringify(value, null, 1) + '\n', 'application/json');
    try {
      switch (url.pathname) {
        case '/ready':
          return proxy.ready() ? send(200, 'LIVE\n') : send(503, `NOT READY: ${proxy.notReadyReason()}\n`);
        case '/stats/prometheus':
          return send(200, proxy.stats.render(proxy.extraMetrics()), 'text/plain; version=0.0.4');
        case '/config_dump':
          return json(proxy.configDump());
        case '/xds':
          return json(proxy.xds.status());
        case '/clusters':
          return json(proxy.clustersView());
        case '/listeners':
          return json(proxy.listeners.status());
        case '/certs':
          return json(proxy.certsView());
        case '/requests':
          return recentRequests(proxy, url, json);
        case '/tap':
          return tap(proxy, url, req, res);
        default:
          return send(404, 'endpoints: /ready /stats/prometheus /config_dump /xds /clusters /listeners /certs /requests /tap\n');
      }
    } catch (err) {
      if (res.headersSent) return void res.destroy();
      send(url.pathname === '/tap' || url.pathname === '/requests' ? 400 : 500, `admin error: ${(err as Error).message}\n`);
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}
