// The control plane's REST admin API, under /api/v1/ on one port. It is what
// the CLI, the dashboard and `weft run` use. Not on any request's hot path, so
// node:http. Every route declares who may call it (access.ts): public,
// viewer, admin or workload; outside --dev each request is authenticated.
//
//   GET    /api/v1/status                           summary: revision, counts, errors
//   GET    /api/v1/resources[?kind=K]               every resource (or of one kind)
//   GET    /api/v1/resources/:kind[/:ns[/:name]]    resources of a kind / one resource
//   POST   /api/v1/resources                        apply YAML or JSON (one or many documents)
//   DELETE /api/v1/resources/:kind/:ns/:name
//   GET    /api/v1/endpoints[?service=ns/name]      live endpoints by service
//   GET    /api/v1/registrations                    leased instances
//   POST   /api/v1/registrations                    register an instance → {id, ttlSeconds}
//   PUT    /api/v1/registrations/:id                renew the lease (body: {health?, healthReason?, plugins?})
//   DELETE /api/v1/registrations/:id
//   GET    /api/v1/nodes                            connected xDS clients and their sync state
//   GET    /api/v1/plugins?service=S[&namespace=NS]  the service's plugins, config resolved (plugins-api.ts)
//   GET    /api/v1/errors                           rejected config (the last good keeps serving); warnings: accepted, not in effect
//   (src/observe/dashboard-api.ts adds /api/v1/topology, /services, /events, /explain and the dashboard at /)
//   GET    /metrics                                 the control plane's own metrics, Prometheus text (control-metrics.ts)
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import type { ServingCertificate } from '../control/serving-certificate';
import { resourceKey, type Resource } from '../config/kinds';
import { ConfigError } from '../config/errors';
import { parseConfigFile, parseResource, type ParsedEntry } from '../config/parse';
import { silentLogger, type Logger } from '../observe/log';
import { RegistrationError, type RegistrationUpdate, type Registry } from '../registry/registry';
import { ConfigRejectedError, StoreUnavailableError, type ResourceOrigin, type Store, type StoredResource } from '../store/store';
import { kindFromName, unknownKindMessage } from './kind-names';
import { HttpError } from './http-error';
import { readBody } from './read-body';
import { installPluginsApi } from './plugins-api';
import { authenticate, authorize, describe, requireOwnService, type Access, type Authenticator, type Principal } from './access';
import type { AuditLog } from './audit-log';

export interface ApiDeps {
  store: Store;
  registry: Registry;
  /** Outside --dev: who may call (credentials and join tokens). Absent: every route is open (dev). */
  auth?: Authenticator;
  /** Changes by operators are recorded here. */
  audit?: AuditLog;
  /** Connected xDS nodes with their per-type sync state. */
  nodes(): unknown[];
  /** The same on every control plane replica (replica-peers.ts); `scope=replica` asks for this one's only. */
  meshNodes?(): Promise<{ items: unknown[]; unreachableReplicas: unknown[] }>;
  /** Errors of snapshots that could not be published (the previous keeps serving). */
  snapshotErrors(): unknown[];
  /** Config accepted but not (wholly) in effect, e.g. a backend's retries a route does not apply (translate/policy-warnings.ts). */
  configWarnings?(): unknown[];
  log?: Logger;
}

/** A handler's answer that is not JSON: sent as is with its content type. */
export class TypedBody {
  constructor(
    readonly contentType: string,
    readonly body: string | Buffer,
  ) {}
}


export { HttpError } from './http-error';

/** The authenticated caller of a request; `note` says what a change did, for the audit log. */
export interface Caller {
  principal: Principal | undefined;
  note(what: string): void;
}

type Handler = (req: http.IncomingMessage, params: string[], url: URL, caller: Caller) => Promise<unknown> | unknown;

export interface RouteInfo {
  method: string;
  pattern: RegExp;
  access: Access;
}
/** A handler that writes the response itself (event streams, static files). */
export type RawHandler = (req: http.IncomingMessage, res: http.ServerResponse, params: string[], url: URL) => void;

