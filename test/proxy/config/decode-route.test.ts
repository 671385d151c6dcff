// RouteConfiguration decoding: the translator's real output for a mesh that
// uses every supported route feature, hand-written resources for the rest
// of the subset, and one NACK per unsupported or invalid case.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { decodeRouteConfiguration } from '../../../src/proxy/config/decode-route';
import type { RedirectAction, Route, RouteAction } from '../../../src/proxy/config/types';
import { anyOf, nack, plain, translated, TYPE_URL, wire, type Obj } from './helpers';

const MESH = `
apiVersion: weft.dev/v1
kind: Service
metadata: { name: api }
spec: { ports: [{ name: http, port: 80, protocol: http }], endpoints: [{ address: 127.0.0.1, port: 18080 }] }
---
apiVersion: weft.dev/v1
kind: Service
metadata: { name: api-v2 }
spec: { ports: [{ name: http, port: 80, protocol: http }] }
---
apiVersion: weft.dev/v1
kind: Service
metadata: { name: pay }
spec: { ports: [{ name: grpc, port: 50051, protocol: grpc }] }
---
apiVersion: weft.dev/v1
kind: TrafficPolicy
metadata: { name: api }
spec:
  targetRef: { name: api }
  loadBalancer:
    type: RingHash
    hashOn: [{ header: X-User }, { cookie: { name: session, ttl: 1h } }, { sourceIP: true }]
  timeouts: { request: 2s }
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: api-routes }
spec:
  parentRefs: [{ kind: Service, name: api, port: 80 }]
  hostnames: [API.Example.com]
  rules:
    - matches: [{ path: { type: Exact, value: /exact } }]
      backendRefs: [{ name: api-v2, port: 80 }]
    - matches:
        - path: { type: PathPrefix, value: /v1 }
          headers: [{ name: X-Env, value: canary }, { type: RegularExpression, name: x-id, value: '[0-9]+' }]
          queryParams: [{ name: debug, value: '1' }, { type: RegularExpression, name: page, value: '\\d+' }]
          method: GET
      filters:
        - type: RequestHeaderModifier
          requestHeaderModifier: { set: [{ name: X-Set, value: s }], add: [{ name: X-Add, value: a }], remove: [X-Remove] }
        - type: ResponseHeaderModifier
          responseHeaderModifier: { add: [{ name: X-Served-By, value: weft }], remove: [Server] }
        - type: URLRewrite
          urlRewrite: { hostname: internal.api, path: { type: ReplacePrefixMatch, replacePrefixMatch: /v2 } }
      backendRefs: [{ name: api, port: 80, weight: 90 }, { name: api-v2, port: 80, weight: 10 }]
      timeouts: { request: 5s }
    - matches: [{ path: { type: RegularExpression, value: '/items/[0-9]+' } }]
      filters: [{ type: URLRewrite, urlRewrite: { path: { type: ReplaceFullPath, replaceFullPath: /all } } }]
      backendRefs: [{ name: api, port: 80 }]
    - matches: [{ path: { type: PathPrefix, value: /old } }]
      filters:
        - type: RequestRedirect
          requestRedirect: { scheme: https, hostname: new.example, port: 8443, path: { type: ReplacePrefixMatch, replacePrefixMatch: /new }, statusCode: 301 }
    - matches: [{ path: { type: PathPrefix, value: /gone } }]
      filters: [{ type: RequestRedirect, requestRedirect: { path: { type: ReplacePrefixMatch, replacePrefixMatch: / } } }]
    - matches: [{ path: { type: PathPrefix, value: /nobackend } }]
      backendRefs: [{ name: missing, port: 80 }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: { name: pay-routes }
spec:
  parentRefs: [{ kind: Service, name: pay, port: 50051 }]
  rules:
    - matches: [{ method: { service: shop.Payment, method: Charge } }]
      backendRefs: [{ name: pay, port: 50051 }]
    - matches: [{ method: { method: Refund } }]
      backendRefs: [{ name: pay, port: 50051 }]
`;

function outbound() {
  return decodeRouteConfiguration(translated(MESH)(TYPE_URL.RouteConfiguration, 'outbound'));
}

