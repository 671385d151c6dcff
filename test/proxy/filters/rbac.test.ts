// RBAC at the level of the compiled matcher: AuthorizationPolicies are
// translated, put through the wire, decoded by the sidecar's filters and
// asked about requests (and connections). Tables of allowed and denied.
import { describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import type { ServicePort } from '../../../src/translate/context';
import { inboundRbac } from '../../../src/translate/authz';
import { FieldPath } from '../../../src/proxy/config/nack';
import { HTTP_RBAC_TYPE, RBAC_DENIED_BODY } from '../../../src/proxy/filters/rbac';
import { filterEnv } from '../../../src/proxy/filters/filter-env';
import type { FilterRequest, HttpFilter } from '../../../src/proxy/filters/http-filter';
import { allowed, decodeRbacRules } from '../../../src/proxy/filters/rbac-engine';
import { decodeNetworkRbac } from '../../../src/proxy/tcp/network-rbac';
import { ProxyStats } from '../../../src/proxy/stats';
import { decodeMessage } from '../../../src/xds/protos';
import { nack, wire, type Obj } from '../config/helpers';
import { parseResources } from '../../translate/helpers';
import type { Resource } from '../../../src/config/kinds';
import type { Route } from '../../../src/proxy/config/types';

const TD = 'cluster.local';
const id = (ns: string, sa: string) => `spiffe://${TD}/ns/${ns}/sa/${sa}`;
const HTTP_PORT: ServicePort = { name: 'web', port: 8080, protocol: 'http' };
const TCP_PORT: ServicePort = { name: 'db', port: 5432, protocol: 'tcp' };

function policies(specs: string[]): Resource<'AuthorizationPolicy'>[] {
  const yaml = specs
    .map((spec, i) => `apiVersion: weft.dev/v1\nkind: AuthorizationPolicy\nmetadata: { name: p${i} }\nspec:\n${spec}\n---\n`)
    .join('');
  return parseResources(yaml) as Resource<'AuthorizationPolicy'>[];
}

/** The HTTP filters the sidecar builds from the translation of `specs`, with its stats. */
function httpChain(specs: string[]): { filters: HttpFilter[]; stats: ProxyStats } {
  const state = new Map<string, unknown>();
  const stats = new ProxyStats();
  Object.assign(filterEnv(state), { stats });
  const filters = inboundRbac(policies(specs), HTTP_PORT, TD).http.map((f: Obj) => {
    const any = wire('type.googleapis.com/google.protobuf.Any', f.typed_config) as Obj;
    const config = HTTP_RBAC_TYPE.decode(new FieldPath('Listener', 'inbound'), decodeMessage(any.type_url, any.value));
    return HTTP_RBAC_TYPE.create(f.name as string, config, state);
  });
  return { filters, stats };
}

interface Req {
  principal?: string;
  method?: string;
  path?: string;
  host?: string;
  port?: number;
  headers?: Record<string, string>;
  claims?: Record<string, unknown>;
}

function request(r: Req): FilterRequest {
  return {
    method: r.method ?? 'GET',
    host: r.host ?? 'app.local',
    path: r.path ?? '/',
    header: (name) => r.headers?.[name],
    sourceAddress: '127.0.0.1',
    grpc: false,
    peerPrincipal: r.principal,
    destinationPort: r.port ?? 8080,
    filterMetadata: r.claims ? { 'envoy.filters.http.jwt_authn': { payload: r.claims } } : undefined,
  };
}

const ROUTE = {} as Route;

/** 'allow' or 'deny' for a request through the chain. */
function verdict(filters: HttpFilter[], r: Req): 'allow' | 'deny' {
  for (const f of filters) {
    const v = f.decodeHeaders(request(r), ROUTE);
    if (v?.kind === 'reply') {
      assert.deepEqual(v.reply, { status: 403, flag: 'RBAC', detail: RBAC_DENIED_BODY, grpcStatus: 7 });
      return 'deny';
    }
  }
  return 'allow';
}

type Row = [what: string, req: Req, expect: 'allow' | 'deny'];

function table(title: string, specs: string[], rows: Row[]): void {
  describe(title, () => {
    const { filters } = httpChain(specs);
    for (const [what, req, expect] of rows) test(`${what}: ${expect}`, () => assert.equal(verdict(filters, req), expect));
  });
}

table('no policy', [], [['anything', {}, 'allow']]);

table('default deny: an ALLOW policy with no rules', ['  action: ALLOW'], [
  ['a known caller', { principal: id('default', 'web') }, 'deny'],
  ['plaintext', {}, 'deny'],
]);

table(
  'principals, namespaces, services',
  [
    `  action: ALLOW
  rules:
    - from: [{ source: { principals: ["${id('default', 'web')}", "spiffe://${TD}/ns/team/*", "*/sa/ops"] } }]
    - from: [{ source: { namespaces: [trusted] } }]
    - from: [{ source: { services: [shop, billing/ledger] } }]`,
  ],
  [
    ['exact SPIFFE ID', { principal: id('default', 'web') }, 'allow'],
    ['another service of the same namespace', { principal: id('default', 'web2') }, 'deny'],
    ['prefix', { principal: id('team', 'x') }, 'allow'],
    ['suffix', { principal: id('anywhere', 'ops') }, 'allow'],
    ['namespace', { principal: id('trusted', 'any') }, 'allow'],
    ['a namespace whose name starts the same', { principal: id('trusted2', 'any') }, 'deny'],
    ['service in the policy namespace', { principal: id('default', 'shop') }, 'allow'],
    ['service in its own namespace', { principal: id('billing', 'ledger') }, 'allow'],
    ['same service name, other namespace', { principal: id('other', 'shop') }, 'deny'],
    ['another trust domain', { principal: 'spiffe://evil.org/ns/default/sa/web' }, 'deny'],
    ['plaintext (no principal)', {}, 'deny'],
  ],
);

table(
  'any authenticated caller; notPrincipals',
  [`  action: ALLOW\n  rules: [{ from: [{ source: { principals: ["*"], notNamespaces: [guests] } }] }]`],
  [
    ['mTLS caller', { principal: id('default', 'a') }, 'allow'],
    ['mTLS caller from an excluded namespace', { principal: id('guests', 'a') }, 'deny'],
    ['plaintext', {}, 'deny'],
  ],
);

table(
  'operations: ports, paths, methods, hosts',
  [
    `  action: ALLOW
  rules:
    - to: [{ operation: { methods: [GET], paths: [/api/*, /exact, "*.css"], hosts: [app.local] } }]
    - to: [{ operation: { ports: [9090] } }]
    - to: [{ operation: { methods: [POST], notPaths: [/admin/*] } }]`,
  ],
  [
    ['GET under the prefix', { path: '/api/x' }, 'allow'],
    ['GET the prefix with a query', { path: '/api/?q=1' }, 'allow'],
    ['GET /api (no slash)', { path: '/api' }, 'deny'],
    ['GET exact', { path: '/exact' }, 'allow'],
    ['GET exact with a query', { path: '/exact?x=/api/' }, 'allow'],
    ['GET exact + more', { path: '/exactly' }, 'deny'],
    ['GET suffix', { path: '/s/site.css?v=2' }, 'allow'],
    ['GET suffix in the query only', { path: '/s/site?v=.css' }, 'deny'],
    ['DELETE under the prefix', { method: 'DELETE', path: '/api/x' }, 'deny'],
    ['GET another host', { path: '/api/x', host: 'evil.local' }, 'deny'],
    // Ports are resolved by the translator per chain: this chain is 8080's.
    ['any request on 8080 only through rule 1', { method: 'PUT', path: '/x' }, 'deny'],
    ['POST not under /admin', { method: 'POST', path: '/form' }, 'allow'],
    ['POST under /admin', { method: 'POST', path: '/admin/x' }, 'deny'],
  ],
);

table(
  'when: headers and JWT claims; request principals',
  [
    `  action: ALLOW
  rules:
    - when: [{ key: "request.headers[x-tenant]", values: [acme, "beta-*"] }, { key: x-debug, notValues: ["*"] }]
    - from: [{ source: { requestPrincipals: ["https://idp.example/alice", "https://ops.example/*"] } }]
    - when: [{ key: "request.auth.claims[groups]", values: [admin] }, { key: "request.auth.claims[org][tier]", values: [gold] }]`,
  ],
  [
    ['tenant header', { headers: { 'x-tenant': 'acme' } }, 'allow'],
    ['tenant header prefix', { headers: { 'x-tenant': 'beta-7' } }, 'allow'],
    ['tenant header with a debug header', { headers: { 'x-tenant': 'acme', 'x-debug': '1' } }, 'deny'],
    ['other tenant', { headers: { 'x-tenant': 'evil' } }, 'deny'],
    ['JWT iss/sub', { claims: { iss: 'https://idp.example', sub: 'alice' } }, 'allow'],
    ['JWT other sub', { claims: { iss: 'https://idp.example', sub: 'bob' } }, 'deny'],
    ['JWT any sub of an issuer', { claims: { iss: 'https://ops.example', sub: 'x' } }, 'allow'],
    ['list claim + nested claim', { claims: { groups: ['dev', 'admin'], org: { tier: 'gold' } } }, 'allow'],
    ['string claim + nested claim', { claims: { groups: 'admin', org: { tier: 'gold' } } }, 'allow'],
    ['list claim without the value', { claims: { groups: ['dev'], org: { tier: 'gold' } } }, 'deny'],
    ['nested claim missing', { claims: { groups: ['admin'] } }, 'deny'],
    ['no JWT', {}, 'deny'],
  ],
);

table(
  'DENY wins over ALLOW',
  [
    `  action: ALLOW\n  rules: [{ from: [{ source: { namespaces: [default] } }] }]`,
    `  action: DENY\n  rules: [{ from: [{ source: { services: [intruder] } }] }, { to: [{ operation: { paths: [/secret] } }] }]`,
  ],
  [
    ['allowed namespace', { principal: id('default', 'web') }, 'allow'],
    ['allowed namespace, denied service', { principal: id('default', 'intruder') }, 'deny'],
    ['allowed namespace, denied path', { principal: id('default', 'web'), path: '/secret' }, 'deny'],
    ['neither', { principal: id('other', 'web') }, 'deny'],
  ],
);

table('a DENY policy alone', [`  action: DENY\n  rules: [{ to: [{ operation: { methods: [DELETE] } }] }]`], [
  ['GET', {}, 'allow'],
  ['DELETE', { method: 'DELETE' }, 'deny'],
]);

describe('network RBAC (TCP ports)', () => {
  function tcp(specs: string[]) {
    return inboundRbac(policies(specs), TCP_PORT, TD).network.map((f: Obj) => {
      const any = wire('type.googleapis.com/google.protobuf.Any', f.typed_config) as Obj;
      return decodeNetworkRbac(new FieldPath('Listener', 'inbound'), f.name as string, decodeMessage(any.type_url, any.value));
    });
  }
  const pass = (filters: ReturnType<typeof tcp>, principal?: string) => filters.every((f) => !f.rules || allowed(f.rules, { peerPrincipal: principal, destinationPort: 5432 }));

  test('principals and namespaces, DENY first', () => {
    const filters = tcp([
      `  action: ALLOW\n  rules: [{ from: [{ source: { namespaces: [default] } }] }]`,
      `  action: DENY\n  rules: [{ from: [{ source: { services: [intruder] } }] }]`,
    ]);
    assert.deepEqual(
      filters.map((f) => f.rules!.action),
      ['DENY', 'ALLOW'],
    );
    assert.equal(pass(filters, id('default', 'web')), true);
    assert.equal(pass(filters, id('default', 'intruder')), false);
    assert.equal(pass(filters, id('other', 'web')), false);
    assert.equal(pass(filters, undefined), false);
  });

  test('an ALLOW rule with an HTTP-only field never matches on TCP; ports are resolved', () => {
    const filters = tcp([`  action: ALLOW\n  rules: [{ to: [{ operation: { paths: [/x] } }] }, { to: [{ operation: { ports: [5432] } }] }]`]);
    assert.equal(pass(filters, undefined), true);
    assert.equal(pass(tcp([`  action: ALLOW\n  rules: [{ to: [{ operation: { paths: [/x] } }] }]`]), undefined), false);
  });

  test('request fields on a network filter are a NACK', () => {
    const rules = wire('envoy.config.rbac.v3.RBAC', {
      action: 0,
      policies: { p: { permissions: [{ url_path: { path: { exact: '/' } } }], principals: [{ any: true }] } },
    });
    const msg = nack(() => decodeRbacRules(new FieldPath('Listener', 'l'), rules, false));
    assert.match(msg, /permissions\[0\]\.url_path is a request field/);
  });
});

describe('HTTP RBAC decoding', () => {
  const decode = (rbac: Obj) => HTTP_RBAC_TYPE.decode(new FieldPath('Listener', 'l'), wire('envoy.extensions.filters.http.rbac.v3.RBAC', rbac));

  test('unsupported fields are NACKed by name', () => {
    assert.match(nack(() => decode({ shadow_rules: { action: 0 } })), /shadow_rules/);
    assert.match(nack(() => decode({ rules: { action: 2 } })), /rules\.action LOG/);
    assert.match(
      nack(() => decode({ rules: { policies: { p: { permissions: [{ destination_ip: { address_prefix: '1.2.3.4' } }], principals: [{ any: true }] } } } })),
      /policies \(p\)\.permissions\[0\]\.destination_ip/,
    );
    assert.match(
      nack(() => decode({ rules: { policies: { p: { permissions: [{ any: true }], principals: [{ source_ip: { address_prefix: '1.2.3.4' } }] } } } })),
      /principals\[0\]\.source_ip/,
    );
    assert.match(
      nack(() => decode({ rules: { policies: { p: { permissions: [{ any: true }], principals: [{ authenticated: { principal_name: { exact: 'a', ignore_case: true } } }] } } } })),
      /principal_name\.ignore_case/,
    );
  });

  test('no rules: every request passes; destination_port reads the connection port', () => {
    const state = new Map<string, unknown>();
    assert.equal(HTTP_RBAC_TYPE.create('r', decode({}), state).decodeHeaders(request({}), ROUTE), undefined);
    const byPort = HTTP_RBAC_TYPE.create('r', decode({ rules: { policies: { p: { permissions: [{ destination_port: 9090 }], principals: [{ any: true }] } } } }), state);
    assert.equal(byPort.decodeHeaders(request({ port: 9090 }), ROUTE), undefined);
    assert.equal(byPort.decodeHeaders(request({ port: 8080 }), ROUTE)?.kind, 'reply');
  });

  test('denials are counted in weft_rbac_denied_total', () => {
    const { filters, stats } = httpChain([`  action: DENY\n  rules: [{}]`]);
    verdict(filters, {});
    verdict(filters, {});
    assert.match(stats.render(), /weft_rbac_denied_total\{filter="http",action="DENY",stat_prefix="envoy.filters.http.rbac.deny"\} 2/);
  });
});
