// `weft explain`: what the source service's sidecar does with one request,
// worked out by the data plane's own pieces so it cannot disagree with it.
// The current mesh view is translated for the source node (the connected
// sidecar's own NodeInfo when there is one), every resource goes through the
// protobuf encoding and the sidecar's decoders (what would be NACKed fails
// here too), and the request is matched by the sidecar's CompiledRouteTable.
// Then what only the live sidecars know: endpoint ejections and health checks
// (/clusters) and the last similar requests with their response flags
// (/requests; a sidecar without it simply has none to show).
import { RESOURCE_TYPES, type XdsKind } from '../xds/client/resource-types';
import { decodeMessage, encodeMessage } from '../xds/protos';
import { translate } from '../translate/translate';
import { policyWarningsOf } from '../translate/policy-warnings';
import type { MeshView, NodeInfo } from '../translate/types';
import type { NodeStatus } from '../xds/server/node-status';
import type { ClusterConfig, EndpointSet, HttpNetworkFilter, ListenerConfig, Route, RouteMatch, RouteTable } from '../proxy/config/types';
import type { DecodedCluster } from '../proxy/config/decode-cluster';
import { CompiledRouteTable } from '../proxy/router/route-table';
import { RouteMatcher } from '../proxy/router/route-matcher';
import { PathParts } from '../proxy/router/path-parts';
import { DEFAULT_ROUTE_NAME } from '../translate/names';
import { NON_IDEMPOTENT_METHODS, NON_IDEMPOTENT_SUFFIX } from '../translate/retry-methods';

/** An admin view of a node's sidecar, wherever it runs (mesh-telemetry.ts: over its relay stream). */
export type AdminViewReader = (nodeId: string, view: string, query?: string) => Promise<unknown>;

export interface ExplainQuery {
  /** The calling service: name, name.namespace or namespace/name. */
  from: string;
  method: string;
  url: string;
  /** "name: value" */
  headers: string[];
}

export class ExplainError extends Error {
  readonly status = 400;
}

type Obj = Record<string, any>;

interface Decoded {
  LDS: Map<string, ListenerConfig>;
  RDS: Map<string, RouteTable>;
  CDS: Map<string, DecodedCluster>;
  EDS: Map<string, EndpointSet>;
}

/** The node's resources as its sidecar would hold them after decoding. */
function decodedFor(view: MeshView, node: NodeInfo): Decoded {
  const set = translate(view, node);
  const out = { LDS: new Map(), RDS: new Map(), CDS: new Map(), EDS: new Map() } as Decoded;
  for (const kind of ['LDS', 'RDS', 'CDS', 'EDS'] as XdsKind[]) {
    const type = RESOURCE_TYPES[kind];
    for (const [name, r] of set.get(type.typeUrl as never) ?? []) {
      const msg = decodeMessage(type.typeUrl, encodeMessage(type.typeUrl, r.resource));
      (out[kind] as Map<string, unknown>).set(name, type.decode(msg));
    }
  }
  return out;
}

function parseSource(from: string): { name: string; namespace: string } {
  if (!from) throw new ExplainError('--from: the calling service is required');
  if (from.includes('/')) {
    const [namespace, name] = from.split('/');
    return { name, namespace };
  }
  const [name, ...ns] = from.split('.');
  return { name, namespace: ns.join('.') || 'default' };
}

