// What the dashboard (web/, built to web/dist) and `weft top` / `weft explain`
// read, on the control plane's API port:
//
//   GET /                                     the dashboard (static files of web/dist)
//   GET /api/v1/topology                      services and edges with golden signals
//   GET /api/v1/services/:ns/:name            one service: signals, endpoints (with their
//                                             monitor's reason and plugins' restarts) and their
//                                             health in each caller's sidecar, routes,
//                                             policies, recent errors
//   GET /api/v1/events                        Server-Sent Events: topology, errors, nodes
//   GET /api/v1/history, /api/v1/edges/:source/:destination   (dashboard-signals.ts)
//   GET /api/v1/explain?from=&method=&url=&header=name:value
//                                             what the source's sidecar would do with a request
//   GET /api/v1/endpoint-health               endpoints the sidecars took out of load balancing
//   GET /api/v1/nodes/:id/admin/:view         a sidecar's admin view (clusters, requests, certs,
//                                             xds, listeners), over its relay stream
//   GET /api/v1/requests?service=&failed=1&limit=&<filters>
//                                             recent requests of the sidecars, on every host
//   GET /api/v1/tap?service=[ns/]name&<filters>&since=
//                                             NDJSON: the service's requests as they finish
//   GET /api/v1/telemetry/replica             this replica's share of the signals (for its peers)
//
// Every one answers for the whole mesh, whichever replica is asked: the
// sidecars push to the replica they are connected to, and a replica adds
// the other replicas' answers (telemetry/mesh-telemetry.ts); `scope=replica`
// asks one replica for its own sidecars only (what the replicas ask each other).
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
import { MeshObserver, type ReplicaTelemetry } from './mesh-observer';
import { RelayError } from './telemetry/admin-relay';
import type { MeshTelemetry, NodeRecord } from './telemetry/mesh-telemetry';
import type { MetricsIntake } from './telemetry/metrics-intake';
import type { ReplicaPeers } from './telemetry/replica-peers';
import { recordFilter } from './record-filter';

export interface DashboardDeps {
  store: Store;
  registry: Registry;
  /** This replica's connected nodes. */
  nodes(): NodeStatus[];
  errors(): unknown;
  view(): MeshView;
  /** The mesh's live state from any replica (sidecars' reports, relay streams, the other replicas). */
  telemetry: MeshTelemetry;
  /** The metrics reports of this replica's sidecars. */
  intake: MetricsIntake;
  peers?: ReplicaPeers;
  replica: () => string;
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
  const { telemetry, peers } = deps;
  const observer = new MeshObserver({
    nodes: deps.nodes,
    reports: () => deps.intake.all(),
    errors: deps.errors,
    services: () => deps.store.list('Service').map((s) => ({ name: s.resource.metadata.name, namespace: s.resource.metadata.namespace })),
    peers:
      peers &&
      (async () => {
        const { answers, failed } = await peers.gather<ReplicaTelemetry>('/api/v1/telemetry/replica');
        // A replica that did not answer: its sidecars are missing from the signals, and the topology says so.
        return [...answers.map((a) => a.body), ...failed.map((f) => ({ replica: f.replica, windows: [], instances: [], unreachable: [{ nodeId: `replica ${f.replica}`, reason: f.error }], answered: false }))];
      }),
    replica: deps.replica,
    intervalMs: deps.intervalMs,
  });
  observer.start();
  const local = (url: URL) => url.searchParams.get('scope') === 'replica';
  // Signals over time, edges' mTLS state and config (dashboard-signals.ts).
  const signals = installDashboardSignals(api, { observer, view: deps.view });

