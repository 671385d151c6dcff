// AuthorizationPolicy → RBAC filters on the callee's inbound listener.
import { describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { authorizationPolicySpecSchema } from '../../src/config/kinds';
import { decodeListener } from '../../src/proxy/config/decode-listener';
import { translate } from '../../src/translate/translate';
import { TYPE_URL } from '../../src/xds/type-urls';
import { assertSubset, meshView, proxyless, resourcesFor, roundTrip, sidecar, unpack, type Obj } from './helpers';

const APP = `apiVersion: weft.dev/v1
kind: Service
metadata: { name: app }
spec:
  ports:
    - { name: web, port: 8080, protocol: http }
    - { name: db, port: 5432, protocol: tcp }
---
`;

function policy(name: string, spec: string, namespace = 'default'): string {
  return `apiVersion: weft.dev/v1
kind: AuthorizationPolicy
metadata: { name: ${name}, namespace: ${namespace} }
spec:
${spec}
---
`;
}

/** The inbound chain of a port: its network filters (names) and, for HTTP, the HCM's http filters. */
function inbound(yaml: string, port: number, opts: { trustDomain?: string } = {}): { network: Obj[]; http: Obj[] } {
  const set = roundTrip(translate(meshView(APP + yaml), sidecar({ service: 'app' }), opts));
  const l = set.get(TYPE_URL.Listener)!.get('inbound')!;
  const chain = l.filter_chains.find((c: Obj) => c.filter_chain_match.destination_port.value === port);
  const filters: Obj[] = chain.filters;
  const last = filters[filters.length - 1];
  const http = last.typed_config.type_url === TYPE_URL.HttpConnectionManager ? unpack(last.typed_config).http_filters : [];
  return { network: filters, http };
}

const rbacOf = (f: Obj): Obj => unpack(f.typed_config).rules;

describe('AuthorizationPolicy translation', () => {
  test('no policy: no RBAC filter', () => {
    const { http, network } = inbound('', 8080);
    assert.deepEqual(http.map((f) => f.name), ['envoy.filters.http.router']);
    assert.equal(inbound('', 5432).network.length, 1);
    assert.equal(network.length, 1);
  });

  test('HTTP port: DENY filter, then ALLOW, then the router; principals and permissions', () => {
    const yaml =
      policy(
        'no-evil',
        `  action: DENY
  rules:
    - from: [{ source: { namespaces: [evil] } }]
    - when: [{ key: "request.headers[x-block]", values: ["yes"] }]`,
      ) +
      policy(
        'readers',
        `  targetRef: { name: app }
  action: ALLOW
  rules:
    - from:
        - source: { principals: ["spiffe://cluster.local/ns/default/sa/web"], services: [shop, other/cart] }
        - source: { requestPrincipals: ["https://issuer.example/alice"] }
      to: [{ operation: { methods: [GET, HEAD], paths: [/api/*, /health], hosts: ["App.local*"] } }]
      when: [{ key: "request.auth.claims[groups]", values: [admin] }]`,
      );
    const { http } = inbound(yaml, 8080);
    assert.deepEqual(
      http.map((f) => f.name),
      ['envoy.filters.http.rbac.deny', 'envoy.filters.http.rbac.allow', 'envoy.filters.http.router'],
    );
    assert.equal(http[0].typed_config.type_url, TYPE_URL.HttpRbac);
    const deny = rbacOf(http[0]);
    assert.equal(deny.action, 'DENY');
    assert.deepEqual(Object.keys(deny.policies), ['default/no-evil[0]', 'default/no-evil[1]']);
    assertSubset(deny.policies['default/no-evil[0]'], {
      permissions: [{ any: true }],
      principals: [{ authenticated: { principal_name: { prefix: 'spiffe://cluster.local/ns/evil/sa/' } } }],
    });
    assertSubset(deny.policies['default/no-evil[1]'], {
      permissions: [{ header: { name: 'x-block', string_match: { exact: 'yes' } } }],
      principals: [{ any: true }],
    });
    const allow = rbacOf(http[1]);
    assert.equal(allow.action, 'ALLOW');
    const p = allow.policies['default/readers[0]'];
    assertSubset(p.principals, [
      {
        and_ids: {
          ids: [
            { authenticated: { principal_name: { exact: 'spiffe://cluster.local/ns/default/sa/web' } } },
            {
              or_ids: {
                ids: [
                  { authenticated: { principal_name: { exact: 'spiffe://cluster.local/ns/default/sa/shop' } } },
                  { authenticated: { principal_name: { exact: 'spiffe://cluster.local/ns/other/sa/cart' } } },
                ],
              },
            },
          ],
        },
      },
      {
        and_ids: {
          ids: [
            { metadata: { filter: 'envoy.filters.http.jwt_authn', path: [{ key: 'payload' }, { key: 'iss' }], value: { string_match: { exact: 'https://issuer.example' } } } },
            { metadata: { filter: 'envoy.filters.http.jwt_authn', path: [{ key: 'payload' }, { key: 'sub' }], value: { string_match: { exact: 'alice' } } } },
          ],
        },
      },
    ]);
    assertSubset(p.permissions, [
      {
        and_rules: {
          rules: [
            { or_rules: { rules: [{ url_path: { path: { prefix: '/api/' } } }, { url_path: { path: { exact: '/health' } } }] } },
            { or_rules: { rules: [{ header: { name: ':method', string_match: { exact: 'GET' } } }, { header: { name: ':method', string_match: { exact: 'HEAD' } } }] } },
            { header: { name: ':authority', string_match: { prefix: 'app.local' } } },
            {
              metadata: {
                filter: 'envoy.filters.http.jwt_authn',
                path: [{ key: 'payload' }, { key: 'groups' }],
                value: { or_match: { value_matchers: [{ string_match: { exact: 'admin' } }, { list_match: { one_of: { string_match: { exact: 'admin' } } } }] } },
              },
            },
          ],
        },
      },
    ]);
  });

  test('an ALLOW policy with no rules: an ALLOW filter with no policy (default deny); a DENY one adds nothing', () => {
    const { http } = inbound(policy('lockdown', '  action: ALLOW') + policy('nothing', '  action: DENY'), 8080);
    assert.deepEqual(http.map((f) => f.name), ['envoy.filters.http.rbac.allow', 'envoy.filters.http.router']);
    const rules = rbacOf(http[0]);
    assert.equal(rules.action, 'ALLOW');
    assert.deepEqual(rules.policies ?? {}, {});
  });

  test('ports are resolved per chain; not*: not_id / not_rule', () => {
    const yaml = policy(
      'ports',
      `  action: ALLOW
  rules:
    - to: [{ operation: { ports: [8080], notPaths: [/admin/*] } }]
      from: [{ source: { notPrincipals: ["*"] } }]
    - to: [{ operation: { notPorts: [8080] } }]`,
    );
    const web = rbacOf(inbound(yaml, 8080).http[0]);
    assert.deepEqual(Object.keys(web.policies), ['default/ports[0]']);
    assertSubset(web.policies['default/ports[0]'], {
      permissions: [{ not_rule: { url_path: { path: { prefix: '/admin/' } } } }],
      principals: [{ not_id: { authenticated: {} } }],
    });
    // TCP: rule 0 uses notPaths (HTTP only) in an ALLOW policy: left out; rule 1 applies (not 8080).
    const db = inbound(yaml, 5432).network;
    assert.deepEqual(db.map((f) => f.name), ['envoy.filters.network.rbac.allow', 'envoy.filters.network.tcp_proxy']);
    const tcp = unpack(db[0].typed_config);
    assert.equal(tcp.stat_prefix, 'envoy.filters.network.rbac.allow.5432');
    assert.deepEqual(Object.keys(tcp.rules.policies), ['default/ports[1]']);
  });

  test('TCP port: a DENY rule drops its HTTP-only conditions (denies more)', () => {
    const yaml = policy(
      'deny-get',
      `  action: DENY
  rules:
    - from: [{ source: { namespaces: [evil], requestPrincipals: ["*"] } }]
      to: [{ operation: { methods: [GET] } }]`,
    );
    const db = inbound(yaml, 5432).network;
    assert.deepEqual(db.map((f) => f.name), ['envoy.filters.network.rbac.deny', 'envoy.filters.network.tcp_proxy']);
    assertSubset(unpack(db[0].typed_config).rules.policies['default/deny-get[0]'], {
      permissions: [{ any: true }],
      principals: [{ authenticated: { principal_name: { prefix: 'spiffe://cluster.local/ns/evil/sa/' } } }],
    });
  });

  test('scope: another service or namespace is not affected; the trust domain is an option', () => {
    const other = policy('elsewhere', '  action: ALLOW', 'other') + policy('for-web', '  targetRef: { name: web }\n  action: ALLOW');
    const web = `apiVersion: weft.dev/v1\nkind: Service\nmetadata: { name: web }\nspec: { ports: [{ name: p, port: 80, protocol: http }] }\n---\n`;
    assert.deepEqual(inbound(web + other, 8080).http.map((f) => f.name), ['envoy.filters.http.router']);
    const td = inbound(policy('ns', '  action: ALLOW\n  rules: [{ from: [{ source: { namespaces: [a] } }] }]'), 8080, { trustDomain: 'example.org' });
    assertSubset(rbacOf(td.http[0]).policies['default/ns[0]'].principals, [
      { authenticated: { principal_name: { prefix: 'spiffe://example.org/ns/a/sa/' } } },
    ]);
  });

  test('the sidecar decodes what the translator writes', () => {
    const yaml =
      policy('d', '  action: DENY\n  rules: [{ from: [{ source: { notNamespaces: [default] } }] }]') +
      policy(
        'a',
        `  action: ALLOW
  rules:
    - to: [{ operation: { paths: ["*.js", "*"], notMethods: [DELETE], ports: [5432] } }]
      when: [{ key: "request.auth.claims[realm][role]", notValues: [guest] }, { key: x-env, values: ["*"] }]`,
      );
    const d = resourcesFor(meshView(APP + yaml), sidecar({ service: 'app' }));
    const l = decodeListener(d.listener('inbound'));
    // Per port a TLS and a plaintext chain (permissive), plus the TLS chain of the listener's own port.
    assert.equal(l.chains.length, 5);
  });
});

describe('proxyless gRPC servers', () => {
  const GREETER = `apiVersion: weft.dev/v1
kind: Service
metadata: { name: greeter }
spec:
  ports: [{ name: grpc, port: 50051, protocol: grpc, targetPort: 9000 }]
---
`;
  const serverHcm = (yaml: string, host = '0.0.0.0') => {
    const d = resourcesFor(meshView(GREETER + yaml), proxyless({ service: 'greeter' }));
    const l = d.listener(`weft.dev/grpc/lds/inbound/${host}:9000`);
    assertSubset(l.address, { socket_address: { address: host.replace(/[[\]]/g, ''), port_value: 9000 } });
    return unpack(l.default_filter_chain.filters[0].typed_config);
  };

  test('a server Listener per bind address: inline route with non_forwarding_action, router', () => {
    for (const host of ['0.0.0.0', '127.0.0.1', '[::]']) {
      const hcm = serverHcm('', host);
      assert.deepEqual(hcm.http_filters.map((f: Obj) => f.name), ['envoy.filters.http.router']);
      assertSubset(hcm.route_config.virtual_hosts[0].routes[0], { match: { prefix: '' }, non_forwarding_action: {} });
    }
    // A client with no service of its own gets no server Listener.
    const d = resourcesFor(meshView(GREETER), proxyless());
    assert.ok(!d.names(TYPE_URL.Listener).some((n) => n.startsWith('weft.dev/grpc/lds/inbound/')));
  });

  test('RBAC filters before the router; JWT conditions fail closed (grpc-js cannot read metadata)', () => {
    const hcm = serverHcm(
      policy('d', '  action: DENY\n  rules: [{ from: [{ source: { requestPrincipals: ["*"], namespaces: [evil] } }] }]') +
        policy(
          'a',
          `  action: ALLOW
  rules:
    - from: [{ source: { namespaces: [default] } }]
    - when: [{ key: "request.auth.claims[role]", notValues: [guest] }]`,
        ),
    );
    assert.deepEqual(
      hcm.http_filters.map((f: Obj) => f.name),
      ['envoy.filters.http.rbac.deny', 'envoy.filters.http.rbac.allow', 'envoy.filters.http.router'],
    );
    assertSubset(rbacOf(hcm.http_filters[0]).policies['default/d[0]'].principals, [
      { authenticated: { principal_name: { prefix: 'spiffe://cluster.local/ns/evil/sa/' } } },
    ]);
    assert.deepEqual(Object.keys(rbacOf(hcm.http_filters[1]).policies), ['default/a[0]']);
  });
});

describe('AuthorizationPolicy schema', () => {
  const bad: [string, unknown, string][] = [
    ['a principal that is not a SPIFFE ID', { action: 'ALLOW', rules: [{ from: [{ source: { principals: ['web'] } }] }] }, 'rules.0.from.0.source.principals.0'],
    ['a "*" in the middle', { action: 'ALLOW', rules: [{ from: [{ source: { principals: ['spiffe://a/*/b'] } }] }] }, 'rules.0.from.0.source.principals.0'],
    ['a request principal without "/"', { action: 'ALLOW', rules: [{ from: [{ source: { requestPrincipals: ['alice'] } }] }] }, 'rules.0.from.0.source.requestPrincipals.0'],
    ['a lower-case method', { action: 'ALLOW', rules: [{ to: [{ operation: { methods: ['get'] } }] }] }, 'rules.0.to.0.operation.methods.0'],
    ['a path with "*" inside', { action: 'ALLOW', rules: [{ to: [{ operation: { paths: ['/a/*/b'] } }] }] }, 'rules.0.to.0.operation.paths.0'],
    ['an unknown when key', { action: 'ALLOW', rules: [{ when: [{ key: 'source.ip', values: ['1'] }] }] }, 'rules.0.when.0.key'],
    ['a when without values', { action: 'ALLOW', rules: [{ when: [{ key: 'x-a' }] }] }, 'rules.0.when.0'],
    ['an unknown source field', { action: 'ALLOW', rules: [{ from: [{ source: { ipBlocks: ['1.2.3.4'] } }] }] }, 'rules.0.from.0.source'],
    ['another action', { action: 'AUDIT' }, 'action'],
  ];
  for (const [what, spec, path] of bad) {
    test(`${what}: an error at spec.${path}`, () => {
      const r = authorizationPolicySpecSchema.safeParse(spec);
      assert.equal(r.success, false);
      assert.ok(
        r.error!.issues.some((i) => i.path.join('.') === path),
        `paths: ${r.error!.issues.map((i) => i.path.join('.')).join(', ')}`,
      );
    });
  }
});