export async function explainRequest(view: MeshView, nodes: NodeStatus[], q: ExplainQuery, readView?: AdminViewReader) {
  const src = parseSource(q.from);
  if (!view.services.some((s) => s.metadata.name === src.name && s.metadata.namespace === src.namespace)) {
    throw new ExplainError(`--from: no service ${src.namespace}/${src.name} in the mesh`);
  }
  let url: URL;
  try {
    url = new URL(q.url);
  } catch {
    throw new ExplainError(`url: "${q.url}" is not an absolute URL (http://<service>[:port]/path)`);
  }
  const headers = new Map<string, string>();
  for (const h of q.headers) {
    const i = h.indexOf(':');
    if (i <= 0) throw new ExplainError(`header: "${h}" is not "name: value"`);
    headers.set(h.slice(0, i).trim().toLowerCase(), h.slice(i + 1).trim());
  }
  const method = q.method.toUpperCase();
  const sidecars = nodes.filter((n) => n.node.role === 'sidecar' && n.node.service === src.name && n.node.namespace === src.namespace);
  const node: NodeInfo = sidecars[0]?.node ?? { id: 'weft-explain', role: 'sidecar', service: src.name, namespace: src.namespace };
  const d = decodedFor(view, node);

  const host = url.host.toLowerCase();
  const pathAndQuery = url.pathname + url.search;
  const request = { method, host, path: pathAndQuery, header: (n: string) => (n === ':method' ? method : n === ':authority' ? host : headers.get(n)) };

  // The sidecar's app sends its calls to the outbound listener (HTTP_PROXY); a TCP service port has its own.
  const tcp = [...d.LDS.values()].find((l) => l.direction === 'outbound' && l.port === Number(url.port) && l.defaultChain?.network.kind === 'tcp');
  const listener = tcp ?? [...d.LDS.values()].find((l) => l.name === 'outbound');
  if (!listener) throw new ExplainError(`the sidecar of ${src.name} has no outbound listener`);
  const chain = listener.defaultChain ?? listener.chains[0];
  const listenerView = { name: listener.name, address: `${listener.address}:${node.outboundPort ?? listener.port}`, filterChain: chain?.name };
  const result: Obj = {
    source: { service: `${src.name}.${src.namespace}`, node: sidecars[0]?.nodeId ?? '(no connected sidecar: translated for a new one)', sidecars: sidecars.map((n) => n.nodeId) },
    request: { method, url: q.url, headers: Object.fromEntries(headers) },
    listener: listenerView,
  };
  if (!chain) return { ...result, verdict: { status: 404, flag: 'NR', reason: 'the listener has no filter chain' } };
  if (chain.network.kind === 'tcp') {
    const net = chain.network;
    result.clusters = net.clusters.map((c) => clusterView(d, c.name, c.weight, net.totalWeight));
    result.verdict = { reason: 'a TCP listener: every connection goes to its clusters' };
    return await withLive(result, sidecars, host, url.pathname, readView);
  }
  const http = chain.network as HttpNetworkFilter;
  const table = http.routeTable ?? d.RDS.get(http.routeTableName ?? '');
  result.listener.routeTable = http.routeTableName ?? '(inline)';
  result.listener.httpFilters = http.httpFilters.map((f) => ({ name: f.name, type: f.typeUrl.split('.').pop(), config: plain(f.config) }));
  result.listener.timeouts = { streamIdleMs: http.streamIdleTimeoutMs, idleMs: http.idleTimeoutMs };
  if (!table) return { ...result, verdict: { status: 404, flag: 'NR', reason: `route table ${http.routeTableName} missing` } };

  const compiled = new CompiledRouteTable(table);
  const vh = compiled.virtualHost(host);
  if (!vh) {
    result.verdict = {
      status: 404,
      flag: 'NR',
      reason: `no virtual host for authority "${host}": ${src.name} may call ${table.virtualHosts.map((v) => v.domains[0]).join(', ') || 'nothing'} (Service.dependsOn decides)`,
    };
    return await withLive(result, sidecars, host, url.pathname, readView);
  }
  result.virtualHost = { name: vh.name, domains: vh.domains };
  const match = compiled.match(request);
  // Why the earlier routes did not match, route by route (same matcher as the sidecar).
  const parts = new PathParts();
  const tried: Obj[] = [];
  for (const r of vh.routes) {
    if (r === match?.route) break;
    parts.reset(pathAndQuery);
    tried.push({ route: r.name, ...routeOrigin(view, vh.name, r.name), match: describeMatch(r.match), matched: new RouteMatcher(r.match).matches(request, parts) });
  }
  result.notMatched = tried;
  if (!match) {
    result.verdict = { status: 404, flag: 'NR', reason: `no route of ${vh.name} matches ${method} ${pathAndQuery}` };
    return await withLive(result, sidecars, host, url.pathname, readView);
  }
  const route = match.route;
  result.route = { name: route.name, ...routeOrigin(view, vh.name, route.name), matchedBecause: describeMatch(route.match), ...routePolicies(route) };
  // Backend policies this route's rule does not apply (a canary v2's retries on a 90/10 split).
  const warnings = policyWarningsOf(view).filter((w) => w.route && route.name.startsWith(`${w.route.kind}/${w.route.namespace}/${w.route.name}/${w.route.rule}/`));
  if (warnings.length) result.route.warnings = warnings.map((w) => w.message);
  const action = route.action;
  if (action.kind === 'direct') result.verdict = { status: action.status, reason: 'a direct response from the sidecar' };
  else if (action.kind === 'redirect') result.verdict = { status: action.status, reason: `redirect to ${action.host ?? host}${action.path ?? action.prefixRewrite ?? ''}` };
  else {
    result.clusters = action.clusters.map((c) => clusterView(d, c.name, c.weight, action.totalWeight));
    result.verdict = { reason: `sent to ${action.clusters.map((c) => `${c.name} (${pct(c.weight, action.totalWeight)})`).join(', ')}` };
    // What the destination's own sidecar applies on arrival (rate limits, its timeouts).
    result.destinationPolicies = destinationPolicies(view, action.clusters.map((c) => c.name));
  }
  return await withLive(result, sidecars, host, url.pathname, readView);
}

