// Listeners: sidecar socket listeners and proxyless API listeners.
import { describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { assertSubset, meshView, proxyless, resourcesFor, service, sidecar, unpack, type Obj } from './helpers';
import { TYPE_URL } from '../../src/xds/type-urls';

const MESH =
  `apiVersion: weft.dev/v1
kind: Service
metadata: { name: app }
spec:
  ports:
    - { name: web, port: 8080, protocol: http, targetPort: 18080 }
    - { name: rpc, port: 50051, protocol: grpc }
    - { name: db, port: 5432, protocol: tcp, targetPort: 15432 }
---
` +
  service('greeter', 50051, 'grpc') +
  service('cache', 6379, 'tcp') +
  service('cache-v2', 6379, 'tcp') +
  service('clash', 6379, 'tcp') +
  service('proxyport', 15001, 'tcp') +
  service('selfport', 15432, 'tcp') +
  `apiVersion: weft.dev/v1
kind: Service
metadata: { name: remote, namespace: other }
spec:
  ports: [{ name: grpc, port: 7000, protocol: grpc }, { name: web, port: 80, protocol: http }]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: { name: cache-split }
spec:
  parentRefs: [{ kind: Service, name: cache, port: 6379 }]
  rules:
    - backendRefs: [{ name: cache, port: 6379, weight: 3 }, { name: cache-v2, port: 6379, weight: 1 }]
`;

describe('sidecar listeners', () => {
  const d = resourcesFor(meshView(MESH), sidecar({ service: 'app' }));

  test('names', () => {
    // clash:6379 lost the port to cache (by name); proxyport is the sidecar's own 15001;
    // selfport:15432 is where the node's app listens (the targetPort of app's db port).
    assert.deepEqual(d.names(TYPE_URL.Listener), ['inbound', 'outbound', 'outbound|5432|app.default', 'outbound|6379|cache.default']);
  });

  test('outbound: 127.0.0.1:15001, HttpConnectionManager on RDS "outbound", router last', () => {
    const l = d.listener('outbound');
    assertSubset(l, { address: { socket_address: { address: '127.0.0.1', port_value: 15001 } }, traffic_direction: 'OUTBOUND' });
    const hcm = unpack(l.filter_chains[0].filters[0].typed_config);
    assertSubset(hcm, {
      stat_prefix: 'outbound',
      rds: { route_config_name: 'outbound', config_source: { ads: {}, resource_api_version: 'V3' } },
      http_filters: [{ name: 'envoy.filters.http.router' }],
    });
    assert.equal(hcm.http_filters[0].typed_config.type_url, TYPE_URL.Router);
  });

  test('TCP port: its own listener with tcp_proxy, TCPRoute weights → weighted_clusters', () => {
    const l = d.listener('outbound|6379|cache.default');
    assertSubset(l.address, { socket_address: { address: '127.0.0.1', port_value: 6379 } });
    assertSubset(l.filter_chains[0].filters[0], { name: 'envoy.filters.network.tcp_proxy' });
    assertSubset(unpack(l.filter_chains[0].filters[0].typed_config), {
      stat_prefix: 'outbound|6379|cache.default',
      weighted_clusters: {
        clusters: [
          { name: 'outbound|6379||cache.default', weight: 3 },
          { name: 'outbound|6379||cache-v2.default', weight: 1 },
        ],
      },
    });
  });

  test('a TCPRoute without a usable backend: no listener (connections refused)', () => {
    const yaml =
      service('cache', 6379, 'tcp') +
      `apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: { name: off }
spec:
  parentRefs: [{ kind: Service, name: cache }]
  rules: [{ backendRefs: [{ name: cache, port: 6379, weight: 0 }] }]
`;
    assert.deepEqual(resourcesFor(meshView(yaml), sidecar()).names(TYPE_URL.Listener), ['outbound']);
  });

  test('no TCP in the outbound route config; HTTP and gRPC ports are virtual hosts', () => {
    const vhosts = d.routeConfig('outbound').virtual_hosts.map((v: Obj) => v.name);
    // By service, then port number.
    assert.deepEqual(vhosts, ['app.default:8080', 'app.default:50051', 'greeter.default:50051', 'remote.other:80', 'remote.other:7000']);
  });

  test('inbound: 0.0.0.0:15006, a filter chain per port by destination port, to 127.0.0.1:<targetPort>', () => {
    const l = d.listener('inbound');
    assertSubset(l, { address: { socket_address: { address: '0.0.0.0', port_value: 15006 } }, traffic_direction: 'INBOUND' });
    // Plaintext chains only (MeshTLS chains: mtls.test.ts).
    assert.deepEqual(
      l.filter_chains.filter((c: Obj) => !c.transport_socket).map((c: Obj) => [c.name, c.filter_chain_match.destination_port.value, c.filters[0].name]),
      [
        ['inbound|5432', 5432, 'envoy.filters.network.tcp_proxy'],
        ['inbound|8080', 8080, 'envoy.filters.network.http_connection_manager'],
        ['inbound|50051', 50051, 'envoy.filters.network.http_connection_manager'],
      ],
    );
    assert.equal(l.default_filter_chain.name, 'inbound|default');
    const hcm = unpack(l.filter_chains.find((c: Obj) => c.name === 'inbound|8080').filters[0].typed_config);
    assertSubset(hcm.route_config, {
      name: 'inbound|8080',
      virtual_hosts: [{ domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'inbound|8080||' } }] }],
    });
    assertSubset(hcm.http_filters, [{ name: 'envoy.filters.http.router' }]);

    assertSubset(d.cluster('inbound|8080||'), {
      type: 'STATIC',
      load_assignment: { endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: 18080 } } } }] }] },
    });
    assertSubset(d.cluster('inbound|50051||').load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address, { port_value: 50051 });
    const h2 = unpack(d.cluster('inbound|50051||').typed_extension_protocol_options['envoy.extensions.upstreams.http.v3.HttpProtocolOptions']);
    assertSubset(h2, { explicit_http_config: { http2_protocol_options: {} } });
    assert.equal(d.cluster('inbound|5432||').typed_extension_protocol_options, undefined);
  });

  test('a sidecar without a service: no inbound', () => {
    const names = resourcesFor(meshView(MESH), sidecar()).names(TYPE_URL.Listener);
    assert.ok(!names.includes('inbound'));
  });
});

