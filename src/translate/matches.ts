// Gateway API matches → Envoy RouteMatch, and the Gateway API precedence that
// orders the routes of one virtual host.
//
// HTTPRoute and GRPCRoute matches are first brought to one shape (a path
// match plus header, query and method conditions); GRPCRoute method matches
// become paths (/<service>/<method>), so both kinds order together.
import type { GRPCRouteSpec, HTTPRouteSpec } from '../config/kinds';
import type { NodeRole } from './types';

type Obj = Record<string, unknown>;
type HttpMatch = NonNullable<HTTPRouteSpec['rules'][number]['matches']>[number];
type GrpcMatch = NonNullable<GRPCRouteSpec['rules'][number]['matches']>[number];

export interface PathMatch {
  type: 'Exact' | 'PathPrefix' | 'RegularExpression';
  value: string;
}

export interface ValueMatch {
  type: 'Exact' | 'RegularExpression';
  name: string;
  value: string;
}

/** One match of a rule in the shape both route kinds share. */
export interface NormalMatch {
  path: PathMatch;
  headers: ValueMatch[];
  queryParams: ValueMatch[];
  method?: string;
}

const MATCH_ALL: PathMatch = { type: 'PathPrefix', value: '/' };

export function fromHttpMatch(m: HttpMatch): NormalMatch {
  const out: NormalMatch = {
    path: m.path ? normalPath(m.path) : MATCH_ALL,
    headers: (m.headers ?? []).map(headerMatch),
    queryParams: (m.queryParams ?? []).map((q) => ({ type: q.type, name: q.name, value: q.value })),
  };
  if (m.method) out.method = m.method;
  return out;
}

export function fromGrpcMatch(m: GrpcMatch): NormalMatch {
  return { path: grpcMethodPath(m.method), headers: (m.headers ?? []).map(headerMatch), queryParams: [] };
}

/** Gateway API prefixes ignore a trailing slash ("/a/" is "/a"); "/" stays the root. */
function normalPath(p: PathMatch): PathMatch {
  if (p.type !== 'PathPrefix') return { type: p.type, value: p.value };
  return { type: 'PathPrefix', value: p.value.replace(/\/+$/, '') || '/' };
}

/** Header names are case-insensitive; Envoy and gRPC metadata compare them lowercased. */
function headerMatch(h: ValueMatch): ValueMatch {
  return { type: h.type, name: h.name.toLowerCase(), value: h.value };
}

/**
 * A GRPCRoute method match as a path match. Service and method together are
 * an exact path; a service alone a prefix; a method alone (or any regex) a
 * regex over both segments.
 */
function grpcMethodPath(method: GrpcMatch['method']): PathMatch {
  if (!method || (!method.service && !method.method)) return MATCH_ALL;
  if (method.type === 'Exact') {
    if (method.service && method.method) return { type: 'Exact', value: `/${method.service}/${method.method}` };
    if (method.service) return { type: 'PathPrefix', value: `/${method.service}/` };
    return { type: 'RegularExpression', value: `/[^/]+/${escapeRegex(method.method!)}` };
  }
  return { type: 'RegularExpression', value: `/${method.service ?? '[^/]+'}/${method.method ?? '[^/]+'}` };
}

/** Escapes RE2 metacharacters so a literal can sit inside a regex. */
export function escapeRegex(literal: string): string {
  return literal.replace(/[\\^$.|?*+()[\]{}]/g, '\\$&');
}

/**
 * The Envoy path specifier of a path match. Gateway API prefixes match whole
 * segments ("/a" matches "/a" and "/a/b", not "/ab"): a sidecar gets
 * `path_separated_prefix`; grpc-js knows only prefix, path and safe_regex,
 * so a proxyless client gets the same rule as a regex.
 */
function pathSpecifier(path: PathMatch, role: NodeRole): Obj {
  switch (path.type) {
    case 'Exact':
      return { path: path.value };
    case 'RegularExpression':
      return { safe_regex: { regex: path.value } };
    case 'PathPrefix':
      // Ending in "/" (the root, a GRPCRoute "/<service>/"), a plain prefix is already segment-exact.
      if (path.value.endsWith('/')) return { prefix: path.value };
      if (role === 'proxyless') return { safe_regex: { regex: `${escapeRegex(path.value)}(/.*)?` } };
      return { path_separated_prefix: path.value };
  }
}

function stringMatcher(m: { type: 'Exact' | 'RegularExpression'; value: string }): Obj {
  return m.type === 'Exact' ? { exact: m.value } : { safe_regex: { regex: m.value } };
}

/**
 * The Envoy RouteMatch of a normal match, or undefined when the match can
 * never apply to this node: a proxyless gRPC call is always a POST and has
 * no `:method` metadata to match, so POST conditions are dropped and other
 * methods never match.
 */
export function routeMatch(m: NormalMatch, role: NodeRole): Obj | undefined {
  const headers: Obj[] = m.headers.map((h) => ({ name: h.name, string_match: stringMatcher(h) }));
  if (m.method) {
    if (role === 'proxyless') {
      if (m.method !== 'POST') return undefined;
    } else {
      headers.push({ name: ':method', string_match: { exact: m.method } });
    }
  }
  const out: Obj = pathSpecifier(m.path, role);
  if (headers.length) out.headers = headers;
  if (m.queryParams.length) {
    out.query_parameters = m.queryParams.map((q) => ({ name: q.name, string_match: stringMatcher(q) }));
  }
  return out;
}

const PATH_RANK: Record<PathMatch['type'], number> = { Exact: 0, RegularExpression: 1, PathPrefix: 2 };

/**
 * Gateway API precedence, most specific first: exact path, then regex, then
 * the longest prefix; then a method condition; then the most header
 * matches; then the most query matches. Ties keep the order of `tieBreak`
 * (route namespace/name, rule index, match index), which the caller supplies.
 */
export function comparePrecedence(a: NormalMatch, b: NormalMatch): number {
  return (
    PATH_RANK[a.path.type] - PATH_RANK[b.path.type] ||
    b.path.value.length - a.path.value.length ||
    Number(b.method !== undefined) - Number(a.method !== undefined) ||
    b.headers.length - a.headers.length ||
    b.queryParams.length - a.queryParams.length
  );
}
