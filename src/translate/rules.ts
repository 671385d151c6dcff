// One Gateway API rule (with one of its matches) → one Envoy Route: the
// action (forward, redirect or answer locally), filters and request policy.
//
// A rule forwards to its backendRefs with a weight above 0 whose Service and
// port exist; one such backend is `cluster`, several `weighted_clusters`.
// A rule left with none answers locally, as the Gateway API asks: an
// HTTPRoute rule with 500, a GRPCRoute rule with 503 (UNAVAILABLE to gRPC).
// Proxyless gRPC clients (grpc-js) reject `redirect` and `direct_response`,
// so for them a local answer is a route to the parent's own cluster that
// the fault filter aborts with the gRPC status the HTTP status maps to.
import type { GRPCRouteSpec, HTTPRouteSpec, TrafficPolicySpec } from '../config/kinds';
import { resolveBackend, type ResolvedBackend } from './attach';
import { ruleRequestPolicy, type RequestPolicy } from './backend-policy';
import type { Service, ServicePort, TranslateContext } from './context';
import { keyOf } from './context';
import { escapeRegex, type NormalMatch } from './matches';
import { outboundClusterName } from './names';
import { routeActionPolicy } from './policy';
import { ENUM, EXTENSION_NAME, grpcAbort, wrap } from './proto-values';

type Obj = Record<string, unknown>;
type HttpRule = HTTPRouteSpec['rules'][number];
type GrpcRule = GRPCRouteSpec['rules'][number];
type HttpFilter = NonNullable<HttpRule['filters']>[number];
type HeaderModifier = Extract<HttpFilter, { type: 'RequestHeaderModifier' }>['requestHeaderModifier'];
type PathModifier = NonNullable<Extract<HttpFilter, { type: 'URLRewrite' }>['urlRewrite']['path']>;
type HashOn = NonNullable<NonNullable<TrafficPolicySpec['loadBalancer']>['hashOn']>;

/** The service port whose virtual host a route belongs to. */
export interface Parent {
  service: Service;
  port: ServicePort;
}

/** Where a rule sits, for backend resolution (refs default to the route's namespace). */
export interface RuleSource {
  kind: 'HTTPRoute' | 'GRPCRoute';
  namespace: string;
}

const REDIRECT_CODE: Record<number, string> = {
  301: 'MOVED_PERMANENTLY',
  302: 'FOUND',
  303: 'SEE_OTHER',
  307: 'TEMPORARY_REDIRECT',
  308: 'PERMANENT_REDIRECT',
};

/** gRPC's mapping of an HTTP status to a gRPC status (doc/http-grpc-status-mapping.md). */
export function grpcStatusForHttp(status: number): number {
  switch (status) {
    case 400:
      return 13; // INTERNAL
    case 401:
      return 16; // UNAUTHENTICATED
    case 403:
      return 7; // PERMISSION_DENIED
    case 404:
      return 12; // UNIMPLEMENTED
    case 429:
    case 502:
    case 503:
    case 504:
      return 14; // UNAVAILABLE
    default:
      return 2; // UNKNOWN
  }
}

/** Fields of an Envoy Route for a rule and one of its matches (match and name excluded). */
export function ruleRoute(
  ctx: TranslateContext,
  parent: Parent,
  source: RuleSource,
  rule: HttpRule | GrpcRule,
  match: NormalMatch,
): Obj {
  const filters: HttpFilter[] = (rule.filters ?? []) as HttpFilter[];
  const route: Obj = { ...headerModifiers(filters) };
  const redirect = filters.find((f) => f.type === 'RequestRedirect');
  if (redirect) {
    if (ctx.node.role === 'proxyless') return { ...route, ...localAnswer(ctx, parent, redirect.requestRedirect.statusCode) };
    return { ...route, redirect: redirectAction(redirect.requestRedirect, match) };
  }
  const backends = weightedBackends(ctx, parent, source, rule.backendRefs ?? []);
  if (backends.length === 0) {
    return { ...route, ...localAnswer(ctx, parent, source.kind === 'GRPCRoute' ? 503 : 500) };
  }
  const action: Obj =
    backends.length === 1
      ? { cluster: backends[0].backend.cluster }
      : { weighted_clusters: { clusters: backends.map((b) => ({ name: b.backend.cluster, weight: wrap(b.weight) })) } };
  Object.assign(action, rewrite(filters, match));
  const mirrors = mirrorPolicies(ctx, parent, source, filters);
  if (mirrors.length) action.request_mirror_policies = mirrors;
  const services = backends.map((b) => b.backend.service);
  const hashOn = hashSources(ctx, parent.service, services);
  const { policy } = ruleRequestPolicy(ctx, parent.service, services, rule.timeouts);
  Object.assign(action, routeActionPolicy(policy, rule.timeouts, hashOn));
  return { ...route, route: action };
}

