// Listener decoding: the sidecar's real listeners (outbound over RDS,
// inbound with per-port chains and inline routes, TCP listeners), and one
// NACK per unsupported or invalid case.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { decodeListener } from '../../../src/proxy/config/decode-listener';
import type { HttpNetworkFilter, TcpNetworkFilter } from '../../../src/proxy/config/types';
import { proxyless, resourcesFor, meshView } from '../../translate/helpers';
import { ADS, anyOf, nack, plain, translated, TYPE_URL, wire, type Obj } from './helpers';

const MESH = `
apiVersion: weft.dev/v1
kind: Service
metadata: { name: web }
spec: { ports: [{ name: http, port: 8080, protocol: http }, { name: admin, port: 9000, protocol: tcp }] }
---
apiVersion: weft.dev/v1
kind: Service
metadata: { name: db }
spec: { ports: [{ name: pg, port: 5432, protocol: tcp }] }
---
apiVersion: weft.dev/v1
kind: Service
metadata: { name: db-replica }
spec: { ports: [{ name: pg, port: 5432, protocol: tcp }] }
---
apiVersion: weft.dev/v1
kind: TrafficPolicy
metadata: { name: db }
spec: { targetRef: { name: db }, timeouts: { idle: 90s } }
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: { name: db-split }
spec:
  parentRefs: [{ kind: Service, name: db, port: 5432 }]
  rules: [{ backendRefs: [{ name: db, port: 5432, weight: 3 }, { name: db-replica, port: 5432, weight: 1 }] }]
`;

const listener = (name: string) =>
  decodeListener(translated(MESH, { service: 'web', outboundPort: 15101, inboundPort: 15106 })(TYPE_URL.Listener, name));

test('listener: translator output — outbound HTTP listener reading RDS', () => {
  assert.deepEqual(listener('outbound'), {
    name: 'outbound',
    address: '127.0.0.1',
    port: 15101,
    direction: 'outbound',
    chains: [{ name: '', network: { kind: 'http', statPrefix: 'outbound', httpFilters: [], routeTableName: 'outbound', streamIdleTimeoutMs: 300_000, idleTimeoutMs: 3_600_000 } }],
  });
});

test('listener: translator output — inbound chains by destination port, inline routes, TCP, default chain', () => {
  const inbound = listener('inbound');
  assert.deepEqual([inbound.address, inbound.port, inbound.direction], ['0.0.0.0', 15106, 'inbound']);
  // MeshTLS permissive (the default): per port a TLS chain and the plaintext one, a port-less TLS chain.
  assert.deepEqual(inbound.chains.map((c) => [c.name, c.destinationPort, c.transportProtocol, c.network.kind, !!c.tls]), [
    ['inbound|8080|tls', 8080, 'tls', 'http', true],
    ['inbound|8080', 8080, undefined, 'http', false],
    ['inbound|9000|tls', 9000, 'tls', 'tcp', true],
    ['inbound|9000', 9000, undefined, 'tcp', false],
    ['inbound|default|tls', undefined, 'tls', 'http', true],
  ]);
  assert.deepEqual(inbound.tlsInspector, { timeoutMs: 5000, continueOnTimeout: true });
  assert.deepEqual(inbound.chains[0].tls, {
    certificateSecret: 'default',
    validationSecret: 'ROOTCA',
    sanMatchers: [],
    alpn: ['h2', 'http/1.1'],
    requireClientCertificate: true,
  });
  const http = inbound.chains[1].network as HttpNetworkFilter;
  assert.equal(http.routeTableName, undefined);
  assert.deepEqual(plain(http.routeTable), {
    name: 'inbound|8080',
    virtualHosts: [
      {
        name: 'inbound|8080',
        domains: ['*'],
        routes: [
          {
            name: 'default',
            match: { path: { kind: 'prefix', value: '/' }, caseSensitive: true, headers: [], queryParams: [] },
            action: { kind: 'route', clusters: [{ name: 'inbound|8080||', weight: 1 }], totalWeight: 1, timeoutMs: 0, hashPolicies: [], mirrors: [] },
            requestHeadersToAdd: [],
            requestHeadersToRemove: [],
            responseHeadersToAdd: [],
            responseHeadersToRemove: [],
          },
        ],
      },
    ],
  });
  assert.deepEqual(inbound.chains[3].network, {
    kind: 'tcp',
    statPrefix: 'inbound|9000',
    clusters: [{ name: 'inbound|9000||', weight: 1 }],
    totalWeight: 1,
  });
  assert.equal(inbound.defaultChain?.name, 'inbound|default');
  assert.equal(inbound.defaultChain?.destinationPort, undefined);
});

