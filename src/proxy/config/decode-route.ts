// envoy.config.route.v3.RouteConfiguration → RouteTable.
//
// Supported subset (anything else that changes behaviour is a NACK naming it):
//   RouteConfiguration  name, virtual_hosts                         (metadata accepted)
//   VirtualHost         name, domains (lower-cased; unique across the table;
//                       "*", "*.suffix", "prefix*" or exact), routes (metadata accepted)
//   Route               name, match, one of route | redirect | direct_response,
//                       request/response_headers_to_add, request/response_headers_to_remove,
//                       typed_per_filter_config (the per-route types of filters/catalog.ts)
//                       (metadata, stat_prefix accepted)
//   RouteMatch          prefix | path | path_separated_prefix | safe_regex (whole path),
//                       case_sensitive, headers, query_parameters
//   HeaderMatcher       name (lower-cased), string_match {exact, prefix, suffix, contains,
//                       safe_regex}, present_match, the deprecated exact_match /
//                       safe_regex_match / prefix_match / suffix_match / contains_match,
//                       invert_match; no specifier = present
//   QueryParameterMatcher  name, string_match {exact, safe_regex}, present_match; none = present
//   RouteAction         cluster | weighted_clusters {clusters {name, weight}, total_weight},
//                       timeout (absent: Envoy's 15 s; 0: none), max_stream_duration
//                       .max_stream_duration (folded into the timeout: the smaller non-zero wins,
//                       as weft's route timeout bounds the whole exchange), prefix_rewrite,
//                       regex_rewrite, host_rewrite_literal, hash_policy {header.header_name,
//                       cookie {name, ttl}, connection_properties.source_ip; terminal},
//                       retry_policy {retry_on (the tokens in RETRY_ON), num_retries (default 1),
//                       per_try_timeout, retry_back_off {base_interval, max_interval},
//                       retriable_status_codes}, idle_timeout (the stream idle timeout),
//                       request_mirror_policies {cluster,
//                       runtime_fraction.default_value (runtime_key accepted: weft has no runtime)},
//                       rate_limits (see filters/rate-limit-actions.ts)
//   RedirectAction      https_redirect, scheme_redirect, host_redirect, port_redirect,
//                       path_redirect, prefix_rewrite, regex_rewrite, response_code
//   DirectResponseAction  status (200-599), body inline_string | inline_bytes
//   HeaderValueOption   header {key, value}, append_action APPEND_IF_EXISTS_OR_ADD |
//                       OVERWRITE_IF_EXISTS_OR_ADD, or the deprecated append; a value may use
//                       "%%" for "%" but no other %FORMATTER%; pseudo-headers and host are refused
// Not supported (NACK): virtual-host retry_policy, hedge_policy, cors,
// virtual-host rate_limits, virtual-host typed_per_filter_config, virtual-host and table-level header
// mutations, ignore_case, range_match, grpc/runtime_fraction matchers, …
//
// Regexes are RE2 (see re2.ts); matchers match the whole value, regex_rewrite
// replaces every match and its substitution is converted to replace() syntax.
import { headerMatcher, HTTP_TOKEN, matcherHeaderName, nonEmpty, queryMatcher } from './decode-matchers';
import { FieldPath, onlyFields } from './nack';
import { bool, durationMs, regexMatcher, u32, unpackAny, type Obj } from './read-proto';
import { perRouteFilterTypeFor } from '../filters/catalog';
import { decodeRouteRateLimits } from '../filters/rate-limit-actions';
import { RETRY_ON as RETRY_ON_TOKENS } from '../../config/retry-on';
import { re2Substitution, Re2SyntaxError } from '../../config/re2';
import type {
  DirectResponseAction,
  HashPolicy,
  HeaderToAdd,
  Route,
  RouteAction,
  RouteMatch,
  RouteTable,
  VirtualHost,
  RedirectAction,
  RetryPolicy,
  WeightedCluster,
} from './types';

const T = 'envoy.config.route.v3.';

/** Envoy's route timeout when a route says none. */
export const DEFAULT_ROUTE_TIMEOUT_MS = 15_000;