/**
 * The request policy of a rule's routes (backend-policy.ts): what its retries,
 * timeouts and fault come from. A redirect or a rule with no usable backend
 * has the called Service's.
 */
export function rulePolicy(ctx: TranslateContext, parent: Parent, source: RuleSource, rule: HttpRule | GrpcRule): RequestPolicy | undefined {
  const redirect = ((rule.filters ?? []) as HttpFilter[]).some((f) => f.type === 'RequestRedirect');
  const backends = redirect ? [] : weightedBackends(ctx, parent, source, rule.backendRefs ?? []);
  return ruleRequestPolicy(ctx, parent.service, backends.map((b) => b.backend.service), rule.timeouts).policy;
}

/** The route of a service port no route attaches to: everything to its own cluster. */
export function defaultRoute(ctx: TranslateContext, parent: Parent): Obj {
  const cluster = outboundClusterName(parent.service.metadata.name, parent.service.metadata.namespace, parent.port.port);
  const hashOn = hashSources(ctx, parent.service, []);
  return { route: { cluster, ...routeActionPolicy(policyOf(ctx, parent.service), undefined, hashOn) } };
}

function policyOf(ctx: TranslateContext, service: Service): TrafficPolicySpec | undefined {
  return ctx.policies.get(keyOf(service));
}

/**
 * What requests hash on: the called service's policy, else the first backend
 * policy that says (the ring lives on the backend's cluster, and a canary
 * parent often has no policy of its own).
 */
function hashSources(ctx: TranslateContext, parent: Service, backends: Service[]): HashOn {
  for (const service of [parent, ...backends]) {
    const hashOn = policyOf(ctx, service)?.loadBalancer?.hashOn;
    if (hashOn?.length) return hashOn;
  }
  return [];
}

interface WeightedBackend {
  backend: ResolvedBackend;
  weight: number;
}

/** Usable backends: weight above 0, service and port found; the same cluster twice is merged. */
function weightedBackends(
  ctx: TranslateContext,
  parent: Parent,
  source: RuleSource,
  refs: NonNullable<HttpRule['backendRefs']>,
): WeightedBackend[] {
  const byCluster = new Map<string, WeightedBackend>();
  for (const ref of refs) {
    if (ref.weight === 0) continue;
    const backend = resolveBackend(ctx, ref, source.namespace, parent.port.port);
    if (!backend) continue;
    const seen = byCluster.get(backend.cluster);
    if (seen) seen.weight += ref.weight;
    else byCluster.set(backend.cluster, { backend, weight: ref.weight });
  }
  return [...byCluster.values()];
}

function localAnswer(ctx: TranslateContext, parent: Parent, status: number): Obj {
  if (ctx.node.role !== 'proxyless') return { direct_response: { status } };
  const cluster = outboundClusterName(parent.service.metadata.name, parent.service.metadata.namespace, parent.port.port);
  return {
    route: { cluster },
    typed_per_filter_config: { [EXTENSION_NAME.fault]: grpcAbort(grpcStatusForHttp(status)) },
  };
}

function headerModifiers(filters: HttpFilter[]): Obj {
  const out: Obj = {};
  for (const f of filters) {
    if (f.type === 'RequestHeaderModifier') addHeaderModifier(out, 'request', f.requestHeaderModifier);
    if (f.type === 'ResponseHeaderModifier') addHeaderModifier(out, 'response', f.responseHeaderModifier);
  }
  return out;
}

