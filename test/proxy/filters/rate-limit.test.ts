// Rate limits without sockets: the translator's filters and route rate_limits
// through the real decoders, one NACK per unsupported or invalid field,
// the token bucket's arithmetic and bound, and the control plane's counters.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { decodeListener } from '../../../src/proxy/config/decode-listener';
import type { HttpNetworkFilter, RouteAction } from '../../../src/proxy/config/types';
import type { GlobalRateLimitConfig } from '../../../src/proxy/filters/global-rate-limit';
import type { LocalRateLimitConfig } from '../../../src/proxy/filters/local-rate-limit';
import { KeyedBuckets, TokenBucket } from '../../../src/proxy/filters/token-bucket';
import { GlobalRateLimiter } from '../../../src/control/rate-limit-service';
import { meshView, proxyless, resourcesFor, service, unpack } from '../../translate/helpers';
import { parseResources } from '../../translate/helpers';
import { ADS, anyOf, nack, plain, translated, TYPE_URL, wire, type Obj } from '../config/helpers';

const policy = (rateLimit: string) => `apiVersion: weft.dev/v1
kind: TrafficPolicy
metadata: { name: api }
spec:
  targetRef: { name: api }
  rateLimit: ${rateLimit}
`;
const MESH = service('api', 80) + service('web', 8080) + policy('{ local: { requests: 5, per: 1s, burst: 10, by: { header: X-User-Id } }, global: { requests: 100, per: 1m, by: source } }');

test('translation: the callee inbound listener carries both filters before the router and the route rate_limits', () => {
  const get = translated(MESH, { service: 'api', appPort: 9000 });
  const inbound = decodeListener(get(TYPE_URL.Listener, 'inbound'));
  const http = inbound.chains[0].network as HttpNetworkFilter;
  assert.deepEqual(
    http.httpFilters.map((f) => f.name),
    ['envoy.filters.http.local_ratelimit', 'envoy.filters.http.ratelimit'],
  );
  assert.deepEqual(plain(http.httpFilters[0].config as LocalRateLimitConfig), {
    statPrefix: 'inbound|80',
    status: 429,
    bucket: { maxTokens: 10, tokensPerFill: 5, fillIntervalMs: 1000 },
    enabled: true,
    enforced: true,
    descriptors: [{ entries: [{ key: 'header.x-user-id' }], bucket: { maxTokens: 10, tokensPerFill: 5, fillIntervalMs: 1000 } }],
    stage: 0,
    alwaysConsumeDefault: false,
    asResourceExhausted: true,
  });
  assert.deepEqual(http.httpFilters[1].config as GlobalRateLimitConfig, {
    domain: 'weft',
    stage: 1,
    timeoutMs: 100,
    failureModeDeny: false,
    asResourceExhausted: true,
    statPrefix: 'inbound|80',
  });
  const action = http.routeTable!.virtualHosts[0].routes[0].action as RouteAction;
  assert.deepEqual(action.rateLimits, [
    { stage: 0, actions: [{ kind: 'request_headers', header: 'x-user-id', key: 'header.x-user-id', skipIfAbsent: false }] },
    { stage: 1, actions: [{ kind: 'generic_key', key: 'weft.service', value: 'api.default' }, { kind: 'remote_address' }] },
  ]);
});

test('translation: callers and proxyless clients get no rate limit filter; a service without rateLimit none either', () => {
  const caller = translated(MESH, { service: 'web', appPort: 9001 });
  const outbound = decodeListener(caller(TYPE_URL.Listener, 'outbound'));
  assert.deepEqual((outbound.chains[0].network as HttpNetworkFilter).httpFilters, []);
  const webInbound = decodeListener(caller(TYPE_URL.Listener, 'inbound'));
  assert.deepEqual((webInbound.chains[0].network as HttpNetworkFilter).httpFilters, []);
  const d = resourcesFor(meshView(MESH), proxyless({ service: 'web' }));
  assert.ok(d.names(TYPE_URL.Listener).includes('api:80'));
  // (The server Listeners of its own service carry no rate limit filter either: router only.)
  for (const name of d.names(TYPE_URL.Listener).filter((n) => !n.startsWith('weft.dev/grpc/lds/inbound/'))) {
    const hcm = unpack(d.get(TYPE_URL.Listener, name).api_listener.api_listener);
    assert.deepEqual(hcm.http_filters.map((f: Obj) => f.name), ['envoy.filters.http.fault', 'envoy.filters.http.router']);
  }
});