function routeNamed(routes: Route[], name: string): Route {
  const r = routes.find((x) => x.name === name);
  assert.ok(r, `no route ${name}; have ${routes.map((x) => x.name).join(', ')}`);
  return r;
}

const R = (rule: number) => `HTTPRoute/default/api-routes/${rule}/0`;

test('route: translator output — virtual hosts, domains lower-cased, routes in precedence order', () => {
  const table = outbound();
  assert.equal(table.name, 'outbound');
  assert.deepEqual(
    table.virtualHosts.map((v) => v.name),
    ['api.default:80', 'api-v2.default:80', 'pay.default:50051'],
  );
  const api = table.virtualHosts[0];
  assert.ok(api.domains.includes('api'));
  assert.ok(api.domains.includes('api.default.svc:80'));
  assert.ok(api.domains.includes('api.example.com'), 'hostnames lower-cased');
  assert.ok(api.domains.includes('api.example.com:80'));
  assert.deepEqual(api.routes.map((r) => r.name), [R(0), R(2), R(5), R(4), R(3), R(1)]);
});

test('route: translator output — matches (exact, path_separated_prefix, regex, headers, method, query)', () => {
  const api = outbound().virtualHosts[0];
  assert.deepEqual(plain(routeNamed(api.routes, R(0)).match), {
    path: { kind: 'exact', value: '/exact' },
    caseSensitive: true,
    headers: [],
    queryParams: [],
  });
  assert.deepEqual(plain(routeNamed(api.routes, R(1)).match), {
    path: { kind: 'pathSeparatedPrefix', value: '/v1' },
    caseSensitive: true,
    headers: [
      { name: 'x-env', kind: 'exact', value: 'canary', invert: false },
      { name: 'x-id', kind: 'regex', regex: '/^(?:[0-9]+)$/u', invert: false },
      { name: ':method', kind: 'exact', value: 'GET', invert: false },
    ],
    queryParams: [
      { name: 'debug', kind: 'exact', value: '1' },
      { name: 'page', kind: 'regex', regex: '/^(?:\\d+)$/u' },
    ],
  });
  const regex = routeNamed(api.routes, R(2)).match.path;
  assert.equal(regex.kind, 'regex');
  assert.ok(regex.kind === 'regex' && regex.regex.test('/items/42') && !regex.regex.test('/items/42/x'));
});

test('route: translator output — actions (weights, timeouts, hash policies, rewrites, headers)', () => {
  const api = outbound().virtualHosts[0];
  const exact = routeNamed(api.routes, R(0)).action as RouteAction;
  assert.deepEqual(exact.clusters, [{ name: 'outbound|80||api-v2.default', weight: 1 }]);
  assert.equal(exact.timeoutMs, 2000, "the policy's request timeout (timeout and max_stream_duration)");
  assert.deepEqual(exact.hashPolicies, [
    { kind: 'header', name: 'x-user', terminal: true },
    { kind: 'cookie', name: 'session', ttlMs: 3_600_000, terminal: true },
    { kind: 'sourceIp', terminal: true },
  ]);
  assert.deepEqual(exact.mirrors, []);
  assert.equal(exact.retry, undefined);

  const split = routeNamed(api.routes, R(1));
  const action = split.action as RouteAction;
  assert.deepEqual(action.clusters, [
    { name: 'outbound|80||api.default', weight: 90 },
    { name: 'outbound|80||api-v2.default', weight: 10 },
  ]);
  assert.equal(action.totalWeight, 100);
  assert.equal(action.timeoutMs, 5000, "the rule's timeout wins");
  assert.equal(action.prefixRewrite, '/v2');
  assert.equal(action.hostRewrite, 'internal.api');
  assert.deepEqual(split.requestHeadersToAdd, [
    { name: 'x-set', value: 's', append: false },
    { name: 'x-add', value: 'a', append: true },
  ]);
  assert.deepEqual(split.requestHeadersToRemove, ['x-remove']);
  assert.deepEqual(split.responseHeadersToAdd, [{ name: 'x-served-by', value: 'weft', append: true }]);
  assert.deepEqual(split.responseHeadersToRemove, ['server']);

  const full = routeNamed(api.routes, R(2)).action as RouteAction;
  assert.ok(full.regexRewrite);
  assert.equal('/items/42'.replace(full.regexRewrite.regex, full.regexRewrite.substitution), '/all');
});