function addHeaderModifier(out: Obj, side: 'request' | 'response', m: HeaderModifier): void {
  const add = [
    ...(m.set ?? []).map((h) => ({ header: { key: h.name, value: h.value }, append_action: ENUM.headerAppendAction().OVERWRITE_IF_EXISTS_OR_ADD })),
    ...(m.add ?? []).map((h) => ({ header: { key: h.name, value: h.value }, append_action: ENUM.headerAppendAction().APPEND_IF_EXISTS_OR_ADD })),
  ];
  if (add.length) out[`${side}_headers_to_add`] = [...((out[`${side}_headers_to_add`] as Obj[]) ?? []), ...add];
  if (m.remove?.length) out[`${side}_headers_to_remove`] = [...((out[`${side}_headers_to_remove`] as string[]) ?? []), ...m.remove];
}

/** RE2 rewrite strings treat "\" as an escape; a literal replacement doubles it. */
function literalSubstitution(value: string): string {
  return value.replace(/\\/g, '\\\\');
}

/**
 * Path rewrite fields (prefix_rewrite / regex_rewrite, shared by RouteAction
 * and RedirectAction). ReplacePrefixMatch replaces the matched PathPrefix
 * segment-wise: with prefix "/a", "/a/b" → "<new>/b" and "/a" → "<new>";
 * a replacement of "/" needs a regex so "/a/b" becomes "/b", not "//b".
 * It has no meaning for other match types, which keep their path.
 */
function pathRewrite(path: PathModifier, match: NormalMatch): Obj {
  if (path.type === 'ReplaceFullPath') {
    return { regex_rewrite: { pattern: { regex: '^/.*$' }, substitution: literalSubstitution(path.replaceFullPath ?? '/') } };
  }
  if (match.path.type !== 'PathPrefix') return {};
  const prefix = match.path.value;
  const replacement = (path.replacePrefixMatch ?? '/').replace(/\/+$/, '');
  if (prefix === '/') return replacement === '' ? {} : { prefix_rewrite: `${replacement}/` };
  if (replacement === '') {
    return { regex_rewrite: { pattern: { regex: `^${escapeRegex(prefix)}/*` }, substitution: '/' } };
  }
  return { prefix_rewrite: replacement };
}

function rewrite(filters: HttpFilter[], match: NormalMatch): Obj {
  const f = filters.find((x) => x.type === 'URLRewrite');
  if (!f) return {};
  const out: Obj = {};
  if (f.urlRewrite.hostname) out.host_rewrite_literal = f.urlRewrite.hostname;
  if (f.urlRewrite.path) Object.assign(out, pathRewrite(f.urlRewrite.path, match));
  return out;
}

type Redirect = Extract<HttpFilter, { type: 'RequestRedirect' }>['requestRedirect'];

function redirectAction(r: Redirect, match: NormalMatch): Obj {
  const out: Obj = {};
  if (r.scheme) out.scheme_redirect = r.scheme;
  if (r.hostname) out.host_redirect = r.hostname;
  if (r.port !== undefined) out.port_redirect = r.port;
  if (r.path) {
    if (r.path.type === 'ReplaceFullPath') out.path_redirect = r.path.replaceFullPath ?? '/';
    else Object.assign(out, pathRewrite(r.path, match));
  }
  out.response_code = ENUM.redirectResponseCode()[REDIRECT_CODE[r.statusCode]];
  return out;
}

/** RequestMirror filters whose backend exists; percent → runtime_fraction (absent: every request). */
function mirrorPolicies(ctx: TranslateContext, parent: Parent, source: RuleSource, filters: HttpFilter[]): Obj[] {
  const out: Obj[] = [];
  for (const f of filters) {
    if (f.type !== 'RequestMirror') continue;
    const backend = resolveBackend(ctx, f.requestMirror.backendRef, source.namespace, parent.port.port);
    if (!backend) continue;
    const policy: Obj = { cluster: backend.cluster };
    const percent = f.requestMirror.percent;
    if (percent !== undefined) policy.runtime_fraction = { default_value: { numerator: percent, denominator: ENUM.fractionDenominator().HUNDRED } };
    out.push(policy);
  }
  return out;
}