/** Decodes a RouteConfiguration resource (RDS). */
export function decodeRouteConfiguration(msg: Obj): RouteTable {
  return decodeRouteTable(new FieldPath('RouteConfiguration', msg.name ?? ''), msg);
}

/** A RouteConfiguration at `at`: an RDS resource, or inline in a listener's HttpConnectionManager. */
export function decodeRouteTable(at: FieldPath, msg: Obj): RouteTable {
  onlyFields(at, `${T}RouteConfiguration`, msg, ['name', 'virtual_hosts', 'metadata']);
  const seenDomains = new Map<string, number>();
  const virtualHosts = (msg.virtual_hosts ?? []).map((vh: Obj, i: number) => {
    const host = virtualHost(at.field('virtual_hosts').index(i), vh);
    host.domains.forEach((d, j) => {
      const first = seenDomains.get(d);
      if (first !== undefined) {
        at.field('virtual_hosts').index(i).field('domains').index(j).invalid(`"${d}" is already a domain of virtual_hosts[${first}]`);
      }
      seenDomains.set(d, i);
    });
    return host;
  });
  return { name: msg.name ?? '', virtualHosts };
}

function virtualHost(at: FieldPath, vh: Obj): VirtualHost {
  onlyFields(at, `${T}VirtualHost`, vh, ['name', 'domains', 'routes', 'metadata']);
  if (!vh.name) at.field('name').invalid('is required');
  const domains: string[] = (vh.domains ?? []).map((d: string, i: number) => {
    if (!d) at.field('domains').index(i).invalid('must not be empty');
    return d.toLowerCase();
  });
  if (domains.length === 0) at.field('domains').invalid('needs at least one domain');
  const local = new Set<string>();
  domains.forEach((d, i) => {
    if (local.has(d)) at.field('domains').index(i).invalid(`"${d}" is listed twice`);
    local.add(d);
  });
  const routes = (vh.routes ?? []).map((r: Obj, i: number) => route(at.field('routes').index(i), r));
  return { name: vh.name, domains, routes };
}

function route(at: FieldPath, r: Obj): Route {
  onlyFields(at, `${T}Route`, r, [
    'name',
    'match',
    'route',
    'redirect',
    'direct_response',
    'metadata',
    'stat_prefix',
    'request_headers_to_add',
    'request_headers_to_remove',
    'response_headers_to_add',
    'response_headers_to_remove',
    'typed_per_filter_config',
  ]);
  if (!r.match) at.field('match').invalid('is required');
  const match = routeMatch(at.field('match'), r.match);
  let action: Route['action'];
  switch (r.action) {
    case 'route':
      action = routeAction(at.field('route'), r.route);
      break;
    case 'redirect':
      action = redirectAction(at.field('redirect'), r.redirect);
      break;
    case 'direct_response':
      action = directResponse(at.field('direct_response'), r.direct_response);
      break;
    default:
      at.invalid('needs an action: route, redirect or direct_response');
  }
  return {
    name: r.name ?? '',
    match,
    action,
    requestHeadersToAdd: headersToAdd(at.field('request_headers_to_add'), r.request_headers_to_add),
    requestHeadersToRemove: headersToRemove(at.field('request_headers_to_remove'), r.request_headers_to_remove),
    responseHeadersToAdd: headersToAdd(at.field('response_headers_to_add'), r.response_headers_to_add),
    responseHeadersToRemove: headersToRemove(at.field('response_headers_to_remove'), r.response_headers_to_remove),
    ...perFilterConfig(at.field('typed_per_filter_config'), r.typed_per_filter_config),
  };
}

/** typed_per_filter_config: each entry decoded by the filter type its Any names (filters/catalog.ts). */
function perFilterConfig(at: FieldPath, configs: Record<string, Obj> | undefined): Pick<Route, 'perFilterConfig'> {
  if (!configs || Object.keys(configs).length === 0) return {};
  const out: Record<string, unknown> = {};
  for (const [name, any] of Object.entries(configs)) {
    const here = new FieldPath(at.kind, at.resourceName, `${at.path}["${name}"]`);
    const type = perRouteFilterTypeFor(any?.type_url ?? '') ?? here.note(any?.type_url || 'no type_url').unsupported();
    const { msg } = unpackAny(here, any, [type.perRoute!.typeUrl]);
    out[name] = type.perRoute!.decode(here, msg);
  }
  return { perFilterConfig: out };
}