export class ApiServer {
  private readonly server: http.Server;
  private readonly routes: { method: string; pattern: RegExp; access: Access; handler: Handler; raw?: RawHandler }[] = [];
  private readonly log: Logger;

  constructor(private readonly deps: ApiDeps) {
    this.log = deps.log ?? silentLogger;
    this.defineRoutes();
    this.server = http.createServer((req, res) => void this.handle(req, res));
    this.server.keepAliveTimeout = 5000;
  }

  /**
   * Listens; with `tls` (outside --dev) the port speaks HTTPS with the control plane's serving
   * certificate, and a plaintext request gets a 400 that says so (x-weft-tls: required), so a
   * client given an http:// URL learns to use https:// instead of hanging on a handshake.
   */
  listen(port: number, host = '127.0.0.1', tls?: ServingCertificate): Promise<number> {
    const front = tls ? this.tlsFront(tls) : this.server;
    this.front = front;
    return new Promise((resolve, reject) => {
      front.once('error', reject);
      front.listen(port, host, () => {
        front.off('error', reject);
        resolve((front.address() as { port: number }).port);
      });
    });
  }

  close(): Promise<void> {
    const front = this.front;
    return new Promise((resolve) => {
      if (front && front !== this.server) {
        front.close();
        this.secure?.closeAllConnections();
      }
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private front: net.Server | undefined;
  private secure: https.Server | undefined;

  /** One port, two doors: a TLS ClientHello (0x16) goes to HTTPS, anything else gets the plaintext refusal. */
  private tlsFront(tls: ServingCertificate): net.Server {
    const identity = () => ({ cert: tls.current.certificate, key: tls.current.privateKey });
    const secure = https.createServer(identity(), (req, res) => this.server.emit('request', req, res));
    secure.keepAliveTimeout = 5000;
    secure.on('tlsClientError', () => {}); // a bad handshake ends that connection only
    tls.onChange(() => secure.setSecureContext(identity()));
    this.secure = secure;
    const plain = http.createServer((req, res) => {
      const body = JSON.stringify({ error: `this control plane's API speaks TLS: use https://${req.headers.host ?? '<host>:<port>'}/ and verify it with the trust bundle (<data-dir>/ca/trust-bundle.pem, WEFT_CA_FILE)`, code: 'E_TLS_REQUIRED' });
      res.writeHead(400, { 'content-type': 'application/json', 'x-weft-tls': 'required', connection: 'close' }).end(body);
    });
    return net.createServer((socket) => {
      socket.on('error', () => {});
      socket.once('readable', () => {
        const first = socket.read(1) as Buffer | null;
        if (!first) return socket.destroy();
        socket.unshift(first);
        (first[0] === 0x16 ? secure : plain).emit('connection', socket);
      });
    });
  }

  /** Lets other modules (e.g. the dashboard) add routes on the same port; `access` says who may call it. */
  route(method: string, pattern: RegExp, access: Access, handler: Handler): void {
    this.routes.push({ method, pattern, access, handler });
  }

  /** A route whose handler writes the response itself. */
  rawRoute(method: string, pattern: RegExp, access: Access, raw: RawHandler): void {
    this.routes.push({ method, pattern, access, handler: () => undefined, raw });
  }

  /** Every route with its rule (the security test walks them all). */
  routeTable(): RouteInfo[] {
    return this.routes.map(({ method, pattern, access }) => ({ method, pattern, access }));
  }

  private defineRoutes(): void {
    const { store, registry } = this.deps;
    this.route('GET', /^\/healthz$/, 'public', () => ({ ok: true }));
    this.route('GET', /^\/api\/v1\/status$/, 'viewer', () => ({
      revision: store.revision(),
      resources: countByKind(store),
      registrations: registry.list().length,
      nodes: this.deps.nodes().length,
      configErrors: store.configErrors().length,
      snapshotErrors: this.deps.snapshotErrors().length,
    }));
    this.route('GET', /^\/api\/v1\/resources$/, 'viewer', (_req, _p, url) => {
      const kind = url.searchParams.get('kind');
      const kinds = kind ? [parseKind(kind)] : (Object.keys(countByKind(store)) as Resource['kind'][]);
      return { items: kinds.flatMap((k) => store.list(k).map(view)) };
    });
    this.route('GET', /^\/api\/v1\/resources\/([^/]+)(?:\/([^/]+))?(?:\/([^/]+))?$/, 'viewer', (_req, [kindName, ns, name]) => {
      const kind = parseKind(kindName);
      if (ns && name) {
        const item = store.get(kind, ns, name);
        if (!item) throw new HttpError(404, `${kind} ${ns}/${name} not found`);
        return view(item);
      }
      return { items: store.list(kind).filter((i) => !ns || i.resource.metadata.namespace === ns).map(view) };
    });
    this.route('POST', /^\/api\/v1\/resources$/, 'admin', async (req, _p, _u, caller) => {
      const text = await readBody(req);
      const { resources, origins } = parseBody(text, req.headers['content-type'] ?? '');
      const applied = await store.apply(resources, origins);
      caller.note(`applied ${applied.map((i) => resourceKey(i.resource)).join(', ')}`);
      return { applied: applied.map((i) => ({ key: resourceKey(i.resource), revision: i.revision })) };
    });
    this.route('DELETE', /^\/api\/v1\/resources\/([^/]+)\/([^/]+)\/([^/]+)$/, 'admin', async (_req, [kindName, ns, name], _u, caller) => {
      const kind = parseKind(kindName);
      if (!(await store.delete(kind, ns, name))) throw new HttpError(404, `${kind} ${ns}/${name} not found`);
      caller.note(`deleted ${kind}/${ns}/${name}`);
      return { deleted: `${kind}/${ns}/${name}` };
    });
    this.route('GET', /^\/api\/v1\/endpoints$/, 'viewer', (_req, _p, url) => {
      const service = url.searchParams.get('service');
      const all = registry.endpoints();
      const entries = [...all].filter(([key]) => !service || key === service || key === `default/${service}`);
      if (service && entries.length === 0) throw new HttpError(404, `service ${service} not found`);
      return { services: Object.fromEntries(entries) };
    });
    this.route('GET', /^\/api\/v1\/registrations$/, 'viewer', () => ({ items: registry.list() }));
    // A workload registers only instances of its own service, at the address it calls from (access.ts).
    this.route('POST', /^\/api\/v1\/registrations$/, 'workload', async (req, _p, _u, caller) => {
      const body = JSON.parse((await readBody(req)) || '{}') as { service?: unknown; namespace?: unknown; address?: unknown };
      if (caller.principal?.kind === 'workload') {
        requireOwnService(caller.principal, typeof body.namespace === 'string' ? body.namespace : 'default', String(body.service ?? ''), 'register instances');
        requireOwnAddress(req, String(body.address ?? ''));
      }
      const reg = await registry.register(body);
      caller.note(`registered ${reg.namespace}/${reg.service} at ${reg.address} (${reg.id})`);
      return reg;
    });
    this.route('PUT', /^\/api\/v1\/registrations\/([^/]+)$/, 'workload', async (req, [id], _u, caller) => {
      // {health?, healthReason?, plugins?}: checked by the registry, which names a wrong field.
      const body = JSON.parse((await readBody(req)) || '{}') as RegistrationUpdate;
      this.ownRegistration(req, caller, id, 'renew registrations');
      return registry.renew(id, body);
    });
    this.route('DELETE', /^\/api\/v1\/registrations\/([^/]+)$/, 'workload', async (req, [id], _u, caller) => {
      this.ownRegistration(req, caller, id, 'deregister instances');
      if (!(await registry.deregister(id))) throw new HttpError(404, `no registration ${id}`);
      caller.note(`deregistered ${id}`);
      return { deregistered: id };
    });
    this.route('GET', /^\/api\/v1\/nodes$/, 'viewer', (_req, _p, url) => (url.searchParams.get('scope') === 'replica' || !this.deps.meshNodes ? { items: this.deps.nodes() } : this.deps.meshNodes()));
    this.route('GET', /^\/api\/v1\/errors$/, 'viewer', () => ({
      config: store.configErrors().map((e) => e.toJSON()),
      snapshots: this.deps.snapshotErrors(),
      warnings: this.deps.configWarnings?.() ?? [],
    }));
    installPluginsApi(this, store);
  }

  /**
   * A workload may only renew or deregister registrations of its own service, at the address it calls
   * from: a stolen join token used elsewhere cannot drain or remove the real instances (an unknown id
   * falls through to 404).
   */
  private ownRegistration(req: http.IncomingMessage, caller: Caller, id: string, what: string): void {
    const reg = this.deps.registry.list().find((r) => r.id === id);
    if (!reg || caller.principal?.kind !== 'workload') return;
    requireOwnService(caller.principal, reg.namespace, reg.service, what);
    requireOwnAddress(req, reg.address);
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    let status = 200;
    let body: unknown;
    let audited: { principal: Principal | undefined; what: string } | undefined;
    try {
      const matches = this.routes.filter((r) => r.pattern.test(url.pathname));
      if (matches.length === 0) throw new HttpError(404, `no such endpoint ${url.pathname}`);
      const route = matches.find((r) => r.method === req.method);
      if (!route) throw new HttpError(405, `${req.method} not allowed on ${url.pathname}`);
      const auth = this.deps.auth;
      const principal = auth ? authenticate(req, auth) : { kind: 'dev' as const };
      authorize(route.access, principal, `${req.method} ${url.pathname}`);
      const params = route.pattern.exec(url.pathname)!.slice(1).map((p) => (p === undefined ? p : decodeURIComponent(p)));
      if (route.raw) return route.raw(req, res, params as string[], url);
      const caller: Caller = { principal, note: (what) => (audited = { principal, what }) };
      body = await route.handler(req, params as string[], url, caller);
      if (req.method === 'POST' && url.pathname.endsWith('/registrations')) status = 201;
    } catch (err) {
      ({ status, body } = errorResponse(err));
      if (status >= 500) this.log('error', 'api request failed', { path: url.pathname, error: String(err) });
    }
    // Changes by operators (not a workload's own registrations) go to the audit log.
    if (audited && audited.principal?.kind !== 'workload' && status < 400) {
      this.deps.audit?.record({ who: audited.principal ? describe(audited.principal) : 'unknown', method: req.method ?? '', path: url.pathname, status, what: audited.what });
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

/**
 * A workload registers the address it calls from: a stolen join token cannot point its service's
 * traffic at another machine. A caller on loopback may claim a loopback address (one host).
 */
function requireOwnAddress(req: http.IncomingMessage, claimed: string): void {
  const from = (req.socket.remoteAddress ?? '').replace(/^::ffff:/, '');
  const loopback = (a: string) => a === '::1' || a.startsWith('127.');
  if (claimed === from || (loopback(from) && loopback(claimed))) return;
  throw new HttpError(403, `a workload may only register, renew and deregister the address it calls from (${from}), not ${claimed}; an admin credential can act for others`, { code: 'E_AUTH_FORBIDDEN' });
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
  if (!kind) throw new HttpError(404, unknownKindMessage(name));
  return kind;
}

function view(item: StoredResource) {
  return { ...item.resource, status: { revision: item.revision, source: item.source } };
}

function countByKind(store: Store): Record<string, number> {
  const kinds = ['Service', 'HTTPRoute', 'GRPCRoute', 'TCPRoute', 'TrafficPolicy', 'MeshTLS', 'AuthorizationPolicy', 'RequestAuthentication', 'Plugin'] as const;
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