test('listener: translator output — TCP listener with weighted clusters and idle timeout', () => {
  const tcp = listener('outbound|5432|db.default');
  assert.deepEqual([tcp.address, tcp.port, tcp.direction], ['127.0.0.1', 5432, 'outbound']);
  assert.deepEqual(tcp.chains[0].network as TcpNetworkFilter, {
    kind: 'tcp',
    statPrefix: 'outbound|5432|db.default',
    clusters: [
      { name: 'outbound|5432||db.default', weight: 3 },
      { name: 'outbound|5432||db-replica.default', weight: 1 },
    ],
    totalWeight: 4,
    idleTimeoutMs: 90_000,
  });
});

test('listener: a proxyless API listener is NACKed (weft proxy is a socket proxy)', () => {
  const msg = resourcesFor(meshView(MESH), proxyless()).get(TYPE_URL.Listener, 'web:8080');
  assert.equal(nack(() => decodeListener(msg)), 'Listener "web:8080": api_listener is not supported by weft proxy yet');
});

// ---- hand-written ----

const router = { name: 'envoy.filters.http.router', typed_config: anyOf(TYPE_URL.Router, {}) };
const fault = { name: 'envoy.filters.http.fault', typed_config: anyOf(TYPE_URL.HttpFault, {}) };
const CORS = 'type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors';
const cors = { name: 'envoy.filters.http.cors', typed_config: { type_url: CORS, value: Buffer.alloc(0) } };
const hcm = (extra: Obj = {}) => ({
  name: 'envoy.filters.network.http_connection_manager',
  typed_config: anyOf(TYPE_URL.HttpConnectionManager, {
    stat_prefix: 'l',
    rds: { config_source: ADS, route_config_name: 'r' },
    http_filters: [router],
    ...extra,
  }),
});
const tcpProxy = (extra: Obj) => ({ name: 'envoy.filters.network.tcp_proxy', typed_config: anyOf(TYPE_URL.TcpProxy, { stat_prefix: 't', ...extra }) });
const L = (chain: Obj = { filters: [hcm()] }, extra: Obj = {}): Obj => ({
  name: 'l',
  address: { socket_address: { address: '127.0.0.1', port_value: 15001 } },
  filter_chains: [chain],
  ...extra,
});
const decode = (l: Obj) => decodeListener(wire(TYPE_URL.Listener, l));
const faultWith = (config: Obj) => ({ name: 'envoy.filters.http.fault', typed_config: anyOf(TYPE_URL.HttpFault, config) });

test('listener: the fault filter — delay, abort, headers, percentages, max_active_faults', () => {
  const l = decode(
    L({
      filters: [
        hcm({
          http_filters: [
            faultWith({
              delay: { fixed_delay: { seconds: 1, nanos: 500_000_000 }, percentage: { numerator: 25, denominator: 'TEN_THOUSAND' } },
              abort: { grpc_status: 14, percentage: { numerator: 2_000_000, denominator: 'MILLION' } },
              headers: [{ name: 'X-Fault', string_match: { exact: 'on' } }],
              max_active_faults: { value: 3 },
            }),
            faultWith({ abort: { http_status: 503 } }),
            router,
          ].map((f, i) => (i === 1 ? { ...f, name: 'second' } : f)),
        }),
      ],
    }),
  );
  assert.deepEqual((l.chains[0].network as HttpNetworkFilter).httpFilters, [
    {
      name: 'envoy.filters.http.fault',
      typeUrl: TYPE_URL.HttpFault,
      config: {
        delay: { ms: 1500, percentage: { numerator: 25, denominator: 10_000 } },
        abort: { grpcStatus: 14, percentage: { numerator: 1_000_000, denominator: 1_000_000 } },
        headers: [{ name: 'x-fault', kind: 'exact', value: 'on', invert: false }],
        maxActiveFaults: 3,
      },
    },
    { name: 'second', typeUrl: TYPE_URL.HttpFault, config: { abort: { httpStatus: 503, percentage: { numerator: 0, denominator: 100 } }, headers: [] } },
  ]);
});