describe('proxyless API listeners', () => {
  const d = resourcesFor(meshView(MESH), proxyless({ service: 'app' }));

  test('named as clients dial them; short names only in the node namespace; no TCP; no inbound', () => {
    // (Besides the server Listeners of its own service, for an XdsServer: see authz.test.ts.)
    assert.deepEqual(d.names(TYPE_URL.Listener).filter((n) => !n.startsWith('weft.dev/grpc/lds/inbound/')), [
      'app',
      'app.default',
      'app.default:50051',
      'app.default:8080',
      'app:50051',
      'app:8080',
      'greeter',
      'greeter.default',
      'greeter.default:50051',
      'greeter:50051',
      'remote.other',
      'remote.other:7000',
      'remote.other:80',
    ]);
    assert.ok(!d.names(TYPE_URL.Cluster).some((n) => n.startsWith('inbound')));
  });

  test('the bare name means port 80 when the service has it, else its lowest HTTP port', () => {
    const hcm = (name: string) => unpack(d.listener(name).api_listener.api_listener);
    assert.equal(hcm('remote.other').rds.route_config_name, 'remote.other:80');
    assert.equal(hcm('app').rds.route_config_name, 'app.default:8080');
  });

  test('an API listener: HttpConnectionManager over RDS (ADS), fault filter then router', () => {
    for (const name of ['greeter:50051', 'greeter.default:50051', 'greeter']) {
      const any = d.listener(name).api_listener.api_listener;
      assert.equal(any.type_url, TYPE_URL.HttpConnectionManager);
      const hcm = unpack(any);
      assertSubset(hcm, {
        rds: { route_config_name: 'greeter.default:50051', config_source: { ads: {} } },
        http_filters: [{ name: 'envoy.filters.http.fault' }, { name: 'envoy.filters.http.router' }],
      });
      assert.equal(hcm.http_filters[1].typed_config.type_url, TYPE_URL.Router);
    }
  });

  test('one route config per service port, one virtual host for "*"', () => {
    assert.deepEqual(d.names(TYPE_URL.RouteConfiguration), [
      'app.default:50051',
      'app.default:8080',
      'greeter.default:50051',
      'remote.other:7000',
      'remote.other:80',
    ]);
    assertSubset(d.routeConfig('greeter.default:50051'), {
      virtual_hosts: [{ name: 'greeter.default:50051', domains: ['*'], routes: [{ route: { cluster: 'outbound|50051||greeter.default' } }] }],
    });
  });
});

describe('sidecar ports from the node bootstrap (several sidecars on one host)', () => {
  const d = resourcesFor(meshView(MESH), sidecar({ service: 'app', outboundPort: 16001, inboundPort: 16006, appPort: 3000 }));

  test('the outbound and inbound listeners bind the ports the node asked for', () => {
    assertSubset(d.listener('outbound'), { address: { socket_address: { address: '127.0.0.1', port_value: 16001 } } });
    assertSubset(d.listener('inbound'), { address: { socket_address: { port_value: 16006 } } });
  });

  test("the app port replaces the lowest service port's target; the others keep theirs", () => {
    const port = (name: string) => d.cluster(name).load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value;
    assert.equal(port('inbound|5432||'), 3000);
    assert.equal(port('inbound|8080||'), 18080);
  });

  test('15001 is no longer reserved, the node ports are', () => {
    assert.ok(d.names(TYPE_URL.Listener).includes('outbound|15001|proxyport.default'));
  });
});

describe('a transparent node (weft run --transparent)', () => {
  const d = resourcesFor(meshView(MESH), sidecar({ service: 'app', appPort: 3000, appAddress: '169.254.9.2', transparent: true }));

  test('its TCP listeners bind nothing (bind_to_port false): every TCP service port has one, shared port numbers included', () => {
    const tcp = d.names(TYPE_URL.Listener).filter((n) => n.startsWith('outbound|'));
    // In socket mode cache-v2 and clash lose port 6379 to cache, and selfport loses 15432 to the app; virtual listeners do not compete.
    for (const name of ['outbound|6379|cache.default', 'outbound|6379|cache-v2.default', 'outbound|6379|clash.default', 'outbound|15432|selfport.default']) assert.ok(tcp.includes(name), `${name} in ${tcp.join(', ')}`);
    for (const name of tcp) assertSubset(d.listener(name), { bind_to_port: { value: false } });
    assert.equal(d.listener('outbound').bind_to_port, undefined, 'the HTTP listener still binds');
  });

  test('its app is reached at the unit address on every port', () => {
    const address = (name: string) => {
      const a = d.cluster(name).load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address;
      return `${a.address}:${a.port_value}`;
    };
    assert.equal(address('inbound|5432||'), '169.254.9.2:3000');
    assert.equal(address('inbound|8080||'), '169.254.9.2:18080');
  });
});
