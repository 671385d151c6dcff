// The proxy's admin port: readiness, Prometheus stats, the config it runs
// with, and its clusters' endpoints. Local tooling only; binds 127.0.0.1.
import * as http from 'node:http';
import type { Proxy } from '../proxy';

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
        case '/clusters':
          return json(proxy.clustersView());
        case '/listeners':
          return json(proxy.listeners.status());
        default:
          return send(404, 'endpoints: /ready /stats/prometheus /config_dump /clusters /listeners\n');
      }
    } catch (err) {
      send(500, `admin error: ${(err as Error).message}\n`);
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}
