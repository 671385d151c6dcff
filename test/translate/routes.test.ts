// Routes: Gateway API HTTPRoute/GRPCRoute → Envoy RouteConfiguration, for a
// sidecar (`outbound` route config) and a proxyless client (one per port).
import { describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { assertSubset, meshView, proxyless, resourcesFor, routeNamed, service, sidecar, unpack, type Obj } from './helpers';

const GREETERS =
  service('greeter', 50051, 'grpc') + service('greeter-v1', 50051, 'grpc') + service('greeter-v2', 50051, 'grpc');
const WEBS = service('web', 8080) + service('web-v2', 8080) + service('web-mirror', 8080);

/** The routes of web:8080 for a sidecar. */
function webRoutes(routesYaml: string, node = sidecar()): Obj[] {
  return resourcesFor(meshView(WEBS + routesYaml), node).routes('outbound', 'web.default:8080');
}

function httpRoute(rules: string, name = 'r', extra = ''): string {
  return `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: ${name} }
spec:
  parentRefs: [{ kind: Service, name: web, port: 8080 }]
${extra}  rules:
${rules}
---
`;
}

describe('canary split', () => {
  const canary = `apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: { name: greeter-canary }
spec:
  parentRefs: [{ kind: Service, name: greeter, port: 50051 }]
  rules:
    - backendRefs:
        - { name: greeter-v1, port: 50051, weight: 80 }
        - { name: greeter-v2, port: 50051, weight: 20 }
`;
  const expected = {
    match: { prefix: '/' },
    route: {
      weighted_clusters: {
        clusters: [
          { name: 'outbound|50051||greeter-v1.default', weight: { value: 80 } },
          { name: 'outbound|50051||greeter-v2.default', weight: { value: 20 } },
        ],
      },
    },
  };
  for (const [label, node, config, vhost] of [
    ['sidecar', sidecar(), 'outbound', 'greeter.default:50051'],
    ['proxyless', proxyless(), 'greeter.default:50051', 'greeter.default:50051'],
  ] as const) {
    test(`80/20 GRPCRoute → weighted_clusters (${label})`, () => {
      const routes = resourcesFor(meshView(GREETERS + canary), node).routes(config, vhost);
      assert.equal(routes.length, 1);
      assertSubset(routes[0], { name: 'GRPCRoute/default/greeter-canary/0/0', ...expected });
    });
  }
});

describe('HTTPRoute matches', () => {
  const cases: { name: string; match: string; sidecar: Obj; proxyless?: Obj | null }[] = [
    { name: 'exact path', match: '{ path: { type: Exact, value: /a/b } }', sidecar: { path: '/a/b' } },
    {
      name: 'path prefix: whole segments',
      match: '{ path: { type: PathPrefix, value: /api } }',
      sidecar: { path_separated_prefix: '/api' },
      proxyless: { safe_regex: { regex: '/api(/.*)?' } },
    },
    {
      name: 'a trailing slash does not change a prefix',
      match: '{ path: { type: PathPrefix, value: /api/ } }',
      sidecar: { path_separated_prefix: '/api' },
    },
    { name: 'root prefix', match: '{ path: { type: PathPrefix, value: / } }', sidecar: { prefix: '/' } },
    { name: 'no path', match: '{ headers: [{ name: X-A, value: "1" }] }', sidecar: { prefix: '/' } },
    { name: 'regex path', match: '{ path: { type: RegularExpression, value: "/v[0-9]+/.*" } }', sidecar: { safe_regex: { regex: '/v[0-9]+/.*' } } },
    {
      name: 'headers, exact and regex, names lowercased',
      match: '{ headers: [{ name: X-User, value: alice }, { type: RegularExpression, name: x-tier, value: "gold|silver" }] }',
      sidecar: {
        headers: [
          { name: 'x-user', string_match: { exact: 'alice' } },
          { name: 'x-tier', string_match: { safe_regex: { regex: 'gold|silver' } } },
        ],
      },
    },
    {
      name: 'query params',
      match: '{ queryParams: [{ name: debug, value: "1" }, { type: RegularExpression, name: v, value: "[0-9]+" }] }',
      sidecar: {
        query_parameters: [
          { name: 'debug', string_match: { exact: '1' } },
          { name: 'v', string_match: { safe_regex: { regex: '[0-9]+' } } },
        ],
      },
    },
    {
      name: 'method is a :method header',
      match: '{ method: GET }',
      sidecar: { prefix: '/', headers: [{ name: ':method', string_match: { exact: 'GET' } }] },
      // gRPC calls are POSTs without :method metadata: a GET match can never apply.
      proxyless: null,
    },
    {
      name: 'a POST match is every gRPC call',
      match: '{ method: POST }',
      sidecar: { headers: [{ name: ':method', string_match: { exact: 'POST' } }] },
      proxyless: { prefix: '/' },
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const yaml = httpRoute(`    - matches: [${c.match}]\n      backendRefs: [{ name: web-v2, port: 8080 }]`);
      const routes = webRoutes(yaml);
      assert.equal(routes.length, 1);
      assertSubset(routes[0].match, c.sidecar);
      if (c.proxyless === undefined) return;
      const p = resourcesFor(meshView(WEBS + yaml), proxyless()).routes('web.default:8080', 'web.default:8080');
      if (c.proxyless === null) assert.equal(p.length, 0);
      else {
        assertSubset(p[0].match, c.proxyless);
        if (!c.match.includes('method: POST')) return;
        assert.equal(p[0].match.headers, undefined, 'no :method condition for gRPC');
      }
    });
  }
});

