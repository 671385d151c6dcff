// http-filter Plugins in the translator's output: one optional HTTP filter per
// plugin, a TypedStruct naming weft's module filter, placed after jwt_authn,
// RBAC and the rate limits and before the router (inbound) or after the fault
// filter (outbound), by order then name; only the attached service's sidecar
// gets them, never a proxyless client. The resources still pass Envoy's
// protoc-gen-validate rules, weft proxy's decoder reads them back, and a
// TypedStruct filter it does not know is skipped when optional, a NACK when not.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { translate } from '../../src/translate/translate';
import { decodedTree, pgvProblems } from '../../src/xds/envoy-validate';
import { anyOf, decodeMessage, encodeMessage, envoyMessageType } from '../../src/xds/protos';
import { MODULE_FILTER_TYPE_URL, TYPE_URL } from '../../src/xds/type-urls';
import { decodeListener } from '../../src/proxy/config/decode-listener';
import { structToJson } from '../../src/proxy/config/read-proto';
import { ConfigNackError } from '../../src/proxy/config/nack';
import { meshView, proxyless, resourcesFor, sidecar, service, type Obj } from './helpers';

function plugin(name: string, spec: string): string {
  return `apiVersion: weft.dev/v1\nkind: Plugin\nmetadata: { name: ${name} }\nspec:\n  type: http-filter\n${spec}\n---\n`;
}

const MESH =
  service('api', 8080, 'http', '  dependsOn: [{ name: db }]\n') +
  service('db', 5432, 'tcp') +
  service('other', 9090) +
  plugin('b-tag', '  module: /opt/f/tag.js\n  config: { global: { tag: "${service}", mode: loud } }\n  targetRefs: [{ name: api }]') +
  plugin('a-late', '  module: "@acme/filters/late"\n  order: 5\n  targetRefs: [{ name: api }]') +
  plugin('a-early', '  module: /opt/f/early.js\n  order: -1\n  targetRefs: [{ name: api }]') +
  plugin('out', '  module: /opt/f/out.js\n  direction: outbound\n  targetRefs: [{ name: api }]') +
  plugin('elsewhere', '  module: /opt/f/x.js\n  targetRefs: [{ name: other }]') +
  `apiVersion: weft.dev/v1
kind: AuthorizationPolicy
metadata: { name: deny-admin }
spec:
  targetRef: { kind: Service, name: api }
  action: DENY
  rules: [{ to: [{ operation: { paths: [/admin] } }] }]
---
apiVersion: weft.dev/v1
kind: TrafficPolicy
metadata: { name: api }
spec:
  targetRef: { name: api }
  rateLimit: { local: { requests: 100, per: 1s } }
`;

function hcmOf(listener: Obj, chain = 0): Obj {
  const filters = listener.filter_chains[chain].filters as Obj[];
  const last = filters[filters.length - 1];
  return decodeMessage(last.typed_config.type_url, last.typed_config.value);
}

test('inbound: after jwt_authn/RBAC/rate limits, before the router, by order then name; a TypedStruct marked optional', () => {
  const r = resourcesFor(meshView(MESH), sidecar({ service: 'api' }));
  const inbound = r.get(TYPE_URL.Listener, 'inbound');
  for (let i = 0; i < inbound.filter_chains.length; i++) {
    const names = (hcmOf(inbound, i).http_filters as Obj[]).map((f) => f.name);
    assert.deepEqual(names.slice(-4), ['weft.plugin.default.a-early', 'weft.plugin.default.b-tag', 'weft.plugin.default.a-late', 'envoy.filters.http.router'], `chain ${i}`);
    assert.ok(names.indexOf('envoy.filters.http.rbac.deny') >= 0 && names.indexOf('envoy.filters.http.rbac.deny') < names.indexOf('weft.plugin.default.a-early'), 'RBAC first');
    assert.ok(names.indexOf('envoy.filters.http.local_ratelimit') >= 0 && names.indexOf('envoy.filters.http.local_ratelimit') < names.indexOf('weft.plugin.default.a-early'), 'rate limits first');
  }
  const tag = (hcmOf(inbound).http_filters as Obj[]).find((f) => f.name === 'weft.plugin.default.b-tag')!;
  assert.equal(tag.is_optional, true);
  assert.equal(tag.typed_config.type_url, TYPE_URL.TypedStruct);
  const ts = decodeMessage(TYPE_URL.TypedStruct, tag.typed_config.value);
  assert.equal(ts.type_url, MODULE_FILTER_TYPE_URL);
  assert.deepEqual(structToJson(ts.value), { plugin: 'default/b-tag', module: '/opt/f/tag.js', config: { mode: 'loud', tag: 'api' } });

  const outbound = hcmOf(r.get(TYPE_URL.Listener, 'outbound'));
  assert.deepEqual((outbound.http_filters as Obj[]).map((f) => f.name), ['weft.plugin.default.out', 'envoy.filters.http.router']);
});