test('route: translator output — redirects (incl. regex_rewrite, a local extension) and direct responses', () => {
  const api = outbound().virtualHosts[0];
  assert.deepEqual(routeNamed(api.routes, R(3)).action, {
    kind: 'redirect',
    status: 301,
    scheme: 'https',
    host: 'new.example',
    port: 8443,
    prefixRewrite: '/new',
  });
  const gone = routeNamed(api.routes, R(4)).action as RedirectAction;
  assert.equal(gone.status, 302);
  assert.ok(gone.regexRewrite);
  assert.equal('/gone/x'.replace(gone.regexRewrite.regex, gone.regexRewrite.substitution), '/x');
  assert.deepEqual(routeNamed(api.routes, R(5)).action, { kind: 'direct', status: 500 });
});

test('route: translator output — GRPCRoute methods become exact paths and regexes', () => {
  const pay = outbound().virtualHosts[2];
  assert.deepEqual(pay.routes[0].match.path, { kind: 'exact', value: '/shop.Payment/Charge' });
  const re = pay.routes[1].match.path;
  assert.ok(re.kind === 'regex' && re.regex.test('/shop.Payment/Refund') && !re.regex.test('/shop.Payment/Charge'));
  assert.equal((pay.routes[0].action as RouteAction).timeoutMs, 0, 'no policy: the translator says 0 (none)');
});

// ---- hand-written resources ----

function table(route: Obj, extra: { vh?: Obj; rc?: Obj } = {}): Obj {
  return {
    name: 'rc',
    virtual_hosts: [{ name: 'vh', domains: ['*'], routes: [{ name: 'r', match: { prefix: '/' }, ...route }], ...extra.vh }],
    ...extra.rc,
  };
}

const decode = (rc: Obj) => decodeRouteConfiguration(wire(TYPE_URL.RouteConfiguration, rc));
const firstRoute = (rc: Obj) => decode(rc).virtualHosts[0].routes[0];