test('precedence: exact > regex > longest prefix > method > most headers > most query params, then name and order', () => {
  const yaml =
    httpRoute(
      `    - matches: [{ path: { type: PathPrefix, value: / } }]
      backendRefs: [{ name: web-v2, port: 8080 }]
    - matches:
        - { path: { type: PathPrefix, value: /a } }
        - { path: { type: PathPrefix, value: /a/b } }
        - { path: { type: Exact, value: /a } }
        - { path: { type: RegularExpression, value: "/a.*" } }
        - { path: { type: PathPrefix, value: /a }, queryParams: [{ name: q, value: "1" }] }
        - { path: { type: PathPrefix, value: /a }, headers: [{ name: h, value: "1" }] }
        - { path: { type: PathPrefix, value: /a }, headers: [{ name: h, value: "1" }, { name: i, value: "2" }] }
        - { path: { type: PathPrefix, value: /a }, method: PUT }
      backendRefs: [{ name: web-v2, port: 8080 }]`,
      'b-route',
    ) +
    httpRoute(`    - matches: [{ path: { type: PathPrefix, value: /a } }]\n      backendRefs: [{ name: web, port: 8080 }]`, 'a-route');
  const names = webRoutes(yaml).map((r) => r.name);
  assert.deepEqual(names, [
    'HTTPRoute/default/b-route/1/2', // exact
    'HTTPRoute/default/b-route/1/3', // regex
    'HTTPRoute/default/b-route/1/1', // /a/b, the longest prefix
    'HTTPRoute/default/b-route/1/7', // /a with a method
    'HTTPRoute/default/b-route/1/6', // /a with two headers
    'HTTPRoute/default/b-route/1/5', // /a with one header
    'HTTPRoute/default/b-route/1/4', // /a with a query param
    'HTTPRoute/default/a-route/0/0', // plain /a: a-route before b-route by name
    'HTTPRoute/default/b-route/1/0',
    'HTTPRoute/default/b-route/0/0', // the root prefix last
  ]);
});