test('only the attached service\'s sidecar gets them; a proxyless client never does', () => {
  const view = meshView(MESH);
  const other = resourcesFor(view, sidecar({ service: 'other' }));
  assert.deepEqual((hcmOf(other.get(TYPE_URL.Listener, 'inbound')).http_filters as Obj[]).map((f) => f.name), ['weft.plugin.default.elsewhere', 'envoy.filters.http.router']);
  assert.deepEqual((hcmOf(other.get(TYPE_URL.Listener, 'outbound')).http_filters as Obj[]).map((f) => f.name), ['envoy.filters.http.router']);
  const noService = resourcesFor(view, sidecar());
  assert.deepEqual((hcmOf(noService.get(TYPE_URL.Listener, 'outbound')).http_filters as Obj[]).map((f) => f.name), ['envoy.filters.http.router']);
  for (const [, l] of proxylessListeners(view)) assert.doesNotMatch(JSON.stringify(l), /weft\.plugin/);
});

function proxylessListeners(view: ReturnType<typeof meshView>) {
  return translate(view, proxyless({ service: 'api' })).get(TYPE_URL.Listener)!;
}

test('the resources pass Envoy\'s validation rules, and weft proxy decodes the module filter from them', () => {
  for (const [typeUrl, byName] of translate(meshView(MESH), sidecar({ service: 'api' }))) {
    const type = envoyMessageType(typeUrl);
    for (const [name, item] of byName) {
      const bytes = encodeMessage(typeUrl, item.resource);
      assert.deepEqual(pgvProblems(type, decodedTree(type, bytes), name), [], `${typeUrl} ${name}`);
      if (typeUrl !== TYPE_URL.Listener) continue;
      const decoded = decodeListener(decodeMessage(typeUrl, bytes));
      for (const chain of decoded.chains) {
        if (chain.network.kind !== 'http') continue;
        const mod = chain.network.httpFilters.find((f) => f.name === 'weft.plugin.default.b-tag') ?? chain.network.httpFilters.find((f) => f.typeUrl === MODULE_FILTER_TYPE_URL);
        assert.ok(mod, `${name}: the module filter decoded`);
        assert.equal(mod.typeUrl, MODULE_FILTER_TYPE_URL);
      }
    }
  }
});

/** A listener whose HCM carries one extra HTTP filter before the router. */
function listenerWith(filter: Obj): Obj {
  const hcm = {
    stat_prefix: 'x',
    route_config: { name: 'r', virtual_hosts: [{ name: 'v', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'c' } }] }] },
    http_filters: [filter, { name: 'envoy.filters.http.router', typed_config: anyOf(TYPE_URL.Router, {}) }],
  };
  const listener = {
    name: 'l',
    address: { socket_address: { address: '127.0.0.1', port_value: 1 } },
    filter_chains: [{ filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: anyOf(TYPE_URL.HttpConnectionManager, hcm) }] }],
  };
  return decodeMessage(TYPE_URL.Listener, encodeMessage(TYPE_URL.Listener, listener));
}

function typedStruct(typeUrl: string, fields: Obj): Obj {
  return anyOf(TYPE_URL.TypedStruct, { type_url: typeUrl, value: { fields } });
}

test('decoder: another TypedStruct extension is skipped when optional and a NACK when not; a bad module config is a NACK naming its field', () => {
  const other = typedStruct('acme.dev/filters.http.lua', { code: { stringValue: 'x' } });
  const skipped = decodeListener(listenerWith({ name: 'lua', is_optional: true, typed_config: other }));
  const net = skipped.chains[0].network;
  assert.ok(net.kind === 'http');
  assert.deepEqual(net.httpFilters, []);
  assert.throws(() => decodeListener(listenerWith({ name: 'lua', typed_config: other })), (e: unknown) => e instanceof ConfigNackError && /\(lua\) is not supported/.test(e.message));

  const badField = typedStruct(MODULE_FILTER_TYPE_URL, { module: { stringValue: '/x.js' }, script: { stringValue: 'y' } });
  assert.throws(() => decodeListener(listenerWith({ name: 'm', is_optional: true, typed_config: badField })), (e: unknown) => e instanceof ConfigNackError && /typed_config\.script/.test(e.message));
  const noModule = typedStruct(MODULE_FILTER_TYPE_URL, { config: { structValue: { fields: {} } } });
  assert.throws(() => decodeListener(listenerWith({ name: 'm', typed_config: noModule })), (e: unknown) => e instanceof ConfigNackError && /typed_config\.module must be a non-empty string/.test(e.message));
  const numberConfig = typedStruct(MODULE_FILTER_TYPE_URL, { module: { stringValue: '/x.js' }, config: { structValue: { fields: { n: { numberValue: 3 } } } } });
  assert.throws(() => decodeListener(listenerWith({ name: 'm', typed_config: numberConfig })), (e: unknown) => e instanceof ConfigNackError && /typed_config\.config\.n must be a string/.test(e.message));
});