  api.route('GET', /^\/api\/v1\/topology$/, 'viewer', () => signals.decorate(observer.topology()));
  api.route('GET', /^\/api\/v1\/telemetry\/replica$/, 'viewer', () => observer.replicaTelemetry());
  api.route('GET', /^\/api\/v1\/services\/([^/]+)\/([^/]+)$/, 'viewer', (_req, [ns, name]) => serviceDetail(deps, observer, ns, name));
  api.route('GET', /^\/api\/v1\/explain$/, 'viewer', async (_req, _p, url) =>
    explainRequest(
      deps.view(),
      (await telemetry.nodes()).items,
      {
        from: url.searchParams.get('from') ?? '',
        method: url.searchParams.get('method') ?? 'GET',
        url: url.searchParams.get('url') ?? '',
        headers: url.searchParams.getAll('header'),
      },
      (nodeId, view, query) => telemetry.adminView(nodeId, view, query),
    ).catch((err) => {
      throw err instanceof ExplainError ? new HttpError(400, err.message) : err;
    }),
  );
  api.route('GET', /^\/api\/v1\/endpoint-health$/, 'viewer', (_req, _p, url) => (local(url) ? { items: telemetry.replicaEndpointHealth() } : telemetry.endpointHealth()));
  api.route('GET', /^\/api\/v1\/nodes\/([^/]+)\/admin(\/[a-z_]+)$/, 'viewer', async (_req, [id, view], url) => {
    const query = new URLSearchParams(url.searchParams);
    query.delete('scope');
    try {
      if (local(url)) return await deps.telemetry.replicaAdminView(decodeURIComponent(id), view, query.toString());
      return await telemetry.adminView(decodeURIComponent(id), view, query.toString());
    } catch (err) {
      if (err instanceof RelayError) throw new HttpError(err.code === 'E_RELAY_NO_STREAM' ? 404 : err.code === 'E_RELAY_VIEW' ? 400 : 504, err.message, { code: err.code });
      throw err;
    }
  });
  api.route('GET', /^\/api\/v1\/requests$/, 'viewer', async (_req, _p, url) => {
    const service = serviceParam(url);
    checkFilter(url.searchParams);
    if (local(url)) return { items: await telemetry.replicaRequests(url.searchParams, service) };
    return telemetry.requests(url.searchParams, service);
  });
  api.rawRoute('GET', /^\/api\/v1\/tap$/, 'viewer', (req, res, _p) => {
    const url = new URL(req.url ?? '/', 'http://api');
    const service = serviceParam(url);
    if (!service) return void res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'service: give the service to tap (?service=<name> or <namespace>/<name>)' }));
    try {
      checkFilter(url.searchParams);
    } catch (err) {
      return void res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: (err as Error).message }));
    }
    const query = new URLSearchParams(url.searchParams);
    query.delete('service');
    query.delete('scope');
    const controller = new AbortController();
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
    res.flushHeaders();
    // A client that reads too slowly misses records rather than holding this replica's memory.
    const write = (line: string) => {
      if (res.writableLength < 1 << 20) res.write(line + '\n');
    };
    const onRecord = (r: NodeRecord) => write(JSON.stringify(r));
    const onNote = (note: string) => write(JSON.stringify({ note }));
    const ping = setInterval(() => write(JSON.stringify({ note: 'ping' })), 15_000);
    const done = local(url) ? telemetry.replicaTap(service, query.toString(), onRecord, onNote, controller.signal) : telemetry.tap(service, query.toString(), onRecord, onNote, controller.signal);
    res.on('close', () => {
      clearInterval(ping);
      controller.abort();
    });
    void done.then(() => {
      clearInterval(ping);
      res.end();
    });
  });

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

/** `service=<name>` or `service=<namespace>/<name>` (namespace default), or undefined. */
function serviceParam(url: URL): { name: string; namespace: string } | undefined {
  const v = url.searchParams.get('service');
  if (!v) return undefined;
  const [namespace, name] = v.includes('/') ? v.split('/', 2) : ['default', v];
  return { name, namespace };
}

/** A malformed filter (status=abc) is the caller's error: 400 naming the parameter. */
function checkFilter(params: URLSearchParams): void {
  try {
    recordFilter(params);
  } catch (err) {
    throw new HttpError(400, (err as Error).message);
  }
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
  // A registered instance's endpoint with why it is unhealthy (its monitor) and its plugins' restarts.
  const registrations = new Map(deps.registry.list().map((r) => [r.id, r]));
  const endpoints = (deps.registry.endpoints().get(`${ns}/${name}`) ?? []).map((e) => {
    const reg = registrations.get(e.origin);
    return { ...e, ...(reg?.healthReason ? { healthReason: reg.healthReason } : {}), ...(reg?.plugins ? { plugins: reg.plugins } : {}) };
  });
  const topology = observer.topology();
  const nodes = (await deps.telemetry.nodes()).items;

  // How the callers' sidecars see this service's endpoints (outlier ejections, health checks), on every host.
  const sidecarViews = await Promise.all(
    nodes.map(async (n) => {
      if (n.node.role !== 'sidecar') return [];
      try {
        const clusters = (await deps.telemetry.adminView(n.nodeId, '/clusters')) as { name: string; endpoints: Record<string, unknown>[] }[];
        return clusters
          .filter((c) => c.name.startsWith('outbound|') && c.name.endsWith(`||${key}`))
          .flatMap((c) => c.endpoints.map((e) => ({ node: n.nodeId, caller: n.node.service, cluster: c.name, ...e })));
      } catch {
        return [];
      }
    }),
  );
  const own = nodes.filter((n) => n.node.role === 'sidecar' && n.node.service === name && n.node.namespace === ns);
  const recentErrors = (await deps.telemetry.requests(new URLSearchParams({ failed: '1', limit: '50' }), { name, namespace: ns })).items;

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
