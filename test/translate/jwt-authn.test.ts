// RequestAuthentication → jwt_authn on the callee's inbound HCM: the whole
// filter for each JWKS source, its place before the rate limit filters, which
// services get it, and the JWKS service's cluster reaching the callee's sidecar.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { assertSubset, meshView, resourcesFor, service, sidecar, unpack, type Obj } from './helpers';
import { TYPE_URL } from '../../src/xds/type-urls';

const ra = (name: string, spec: string, ns = 'default') => `apiVersion: weft.dev/v1
kind: RequestAuthentication
metadata: { name: ${name}, namespace: ${ns} }
spec:
${spec}
---
`;

function inboundFilters(yaml: string, svc = 'api'): Obj[] {
  const d = resourcesFor(meshView(yaml), sidecar({ service: svc, appPort: 9000 }));
  const chain = d.listener('inbound').filter_chains[0];
  return unpack(chain.filters[0].typed_config).http_filters;
}

function jwtConfig(yaml: string, svc = 'api'): Obj | undefined {
  const f = inboundFilters(yaml, svc).find((x) => x.name === 'envoy.filters.http.jwt_authn');
  return f && unpack(f.typed_config);
}

const MESH = service('api', 80) + service('auth', 8080) + service('web', 8081);

test('each JWKS source becomes a provider; one rule lets a missing token pass and requires any provider otherwise', () => {
  const yaml =
    MESH +
    ra(
      'jwt',
      `  targetRef: { name: api }
  jwtRules:
    - { issuer: https://a.test, audiences: [api], jwks: { file: /etc/jwks.json } }
    - { issuer: https://b.test, jwks: { inline: '{"keys":[]}' }, clockSkew: 1500ms, fromHeaders: [{ name: X-Token }], forwardOriginalToken: false }
    - { issuer: https://c.test, jwks: { service: auth, port: 8080, path: /keys, cacheDuration: 1m } }`,
    );
  const common = { payload_in_metadata: 'payload' };
  const config = jwtConfig(yaml)!;
  assert.deepEqual(Object.keys(config), ['providers', 'rules']);
  assert.deepEqual(Object.keys(config.providers), ['jwt/0', 'jwt/1', 'jwt/2']);
  assert.equal(config.providers['jwt/1'].forward ?? false, false);
  assert.equal(config.providers['jwt/1'].audiences, undefined);
  assertSubset(config, {
    providers: {
      'jwt/0': { issuer: 'https://a.test', audiences: ['api'], local_jwks: { filename: '/etc/jwks.json' }, forward: true, from_headers: [{ name: 'Authorization', value_prefix: 'Bearer ' }], ...common, clock_skew_seconds: 60 },
      'jwt/1': { issuer: 'https://b.test', local_jwks: { inline_string: '{"keys":[]}' }, from_headers: [{ name: 'X-Token' }], ...common, clock_skew_seconds: 2 },
      'jwt/2': {
        issuer: 'https://c.test',
        remote_jwks: { http_uri: { uri: 'http://auth.default:8080/keys', cluster: 'outbound|8080||auth.default', timeout: { seconds: 5 } }, cache_duration: { seconds: 60 } },
        forward: true,
        from_headers: [{ name: 'Authorization', value_prefix: 'Bearer ' }],
        ...common,
        clock_skew_seconds: 60,
      },
    },
    rules: [{ match: { prefix: '/' }, requires: { requires_any: { requirements: [{ provider_name: 'jwt/0' }, { provider_name: 'jwt/1' }, { provider_name: 'jwt/2' }, { allow_missing: {} }] } } }],
  });
});

test('jwt_authn is the first HTTP filter, before the rate limits and the router', () => {
  const yaml =
    MESH +
    ra('jwt', '  jwtRules: [{ issuer: i, jwks: { file: /j } }]') +
    `apiVersion: weft.dev/v1
kind: TrafficPolicy
metadata: { name: api }
spec:
  targetRef: { name: api }
  rateLimit: { local: { requests: 5, per: 1s } }
`;
  assert.deepEqual(
    inboundFilters(yaml).map((f) => f.name),
    ['envoy.filters.http.jwt_authn', 'envoy.filters.http.local_ratelimit', 'envoy.filters.http.router'],
  );
  assert.equal(inboundFilters(yaml).find((f) => f.name === 'envoy.filters.http.jwt_authn')!.typed_config.type_url, TYPE_URL.JwtAuthentication);
});

test('which services: namespace-wide and targeted policies merge by name; other services and namespaces get none', () => {
  const yaml =
    MESH +
    ra('b-all', '  jwtRules: [{ issuer: all, jwks: { file: /all } }]') +
    ra('a-api', '  targetRef: { name: api }\n  jwtRules: [{ issuer: api, jwks: { file: /api } }]') +
    ra('elsewhere', '  jwtRules: [{ issuer: other, jwks: { file: /o } }]', 'other');
  assert.deepEqual(Object.keys(jwtConfig(yaml)!.providers), ['a-api/0', 'b-all/0']);
  assert.deepEqual(Object.keys(jwtConfig(yaml, 'web')!.providers), ['b-all/0']);
  assert.equal(jwtConfig(MESH), undefined, 'no RequestAuthentication: no filter');
  const d = resourcesFor(meshView(yaml), sidecar({ appPort: 9000 }));
  assert.equal(d.names(TYPE_URL.Listener).includes('inbound'), false, 'a client without a service has no inbound listener');
});

test("the JWKS service's cluster and endpoints reach the callee even when its dependsOn leaves the service out", () => {
  const yaml =
    service('api', 80, 'http', '  dependsOn: [{ name: web }]\n') +
    service('auth', 8080, 'http', '  endpoints: [{ address: 10.0.0.9, port: 8080 }]\n') +
    service('web', 8081) +
    ra('jwt', '  targetRef: { name: api }\n  jwtRules: [{ issuer: i, jwks: { service: auth, port: 8080, path: /keys } }]');
  const d = resourcesFor(meshView(yaml), sidecar({ service: 'api', appPort: 9000 }));
  assert.ok(d.names(TYPE_URL.Cluster).includes('outbound|8080||auth.default'));
  assert.ok(d.names(TYPE_URL.ClusterLoadAssignment).includes('outbound|8080||auth.default'));
  const web = resourcesFor(meshView(yaml.replace('targetRef: { name: api }', 'targetRef: { name: web }')), sidecar({ service: 'api', appPort: 9000 }));
  assert.equal(web.names(TYPE_URL.Cluster).includes('outbound|8080||auth.default'), false, 'not needed: not sent');
});
