// The control plane's REST admin API, under /api/v1/ on one port. It is what
// the CLI and the dashboard use. Not on any request's hot path, so node:http.
//
//   GET    /api/v1/status                           summary: revision, counts, errors
//   GET    /api/v1/resources[?kind=K]               every resource (or of one kind)
//   GET    /api/v1/resources/:kind[/:ns[/:name]]    resources of a kind / one resource
//   POST   /api/v1/resources                        apply YAML or JSON (one or many documents)
//   DELETE /api/v1/resources/:kind/:ns/:name
//   GET    /api/v1/endpoints[?service=ns/name]      live endpoints by service
//   GET    /api/v1/registrations                    leased instances
//   POST   /api/v1/registrations                    register an instance → {id, ttlSeconds}
//   PUT    /api/v1/registrations/:id                renew the lease (body: {health?})
//   DELETE /api/v1/registrations/:id
//   GET    /api/v1/nodes                            connected xDS clients and their sync state
//   GET    /api/v1/errors                           rejected config (the last good keeps serving)
//   (src/observe/dashboard-api.ts adds /api/v1/topology, /services, /events, /explain and the dashboard at /)
//   GET    /metrics                                 the control plane's own metrics, Prometheus text (control-metrics.ts)
import * as http from 'node:http';
import { resourceKey, type Resource } from '../config/kinds';
import { ConfigError } from '../config/errors';
import { parseConfigFile, parseResource, type ParsedEntry } from '../config/parse';
import { silentLogger, type Logger } from '../observe/log';
import { RegistrationError, type Registry } from '../registry/registry';
import { ConfigRejectedError, StoreUnavailableError, type ResourceOrigin, type Store, type StoredResource } from '../store/store';
import { kindFromName } from './kind-names';

export interface ApiDeps {
  store: Store;
  registry: Registry;
  /** Connected xDS nodes with their per-type sync state. */
  nodes(): unknown[];
  /** Errors of snapshots that could not be published (the previous keeps serving). */
  snapshotErrors(): unknown[];
  log?: Logger;
}

/** A handler's answer that is not JSON: sent as is with its content type. */
export class TypedBody {
  constructor(
    readonly contentType: string,
    readonly body: string | Buffer,
  ) {}
}

const MAX_BODY_BYTES = 4 * 1024 * 1024;

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly body?: Record<string, unknown>,
  ) {
    super(message);
  }
}

type Handler = (req: http.IncomingMessage, params: string[], url: URL) => Promise<unknown> | unknown;
/** A handler that writes the response itself (event streams, static files). */
export type RawHandler = (req: http.IncomingMessage, res: http.ServerResponse, params: string[], url: URL) => void;

export class ApiServer {
  private readonly server: http.Server;
  private readonly routes: { method: string; pattern: RegExp; handler: Handler; raw?: RawHandler }[] = [];
  private readonly log: Logger;

  constructor(private readonly deps: ApiDeps) {
    this.log = deps.log ?? silentLogger;
    this.defineRoutes();
    this.server = http.createServer((req, res) => void this.handle(req, res));
    this.server.keepAliveTimeout = 5000;
  }

  listen(port: number, host = '127.0.0.1'): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve((this.server.address() as { port: number }).port);
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  /** Lets other modules (e.g. the dashboard) add routes on the same port. */
  route(method: string, pattern: RegExp, handler: Handler): void {
    this.routes.push({ method, pattern, handler });
  }

  /** A route whose handler writes the response itself. */
  rawRoute(method: string, pattern: RegExp, raw: RawHandler): void {
    this.routes.push({ method, pattern, handler: () => undefined, raw });
  }