function pct(w: number, total: number): string {
  return `${Math.round((1000 * w) / Math.max(total, 1)) / 10}%`;
}

/**
 * A route entry as the user wrote it. Entry names say where they come from
 * (translate/names.ts: <kind>/<namespace>/<name>/<rule>/<match>, or `default`),
 * and retry-methods.ts adds a copy for the non-idempotent methods.
 */
export function routeOrigin(view: MeshView, virtualHost: string, name: string): { title: string; origin: Obj } {
  const copy = name.endsWith(NON_IDEMPOTENT_SUFFIX);
  const base = copy ? name.slice(0, -NON_IDEMPOTENT_SUFFIX.length) : name;
  const m = /^(HTTPRoute|GRPCRoute)\/([^/]+)\/([^/]+)\/(\d+)\/(\d+)$/.exec(base);
  let title = name;
  let origin: Obj = {};
  if (m) {
    const [, kind, namespace, routeName] = m;
    const [rule, match] = [Number(m[4]), Number(m[5])];
    const resource = (kind === 'HTTPRoute' ? view.httpRoutes : view.grpcRoutes).find((r) => r.metadata.name === routeName && r.metadata.namespace === namespace);
    // The match index only where the rule has several (its field path in the YAML).
    const several = (resource?.spec.rules[rule]?.matches?.length ?? 0) > 1;
    const field = `spec.rules[${rule}]${several ? `.matches[${match}]` : ''}`;
    title = `${kind} ${namespace}/${routeName} ${field}`;
    origin = { kind, namespace, name: routeName, rule, match, field };
  } else if (base === DEFAULT_ROUTE_NAME) {
    title = `the default route of ${virtualHost} (no route attaches to it)`;
    origin = { default: true };
  }
  if (copy) {
    title += `, for ${NON_IDEMPOTENT_METHODS.join(', ')}`;
    origin.nonIdempotentMethods = [...NON_IDEMPOTENT_METHODS];
  }
  return { title, origin };
}

/** A full-match regex as written: the sidecar anchors it (^(?:…)$, full-match.ts, re2.ts). */
function written(re: RegExp | undefined): string {
  const s = re?.source ?? '';
  const inner = /^\^\(\?:([\s\S]*)\)\$$/.exec(s)?.[1] ?? s;
  return `/${inner}/`;
}