// ---- decoding: hand-written filters, each NACK naming its field ----

const router = { name: 'envoy.filters.http.router', typed_config: anyOf(TYPE_URL.Router, {}) };
const bucket = { max_tokens: 2, tokens_per_fill: { value: 1 }, fill_interval: { seconds: 1 } };
const all = { default_value: { numerator: 100, denominator: 'HUNDRED' } };
const local = (extra: Obj) => ({ name: 'rl', typed_config: anyOf(TYPE_URL.LocalRateLimit, { stat_prefix: 's', token_bucket: bucket, filter_enabled: all, filter_enforced: all, ...extra }) });
const rls = { grpc_service: { envoy_grpc: { cluster_name: 'xds_cluster' } }, transport_api_version: 'V3' };
const global = (extra: Obj) => ({ name: 'grl', typed_config: anyOf(TYPE_URL.RateLimit, { domain: 'weft', rate_limit_service: rls, ...extra }) });
const listener = (filter: Obj, rateLimits?: Obj[]) =>
  decodeListener(
    wire(TYPE_URL.Listener, {
      name: 'l',
      address: { socket_address: { address: '127.0.0.1', port_value: 15006 } },
      filter_chains: [
        {
          filters: [
            {
              name: 'envoy.filters.network.http_connection_manager',
              typed_config: anyOf(TYPE_URL.HttpConnectionManager, {
                stat_prefix: 'h',
                route_config: {
                  name: 'r',
                  virtual_hosts: [{ name: 'v', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'c', ...(rateLimits ? { rate_limits: rateLimits } : {}) } }] }],
                },
                http_filters: [filter, router],
              }),
            },
          ],
        },
      ],
    }),
  );

test('decoding: defaults as Envoy (enabled/enforced absent = off, global timeout 20 ms)', () => {
  const l = listener(local({ filter_enabled: undefined, filter_enforced: undefined }));
  const c = (l.chains[0].network as HttpNetworkFilter).httpFilters[0].config as LocalRateLimitConfig;
  assert.deepEqual([c.enabled, c.enforced, c.alwaysConsumeDefault, c.asResourceExhausted], [false, false, true, false]);
  const g = (listener(global({})).chains[0].network as HttpNetworkFilter).httpFilters[0].config as GlobalRateLimitConfig;
  assert.equal(g.timeoutMs, 20);
});