test('listener: hand-written — optional unknown filters skipped, accepted no-ops, IPv6, port 0', () => {
  const l = decode(
    L(
      {
        name: 'c',
        metadata: {},
        filters: [hcm({ http_filters: [{ ...cors, is_optional: true }, { ...router, typed_config: anyOf(TYPE_URL.Router, { dynamic_stats: { value: false }, start_child_span: true }) }] })],
      },
      { stat_prefix: 's', metadata: {}, address: { socket_address: { address: '::1', port_value: 0 } } },
    ),
  );
  assert.deepEqual([l.address, l.port, l.direction], ['::1', 0, 'unspecified']);
  assert.deepEqual(l.chains[0].network, { kind: 'http', statPrefix: 'l', httpFilters: [], routeTableName: 'r', streamIdleTimeoutMs: 300_000, idleTimeoutMs: 3_600_000 });
  const timeouts = decode(L({ filters: [hcm({ stream_idle_timeout: { seconds: 2 }, common_http_protocol_options: { idle_timeout: { seconds: 0 } } })] }));
  assert.equal((timeouts.chains[0].network as HttpNetworkFilter).streamIdleTimeoutMs, 2000);
  assert.equal((timeouts.chains[0].network as HttpNetworkFilter).idleTimeoutMs, 0, 'idle_timeout 0 disables it');
  const self = decode(L({ filters: [hcm({ rds: { config_source: { self: {} }, route_config_name: 'r' } })] }));
  assert.equal((self.chains[0].network as HttpNetworkFilter).routeTableName, 'r');
  const noIdle = decode(L({ filters: [tcpProxy({ cluster: 'c', idle_timeout: { seconds: 0 } })] }));
  assert.equal((noIdle.chains[0].network as TcpNetworkFilter).idleTimeoutMs, 0, 'idle_timeout 0 disables it');
  const dflt = decode(L({ filters: [tcpProxy({ cluster: 'c' })] }));
  assert.equal((dflt.chains[0].network as TcpNetworkFilter).idleTimeoutMs, undefined, "absent: the proxy's default");
});

const RBAC = 'type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC';
const TLS = { name: 'envoy.transport_sockets.tls', typed_config: anyOf(TYPE_URL.Secret, {}) };
const HTTP_INSPECTOR = 'type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector';
const INSPECTOR = { name: 'envoy.filters.listener.tls_inspector', typed_config: anyOf(TYPE_URL.TlsInspector, {}) };
const COMMON = {
  tls_certificate_sds_secret_configs: [{ name: 'default', sds_config: ADS }],
  validation_context_sds_secret_config: { name: 'ROOTCA', sds_config: ADS },
};
const downstream = (extra: Obj) => ({
  name: 'envoy.transport_sockets.tls',
  typed_config: anyOf(TYPE_URL.DownstreamTlsContext, { require_client_certificate: { value: true }, common_tls_context: COMMON, ...extra }),
});

