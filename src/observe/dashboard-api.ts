// What the dashboard (web/, built to web/dist) and `weft top` / `weft explain`
// read, on the control plane's API port:
//
//   GET /                                     the dashboard (static files of web/dist)
//   GET /api/v1/topology                      services and edges with golden signals
//   GET /api/v1/services/:ns/:name            one service: signals, endpoints and their
//                                             health in each caller's sidecar, routes,
//                                             policies, recent errors
//   GET /api/v1/events                        Server-Sent Events: topology, errors, nodes
//   GET /api/v1/history, /api/v1/edges/:source/:destination   (dashboard-signals.ts)
//   GET /api/v1/explain?from=&method=&url=&header=name:value
//                                             what the source's sidecar would do with a request
import * as fs from 'node:fs';
import * as path from 'node:path';
import { HttpError, type ApiServer } from '../api/api-server';
import type { Resource } from '../config/kinds';
import type { Registry } from '../registry/registry';
import type { Store } from '../store/store';
import type { MeshView } from '../translate/types';
import type { NodeStatus } from '../xds/server/node-status';
import { ExplainError, explainRequest } from './explain';
import { installDashboardSignals } from './dashboard-signals';
import { adminUrl, getText, MeshObserver } from './mesh-observer';

export interface DashboardDeps {
  store: Store;
  registry: Registry;
  nodes(): NodeStatus[];
  errors(): unknown;
  view(): MeshView;
  /** Where the built dashboard is (default: web/dist of the package). */
  webRoot?: string;
  intervalMs?: number;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.json': 'application/json',
  '.ico': 'image/x-icon',
};

export function installDashboard(api: ApiServer, deps: DashboardDeps): MeshObserver {
  const observer = new MeshObserver({
    nodes: deps.nodes,
    errors: deps.errors,
    services: () => deps.store.list('Service').map((s) => ({ name: s.resource.metadata.name, namespace: s.resource.metadata.namespace })),
    intervalMs: deps.intervalMs,
  });
  observer.start();
  // Signals over time, edges' mTLS state and config (dashboard-signals.ts).
  const signals = installDashboardSignals(api, { observer, view: deps.view, intervalMs: deps.intervalMs });

  api.route('GET', /^\/api\/v1\/topology$/, 'viewer', () => signals.decorate(observer.topology()));
  api.route('GET', /^\/api\/v1\/services\/([^/]+)\/([^/]+)$/, 'viewer', (_req, [ns, name]) => serviceDetail(deps, observer, ns, name));
  api.route('GET', /^\/api\/v1\/explain$/, 'viewer', (_req, _p, url) =>
    explainRequest(deps.view(), deps.nodes(), {
      from: url.searchParams.get('from') ?? '',
      method: url.searchParams.get('method') ?? 'GET',
      url: url.searchParams.get('url') ?? '',
      headers: url.searchParams.getAll('header'),
    }).catch((err) => {
      throw err instanceof ExplainError ? new HttpError(400, err.message) : err;
    }),
  );

  api.rawRoute('GET', /^\/api\/v1\/events$/, 'viewer', (req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    const send = (type: string, data: unknown) => res.write(`event: ${type}\ndata: ${JSON.stringify(data)}\n\n`);
    // The current state first, then changes.
    send('topology', signals.decorate(observer.topology()));
    send('errors', deps.errors());
    send('nodes', { items: deps.nodes() });
    const stop = observer.subscribe((e) => send(e.type, e.type === 'topology' ? signals.decorate(e.data) : e.data));
    const ping = setInterval(() => res.write(': ping\n\n'), 15_000);
    req.on('close', () => {
      stop();
      clearInterval(ping);
    });
  });

  const root = deps.webRoot ?? path.resolve(__dirname, '../../../web/dist');
  // The dashboard's own files hold no data: what they show comes from the routes above (viewer).
  api.rawRoute('GET', /^\/(?!api\/|healthz$|metrics$)(.*)$/, 'public', (_req, res, [rel]) => {
    const file = path.resolve(root, rel || 'index.html');
    if (!file.startsWith(root + path.sep)) return void res.writeHead(404).end();
    // Unknown paths are the single-page app's own (#/service/…): its index.
    const target = fs.existsSync(file) && fs.statSync(file).isFile() ? file : path.join(root, 'index.html');
    if (!fs.existsSync(target)) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('dashboard not built: run `npm run build` (web/dist missing)\n');
      return;
    }
    res.writeHead(200, { 'content-type': TYPES[path.extname(target)] ?? 'application/octet-stream' }).end(fs.readFileSync(target));
  });
  return observer;
}