// ---- match ----

function routeMatch(at: FieldPath, m: Obj): RouteMatch {
  onlyFields(at, `${T}RouteMatch`, m, [
    'prefix',
    'path',
    'safe_regex',
    'path_separated_prefix',
    'case_sensitive',
    'headers',
    'query_parameters',
  ]);
  let path: RouteMatch['path'];
  switch (m.path_specifier) {
    case 'prefix':
      path = { kind: 'prefix', value: m.prefix };
      break;
    case 'path':
      path = { kind: 'exact', value: m.path };
      break;
    case 'path_separated_prefix':
      // Envoy's rule: no query or fragment, no trailing slash.
      if (!/^[^?#]+[^?#/]$/.test(m.path_separated_prefix)) {
        at.field('path_separated_prefix').invalid(`"${m.path_separated_prefix}" must not be empty, end in "/" or contain "?" or "#"`);
      }
      path = { kind: 'pathSeparatedPrefix', value: m.path_separated_prefix };
      break;
    case 'safe_regex':
      path = { kind: 'regex', regex: regexMatcher(at.field('safe_regex'), m.safe_regex, 'full') };
      break;
    default:
      at.invalid('needs a path specifier: prefix, path, path_separated_prefix or safe_regex');
  }
  return {
    path,
    caseSensitive: bool(m.case_sensitive, true),
    headers: (m.headers ?? []).map((h: Obj, i: number) => headerMatcher(at.field('headers').index(i), h)),
    queryParams: (m.query_parameters ?? []).map((q: Obj, i: number) => queryMatcher(at.field('query_parameters').index(i), q)),
  };
}

// ---- actions ----

/** A RequestMirrorPolicy: the cluster and the share of requests (runtime_fraction's default; weft has no runtime). */
function mirrorPolicy(at: FieldPath, m: Obj): RouteAction['mirrors'][number] {
  onlyFields(at, `${T}RouteAction.RequestMirrorPolicy`, m, ['cluster', 'runtime_fraction', 'disable_shadow_host_suffix_append']);
  if (m.disable_shadow_host_suffix_append) at.field('disable_shadow_host_suffix_append').unsupported('true is not supported by weft proxy yet: shadows always get "-shadow"');
  const cluster = nonEmpty(at.field('cluster'), m.cluster);
  let percent = 100;
  if (m.runtime_fraction) {
    const here = at.field('runtime_fraction');
    onlyFields(here, 'envoy.config.core.v3.RuntimeFractionalPercent', m.runtime_fraction, ['default_value', 'runtime_key']);
    percent = fractionalPercent(here.field('default_value'), m.runtime_fraction.default_value);
  }
  return { cluster, percent };
}

const DENOMINATORS: Record<string, number> = { HUNDRED: 100, TEN_THOUSAND: 10_000, MILLION: 1_000_000 };

/** A FractionalPercent as a percentage (0-100); absent: 0, as in Envoy. */
export function fractionalPercent(at: FieldPath, f: Obj | undefined): number {
  if (!f) return 0;
  onlyFields(at, 'envoy.type.v3.FractionalPercent', f, ['numerator', 'denominator']);
  const denominator = DENOMINATORS[f.denominator ?? 'HUNDRED'];
  if (!denominator) at.field('denominator').invalid(`${f.denominator} is not a denominator`);
  return Math.min(100, ((f.numerator ?? 0) / denominator) * 100);
}

function routeAction(at: FieldPath, a: Obj): RouteAction {
  onlyFields(at, `${T}RouteAction`, a, [
    'cluster',
    'weighted_clusters',
    'timeout',
    'max_stream_duration',
    'prefix_rewrite',
    'regex_rewrite',
    'host_rewrite_literal',
    'hash_policy',
    'retry_policy',
    'request_mirror_policies',
    'idle_timeout',
    'rate_limits',
  ]);
  let clusters: WeightedCluster[];
  let totalWeight: number;
  if (a.cluster_specifier === 'cluster') {
    clusters = [{ name: nonEmpty(at.field('cluster'), a.cluster), weight: 1 }];
    totalWeight = 1;
  } else if (a.cluster_specifier === 'weighted_clusters') {
    ({ clusters, totalWeight } = weightedClusters(at.field('weighted_clusters'), a.weighted_clusters));
  } else {
    return at.invalid('needs cluster or weighted_clusters');
  }
  const action: RouteAction = {
    kind: 'route',
    clusters,
    totalWeight,
    timeoutMs: routeTimeout(at, a),
    hashPolicies: (a.hash_policy ?? []).map((h: Obj, i: number) => hashPolicy(at.field('hash_policy').index(i), h)),
    mirrors: (a.request_mirror_policies ?? []).map((m: Obj, i: number) => mirrorPolicy(at.field('request_mirror_policies').index(i), m)),
  };
  if (a.retry_policy) action.retry = retryPolicy(at.field('retry_policy'), a.retry_policy);
  if (a.idle_timeout) action.idleTimeoutMs = durationMs(at.field('idle_timeout'), a.idle_timeout, 0);
  if (a.rate_limits?.length) action.rateLimits = decodeRouteRateLimits(at.field('rate_limits'), a.rate_limits);
  if (a.prefix_rewrite !== undefined && a.regex_rewrite) at.field('regex_rewrite').invalid('and prefix_rewrite are exclusive');
  if (a.prefix_rewrite) action.prefixRewrite = a.prefix_rewrite;
  if (a.regex_rewrite) action.regexRewrite = regexRewrite(at.field('regex_rewrite'), a.regex_rewrite);
  if (a.host_rewrite_specifier === 'host_rewrite_literal') action.hostRewrite = nonEmpty(at.field('host_rewrite_literal'), a.host_rewrite_literal);
  return action;
}

function routeTimeout(at: FieldPath, a: Obj): number {
  let timeout = durationMs(at.field('timeout'), a.timeout, DEFAULT_ROUTE_TIMEOUT_MS);
  if (a.max_stream_duration) {
    const here = at.field('max_stream_duration');
    onlyFields(here, `${T}RouteAction.MaxStreamDuration`, a.max_stream_duration, ['max_stream_duration']);
    const cap = durationMs(here.field('max_stream_duration'), a.max_stream_duration.max_stream_duration, 0);
    if (cap > 0 && (timeout === 0 || cap < timeout)) timeout = cap;
  }
  return timeout;
}

/** Weights summed; a weight may be 0, but not all of them. */
function weightedClusters(at: FieldPath, w: Obj): { clusters: WeightedCluster[]; totalWeight: number } {
  onlyFields(at, `${T}WeightedCluster`, w, ['clusters', 'total_weight']);
  const list: Obj[] = w.clusters ?? [];
  if (list.length === 0) at.field('clusters').invalid('needs at least one cluster');
  const clusters = list.map((c, i) => {
    const here = at.field('clusters').index(i);
    onlyFields(here, `${T}WeightedCluster.ClusterWeight`, c, ['name', 'weight']);
    return { name: nonEmpty(here.field('name'), c.name), weight: u32(c.weight, 0) };
  });
  const totalWeight = clusters.reduce((sum, c) => sum + c.weight, 0);
  if (totalWeight === 0) at.field('clusters').invalid('weights sum to 0');
  if (w.total_weight && u32(w.total_weight, 0) !== totalWeight) {
    at.field('total_weight').invalid(`is ${u32(w.total_weight, 0)} but the weights sum to ${totalWeight}`);
  }
  return { clusters, totalWeight };
}

function regexRewrite(at: FieldPath, r: Obj): { regex: RegExp; substitution: string } {
  onlyFields(at, 'envoy.type.matcher.v3.RegexMatchAndSubstitute', r, ['pattern', 'substitution']);
  const regex = regexMatcher(at.field('pattern'), r.pattern, 'global');
  try {
    return { regex, substitution: re2Substitution(r.substitution ?? '', regex) };
  } catch (err) {
    if (err instanceof Re2SyntaxError) at.field('substitution').invalid(`"${r.substitution ?? ''}" ${err.message}`);
    throw err;
  }
}

function hashPolicy(at: FieldPath, h: Obj): HashPolicy {
  onlyFields(at, `${T}RouteAction.HashPolicy`, h, ['header', 'cookie', 'connection_properties', 'terminal']);
  const terminal = h.terminal === true;
  switch (h.policy_specifier) {
    case 'header': {
      const here = at.field('header');
      onlyFields(here, `${T}RouteAction.HashPolicy.Header`, h.header, ['header_name']);
      return { kind: 'header', name: matcherHeaderName(here.field('header_name'), h.header.header_name), terminal };
    }
    case 'cookie': {
      const here = at.field('cookie');
      onlyFields(here, `${T}RouteAction.HashPolicy.Cookie`, h.cookie, ['name', 'ttl']);
      const out: HashPolicy = { kind: 'cookie', name: nonEmpty(here.field('name'), h.cookie.name), terminal };
      // A ttl (even 0) makes Envoy set the cookie when the request has none.
      if (h.cookie.ttl) out.ttlMs = durationMs(here.field('ttl'), h.cookie.ttl, 0);
      return out;
    }
    case 'connection_properties': {
      const here = at.field('connection_properties');
      onlyFields(here, `${T}RouteAction.HashPolicy.ConnectionProperties`, h.connection_properties, ['source_ip']);
      if (h.connection_properties.source_ip !== true) here.field('source_ip').invalid('must be true');
      return { kind: 'sourceIp', terminal };
    }
    default:
      return at.invalid('needs header, cookie or connection_properties');
  }
}

/** The retry_on conditions the sidecar enforces (HTTP, and gRPC's from grpc-status). */
export const RETRY_ON: ReadonlySet<string> = new Set(RETRY_ON_TOKENS);

function retryPolicy(at: FieldPath, r: Obj): RetryPolicy {
  onlyFields(at, `${T}RetryPolicy`, r, ['retry_on', 'num_retries', 'per_try_timeout', 'retry_back_off', 'retriable_status_codes']);
  const retryOn = new Set<string>();
  for (const raw of String(r.retry_on ?? '').split(',')) {
    const token = raw.trim();
    if (!token) continue;
    if (!RETRY_ON.has(token)) at.field('retry_on').unsupported(`"${token}" is not supported by weft proxy yet`);
    retryOn.add(token);
  }
  const numRetries = u32(r.num_retries, 1);
  const perTryTimeoutMs = durationMs(at.field('per_try_timeout'), r.per_try_timeout, 0);
  let baseMs = 25;
  let maxMs = 250;
  if (r.retry_back_off) {
    const here = at.field('retry_back_off');
    onlyFields(here, `${T}RetryPolicy.RetryBackOff`, r.retry_back_off, ['base_interval', 'max_interval']);
    if (!r.retry_back_off.base_interval) here.field('base_interval').invalid('is required');
    baseMs = durationMs(here.field('base_interval'), r.retry_back_off.base_interval, 25);
    if (baseMs < 1) here.field('base_interval').invalid('must be at least 1 ms');
    maxMs = durationMs(here.field('max_interval'), r.retry_back_off.max_interval, baseMs * 10);
    if (maxMs < baseMs) here.field('max_interval').invalid(`must be at least base_interval (${baseMs} ms), got ${maxMs} ms`);
  }
  const retriableStatusCodes = ((r.retriable_status_codes ?? []) as number[]).map((code, i) => {
    if (code < 100 || code > 599) at.field('retriable_status_codes').index(i).invalid(`must be an HTTP status 100-599, got ${code}`);
    return code;
  });
  return { retryOn, numRetries, perTryTimeoutMs, backoff: { baseMs, maxMs }, retriableStatusCodes };
}

const REDIRECT_STATUS: Record<string, RedirectAction['status']> = {
  MOVED_PERMANENTLY: 301,
  FOUND: 302,
  SEE_OTHER: 303,
  TEMPORARY_REDIRECT: 307,
  PERMANENT_REDIRECT: 308,
};

function redirectAction(at: FieldPath, r: Obj): RedirectAction {
  onlyFields(at, `${T}RedirectAction`, r, [
    'https_redirect',
    'scheme_redirect',
    'host_redirect',
    'port_redirect',
    'path_redirect',
    'prefix_rewrite',
    'regex_rewrite',
    'response_code',
  ]);
  const status = REDIRECT_STATUS[r.response_code ?? 'MOVED_PERMANENTLY'];
  if (!status) at.field('response_code').invalid(`unknown code ${r.response_code}`);
  const out: RedirectAction = { kind: 'redirect', status };
  if (r.https_redirect) out.scheme = 'https';
  else if (r.scheme_redirect) out.scheme = r.scheme_redirect.toLowerCase();
  if (r.host_redirect) out.host = r.host_redirect;
  if (r.port_redirect) {
    if (r.port_redirect > 65535) at.field('port_redirect').invalid(`must be a port 1-65535, got ${r.port_redirect}`);
    out.port = r.port_redirect;
  }
  if (r.path_redirect !== undefined) out.path = r.path_redirect;
  if (r.prefix_rewrite !== undefined) out.prefixRewrite = r.prefix_rewrite;
  if (r.regex_rewrite) out.regexRewrite = regexRewrite(at.field('regex_rewrite'), r.regex_rewrite);
  return out;
}

function directResponse(at: FieldPath, d: Obj): DirectResponseAction {
  onlyFields(at, `${T}DirectResponseAction`, d, ['status', 'body']);
  const status: number = d.status ?? 0;
  if (status < 200 || status > 599) at.field('status').invalid(`must be 200-599, got ${status}`);
  const out: DirectResponseAction = { kind: 'direct', status };
  if (d.body) {
    const here = at.field('body');
    onlyFields(here, 'envoy.config.core.v3.DataSource', d.body, ['inline_string', 'inline_bytes']);
    if (d.body.specifier === 'inline_string') out.body = d.body.inline_string;
    else if (d.body.specifier === 'inline_bytes') out.body = Buffer.from(d.body.inline_bytes).toString('utf8');
  }
  return out;
}

// ---- header mutations ----

/** Headers a route may not touch: Envoy refuses pseudo-headers and host too. */
function mutableHeaderName(at: FieldPath, name: string | undefined): string {
  const lower = (name ?? '').toLowerCase();
  if (lower.startsWith(':') || lower === 'host') at.invalid(`"${name}" cannot be modified`);
  if (!HTTP_TOKEN.test(lower)) at.invalid(`"${name ?? ''}" is not a valid header name`);
  return lower;
}

/** Envoy reads %NAME% in a header value as a formatter; weft supports only "%%" (a literal %). */
function headerValue(at: FieldPath, value: string): string {
  if (/[\r\n\0]/.test(value)) at.invalid('must not contain CR, LF or NUL');
  if (value.replace(/%%/g, '').includes('%')) at.unsupported(`"${value}": header value formatters (%…%) are not supported by weft proxy yet`);
  return value.replace(/%%/g, '%');
}

function headersToAdd(at: FieldPath, list: Obj[] | undefined): HeaderToAdd[] {
  return (list ?? []).map((o, i) => {
    const here = at.index(i);
    onlyFields(here, 'envoy.config.core.v3.HeaderValueOption', o, ['header', 'append', 'append_action']);
    if (!o.header) here.field('header').invalid('is required');
    onlyFields(here.field('header'), 'envoy.config.core.v3.HeaderValue', o.header, ['key', 'value']);
    const name = mutableHeaderName(here.field('header').field('key'), o.header.key);
    const value = headerValue(here.field('header').field('value'), o.header.value ?? '');
    if (o.append && o.append_action !== undefined) here.field('append').invalid('and append_action are exclusive');
    let append: boolean;
    if (o.append) {
      append = bool(o.append, true);
    } else {
      const action = o.append_action ?? 'APPEND_IF_EXISTS_OR_ADD';
      if (action !== 'APPEND_IF_EXISTS_OR_ADD' && action !== 'OVERWRITE_IF_EXISTS_OR_ADD') {
        here.field('append_action').unsupported(`${action} is not supported by weft proxy yet`);
      }
      append = action === 'APPEND_IF_EXISTS_OR_ADD';
    }
    return { name, value, append };
  });
}

function headersToRemove(at: FieldPath, list: string[] | undefined): string[] {
  return (list ?? []).map((name, i) => mutableHeaderName(at.index(i), name));
}