test('listener: NACK for every field outside the subset, naming it', () => {
  const F = 'filter_chains[0].filters[0]';
  const cases: [Obj, string][] = [
    [L(undefined, { listener_filters: [{ name: 'envoy.filters.listener.http_inspector', typed_config: { type_url: HTTP_INSPECTOR, value: Buffer.alloc(0) } }] }), `listener_filters[0].typed_config (${HTTP_INSPECTOR}) is not supported`],
    [L(undefined, { listener_filters: [INSPECTOR, INSPECTOR] }), 'listener_filters[1] is not supported by weft proxy yet (one listener filter'],
    [L(undefined, { use_original_dst: { value: true } }), 'use_original_dst is not supported'],
    [L(undefined, { access_log: [{ name: 'x' }] }), 'access_log is not supported'],
    [L(undefined, { per_connection_buffer_limit_bytes: { value: 1 } }), 'per_connection_buffer_limit_bytes is not supported'],
    [L(undefined, { address: { pipe: { path: '/tmp/s' } } }), 'address.pipe is not supported'],
    [L(undefined, { address: { socket_address: { address: 'localhost', port_value: 1 } } }), 'address.socket_address.address "localhost" is not an IP address'],
    [L(undefined, { address: { socket_address: { address: '0.0.0.0', port_value: 53, protocol: 'UDP' } } }), 'address.socket_address.protocol UDP is not supported'],
    [L({ filters: [hcm()], transport_socket: TLS }), `filter_chains[0].transport_socket.typed_config (${TYPE_URL.Secret}) is not supported`],
    [L({ filters: [hcm()], transport_socket: downstream({ require_client_certificate: { value: false } }) }), 'filter_chains[0].transport_socket.typed_config.require_client_certificate must be true'],
    [L({ filters: [hcm()], transport_socket: downstream({ require_sni: { value: true } }) }), 'filter_chains[0].transport_socket.typed_config.require_sni is not supported'],
    [L({ filters: [hcm()], transport_socket: downstream({ common_tls_context: { ...COMMON, tls_params: {} } }) }), 'filter_chains[0].transport_socket.typed_config.common_tls_context.tls_params is not supported'],
    [L({ filters: [hcm()], transport_socket: downstream({ common_tls_context: { ...COMMON, tls_certificates: [{}] } }) }), 'filter_chains[0].transport_socket.typed_config.common_tls_context.tls_certificates is not supported'],
    [L({ filters: [hcm()], transport_socket: downstream({ common_tls_context: { ...COMMON, alpn_protocols: ['h3'] } }) }), 'filter_chains[0].transport_socket.typed_config.common_tls_context.alpn_protocols[0] "h3" is not supported'],
    [L({ filters: [hcm()], filter_chain_match: { transport_protocol: 'quic' } }, { listener_filters: [INSPECTOR] }), 'filter_chains[0].filter_chain_match.transport_protocol "quic" is not supported'],
    [L({ filters: [hcm()], filter_chain_match: { server_names: ['a'] } }), 'filter_chains[0].filter_chain_match.server_names is not supported'],
    [L({ filters: [{ name: 'envoy.filters.network.rbac', typed_config: { type_url: RBAC, value: Buffer.alloc(0) } }, hcm()] }), `${F} (envoy.filters.network.rbac) (${RBAC}) is not supported`],
    [L({ filters: [hcm({ http_filters: [cors, router] })] }), `${F}.typed_config.http_filters[0] (envoy.filters.http.cors) is not supported by weft proxy yet (supported: envoy.filters.http.router, envoy.extensions.filters.http.fault.v3.HTTPFault, envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit, envoy.extensions.filters.http.ratelimit.v3.RateLimit, envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication, envoy.extensions.filters.http.rbac.v3.RBAC, filters.http.typescript)`],
    [L({ filters: [hcm({ http_filters: [faultWith({ delay: { header_delay: {}, percentage: { numerator: 1 } } }), router] })] }), `${F}.typed_config.http_filters[0].typed_config.delay.header_delay is not supported`],
    [L({ filters: [hcm({ http_filters: [faultWith({ abort: { header_abort: {} } }), router] })] }), `${F}.typed_config.http_filters[0].typed_config.abort.header_abort is not supported`],
    [L({ filters: [hcm({ http_filters: [faultWith({ downstream_nodes: ['a'] }), router] })] }), `${F}.typed_config.http_filters[0].typed_config.downstream_nodes is not supported`],
    [L({ filters: [hcm({ http_filters: [faultWith({ upstream_cluster: 'c' }), router] })] }), `${F}.typed_config.http_filters[0].typed_config.upstream_cluster is not supported`],
    [L({ filters: [hcm({ http_filters: [faultWith({ response_rate_limit: { fixed_limit: { limit_kbps: 1 } } }), router] })] }), `${F}.typed_config.http_filters[0].typed_config.response_rate_limit is not supported`],
    [L({ filters: [hcm({ tracing: {} })] }), `${F}.typed_config.tracing is not supported`],
    [L({ filters: [hcm({ codec_type: 'HTTP2' })] }), `${F}.typed_config.codec_type is not supported`],
    [L({ filters: [hcm({ use_remote_address: { value: true } })] }), `${F}.typed_config.use_remote_address is not supported`],
    [L({ filters: [hcm({ request_timeout: { seconds: 1 } })] }), `${F}.typed_config.request_timeout is not supported`],
    [L({ filters: [hcm({ common_http_protocol_options: { max_connection_duration: { seconds: 1 } } })] }), `${F}.typed_config.common_http_protocol_options.max_connection_duration is not supported`],
    [L({ filters: [hcm({ rds: undefined, scoped_routes: { name: 's' } })] }), `${F}.typed_config.scoped_routes is not supported`],
    [L({ filters: [hcm({ rds: { config_source: { api_config_source: {} }, route_config_name: 'r' } })] }), `${F}.typed_config.rds.config_source.api_config_source is not supported`],
    [L({ filters: [hcm({ http_filters: [{ ...router, typed_config: anyOf(TYPE_URL.Router, { suppress_envoy_headers: true }) }] })] }), `${F}.typed_config.http_filters[0].typed_config.suppress_envoy_headers is not supported`],
    [L({ filters: [tcpProxy({ cluster: 'c', max_connect_attempts: { value: 3 } })] }), `${F}.typed_config.max_connect_attempts is not supported`],
    [L({ filters: [tcpProxy({ cluster: 'c', access_log: [{ name: 'x' }] })] }), `${F}.typed_config.access_log is not supported`],
    [L({ filters: [tcpProxy({ cluster: 'c', hash_policy: [{}] })] }), `${F}.typed_config.hash_policy is not supported`],
    [L({ filters: [tcpProxy({ weighted_clusters: { clusters: [{ name: 'a', weight: 1, metadata_match: {} }] } })] }), `${F}.typed_config.weighted_clusters.clusters[0].metadata_match is not supported`],
  ];
  for (const [l, expected] of cases) {
    const message = nack(() => decode(l));
    assert.ok(message.startsWith(`Listener "l": ${expected}`), `expected ${expected}, got: ${message}`);
  }
});