function describeMatch(m: RouteMatch): string[] {
  const out: string[] = [];
  const p = m.path;
  out.push(p.kind === 'regex' ? `path matches ${written(p.regex)}` : `path ${p.kind === 'exact' ? 'is' : 'starts with'} ${p.value}${p.kind === 'pathSeparatedPrefix' ? ' (whole segments)' : ''}`);
  for (const h of m.headers) {
    if (h.name === ':method' && !h.invert) {
      // How the translator says a method (an HTTPRoute's `method`, the non-idempotent copies).
      const methods = h.kind === 'exact' ? [h.value] : h.kind === 'regex' ? /^\^\(([A-Z|]+)\)\$$/.exec(written(h.regex).slice(1, -1))?.[1].split('|') : undefined;
      if (methods) {
        out.push(`method is ${methods.length > 1 ? `${methods.slice(0, -1).join(', ')} or ${methods[methods.length - 1]}` : methods[0]}`);
        continue;
      }
    }
    const what = h.kind === 'present' ? 'is present' : h.kind === 'regex' ? `matches ${written(h.regex)}` : `${h.kind} "${h.value}"`;
    out.push(`header ${h.name} ${h.invert ? 'NOT ' : ''}${what}`);
  }
  for (const qm of m.queryParams) out.push(`query ${qm.name} ${qm.kind === 'present' ? 'is present' : qm.kind === 'regex' ? `matches ${written(qm.regex)}` : `is "${qm.value}"`}`);
  return out;
}

function routePolicies(route: Route): Obj {
  const a = route.action;
  const out: Obj = {};
  if (a.kind === 'route') {
    out.timeoutMs = a.timeoutMs;
    if (a.idleTimeoutMs) out.idleTimeoutMs = a.idleTimeoutMs;
    if (a.retry) {
      out.retry = { retryOn: [...a.retry.retryOn], numRetries: a.retry.numRetries, perTryTimeoutMs: a.retry.perTryTimeoutMs, backoff: a.retry.backoff, retriableStatusCodes: a.retry.retriableStatusCodes };
    }
    if (a.mirrors.length) out.mirrors = a.mirrors;
    if (a.rateLimits?.length) out.rateLimits = plain(a.rateLimits);
    if (a.prefixRewrite) out.prefixRewrite = a.prefixRewrite;
    if (a.hostRewrite) out.hostRewrite = a.hostRewrite;
  }
  if (route.perFilterConfig) out.filters = plain(route.perFilterConfig);
  return out;
}

function clusterView(d: Decoded, name: string, weight: number, total: number): Obj {
  const c: ClusterConfig | undefined = d.CDS.get(name)?.cluster;
  if (!c) return { name, weight: pct(weight, total), missing: 'no such cluster: requests fail (NC)' };
  const eps = d.EDS.get(c.edsName) ?? d.CDS.get(name)?.endpoints;
  return {
    name,
    weight: pct(weight, total),
    lbPolicy: c.lbPolicy,
    protocol: c.protocol,
    connectTimeoutMs: c.connectTimeoutMs,
    circuitBreakers: plain(c.limits),
    ...(c.outlierDetection ? { outlierDetection: plain(c.outlierDetection) } : {}),
    ...(c.healthCheck ? { healthCheck: plain(c.healthCheck) } : {}),
    endpoints: (eps?.localities ?? []).flatMap((l) => l.endpoints.map((e) => ({ address: e.key, zone: l.zone, priority: l.priority, weight: e.weight, health: e.health }))),
  };
}