test('route: defaults and the rest of the subset (deprecated matchers, case, hash terminal, bodies, https_redirect)', () => {
  const r = firstRoute(
    table({
      match: {
        prefix: '/A',
        case_sensitive: { value: false },
        headers: [
          { name: 'X-A', exact_match: 'a' },
          { name: 'x-b', prefix_match: 'p' },
          { name: 'x-c', suffix_match: 's' },
          { name: 'x-d', contains_match: 'c' },
          { name: 'x-e', present_match: false },
          { name: 'x-f', string_match: { suffix: '.x' }, invert_match: true },
          { name: 'x-g' },
          { name: ':authority', safe_regex_match: { regex: '.*\\.example' } },
        ],
        query_parameters: [{ name: 'q' }, { name: 'p', present_match: true }],
      },
      route: {
        cluster: 'c',
        hash_policy: [{ header: { header_name: 'X-H' } }, { cookie: { name: 'k' } }],
        max_stream_duration: { max_stream_duration: { seconds: 3 } },
      },
      request_headers_to_add: [
        { header: { key: 'x-pct', value: '100%%' }, append: { value: false } },
        { header: { key: 'x-default', value: 'v' } },
      ],
    }),
  );
  assert.deepEqual(plain(r.match), {
    path: { kind: 'prefix', value: '/A' },
    caseSensitive: false,
    headers: [
      { name: 'x-a', kind: 'exact', value: 'a', invert: false },
      { name: 'x-b', kind: 'prefix', value: 'p', invert: false },
      { name: 'x-c', kind: 'suffix', value: 's', invert: false },
      { name: 'x-d', kind: 'contains', value: 'c', invert: false },
      { name: 'x-e', kind: 'present', invert: true },
      { name: 'x-f', kind: 'suffix', value: '.x', invert: true },
      { name: 'x-g', kind: 'present', invert: false },
      { name: ':authority', kind: 'regex', regex: '/^(?:.*\\.example)$/u', invert: false },
    ],
    queryParams: [
      { name: 'q', kind: 'present' },
      { name: 'p', kind: 'present' },
    ],
  });
  const action = r.action as RouteAction;
  assert.equal(action.timeoutMs, 3000, 'Envoy default 15 s, capped by max_stream_duration');
  assert.deepEqual(action.hashPolicies, [
    { kind: 'header', name: 'x-h', terminal: false },
    { kind: 'cookie', name: 'k', terminal: false },
  ]);
  assert.deepEqual(r.requestHeadersToAdd, [
    { name: 'x-pct', value: '100%', append: false },
    { name: 'x-default', value: 'v', append: true },
  ]);
  assert.equal((firstRoute(table({ route: { cluster: 'c' } })).action as RouteAction).timeoutMs, 15_000, "Envoy's default");
  assert.equal(
    (firstRoute(table({ route: { cluster: 'c', timeout: { seconds: 0, nanos: 500 } } })).action as RouteAction).timeoutMs,
    1,
    'a sub-millisecond timeout is not "none"',
  );
  assert.deepEqual(firstRoute(table({ direct_response: { status: 404, body: { inline_string: 'nope' } } })).action, {
    kind: 'direct',
    status: 404,
    body: 'nope',
  });
  assert.deepEqual(firstRoute(table({ direct_response: { status: 200, body: { inline_bytes: Buffer.from('hi') } } })).action, {
    kind: 'direct',
    status: 200,
    body: 'hi',
  });
  assert.deepEqual(firstRoute(table({ redirect: { https_redirect: true, path_redirect: '/p', response_code: 'PERMANENT_REDIRECT' } })).action, {
    kind: 'redirect',
    status: 308,
    scheme: 'https',
    path: '/p',
  });
  const weighted = firstRoute(
    table({ route: { weighted_clusters: { clusters: [{ name: 'a', weight: { value: 3 } }, { name: 'b', weight: { value: 0 } }], total_weight: { value: 3 } } } }),
  ).action as RouteAction;
  assert.deepEqual([weighted.clusters, weighted.totalWeight], [[{ name: 'a', weight: 3 }, { name: 'b', weight: 0 }], 3]);
  // Metadata and stat prefixes do not change behaviour.
  decode(table({ route: { cluster: 'c' }, stat_prefix: 'x', metadata: { filter_metadata: {} } }, { vh: { metadata: {} }, rc: { metadata: {} } }));
});

const AT = 'RouteConfiguration "rc": ';
const ROUTE = `${AT}virtual_hosts[0].routes[0]`;

test('route: retry_policy → RouteAction.retry (tokens, retries, per-try timeout, back-off, codes; Envoy defaults)', () => {
  const full = decode(
    table({
      route: {
        cluster: 'c',
        retry_policy: {
          retry_on: '5xx, gateway-error,reset,connect-failure,retriable-4xx,refused-stream,retriable-status-codes,cancelled,deadline-exceeded,internal,resource-exhausted,unavailable',
          num_retries: { value: 4 },
          per_try_timeout: { nanos: 100_000_000 },
          retry_back_off: { base_interval: { nanos: 10_000_000 }, max_interval: { seconds: 1 } },
          retriable_status_codes: [409, 429],
        },
      },
    }),
  );
  const retry = (full.virtualHosts[0].routes[0].action as RouteAction).retry!;
  assert.deepEqual([...retry.retryOn].sort(), ['5xx', 'cancelled', 'connect-failure', 'deadline-exceeded', 'gateway-error', 'internal', 'refused-stream', 'reset', 'resource-exhausted', 'retriable-4xx', 'retriable-status-codes', 'unavailable']);
  assert.equal(retry.numRetries, 4);
  assert.equal(retry.perTryTimeoutMs, 100);
  assert.deepEqual(retry.backoff, { baseMs: 10, maxMs: 1000 });
  assert.deepEqual(retry.retriableStatusCodes, [409, 429]);
  const defaults = (decode(table({ route: { cluster: 'c', retry_policy: { retry_on: '5xx' } } })).virtualHosts[0].routes[0].action as RouteAction).retry!;
  assert.deepEqual(defaults, { retryOn: new Set(['5xx']), numRetries: 1, perTryTimeoutMs: 0, backoff: { baseMs: 25, maxMs: 250 }, retriableStatusCodes: [] });
  const baseOnly = (decode(table({ route: { cluster: 'c', retry_policy: { retry_on: 'reset', retry_back_off: { base_interval: { nanos: 40_000_000 } } } } })).virtualHosts[0].routes[0].action as RouteAction).retry!;
  assert.deepEqual(baseOnly.backoff, { baseMs: 40, maxMs: 400 });
  assert.equal((decode(table({ route: { cluster: 'c' } })).virtualHosts[0].routes[0].action as RouteAction).retry, undefined);
  assert.match(nack(() => decode(table({ route: { cluster: 'c', retry_policy: { retry_on: '5xx', retry_back_off: { base_interval: { nanos: 50_000_000 }, max_interval: { nanos: 10_000_000 } } } } })), 'E_CONFIG_INVALID'), /retry_back_off\.max_interval must be at least base_interval/);
  assert.match(nack(() => decode(table({ route: { cluster: 'c', retry_policy: { retry_on: '5xx', retriable_status_codes: [42] } } })), 'E_CONFIG_INVALID'), /retriable_status_codes\[0\] must be an HTTP status/);
});