describe('filters', () => {
  test('request and response header modifiers', () => {
    const [route] = webRoutes(
      httpRoute(`    - filters:
        - type: RequestHeaderModifier
          requestHeaderModifier:
            set: [{ name: x-env, value: prod }]
            add: [{ name: x-trace, value: "on" }]
            remove: [x-debug]
        - type: ResponseHeaderModifier
          responseHeaderModifier: { set: [{ name: x-served-by, value: weft }], remove: [server] }
      backendRefs: [{ name: web-v2, port: 8080 }]`),
    );
    assertSubset(route, {
      request_headers_to_add: [
        { header: { key: 'x-env', value: 'prod' }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' },
        { header: { key: 'x-trace', value: 'on' }, append_action: 'APPEND_IF_EXISTS_OR_ADD' },
      ],
      request_headers_to_remove: ['x-debug'],
      response_headers_to_add: [{ header: { key: 'x-served-by', value: 'weft' }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' }],
      response_headers_to_remove: ['server'],
    });
  });

  const rewrites: { name: string; match: string; rewrite: string; expect: Obj }[] = [
    {
      name: 'hostname',
      match: '{ path: { type: PathPrefix, value: / } }',
      rewrite: '{ hostname: api.internal }',
      expect: { host_rewrite_literal: 'api.internal' },
    },
    {
      name: 'full path',
      match: '{ path: { type: PathPrefix, value: /old } }',
      rewrite: '{ path: { type: ReplaceFullPath, replaceFullPath: /new } }',
      expect: { regex_rewrite: { pattern: { regex: '^/.*$' }, substitution: '/new' } },
    },
    {
      name: 'prefix → prefix',
      match: '{ path: { type: PathPrefix, value: /old/ } }',
      rewrite: '{ path: { type: ReplacePrefixMatch, replacePrefixMatch: /new/ } }',
      expect: { prefix_rewrite: '/new' },
    },
    {
      name: 'prefix → "/" (no double slash)',
      match: '{ path: { type: PathPrefix, value: /old } }',
      rewrite: '{ path: { type: ReplacePrefixMatch, replacePrefixMatch: / } }',
      expect: { regex_rewrite: { pattern: { regex: '^/old/*' }, substitution: '/' } },
    },
    {
      name: 'root prefix → a prefix',
      match: '{ path: { type: PathPrefix, value: / } }',
      rewrite: '{ path: { type: ReplacePrefixMatch, replacePrefixMatch: /v2 } }',
      expect: { prefix_rewrite: '/v2/' },
    },
  ];
  for (const c of rewrites) {
    test(`URLRewrite: ${c.name}`, () => {
      const [route] = webRoutes(
        httpRoute(`    - matches: [${c.match}]
      filters: [{ type: URLRewrite, urlRewrite: ${c.rewrite} }]
      backendRefs: [{ name: web-v2, port: 8080 }]`),
      );
      assertSubset(route.route, { cluster: 'outbound|8080||web-v2.default', ...c.expect });
    });
  }

  test('RequestMirror → request_mirror_policies (percent as runtime_fraction)', () => {
    const [route] = webRoutes(
      httpRoute(`    - filters:
        - { type: RequestMirror, requestMirror: { backendRef: { name: web-mirror, port: 8080 }, percent: 25 } }
        - { type: RequestMirror, requestMirror: { backendRef: { name: web-v2 } } }
        - { type: RequestMirror, requestMirror: { backendRef: { name: nowhere, port: 8080 } } }
      backendRefs: [{ name: web, port: 8080 }]`),
    );
    assertSubset(route.route.request_mirror_policies, [
      { cluster: 'outbound|8080||web-mirror.default', runtime_fraction: { default_value: { numerator: 25 } } },
      { cluster: 'outbound|8080||web-v2.default' },
    ]);
    assert.equal(route.route.request_mirror_policies[1].runtime_fraction, undefined, 'no percent: every request');
  });

  test('RequestRedirect → redirect', () => {
    const routes = webRoutes(
      httpRoute(`    - matches: [{ path: { type: PathPrefix, value: /old } }]
      filters:
        - type: RequestRedirect
          requestRedirect:
            scheme: https
            hostname: example.com
            port: 8443
            path: { type: ReplacePrefixMatch, replacePrefixMatch: /new }
            statusCode: 301
    - matches: [{ path: { type: Exact, value: /moved } }]
      filters: [{ type: RequestRedirect, requestRedirect: { path: { type: ReplaceFullPath, replaceFullPath: /here } } }]`),
    );
    assertSubset(routeNamed(routes, 'HTTPRoute/default/r/0/0'), {
      redirect: {
        scheme_redirect: 'https',
        host_redirect: 'example.com',
        port_redirect: 8443,
        prefix_rewrite: '/new',
        response_code: 'MOVED_PERMANENTLY',
      },
    });
    assertSubset(routeNamed(routes, 'HTTPRoute/default/r/1/0'), {
      redirect: { path_redirect: '/here', response_code: 'FOUND' },
    });
    assert.equal(routeNamed(routes, 'HTTPRoute/default/r/1/0').route, undefined);
  });
});

describe('rules without a usable backend answer locally', () => {
  const zeroWeights = httpRoute(`    - backendRefs:
        - { name: web-v2, port: 8080, weight: 0 }
        - { name: web-mirror, port: 8080, weight: 0 }`);

  test('all weights 0: direct_response 500 (HTTPRoute)', () => {
    const [route] = webRoutes(zeroWeights);
    assertSubset(route, { direct_response: { status: 500 } });
    assert.equal(route.route, undefined);
  });

  test('weight-0 and unknown backends are dropped; the rest keep their weights', () => {
    const [route] = webRoutes(
      httpRoute(`    - backendRefs:
        - { name: web-v2, port: 8080, weight: 0 }
        - { name: missing, port: 8080, weight: 5 }
        - { name: web, port: 9999, weight: 5 }
        - { name: web-mirror, port: 8080, weight: 3 }`),
    );
    assertSubset(route.route, { cluster: 'outbound|8080||web-mirror.default' });
  });

  test('no backendRefs at all: 500', () => {
    const [route] = webRoutes(httpRoute('    - matches: [{ path: { type: Exact, value: /gone } }]'));
    assertSubset(route, { direct_response: { status: 500 } });
  });

  test('GRPCRoute: 503, which gRPC reads as UNAVAILABLE', () => {
    const yaml =
      GREETERS +
      `apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: { name: off }
spec:
  parentRefs: [{ kind: Service, name: greeter }]
  rules: [{ backendRefs: [{ name: greeter-v1, port: 50051, weight: 0 }] }]
`;
    const [route] = resourcesFor(meshView(yaml), sidecar()).routes('outbound', 'greeter.default:50051');
    assertSubset(route, { direct_response: { status: 503 } });

    // grpc-js rejects direct_response: the proxyless route aborts through the fault filter.
    const [p] = resourcesFor(meshView(yaml), proxyless()).routes('greeter.default:50051', 'greeter.default:50051');
    assertSubset(p.route, { cluster: 'outbound|50051||greeter.default' });
    const abort = unpack(p.typed_per_filter_config['envoy.filters.http.fault']);
    assertSubset(abort, { abort: { grpc_status: 14, percentage: { numerator: 100 } } });
  });

  test('proxyless: an HTTPRoute 500 is UNKNOWN, a redirect UNKNOWN too', () => {
    const yaml =
      service('api', 9090, 'http2') +
      `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: r }
spec:
  parentRefs: [{ kind: Service, name: api }]
  rules:
    - matches: [{ path: { type: Exact, value: /a } }]
    - matches: [{ path: { type: Exact, value: /b } }]
      filters: [{ type: RequestRedirect, requestRedirect: { hostname: x } }]
`;
    const routes = resourcesFor(meshView(yaml), proxyless()).routes('api.default:9090', 'api.default:9090');
    for (const r of routes) {
      assert.equal(r.redirect, undefined);
      assert.equal(unpack(r.typed_per_filter_config['envoy.filters.http.fault']).abort.grpc_status, 2);
    }
  });
});

describe('GRPCRoute method matches', () => {
  const cases: [string, Obj][] = [
    ['{ service: shop.Payment, method: Charge }', { path: '/shop.Payment/Charge' }],
    ['{ service: shop.Payment }', { prefix: '/shop.Payment/' }],
    ['{ method: Charge }', { safe_regex: { regex: '/[^/]+/Charge' } }],
    ['{ type: RegularExpression, service: "shop\\\\..*", method: "Get.*" }', { safe_regex: { regex: '/shop\\..*/Get.*' } }],
    ['{ type: RegularExpression, method: "Get.*" }', { safe_regex: { regex: '/[^/]+/Get.*' } }],
  ];
  for (const [method, expected] of cases) {
    test(method, () => {
      const yaml =
        GREETERS +
        `apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: { name: m }
spec:
  parentRefs: [{ kind: Service, name: greeter }]
  rules:
    - matches: [{ method: ${method}, headers: [{ name: X-Canary, value: "yes" }] }]
      backendRefs: [{ name: greeter-v2 }]
`;
      for (const node of [sidecar(), proxyless()]) {
        const d = resourcesFor(meshView(yaml), node);
        const routes = node.role === 'sidecar' ? d.routes('outbound', 'greeter.default:50051') : d.routes('greeter.default:50051', 'greeter.default:50051');
        assertSubset(routes[0].match, { ...expected, headers: [{ name: 'x-canary', string_match: { exact: 'yes' } }] });
        assertSubset(routes[0].route, { cluster: 'outbound|50051||greeter-v2.default' });
      }
    });
  }

  test('exact methods order before a service prefix, which orders before everything else', () => {
    const yaml =
      GREETERS +
      `apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: { name: m }
spec:
  parentRefs: [{ kind: Service, name: greeter }]
  rules:
    - backendRefs: [{ name: greeter-v1 }]
    - matches: [{ method: { service: helloworld.Greeter } }]
      backendRefs: [{ name: greeter-v1 }]
    - matches: [{ method: { service: helloworld.Greeter, method: SayHello } }]
      backendRefs: [{ name: greeter-v2 }]
`;
    const routes = resourcesFor(meshView(yaml), proxyless()).routes('greeter.default:50051', 'greeter.default:50051');
    assert.deepEqual(
      routes.map((r) => r.name),
      ['GRPCRoute/default/m/2/0', 'GRPCRoute/default/m/1/0', 'GRPCRoute/default/m/0/0'],
    );
  });
});

describe('timeouts', () => {
  test('rule timeouts: request → timeout and max_stream_duration, backendRequest → per_try_timeout', () => {
    const [route] = webRoutes(
      httpRoute(`    - timeouts: { request: 2s, backendRequest: 500ms }
      backendRefs: [{ name: web-v2, port: 8080 }]`),
    );
    assertSubset(route.route, {
      timeout: { seconds: 2 },
      max_stream_duration: { max_stream_duration: { seconds: 2 } },
      retry_policy: { per_try_timeout: { nanos: 500_000_000 } },
    });
    // A per-try timeout alone retries nothing: no retry_on, and no num_retries (grpc-js rejects 0).
    assert.equal(route.route.retry_policy.retry_on, undefined);
    assert.equal(route.route.retry_policy.num_retries, undefined);
  });

  test('no timeout anywhere: 0 (none), not Envoy\'s implicit 15s', () => {
    const routes = resourcesFor(meshView(WEBS), sidecar()).routes('outbound', 'web.default:8080');
    assertSubset(routes, [{ name: 'default', match: { prefix: '/' }, route: { cluster: 'outbound|8080||web.default', timeout: {} } }]);
    assert.equal(routes[0].route.max_stream_duration, undefined);
  });
});

describe('virtual hosts of the sidecar', () => {
  test('domains: short name in the node namespace, host:port, .svc; the bare name only for the default port', () => {
    const yaml =
      `apiVersion: weft.dev/v1
kind: Service
metadata: { name: multi }
spec:
  ports: [{ name: a, port: 9000, protocol: http }, { name: b, port: 9100, protocol: grpc }, { name: t, port: 5432, protocol: tcp }]
---
apiVersion: weft.dev/v1
kind: Service
metadata: { name: far, namespace: other }
spec:
  ports: [{ name: a, port: 80, protocol: http }]
`;
    const rc = resourcesFor(meshView(yaml), sidecar()).routeConfig('outbound');
    const byName = Object.fromEntries(rc.virtual_hosts.map((v: Obj) => [v.name, v.domains]));
    assert.deepEqual(Object.keys(byName), ['multi.default:9000', 'multi.default:9100', 'far.other:80']);
    assert.deepEqual(byName['multi.default:9000'], [
      'multi',
      'multi:9000',
      'multi.default',
      'multi.default:9000',
      'multi.default.svc',
      'multi.default.svc:9000',
    ]);
    assert.deepEqual(byName['multi.default:9100'], ['multi:9100', 'multi.default:9100', 'multi.default.svc:9100']);
    assert.deepEqual(byName['far.other:80'], ['far.other', 'far.other:80', 'far.other.svc', 'far.other.svc:80']);
  });

  test('route hostnames join the virtual host; a hostname two routes claim goes to the first', () => {
    const yaml =
      WEBS +
      httpRoute(`    - backendRefs: [{ name: web-v2, port: 8080 }]`, 'r', '  hostnames: [www.example.com]\n') +
      `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: mirror-route }
spec:
  parentRefs: [{ kind: Service, name: web-mirror }]
  hostnames: [www.example.com, web]
  rules: [{ backendRefs: [{ name: web-mirror }] }]
`;
    const rc = resourcesFor(meshView(yaml), sidecar()).routeConfig('outbound');
    const byName = Object.fromEntries(rc.virtual_hosts.map((v: Obj) => [v.name, v.domains]));
    assert.ok(byName['web.default:8080'].includes('www.example.com'));
    assert.ok(byName['web.default:8080'].includes('www.example.com:8080'));
    assert.ok(!byName['web-mirror.default:8080'].includes('www.example.com'));
    assert.ok(!byName['web-mirror.default:8080'].includes('web'), '"web" is the service web\'s name');
    const all = rc.virtual_hosts.flatMap((v: Obj) => v.domains);
    assert.equal(new Set(all).size, all.length, 'no domain twice');
  });
});

describe('GAMMA attachment', () => {
  const consumer = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: mine, namespace: team-a }
spec:
  parentRefs: [{ kind: Service, name: web, namespace: default }]
  rules: [{ backendRefs: [{ name: web-mirror, namespace: default, port: 8080 }] }]
---
`;
  const producer = httpRoute('    - backendRefs: [{ name: web-v2, port: 8080 }]', 'theirs');

  test('a producer route (the service namespace) applies to every client', () => {
    const routes = resourcesFor(meshView(WEBS + producer + consumer), sidecar({ namespace: 'team-b' })).routes('outbound', 'web.default:8080');
    assert.deepEqual(routes.map((r) => r.name), ['HTTPRoute/default/theirs/0/0']);
  });

  test('a consumer route applies to its own namespace and replaces the producer routes there', () => {
    const routes = resourcesFor(meshView(WEBS + producer + consumer), sidecar({ namespace: 'team-a' })).routes('outbound', 'web.default:8080');
    assert.deepEqual(routes.map((r) => r.name), ['HTTPRoute/team-a/mine/0/0']);
    assertSubset(routes[0].route, { cluster: 'outbound|8080||web-mirror.default' });
  });

  test('a parentRef port picks one port; without a port the route takes every HTTP port', () => {
    const yaml = `apiVersion: weft.dev/v1
kind: Service
metadata: { name: two }
spec:
  ports: [{ name: a, port: 1000, protocol: http }, { name: b, port: 2000, protocol: http }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: one-port }
spec:
  parentRefs: [{ kind: Service, name: two, port: 2000 }]
  rules: [{ matches: [{ path: { type: Exact, value: /x } }], backendRefs: [{ name: two }] }]
`;
    const d = resourcesFor(meshView(yaml), sidecar());
    assert.equal(d.routes('outbound', 'two.default:1000')[0].name, 'default');
    const r = d.routes('outbound', 'two.default:2000');
    assert.deepEqual(r.map((x) => x.name), ['HTTPRoute/default/one-port/0/0']);
    assertSubset(r[0].route, { cluster: 'outbound|2000||two.default' }, 'a backendRef without a port takes the parent port');
  });
});