test('listener: NACK for invalid values', () => {
  const F = 'filter_chains[0].filters';
  const cases: [Obj, string][] = [
    [L({ filters: [] }), `${F} needs a network filter`],
    [L({ filters: [tcpProxy({ cluster: 'c' }), hcm()] }), `${F}[0] (envoy.filters.network.tcp_proxy) is a terminal filter and must be the last one`],
    [L({ filters: [hcm({ http_filters: [] })] }), `${F}[0].typed_config.http_filters must end with envoy.filters.http.router`],
    [L({ filters: [hcm({ http_filters: [router, { ...fault, is_optional: true }] })] }), `${F}[0].typed_config.http_filters[1] (envoy.filters.http.fault) comes after envoy.filters.http.router`],
    [L({ filters: [hcm({ http_filters: [faultWith({ abort: { http_status: 700 } }), router] })] }), `${F}[0].typed_config.http_filters[0].typed_config.abort.http_status must be 200-599, got 700`],
    [L({ filters: [hcm({ http_filters: [faultWith({ abort: { percentage: { numerator: 1 } } }), router] })] }), `${F}[0].typed_config.http_filters[0].typed_config.abort needs http_status or grpc_status`],
    [L({ filters: [hcm({ http_filters: [faultWith({ delay: { percentage: { numerator: 1 } } }), router] })] }), `${F}[0].typed_config.http_filters[0].typed_config.delay.fixed_delay is required`],
    [L({ filters: [hcm({ http_filters: [{ name: 'envoy.filters.http.router' }] })] }), `${F}[0].typed_config.http_filters[0].typed_config is required`],
    [L({ filters: [hcm({ rds: undefined })] }), `${F}[0].typed_config needs rds or route_config`],
    [L({ filters: [hcm({ rds: { config_source: ADS } })] }), `${F}[0].typed_config.rds.route_config_name is required`],
    [L({ filters: [tcpProxy({})] }), `${F}[0].typed_config needs cluster or weighted_clusters`],
    [L({ filters: [tcpProxy({ weighted_clusters: { clusters: [{ name: 'a', weight: 0 }] } })] }), `${F}[0].typed_config.weighted_clusters.clusters[0].weight must be at least 1`],
    [L({ filters: [hcm()], filter_chain_match: { destination_port: { value: 0 } } }), 'filter_chains[0].filter_chain_match.destination_port must be a port 1-65535, got 0'],
    [L(undefined, { filter_chains: [{ filters: [hcm()] }, { filters: [hcm()] }] }), 'filter_chains[1] matches the same connections as filter_chains[0]'],
    [L(undefined, { filter_chains: [] }), 'filter_chains needs at least one filter chain or a default_filter_chain'],
    [L({ filters: [hcm()], filter_chain_match: { transport_protocol: 'tls' } }), 'filter_chains[0].filter_chain_match.transport_protocol needs the tls_inspector listener filter'],
    [L({ filters: [hcm()], transport_socket: downstream({ common_tls_context: { tls_certificate_sds_secret_configs: [] } }) }), 'filter_chains[0].transport_socket.typed_config.common_tls_context.tls_certificate_sds_secret_configs needs exactly one SDS certificate, got 0'],
    [L({ filters: [hcm()], transport_socket: downstream({ common_tls_context: { tls_certificate_sds_secret_configs: [{ name: 'default', sds_config: ADS }] } }) }), 'filter_chains[0].transport_socket.typed_config.common_tls_context needs validation_context_sds_secret_config or combined_validation_context'],
    [L(undefined, { address: undefined }), 'address is required'],
    [L({ filters: [hcm({ route_config: { name: 'x', virtual_hosts: [{ name: 'v', domains: ['*'], routes: [{ match: { safe_regex: { regex: '(?!x)' } }, route: { cluster: 'c' } }] }] }, rds: undefined })] }), `${F}[0].typed_config.route_config.virtual_hosts[0].routes[0].match.safe_regex.regex "(?!x)" is not a valid RE2 regex`],
  ];
  for (const [l, expected] of cases) {
    const message = nack(() => decode(l), 'E_CONFIG_INVALID');
    assert.ok(message.startsWith(`Listener "l": ${expected}`), `expected ${expected}, got: ${message}`);
  }
});

test('listener: a transparent node\'s TCP listeners decode as virtual (bind_to_port false), the HTTP one binds', () => {
  const of = translated(MESH, { service: 'web', outboundPort: 15101, inboundPort: 15106, transparent: true });
  const db = decodeListener(of(TYPE_URL.Listener, 'outbound|5432|db.default'));
  assert.equal(db.bindToPort, false);
  assert.equal((db.chains[0].network as TcpNetworkFilter).kind, 'tcp');
  // Both 5432 services have a listener: virtual ones do not compete for the port.
  assert.equal(decodeListener(of(TYPE_URL.Listener, 'outbound|5432|db-replica.default')).bindToPort, false);
  assert.equal(decodeListener(of(TYPE_URL.Listener, 'outbound')).bindToPort, undefined);
});