const P = 'filter_chains[0].filters[0].typed_config.http_filters[0].typed_config';
const R = 'filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].route.rate_limits[0]';
for (const [what, build, code, field] of [
  ['a zero-capacity bucket', () => listener(local({ token_bucket: { ...bucket, max_tokens: 0 } })), 'E_CONFIG_INVALID', `${P}.token_bucket.max_tokens`],
  ['a fill_interval under 50 ms', () => listener(local({ token_bucket: { ...bucket, fill_interval: { nanos: 10_000_000 } } })), 'E_CONFIG_INVALID', `${P}.token_bucket.fill_interval`],
  ['no fill_interval', () => listener(local({ token_bucket: { max_tokens: 1 } })), 'E_CONFIG_INVALID', `${P}.token_bucket.fill_interval`],
  ['a descriptor bucket of zero', () => listener(local({ descriptors: [{ entries: [{ key: 'k' }], token_bucket: { ...bucket, max_tokens: 0 } }] })), 'E_CONFIG_INVALID', `${P}.descriptors[0].token_bucket.max_tokens`],
  ['a descriptor without entries', () => listener(local({ descriptors: [{ token_bucket: bucket }] })), 'E_CONFIG_INVALID', `${P}.descriptors[0].entries`],
  ['a sampled filter_enforced', () => listener(local({ filter_enforced: { default_value: { numerator: 50, denominator: 'HUNDRED' } } })), 'E_CONFIG_UNSUPPORTED', `${P}.filter_enforced.default_value`],
  ['response_headers_to_add', () => listener(local({ response_headers_to_add: [{ header: { key: 'a', value: 'b' } }] })), 'E_CONFIG_UNSUPPORTED', `${P}.response_headers_to_add`],
  ['per-connection buckets', () => listener(local({ local_rate_limit_per_downstream_connection: true })), 'E_CONFIG_UNSUPPORTED', `${P}.local_rate_limit_per_downstream_connection`],
  ['another rate limit cluster', () => listener(global({ rate_limit_service: { ...rls, grpc_service: { envoy_grpc: { cluster_name: 'redis' } } } })), 'E_CONFIG_UNSUPPORTED', `${P}.rate_limit_service.grpc_service.envoy_grpc.cluster_name`],
  ['google_grpc', () => listener(global({ rate_limit_service: { ...rls, grpc_service: { google_grpc: { target_uri: 'x', stat_prefix: 'y' } } } })), 'E_CONFIG_UNSUPPORTED', `${P}.rate_limit_service.grpc_service.google_grpc`],
  ['no domain', () => listener(global({ domain: '' })), 'E_CONFIG_INVALID', `${P}.domain`],
  ['x-ratelimit headers', () => listener(global({ enable_x_ratelimit_headers: 'DRAFT_VERSION_03' })), 'E_CONFIG_UNSUPPORTED', `${P}.enable_x_ratelimit_headers`],
  ['request_type internal', () => listener(global({ request_type: 'internal' })), 'E_CONFIG_UNSUPPORTED', `${P}.request_type`],
  ['a rate_limits limit override', () => listener(global({}), [{ actions: [{ remote_address: {} }], limit: { dynamic_metadata: { metadata_key: { key: 'k', path: [{ key: 'p' }] } } } }]), 'E_CONFIG_UNSUPPORTED', `${R}.limit`],
  ['a header_value_match action', () => listener(global({}), [{ actions: [{ header_value_match: { descriptor_value: 'v', headers: [{ name: 'a', present_match: true }] } }] }]), 'E_CONFIG_UNSUPPORTED', `${R}.actions[0].header_value_match`],
  ['rate_limits without actions', () => listener(global({}), [{ stage: { value: 1 } }]), 'E_CONFIG_INVALID', `${R}.actions`],
] as const) {
  test(`decoding NACKs ${what}, naming ${field.slice(field.lastIndexOf('.') + 1)}`, () => {
    const message = nack(build, code);
    assert.ok(message.includes(`${field} `), `${message} names ${field}`);
  });
}

test('decoding: a route rate_limits entry is accepted only through the RouteAction allow-list (no stray fields)', () => {
  const l = listener(local({}), [{ actions: [{ generic_key: { descriptor_value: 'v' } }, { request_headers: { header_name: 'X-A', descriptor_key: 'a', skip_if_absent: true } }] }]);
  const route = (l.chains[0].network as HttpNetworkFilter).routeTable!.virtualHosts[0].routes[0].action as RouteAction;
  assert.deepEqual(route.rateLimits, [
    { stage: 0, actions: [{ kind: 'generic_key', key: 'generic_key', value: 'v' }, { kind: 'request_headers', header: 'x-a', key: 'a', skipIfAbsent: true }] },
  ]);
  void ADS;
});

// ---- token buckets ----