/** Policies the destination's sidecar enforces on arrival: its inbound listener's HTTP filters and route. */
function destinationPolicies(view: MeshView, clusters: string[]): Obj[] {
  const out: Obj[] = [];
  for (const cluster of clusters) {
    const m = /^outbound\|(\d+)\|[^|]*\|([^.]+)\.(.+)$/.exec(cluster);
    if (!m) continue;
    const [, port, name, namespace] = m;
    if (!view.services.some((s) => s.metadata.name === name && s.metadata.namespace === namespace)) continue;
    try {
      const d = decodedFor(view, { id: 'weft-explain-destination', role: 'sidecar', service: name, namespace });
      const inbound = d.LDS.get('inbound');
      const chain = inbound?.chains.find((c) => c.destinationPort === Number(port)) ?? inbound?.defaultChain;
      if (!chain || chain.network.kind !== 'http') continue;
      const http = chain.network;
      const route = http.routeTable?.virtualHosts[0]?.routes[0];
      out.push({
        service: `${name}.${namespace}`,
        httpFilters: http.httpFilters.map((f) => ({ name: f.name, type: f.typeUrl.split('.').pop(), config: plain(f.config) })),
        ...(route ? { route: { name: route.name, ...routePolicies(route) } } : {}),
      });
    } catch {
      // the destination's own translation is its own problem; explain the source side
    }
  }
  return out;
}

/** Endpoint state in the source sidecars (ejections, health checks) and their last similar requests. */
async function withLive(result: Obj, sidecars: NodeStatus[], host: string, path: string, readView: AdminViewReader | undefined): Promise<Obj> {
  const bare = host.replace(/:\d+$/, '');
  const live: { clusters: Obj[]; requests: Obj[] }[] = await Promise.all(
    sidecars.map(async (n) => {
      if (!readView) return { clusters: [] as Obj[], requests: [] as Obj[] };
      const [clusters, requests] = await Promise.all([
        readView(n.nodeId, '/clusters').then((b) => b as Obj[], () => [] as Obj[]),
        readView(n.nodeId, '/requests', 'limit=500').then(
          (body) => (Array.isArray(body) ? body : ((body as Obj).items ?? [])) as Obj[],
          () => [] as Obj[],
        ),
      ]);
      return { clusters: clusters.map((c): Obj => ({ ...c, node: n.nodeId })), requests: requests.map((r): Obj => ({ ...r, node: n.nodeId })) };
    }),
  );
  for (const c of (result.clusters ?? []) as Obj[]) {
    for (const e of c.endpoints ?? []) {
      const seen = live.flatMap((l) => l.clusters.filter((x) => x.name === c.name).flatMap((x) => (x.endpoints as Obj[]).filter((y) => y.address === e.address).map((y): Obj => ({ node: x.node, ...y }))));
      const states = seen.map((s) => ({
        node: s.node,
        ...(s.outlier ? { outlier: s.outlier } : {}),
        ...(s.healthCheck ? { healthCheck: s.healthCheck } : {}),
        activeRequests: s.activeRequests,
      }));
      if (states.length) e.live = states;
    }
  }
  const similar = live
    .flatMap((l) => l.requests)
    .filter((r) => r.direction !== 'inbound' && String(r.authority ?? '').replace(/:\d+$/, '').toLowerCase() === bare && String(r.path ?? '').split('?')[0] === path)
    .sort((a, b) => Number(a.time) - Number(b.time))
    .slice(-10);
  result.recentRequests = similar.map((r) => ({ time: r.time, node: r.node, method: r.method, path: r.path, route: r.route, cluster: r.cluster, endpoint: r.upstream ?? r.endpoint, status: r.status, flags: r.flags, durationMs: r.durationMs }));
  return result;
}

/** Decoded config as JSON: Sets as arrays, Maps as objects, RegExps as their source. */
function plain(v: unknown): unknown {
  return JSON.parse(
    JSON.stringify(v ?? null, (_k, x) => (x instanceof Set ? [...x] : x instanceof Map ? Object.fromEntries(x) : x instanceof RegExp ? `/${x.source}/` : typeof x === 'bigint' ? String(x) : x)),
  );
}