test('route: a per-route fault override (typed_per_filter_config) decodes by the filter name', () => {
  const fault = anyOf(TYPE_URL.HttpFault, { abort: { http_status: 503, percentage: { numerator: 50 } } });
  const r = decode(table({ route: { cluster: 'c' }, typed_per_filter_config: { 'envoy.filters.http.fault': fault } })).virtualHosts[0].routes[0];
  assert.deepEqual(plain(r.perFilterConfig), { 'envoy.filters.http.fault': { abort: { httpStatus: 503, percentage: { numerator: 50, denominator: 100 } }, headers: [] } });
  const headerAbort = anyOf(TYPE_URL.HttpFault, { abort: { header_abort: {} } });
  assert.match(
    nack(() => decode(table({ route: { cluster: 'c' }, typed_per_filter_config: { 'envoy.filters.http.fault': headerAbort } }))),
    /typed_per_filter_config\["envoy.filters.http.fault"\].abort.header_abort is not supported/,
  );
});

test('route: NACK for every field outside the subset, naming it', () => {
  const router = anyOf(TYPE_URL.Router, {});
  const cases: [Obj, string][] = [
    [table({ route: { cluster: 'c', retry_policy: { retry_on: '5xx', retry_host_predicate: [{ name: 'x' }] } } }), `${ROUTE}.route.retry_policy.retry_host_predicate`],
    [table({ route: { cluster: 'c', retry_policy: { retry_on: '5xx', rate_limited_retry_back_off: { reset_headers: [{ name: 'retry-after' }] } } } }), `${ROUTE}.route.retry_policy.rate_limited_retry_back_off`],
    [table({ route: { cluster: 'c', retry_policy: { retry_on: '5xx,envoy-ratelimited' } } }), `${ROUTE}.route.retry_policy.retry_on`],
    [table({ route: { cluster: 'c', request_mirror_policies: [{ cluster: 'm', disable_shadow_host_suffix_append: true }] } }), `${ROUTE}.route.request_mirror_policies[0].disable_shadow_host_suffix_append`],
    [table({ route: { cluster: 'c', hedge_policy: {} } }), `${ROUTE}.route.hedge_policy`],
    [table({ route: { cluster: 'c', early_data_policy: { name: 'x' } } }), `${ROUTE}.route.early_data_policy`],
    [table({ route: { cluster_header: 'x-cluster' } }), `${ROUTE}.route.cluster_header`],
    [table({ route: { cluster: 'c', auto_host_rewrite: { value: true } } }), `${ROUTE}.route.auto_host_rewrite`],
    [table({ route: { cluster: 'c', hash_policy: [{ query_parameter: { name: 'q' } }] } }), `${ROUTE}.route.hash_policy[0].query_parameter`],
    [table({ route: { cluster: 'c', hash_policy: [{ cookie: { name: 'k', path: '/' } }] } }), `${ROUTE}.route.hash_policy[0].cookie.path`],
    [table({ route: { cluster: 'c', max_stream_duration: { grpc_timeout_header_max: { seconds: 1 } } } }), `${ROUTE}.route.max_stream_duration.grpc_timeout_header_max`],
    [table({ route: { weighted_clusters: { clusters: [{ name: 'a', weight: { value: 1 }, request_headers_to_add: [{ header: { key: 'a', value: 'b' } }] }] } } }), `${ROUTE}.route.weighted_clusters.clusters[0].request_headers_to_add`],
    // A per-route config of a type no weft filter takes.
    [table({ route: { cluster: 'c' }, typed_per_filter_config: { 'envoy.filters.http.router': router } }), `${ROUTE}.typed_per_filter_config["envoy.filters.http.router"]`],
    [table({ route: { cluster: 'c' }, match: { prefix: '/', grpc: {} } }), `${ROUTE}.match.grpc`],
    [table({ route: { cluster: 'c' }, match: { prefix: '/', runtime_fraction: { default_value: { numerator: 1 } } } }), `${ROUTE}.match.runtime_fraction`],
    [table({ route: { cluster: 'c' }, match: { prefix: '/', headers: [{ name: 'a', string_match: { exact: 'x', ignore_case: true } }] } }), `${ROUTE}.match.headers[0].string_match.ignore_case`],
    [table({ route: { cluster: 'c' }, match: { prefix: '/', headers: [{ name: 'a', range_match: { start: 1, end: 2 } }] } }), `${ROUTE}.match.headers[0].range_match`],
    [table({ route: { cluster: 'c' }, match: { prefix: '/', headers: [{ name: 'a', exact_match: 'x', treat_missing_header_as_empty: true }] } }), `${ROUTE}.match.headers[0].treat_missing_header_as_empty`],
    [table({ route: { cluster: 'c' }, match: { prefix: '/', query_parameters: [{ name: 'a', string_match: { prefix: 'x' } }] } }), `${ROUTE}.match.query_parameters[0].string_match.prefix`],
    [table({ route: { cluster: 'c' }, match: { prefix: '/', query_parameters: [{ name: 'a', present_match: false }] } }), `${ROUTE}.match.query_parameters[0].present_match`],
    [table({ redirect: { host_redirect: 'x', strip_query: true } }), `${ROUTE}.redirect.strip_query`],
    [table({ route: { cluster: 'c' }, request_headers_to_add: [{ header: { key: 'a', value: 'b' }, append_action: 'ADD_IF_ABSENT' }] }), `${ROUTE}.request_headers_to_add[0].append_action`],
    [table({ route: { cluster: 'c' }, request_headers_to_add: [{ header: { key: 'a', value: '%DOWNSTREAM_REMOTE_ADDRESS%' } }] }), `${ROUTE}.request_headers_to_add[0].header.value`],
    [table({ route: { cluster: 'c' }, response_headers_to_add: [{ header: { key: 'a', raw_value: Buffer.from('b') } }] }), `${ROUTE}.response_headers_to_add[0].header.raw_value`],
    [table({ route: { cluster: 'c' } }, { vh: { retry_policy: { retry_on: '5xx' } } }), `${AT}virtual_hosts[0].retry_policy`],
    [table({ route: { cluster: 'c' } }, { vh: { cors: {} } }), `${AT}virtual_hosts[0].cors`],
    [table({ route: { cluster: 'c' } }, { vh: { request_headers_to_add: [{ header: { key: 'a', value: 'b' } }] } }), `${AT}virtual_hosts[0].request_headers_to_add`],
    [table({ route: { cluster: 'c' } }, { vh: { require_tls: 'ALL' } }), `${AT}virtual_hosts[0].require_tls`],
    [table({ route: { cluster: 'c' } }, { rc: { response_headers_to_add: [{ header: { key: 'a', value: 'b' } }] } }), `${AT}response_headers_to_add`],
    [table({ route: { cluster: 'c' } }, { rc: { vhds: { config_source: { ads: {} } } } }), `${AT}vhds`],
    [table({ route: { cluster: 'c' } }, { rc: { ignore_port_in_host_matching: true } }), `${AT}ignore_port_in_host_matching`],
    [table({ filter_action: {} }), `${ROUTE}.filter_action`],
  ];
  for (const [rc, path] of cases) {
    const message = nack(() => decode(rc));
    assert.ok(message.startsWith(`${path} `), `expected ${path}, got: ${message}`);
    assert.match(message, /not supported by weft proxy yet/);
  }
});