  private defineRoutes(): void {
    const { store, registry } = this.deps;
    this.route('GET', /^\/healthz$/, () => ({ ok: true }));
    this.route('GET', /^\/api\/v1\/status$/, () => ({
      revision: store.revision(),
      resources: countByKind(store),
      registrations: registry.list().length,
      nodes: this.deps.nodes().length,
      configErrors: store.configErrors().length,
      snapshotErrors: this.deps.snapshotErrors().length,
    }));
    this.route('GET', /^\/api\/v1\/resources$/, (_req, _p, url) => {
      const kind = url.searchParams.get('kind');
      const kinds = kind ? [parseKind(kind)] : (Object.keys(countByKind(store)) as Resource['kind'][]);
      return { items: kinds.flatMap((k) => store.list(k).map(view)) };
    });
    this.route('GET', /^\/api\/v1\/resources\/([^/]+)(?:\/([^/]+))?(?:\/([^/]+))?$/, (_req, [kindName, ns, name]) => {
      const kind = parseKind(kindName);
      if (ns && name) {
        const item = store.get(kind, ns, name);
        if (!item) throw new HttpError(404, `${kind} ${ns}/${name} not found`);
        return view(item);
      }
      return { items: store.list(kind).filter((i) => !ns || i.resource.metadata.namespace === ns).map(view) };
    });
    this.route('POST', /^\/api\/v1\/resources$/, async (req) => {
      const text = await readBody(req);
      const { resources, origins } = parseBody(text, req.headers['content-type'] ?? '');
      const applied = await store.apply(resources, origins);
      return { applied: applied.map((i) => ({ key: resourceKey(i.resource), revision: i.revision })) };
    });
    this.route('DELETE', /^\/api\/v1\/resources\/([^/]+)\/([^/]+)\/([^/]+)$/, async (_req, [kindName, ns, name]) => {
      const kind = parseKind(kindName);
      if (!(await store.delete(kind, ns, name))) throw new HttpError(404, `${kind} ${ns}/${name} not found`);
      return { deleted: `${kind}/${ns}/${name}` };
    });
    this.route('GET', /^\/api\/v1\/endpoints$/, (_req, _p, url) => {
      const service = url.searchParams.get('service');
      const all = registry.endpoints();
      const entries = [...all].filter(([key]) => !service || key === service || key === `default/${service}`);
      if (service && entries.length === 0) throw new HttpError(404, `service ${service} not found`);
      return { services: Object.fromEntries(entries) };
    });
    this.route('GET', /^\/api\/v1\/registrations$/, () => ({ items: registry.list() }));
    this.route('POST', /^\/api\/v1\/registrations$/, async (req) => registry.register(JSON.parse(await readBody(req) || '{}')));
    this.route('PUT', /^\/api\/v1\/registrations\/([^/]+)$/, async (req, [id]) => {
      const body = JSON.parse((await readBody(req)) || '{}') as { health?: 'healthy' | 'unhealthy' | 'draining' };
      return registry.renew(id, body.health);
    });
    this.route('DELETE', /^\/api\/v1\/registrations\/([^/]+)$/, async (_req, [id]) => {
      if (!(await registry.deregister(id))) throw new HttpError(404, `no registration ${id}`);
      return { deregistered: id };
    });
    this.route('GET', /^\/api\/v1\/nodes$/, () => ({ items: this.deps.nodes() }));
    this.route('GET', /^\/api\/v1\/errors$/, () => ({
      config: store.configErrors().map((e) => e.toJSON()),
      snapshots: this.deps.snapshotErrors(),
    }));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    let status = 200;
    let body: unknown;
    try {
      const matches = this.routes.filter((r) => r.pattern.test(url.pathname));
      if (matches.length === 0) throw new HttpError(404, `no such endpoint ${url.pathname}`);
      const route = matches.find((r) => r.method === req.method);
      if (!route) throw new HttpError(405, `${req.method} not allowed on ${url.pathname}`);
      const params = route.pattern.exec(url.pathname)!.slice(1).map((p) => (p === undefined ? p : decodeURIComponent(p)));
      if (route.raw) return route.raw(req, res, params as string[], url);
      body = await route.handler(req, params as string[], url);
      if (req.method === 'POST' && url.pathname.endsWith('/registrations')) status = 201;
    } catch (err) {
      ({ status, body } = errorResponse(err));
      if (status >= 500) this.log('error', 'api request failed', { path: url.pathname, error: String(err) });
    }
    if (res.headersSent) return;
    if (body instanceof TypedBody) {
      res.writeHead(status, { 'content-type': body.contentType, 'content-length': Buffer.byteLength(body.body) }).end(body.body);
      return;
    }
    if (body instanceof Buffer || typeof body === 'string') {
      res.writeHead(status).end(body);
      return;
    }
    const json = JSON.stringify(body, null, 1);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json) }).end(json);
  }
}

function errorResponse(err: unknown): { status: number; body: Record<string, unknown> } {
  if (err instanceof HttpError) return { status: err.status, body: { error: err.message, ...err.body } };
  if (err instanceof ConfigRejectedError) {
    return { status: 400, body: { error: 'config rejected', code: err.code, errors: err.errors.map((e) => e.toJSON()) } };
  }
  if (err instanceof RegistrationError) {
    return { status: err.code === 'E_UNKNOWN_REGISTRATION' ? 404 : 400, body: { error: err.message, code: err.code, field: err.field } };
  }
  if (err instanceof SyntaxError) return { status: 400, body: { error: `malformed JSON body: ${err.message}` } };
  if (err instanceof StoreUnavailableError) return { status: 503, body: { error: err.message, code: err.code } };
  return { status: 500, body: { error: String(err instanceof Error ? err.message : err) } };
}

function parseKind(name: string) {
  const kind = kindFromName(name);
  if (!kind) throw new HttpError(404, `unknown kind "${name}"`);
  return kind;
}

function view(item: StoredResource) {
  return { ...item.resource, status: { revision: item.revision, source: item.source } };
}

function countByKind(store: Store): Record<string, number> {
  const kinds = ['Service', 'HTTPRoute', 'GRPCRoute', 'TCPRoute', 'TrafficPolicy', 'MeshTLS', 'AuthorizationPolicy', 'RequestAuthentication'] as const;
  return Object.fromEntries(kinds.map((k) => [k, store.list(k).length]));
}

const BODY = 'request body';

/** A body of YAML documents (the usual) or a JSON resource or array of resources. */
function parseBody(text: string, contentType: string): { resources: Resource[]; origins: ResourceOrigin[] } {
  let errors: ConfigError[];
  let entries: ParsedEntry[];
  if (contentType.includes('json')) {
    const raw = JSON.parse(text) as unknown;
    const list = Array.isArray(raw) ? raw : [raw];
    const results = list.map((obj, document) => ({ document, ...parseResource(obj, { file: BODY, document }) }));
    errors = results.flatMap((r) => r.errors);
    entries = results.flatMap((r) => (r.resource ? [{ resource: r.resource, document: r.document }] : []));
  } else {
    ({ errors, entries } = parseConfigFile(text, BODY));
  }
  if (errors.length > 0) throw new ConfigRejectedError(errors);
  if (entries.length === 0) throw new HttpError(400, 'the body holds no resource');
  return { resources: entries.map((e) => e.resource), origins: entries.map((e) => ({ file: BODY, document: e.document })) };
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new HttpError(413, `body larger than ${MAX_BODY_BYTES} bytes`));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
