// MeshTLS → inbound TLS chains, outbound auto mTLS (transport_socket_matches), EDS metadata.
import { describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { assertSubset, Decoded, meshView, proxyless, resourcesFor, roundTrip, service, sidecar, unpack, type Obj } from './helpers';
import { translate } from '../../src/translate/translate';
import { TYPE_URL } from '../../src/xds/type-urls';
import { parseResources } from './helpers';
import { parseDocuments } from '../../src/config/parse';

const SERVICES =
  service('web', 8080, 'http') +
  service('rpc', 50051, 'grpc') +
  service('db', 5432, 'tcp') +
  `apiVersion: weft.dev/v1
kind: Service
metadata: { name: web, namespace: other }
spec: { ports: [{ name: p, port: 8080, protocol: http }] }
---
`;

const meshTls = (name: string, spec: string, namespace = 'default') => `apiVersion: weft.dev/v1
kind: MeshTLS
metadata: { name: ${name}, namespace: ${namespace} }
spec: ${spec}
---
`;

const inbound = (yaml: string, svc = 'web', namespace = 'default') => resourcesFor(meshView(SERVICES + yaml), sidecar({ service: svc, namespace })).listener('inbound');
const chainNames = (l: Obj) => l.filter_chains.map((c: Obj) => `${c.name}${c.transport_socket ? ' (tls)' : ''}`);

describe('MeshTLS → the inbound listener', () => {
  test('permissive (the default, no MeshTLS): tls_inspector, per port a TLS chain and the plaintext one, a plaintext default chain', () => {
    const l = inbound('');
    assert.deepEqual(l.listener_filters.map((f: Obj) => [f.name, f.typed_config.type_url]), [['envoy.filters.listener.tls_inspector', TYPE_URL.TlsInspector]]);
    assertSubset([l.listener_filters_timeout, l.continue_on_listener_filters_timeout], [{ seconds: 5 }, true]);
    assert.deepEqual(chainNames(l), ['inbound|8080|tls (tls)', 'inbound|8080', 'inbound|default|tls (tls)']);
    assertSubset(l.filter_chains[0].filter_chain_match, { destination_port: { value: 8080 }, transport_protocol: 'tls' });
    assert.equal(l.filter_chains[1].filter_chain_match.transport_protocol, undefined);
    assertSubset(l.filter_chains[2].filter_chain_match, { transport_protocol: 'tls' });
    assert.equal(l.filter_chains[2].filter_chain_match.destination_port, undefined);
    assert.equal(l.default_filter_chain.name, 'inbound|default');
    assert.equal(l.default_filter_chain.transport_socket, undefined);
    const socket = l.filter_chains[0].transport_socket;
    assert.equal(socket.name, 'envoy.transport_sockets.tls');
    assert.equal(socket.typed_config.type_url, TYPE_URL.DownstreamTlsContext);
    const downstream = unpack(socket.typed_config);
    assertSubset(downstream, {
      require_client_certificate: { value: true },
      common_tls_context: {
        tls_certificate_sds_secret_configs: [{ name: 'default', sds_config: { ads: {}, resource_api_version: 'V3' } }],
        validation_context_sds_secret_config: { name: 'ROOTCA', sds_config: { ads: {}, resource_api_version: 'V3' } },
        alpn_protocols: ['h2', 'http/1.1'],
      },
    });
    assert.deepEqual(Object.keys(downstream).sort(), ['common_tls_context', 'require_client_certificate']);
    // The TLS and the plaintext chain of a port run the same filter.
    assert.deepEqual(unpack(l.filter_chains[0].filters[0].typed_config), unpack(l.filter_chains[1].filters[0].typed_config));
  });

  const cases: [string, string, string, string[]][] = [
    ['namespace strict', meshTls('ns', '{ mode: strict }'), 'strict', ['inbound|8080|tls (tls)', 'inbound|default|tls (tls)']],
    ['namespace permissive', meshTls('ns', '{ mode: permissive }'), 'permissive', ['inbound|8080|tls (tls)', 'inbound|8080', 'inbound|default|tls (tls)']],
    ['no mode: permissive', meshTls('ns', '{}'), 'permissive', ['inbound|8080|tls (tls)', 'inbound|8080', 'inbound|default|tls (tls)']],
    ['service strict wins over namespace permissive', meshTls('ns', '{ mode: permissive }') + meshTls('web', '{ targetRef: { name: web }, mode: strict }'), 'strict', ['inbound|8080|tls (tls)', 'inbound|default|tls (tls)']],
    ['service permissive wins over namespace strict', meshTls('web', '{ targetRef: { name: web }, mode: permissive }') + meshTls('ns', '{ mode: strict }'), 'permissive', ['inbound|8080|tls (tls)', 'inbound|8080', 'inbound|default|tls (tls)']],
    ['another service strict: not this one', meshTls('rpc', '{ targetRef: { name: rpc }, mode: strict }'), 'permissive', ['inbound|8080|tls (tls)', 'inbound|8080', 'inbound|default|tls (tls)']],
    ['another namespace strict: not this one', meshTls('ns', '{ mode: strict }', 'other'), 'permissive', ['inbound|8080|tls (tls)', 'inbound|8080', 'inbound|default|tls (tls)']],
  ];
  for (const [name, yaml, mode, chains] of cases) {
    test(`${name} → ${mode}`, () => {
      const l = inbound(yaml);
      assert.deepEqual(chainNames(l), chains);
      assert.equal(l.default_filter_chain !== undefined, mode === 'permissive', 'strict has no plaintext default chain');
    });
  }

  test('a TCP port gets TLS chains too (tcp_proxy behind TLS)', () => {
    const l = inbound(meshTls('ns', '{ mode: strict }'), 'db');
    assert.deepEqual(chainNames(l), ['inbound|5432|tls (tls)', 'inbound|default|tls (tls)']);
    assert.equal(l.filter_chains[0].filters[0].name, 'envoy.filters.network.tcp_proxy');
  });
});

describe('auto mTLS on outbound clusters', () => {
  const d = resourcesFor(meshView(SERVICES), sidecar({ service: 'web' }));
  const tlsOf = (cluster: Obj) => {
    const [m] = cluster.transport_socket_matches;
    assert.equal(m.transport_socket.typed_config.type_url, TYPE_URL.UpstreamTlsContext);
    return { match: m.match, tls: unpack(m.transport_socket.typed_config) };
  };

  const cases: [string, string, string, string[] | undefined][] = [
    ['outbound|8080||web.default', 'web.default', 'spiffe://cluster.local/ns/default/sa/web', ['http/1.1']],
    ['outbound|50051||rpc.default', 'rpc.default', 'spiffe://cluster.local/ns/default/sa/rpc', ['h2']],
    ['outbound|5432||db.default', 'db.default', 'spiffe://cluster.local/ns/default/sa/db', undefined],
    ['outbound|8080||web.other', 'web.other', 'spiffe://cluster.local/ns/other/sa/web', ['http/1.1']],
  ];
  for (const [cluster, sni, id, alpn] of cases) {
    test(`${cluster}: SNI ${sni}, ALPN ${alpn ?? 'none'}, peer must be ${id}`, () => {
      const { match, tls } = tlsOf(d.cluster(cluster));
      assert.deepEqual(match, { fields: { tlsMode: { stringValue: 'weft', kind: 'stringValue' } } });
      assert.equal(tls.sni, sni);
      assert.deepEqual(tls.common_tls_context.alpn_protocols, alpn);
      assertSubset(tls.common_tls_context.tls_certificate_sds_secret_configs, [{ name: 'default', sds_config: { ads: {}, resource_api_version: 'V3' } }]);
      assertSubset(tls.common_tls_context.combined_validation_context, {
        default_validation_context: { match_typed_subject_alt_names: [{ san_type: 'URI', matcher: { exact: id } }] },
        validation_context_sds_secret_config: { name: 'ROOTCA' },
      });
      assert.equal(d.cluster(cluster).transport_socket, undefined, 'endpoints no match selects stay plaintext');
    });
  }

  test('the trust domain is a translate option', () => {
    const set = translate(meshView(SERVICES), sidecar({ service: 'web' }), { trustDomain: 'prod.example' });
    const { tls } = tlsOf(new Decoded(roundTrip(set)).cluster('outbound|50051||rpc.default'));
    assert.equal(tls.common_tls_context.combined_validation_context.default_validation_context.match_typed_subject_alt_names[0].matcher.exact, 'spiffe://prod.example/ns/default/sa/rpc');
  });

  test('proxyless gRPC clients get no transport socket (plaintext)', () => {
    const p = resourcesFor(meshView(SERVICES), proxyless());
    assert.equal(p.cluster('outbound|50051||rpc.default').transport_socket_matches, undefined);
  });

  test('inbound clusters (to the local app) stay plaintext', () => {
    assert.equal(d.cluster('inbound|8080||').transport_socket_matches, undefined);
  });
});

describe('EDS metadata of endpoints with a sidecar', () => {
  test('a registration with a sidecar carries tlsMode weft; static and sidecar-less ones carry nothing', () => {
    const yaml = service('api', 8080, 'http', '  endpoints: [{ address: 10.0.0.1 }]\n');
    const view = meshView(yaml, {
      'default/api': [
        { address: '10.0.0.2', ports: { p: 15006 }, sidecar: true },
        { address: '10.0.0.3', ports: { p: 8080 } },
      ],
    });
    const cla = resourcesFor(view, sidecar()).endpoints('outbound|8080||api.default');
    const byAddress = Object.fromEntries(
      cla.endpoints[0].lb_endpoints.map((e: Obj) => [e.endpoint.address.socket_address.address, e.metadata?.filter_metadata?.['envoy.transport_socket_match']]),
    );
    assert.deepEqual(byAddress, {
      '10.0.0.1': undefined,
      '10.0.0.2': { fields: { tlsMode: { stringValue: 'weft', kind: 'stringValue' } } },
      '10.0.0.3': undefined,
    });
  });
});

test('MeshTLS config: mode defaults to permissive; a bad mode and an unknown field are errors naming the field', () => {
  const [m] = parseResources(meshTls('m', '{ targetRef: { name: web } }'));
  assert.deepEqual(m.spec, { targetRef: { kind: 'Service', name: 'web' }, mode: 'permissive' });
  const error = (spec: string) => parseDocuments(meshTls('m', spec), 'm.yaml').errors.map((e) => e.message).join('; ');
  assert.match(error('{ mode: STRICT }'), /spec\.mode: expected one of "permissive", "strict", got "STRICT"/);
  assert.match(error('{ mode: strict, peers: [] }'), /spec: unknown field "peers"|spec\.peers/);
  assert.match(error('{ targetRef: { kind: Deployment, name: web } }'), /spec\.targetRef\.kind/);
});

describe('a local-SDS node (WEFT_LOCAL_SDS, `weft run --proxy envoy`): the workload certificate from the weft_sds cluster', () => {
  const localSds = {
    name: 'default',
    sds_config: {
      api_config_source: { api_type: 'GRPC', transport_api_version: 'V3', grpc_services: [{ envoy_grpc: { cluster_name: 'weft_sds' } }] },
      resource_api_version: 'V3',
    },
  };
  const ads = { name: 'ROOTCA', sds_config: { ads: {}, resource_api_version: 'V3' } };
  const d = resourcesFor(meshView(SERVICES), sidecar({ service: 'web', localSds: true }));

  test('inbound TLS chains: "default" over the local SDS cluster, ROOTCA still over ADS', () => {
    const l = d.listener('inbound');
    const tlsChains = l.filter_chains.filter((c: Obj) => c.transport_socket);
    assert.equal(tlsChains.length, 2);
    for (const chain of tlsChains) {
      const ctx = unpack(chain.transport_socket.typed_config).common_tls_context;
      assertSubset(ctx.tls_certificate_sds_secret_configs, [localSds]);
      assert.equal(ctx.tls_certificate_sds_secret_configs[0].sds_config.ads, undefined);
      assertSubset(ctx.validation_context_sds_secret_config, ads);
    }
  });

  test('outbound auto mTLS: the same', () => {
    const [m] = d.cluster('outbound|50051||rpc.default').transport_socket_matches;
    const ctx = unpack(m.transport_socket.typed_config).common_tls_context;
    assertSubset(ctx.tls_certificate_sds_secret_configs, [localSds]);
    assert.equal(ctx.tls_certificate_sds_secret_configs[0].sds_config.ads, undefined);
    assertSubset(ctx.combined_validation_context.validation_context_sds_secret_config, ads);
  });

  test('a node without it keeps "default" on ADS (weft proxy gets it from its own agent)', () => {
    const [m] = resourcesFor(meshView(SERVICES), sidecar({ service: 'web' })).cluster('outbound|50051||rpc.default').transport_socket_matches;
    const [ref] = unpack(m.transport_socket.typed_config).common_tls_context.tls_certificate_sds_secret_configs;
    assertSubset(ref, { name: 'default', sds_config: { ads: {}, resource_api_version: 'V3' } });
    assert.equal(ref.sds_config.api_config_source, undefined);
  });
});