async function serviceDetail(deps: DashboardDeps, observer: MeshObserver, ns: string, name: string) {
  const service = deps.store.get('Service', ns, name)?.resource;
  const key = `${name}.${ns}`;
  const refers = (refs: { name: string; namespace?: string }[] | undefined, routeNs: string) =>
    (refs ?? []).some((r) => r.name === name && (r.namespace ?? routeNs) === ns);
  const routes = (['HTTPRoute', 'GRPCRoute', 'TCPRoute'] as const).flatMap((kind) =>
    deps.store
      .list(kind)
      .map((i) => i.resource as Resource)
      .filter((r) => {
        const spec = r.spec as { parentRefs?: { name: string; namespace?: string }[]; rules?: { backendRefs?: { name: string; namespace?: string }[] }[] };
        return refers(spec.parentRefs, r.metadata.namespace) || (spec.rules ?? []).some((rule) => refers(rule.backendRefs, r.metadata.namespace));
      }),
  );
  const policies = deps.store
    .list('TrafficPolicy')
    .map((i) => i.resource)
    .filter((p) => p.spec.targetRef.name === name && (p.spec.targetRef.namespace ?? p.metadata.namespace) === ns);
  const endpoints = deps.registry.endpoints().get(`${ns}/${name}`) ?? [];
  const topology = observer.topology();
  const nodes = deps.nodes();

  // How the callers' sidecars see this service's endpoints (outlier ejections, health checks).
  const clusterPrefix = `outbound|`;
  const sidecarViews = await Promise.all(
    nodes.map(async (n) => {
      const url = adminUrl(n);
      if (!url) return [];
      try {
        const clusters = JSON.parse(await getText(`${url}/clusters`)) as { name: string; endpoints: Record<string, unknown>[] }[];
        return clusters
          .filter((c) => c.name.startsWith(clusterPrefix) && c.name.endsWith(`||${key}`))
          .flatMap((c) => c.endpoints.map((e) => ({ node: n.nodeId, caller: n.node.service, cluster: c.name, ...e })));
      } catch {
        return [];
      }
    }),
  );
  const own = nodes.filter((n) => n.node.role === 'sidecar' && n.node.service === name && n.node.namespace === ns);
  const recentErrors = (
    await Promise.all(
      own.map(async (n) => {
        const url = adminUrl(n);
        if (!url) return [];
        try {
          const body = JSON.parse(await getText(`${url}/requests?limit=200`)) as unknown;
          const items = (Array.isArray(body) ? body : ((body as { items?: unknown[] }).items ?? [])) as Record<string, unknown>[];
          return items.filter((r) => r.protocol !== 'tcp' && (Number(r.status) >= 500 || !r.status || (r.flags && r.flags !== '-'))).map((r) => ({ node: n.nodeId, ...r }));
        } catch {
          return []; // a sidecar without /requests: no recent requests to show
        }
      }),
    )
  )
    .flat()
    .slice(-50);

  return {
    name,
    namespace: ns,
    declared: service !== undefined,
    spec: service?.spec,
    signals: topology.services.find((s) => s.name === key),
    inbound: topology.edges.filter((e) => e.destination === key),
    outbound: topology.edges.filter((e) => e.source === key),
    endpoints,
    endpointHealth: sidecarViews.flat(),
    routes: routes.map((r) => ({ kind: r.kind, name: r.metadata.name, namespace: r.metadata.namespace, spec: r.spec })),
    policies: policies.map((p) => ({ name: p.metadata.name, namespace: p.metadata.namespace, spec: p.spec })),
    proxies: own.map((n) => ({ nodeId: n.nodeId, types: n.types.map((t) => ({ type: t.type, state: t.state, version: t.ackedVersion })) })),
    recentErrors,
  };
}