test('route: NACK for invalid values (regexes RE2 rejects, duplicate domains, weights, statuses, headers)', () => {
  const cases: [Obj, string][] = [
    [table({ route: { cluster: 'c' }, match: { safe_regex: { regex: '/a(?=b)' } } }), `${ROUTE}.match.safe_regex.regex "/a(?=b)" is not a valid RE2 regex: lookaround`],
    [table({ route: { cluster: 'c' }, match: { prefix: '/', headers: [{ name: 'a', string_match: { safe_regex: { regex: '(a)\\1' } } }] } }), `${ROUTE}.match.headers[0].string_match.safe_regex.regex "(a)\\1" is not a valid RE2 regex: backreference`],
    [table({ route: { cluster: 'c', regex_rewrite: { pattern: { regex: '(a)' }, substitution: '\\2' } } }), `${ROUTE}.route.regex_rewrite.substitution "\\2" refers to group \\2, but the pattern has 1`],
    [table({ route: { cluster: 'c', prefix_rewrite: '/x', regex_rewrite: { pattern: { regex: 'a' }, substitution: 'b' } } }), `${ROUTE}.route.regex_rewrite and prefix_rewrite are exclusive`],
    [table({ route: { weighted_clusters: { clusters: [{ name: 'a', weight: { value: 0 } }] } } }), `${ROUTE}.route.weighted_clusters.clusters weights sum to 0`],
    [table({ route: { weighted_clusters: { clusters: [{ name: 'a', weight: { value: 1 } }], total_weight: { value: 100 } } } }), `${ROUTE}.route.weighted_clusters.total_weight is 100 but the weights sum to 1`],
    [table({ route: { cluster: 'c' }, match: { path_separated_prefix: '/a/' } }), `${ROUTE}.match.path_separated_prefix "/a/" must not be empty`],
    [table({ route: { cluster: 'c' }, match: {} }), `${ROUTE}.match needs a path specifier`],
    [table({}), `${ROUTE} needs an action`],
    [table({ direct_response: { status: 99 } }), `${ROUTE}.direct_response.status must be 200-599, got 99`],
    [table({ route: { cluster: 'c' }, request_headers_to_add: [{ header: { key: ':path', value: '/' } }] }), `${ROUTE}.request_headers_to_add[0].header.key ":path" cannot be modified`],
    [table({ route: { cluster: 'c' }, request_headers_to_remove: ['Host'] }), `${ROUTE}.request_headers_to_remove[0] "Host" cannot be modified`],
    [table({ route: { cluster: 'c' }, request_headers_to_add: [{ header: { key: 'a b', value: 'x' } }] }), `${ROUTE}.request_headers_to_add[0].header.key "a b" is not a valid header name`],
    [table({ route: { cluster: 'c' }, request_headers_to_add: [{ header: { key: 'a', value: 'x\r\ny' } }] }), `${ROUTE}.request_headers_to_add[0].header.value must not contain CR, LF or NUL`],
    [table({ route: { cluster: 'c', hash_policy: [{ connection_properties: { source_ip: false } }] } }), `${ROUTE}.route.hash_policy[0].connection_properties.source_ip must be true`],
    [
      { name: 'rc', virtual_hosts: [{ name: 'a', domains: ['X.com'], routes: [] }, { name: 'b', domains: ['x.com'], routes: [] }] },
      `${AT}virtual_hosts[1].domains[0] "x.com" is already a domain of virtual_hosts[0]`,
    ],
    [{ name: 'rc', virtual_hosts: [{ name: 'a', domains: [], routes: [] }] }, `${AT}virtual_hosts[0].domains needs at least one domain`],
  ];
  for (const [rc, prefix] of cases) {
    const message = nack(() => decode(rc), 'E_CONFIG_INVALID');
    assert.ok(message.startsWith(prefix), `expected ${prefix}…, got: ${message}`);
  }
});