test('token bucket: starts full, refills tokens_per_fill per whole interval up to max, says how long until the next fill', () => {
  const spec = { maxTokens: 3, tokensPerFill: 2, fillIntervalMs: 1000 };
  const b = new TokenBucket(spec, 0);
  assert.deepEqual([b.take(spec, 0), b.take(spec, 10), b.take(spec, 20)], [0, 0, 0]);
  assert.equal(b.take(spec, 250), 750);
  assert.equal(b.take(spec, 999), 1);
  assert.deepEqual([b.take(spec, 1000), b.take(spec, 1001), b.take(spec, 1002)], [0, 0, 998], 'one interval: 2 tokens');
  assert.deepEqual([b.take(spec, 10_000), b.take(spec, 10_000), b.take(spec, 10_000), b.take(spec, 10_000) > 0], [0, 0, 0, true], 'capped at max');
  const smaller = { ...spec, maxTokens: 1 };
  const c = new TokenBucket(spec, 0);
  assert.deepEqual([c.take(smaller, 0), c.take(smaller, 0) > 0], [0, true], 'a smaller max clamps the tokens held');
});

test('keyed buckets: bounded, least recently used out first', () => {
  const spec = { maxTokens: 1, tokensPerFill: 1, fillIntervalMs: 60_000 };
  const k = new KeyedBuckets(3);
  for (const key of ['a', 'b', 'c']) assert.equal(k.get(key, spec, 0).take(spec, 0), 0);
  assert.ok(k.get('a', spec, 0).take(spec, 0) > 0, 'a is empty and now most recently used');
  for (let i = 0; i < 1000; i++) k.get(`flood-${i}`, spec, 0);
  assert.equal(k.size, 3);
  assert.equal(k.get('a', spec, 0).take(spec, 0), 0, 'evicted by the flood: a fresh bucket');
});

// ---- the control plane's counters ----

function limiter(yaml: string, max?: number, clock = { now: 0 }) {
  const policies = parseResources(yaml).filter((r) => r.kind === 'TrafficPolicy') as never;
  return { rl: new GlobalRateLimiter(() => policies, max, () => clock.now), clock };
}
const ask = (rl: GlobalRateLimiter, ...entries: [string, string][]) =>
  rl.shouldRateLimit({ domain: 'weft', descriptors: [{ entries: entries.map(([key, value]) => ({ key, value })) }] }) as { overall_code: string; statuses: Obj[] };

test('global limiter: a fixed window per descriptor, aligned on the epoch; unknown services are not limited', () => {
  const { rl, clock } = limiter(policy('{ global: { requests: 2, per: 1m } }'));
  clock.now = 30_000;
  const svc: [string, string] = ['weft.service', 'api.default'];
  assert.deepEqual([ask(rl, svc).overall_code, ask(rl, svc).overall_code], ['OK', 'OK']);
  const over = ask(rl, svc);
  assert.equal(over.overall_code, 'OVER_LIMIT');
  assert.deepEqual(over.statuses[0].duration_until_reset, { seconds: 30, nanos: 0 });
  assert.equal(ask(rl, svc, ['remote_address', '10.0.0.1']).overall_code, 'OK', 'another key, another counter');
  assert.equal(ask(rl, ['weft.service', 'other.default']).overall_code, 'OK');
  assert.equal(ask(rl, ['generic_key', 'x']).overall_code, 'OK');
  clock.now = 60_000;
  assert.equal(ask(rl, svc).overall_code, 'OK', 'a new window');
});

test('global limiter: the counters are bounded', () => {
  const { rl, clock } = limiter(policy('{ global: { requests: 1, per: 1m, by: { header: x-user } } }'), 100);
  for (let i = 0; i < 1000; i++) ask(rl, ['weft.service', 'api.default'], ['header.x-user', `u${i}`]);
  assert.ok(rl.counterCount <= 100, `${rl.counterCount} counters`);
  clock.now = 60_000;
  ask(rl, ['weft.service', 'api.default'], ['header.x-user', 'fresh']);
  assert.equal(rl.counterCount, 1, 'the full map swept expired windows first');
});
