// envoy.config.listener.v3.Listener → ListenerConfig.
//
// Supported subset (anything else that changes behaviour is a NACK naming it):
//   Listener          name, address.socket_address (TCP, IP literal, port), filter_chains,
//                     default_filter_chain, traffic_direction (stat_prefix, metadata accepted),
//                     listener_filters [tls_inspector], listener_filters_timeout,
//                     continue_on_listener_filters_timeout (see decode-tls.ts), bind_to_port
//                     (false: a virtual listener, served only by hand-over; see ListenerManager.handOver)
//   FilterChain       name, filter_chain_match {destination_port, transport_protocol tls |
//                     raw_buffer (needs tls_inspector)}, filters, transport_socket
//                     DownstreamTlsContext (mTLS, see decode-tls.ts) (metadata accepted);
//                     chains must differ in their match
//   filters           one terminal network filter, by typed_config type URL (before tcp_proxy:
//                     envoy.filters.network.rbac filters, see tcp/network-rbac.ts):
//     HttpConnectionManager  stat_prefix, rds {config_source ads|self, route_config_name},
//                     stream_idle_timeout (default 5 min), common_http_protocol_options.idle_timeout
//                     (downstream connections; default 1 h)
//                     or an inline route_config (see decode-route.ts), http_filters ending in
//                     envoy.filters.http.router (Router's stats/tracing knobs accepted), before it
//                     the filters of filters/catalog.ts (a typed_config may be an
//                     xds.type.v3.TypedStruct: its type_url names the filter, its
//                     Struct is the config); another HTTP filter is a NACK unless
//                     is_optional, in which case it is skipped as Envoy skips one it does not know
//     TcpProxy        stat_prefix, cluster | weighted_clusters {name, weight}, idle_timeout
//                     (absent: the proxy's default; 0: none)
// Not supported (NACK): api_listener (proxyless gRPC), listener filters other than
// tls_inspector, other filter_chain_match fields, other network filters, HCM options (tracing,
// access_log, timeouts, codec_type other than AUTO, …), other TcpProxy options.
import { TYPE_URL } from '../../xds/type-urls';
import { decodeRouteTable } from './decode-route';
import { FieldPath, onlyFields } from './nack';
import { decodeDownstreamTls, decodeListenerFilters } from './decode-tls';
import { bool, durationMs, ipSocketAddress, requireAdsConfigSource, structToJson, u32, unpackAny, type Obj } from './read-proto';
import { filterTypeFor, HTTP_FILTER_TYPES } from '../filters/catalog';
import { decodeNetworkRbac, type NetworkRbacConfig } from '../tcp/network-rbac';
import type { FilterChain, HttpFilterConfig, HttpNetworkFilter, ListenerConfig, TcpNetworkFilter, WeightedCluster } from './types';

const ROUTER_FILTER = 'envoy.filters.http.router';

/** Envoy's defaults: a request idle 5 minutes ends; a connection idle an hour closes. */
export const HCM_DEFAULTS = { streamIdleTimeoutMs: 300_000, idleTimeoutMs: 3_600_000 } as const;

const DIRECTION: Record<string, ListenerConfig['direction']> = {
  INBOUND: 'inbound',
  OUTBOUND: 'outbound',
  UNSPECIFIED: 'unspecified',
};

export function decodeListener(msg: Obj): ListenerConfig {
  const at = new FieldPath('Listener', msg.name ?? '');
  onlyFields(at, 'envoy.config.listener.v3.Listener', msg, [
    'name',
    'address',
    'stat_prefix',
    'filter_chains',
    'default_filter_chain',
    'traffic_direction',
    'metadata',
    'listener_filters',
    'listener_filters_timeout',
    'continue_on_listener_filters_timeout',
    'bind_to_port',
  ]);
  const { address, port } = ipSocketAddress(at.field('address'), msg.address, { allowPortZero: true });
  const chains: FilterChain[] = (msg.filter_chains ?? []).map((c: Obj, i: number) => filterChain(at.field('filter_chains').index(i), c));
  const seen = new Map<string, number>();
  chains.forEach((c, i) => {
    const key = `${c.destinationPort}|${c.transportProtocol}`;
    const first = seen.get(key);
    if (first !== undefined) at.field('filter_chains').index(i).invalid(`matches the same connections as filter_chains[${first}]`);
    seen.set(key, i);
  });
  const tlsInspector = decodeListenerFilters(at, msg);
  const direction = DIRECTION[msg.traffic_direction ?? 'UNSPECIFIED'];
  if (!direction) at.field('traffic_direction').unsupported(`${msg.traffic_direction} is not supported by weft proxy yet`);
  const out: ListenerConfig = { name: msg.name ?? '', address, port, direction, chains };
  if (tlsInspector) out.tlsInspector = tlsInspector;
  if (!bool(msg.bind_to_port, true)) out.bindToPort = false;
  if (msg.default_filter_chain) out.defaultChain = filterChain(at.field('default_filter_chain'), msg.default_filter_chain);
  const sniffed = [...chains, ...(out.defaultChain ? [out.defaultChain] : [])].findIndex((c) => c.transportProtocol);
  if (sniffed >= 0 && !tlsInspector) at.field('filter_chains').index(sniffed).field('filter_chain_match').field('transport_protocol').invalid('needs the tls_inspector listener filter');
  if (chains.length === 0 && !out.defaultChain) at.field('filter_chains').invalid('needs at least one filter chain or a default_filter_chain');
  return out;
}

function filterChain(at: FieldPath, c: Obj): FilterChain {
  onlyFields(at, 'envoy.config.listener.v3.FilterChain', c, ['name', 'filter_chain_match', 'filters', 'metadata', 'transport_socket']);
  const out: FilterChain = { name: c.name ?? '', network: networkFilter(at.field('filters'), c.filters ?? []) };
  if (c.transport_socket) out.tls = decodeDownstreamTls(at.field('transport_socket'), c.transport_socket);
  const match = c.filter_chain_match;
  if (match) {
    const here = at.field('filter_chain_match');
    onlyFields(here, 'envoy.config.listener.v3.FilterChainMatch', match, ['destination_port', 'transport_protocol']);
    if (match.transport_protocol) {
      if (match.transport_protocol !== 'tls' && match.transport_protocol !== 'raw_buffer') {
        here.field('transport_protocol').unsupported(`"${match.transport_protocol}" is not supported by weft proxy yet (tls, raw_buffer)`);
      }
      out.transportProtocol = match.transport_protocol;
    }
    if (match.destination_port) {
      const port = u32(match.destination_port, 0);
      if (port < 1 || port > 65535) here.field('destination_port').invalid(`must be a port 1-65535, got ${port}`);
      out.destinationPort = port;
    }
  }
  return out;
}

/** The chain's terminal network filter (HttpConnectionManager or TcpProxy); before tcp_proxy, RBAC filters. */
function networkFilter(at: FieldPath, filters: Obj[]): FilterChain['network'] {
  if (filters.length === 0) at.invalid('needs a network filter (http_connection_manager or tcp_proxy)');
  let network: FilterChain['network'] | undefined;
  const rbac: NetworkRbacConfig[] = [];
  filters.forEach((f, i) => {
    const here = at.index(i);
    onlyFields(here, 'envoy.config.listener.v3.Filter', f, ['name', 'typed_config']);
    const named = f.name ? here.note(f.name) : here;
    if (!f.typed_config) here.field('typed_config').invalid('is required');
    const { typeUrl, msg } = unpackAny(named, f.typed_config, [TYPE_URL.HttpConnectionManager, TYPE_URL.TcpProxy, TYPE_URL.NetworkRbac]);
    const config = here.field('typed_config');
    if (typeUrl === TYPE_URL.NetworkRbac) {
      if (i === filters.length - 1) named.invalid('is not a terminal filter: tcp_proxy must follow it');
      if (filters[filters.length - 1].typed_config?.type_url !== TYPE_URL.TcpProxy) {
        named.note(typeUrl).unsupported('is not supported by weft proxy yet before http_connection_manager (use the HTTP RBAC filter)');
      }
      rbac.push(decodeNetworkRbac(config, f.name ?? '', msg));
      return;
    }
    if (i < filters.length - 1) named.invalid('is a terminal filter and must be the last one');
    network = typeUrl === TYPE_URL.HttpConnectionManager ? httpConnectionManager(config, msg) : tcpProxy(config, msg);
  });
  if (rbac.length) (network as TcpNetworkFilter).rbac = rbac;
  return network!;
}

function httpConnectionManager(at: FieldPath, hcm: Obj): HttpNetworkFilter {
  onlyFields(at, 'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager', hcm, [
    'stat_prefix',
    'rds',
    'route_config',
    'http_filters',
    'stream_idle_timeout',
    'common_http_protocol_options',
  ]);
  const out: HttpNetworkFilter = {
    kind: 'http',
    statPrefix: hcm.stat_prefix ?? '',
    httpFilters: httpFilters(at.field('http_filters'), hcm.http_filters ?? []),
    streamIdleTimeoutMs: durationMs(at.field('stream_idle_timeout'), hcm.stream_idle_timeout, HCM_DEFAULTS.streamIdleTimeoutMs),
    idleTimeoutMs: HCM_DEFAULTS.idleTimeoutMs,
  };
  const common = hcm.common_http_protocol_options;
  if (common) {
    const here = at.field('common_http_protocol_options');
    onlyFields(here, 'envoy.config.core.v3.HttpProtocolOptions', common, ['idle_timeout']);
    out.idleTimeoutMs = durationMs(here.field('idle_timeout'), common.idle_timeout, HCM_DEFAULTS.idleTimeoutMs);
  }
  if (hcm.route_specifier === 'rds') {
    const here = at.field('rds');
    onlyFields(here, 'envoy.extensions.filters.network.http_connection_manager.v3.Rds', hcm.rds, ['config_source', 'route_config_name']);
    requireAdsConfigSource(here.field('config_source'), hcm.rds.config_source);
    if (!hcm.rds.route_config_name) here.field('route_config_name').invalid('is required');
    out.routeTableName = hcm.rds.route_config_name;
  } else if (hcm.route_specifier === 'route_config') {
    out.routeTable = decodeRouteTable(at.field('route_config'), hcm.route_config);
  } else {
    at.invalid('needs rds or route_config');
  }
  return out;
}

/**
 * The HTTP filters before the router, decoded by their type (filters/catalog.ts).
 * An optional filter weft does not know is skipped, as Envoy skips one it lacks.
 */
function httpFilters(at: FieldPath, filters: Obj[]): HttpFilterConfig[] {
  const out: HttpFilterConfig[] = [];
  let router = false;
  filters.forEach((f, i) => {
    const here = at.index(i);
    onlyFields(here, 'envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter', f, ['name', 'typed_config', 'is_optional']);
    const named = here.note(f.name || f.typed_config?.type_url || 'unnamed');
    if (router) named.invalid(`comes after ${ROUTER_FILTER}, which must be the last HTTP filter`);
    if (!f.typed_config) here.field('typed_config').invalid('is required');
    let typeUrl: string = f.typed_config.type_url;
    // A TypedStruct names its extension by its own type_url and carries the config as a Struct (JSON).
    let typedStruct: Obj | undefined;
    if (typeUrl === TYPE_URL.TypedStruct) {
      const { msg } = unpackAny(here.field('typed_config'), f.typed_config, [TYPE_URL.TypedStruct]);
      typeUrl = msg.type_url ?? '';
      typedStruct = structToJson(msg.value);
    }
    if (typeUrl !== TYPE_URL.Router) {
      const type = filterTypeFor(typeUrl);
      if (!type) {
        if (f.is_optional) return;
        const known = [ROUTER_FILTER, ...HTTP_FILTER_TYPES.map((t) => t.typeUrl.slice(t.typeUrl.lastIndexOf('/') + 1))];
        return named.unsupported(`is not supported by weft proxy yet (supported: ${known.join(', ')})`);
      }
      if (!f.name) here.field('name').invalid('is required');
      if (out.some((o) => o.name === f.name)) here.field('name').invalid(`"${f.name}" names another filter of this chain`);
      const msg = typedStruct ?? unpackAny(here.field('typed_config'), f.typed_config, [typeUrl]).msg;
      out.push({ name: f.name, typeUrl, config: type.decode(here.field('typed_config'), msg) });
      return;
    }
    const { msg } = unpackAny(here.field('typed_config'), f.typed_config, [TYPE_URL.Router]);
    // Stats and tracing knobs do not change how requests are handled.
    onlyFields(here.field('typed_config'), 'envoy.extensions.filters.http.router.v3.Router', msg, [
      'dynamic_stats',
      'start_child_span',
      'suppress_grpc_request_failure_code_stats',
    ]);
    router = true;
  });
  if (!router) at.invalid(`must end with ${ROUTER_FILTER}`);
  return out;
}

function tcpProxy(at: FieldPath, p: Obj): TcpNetworkFilter {
  const T = 'envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy';
  onlyFields(at, T, p, ['stat_prefix', 'cluster', 'weighted_clusters', 'idle_timeout']);
  let clusters: WeightedCluster[];
  if (p.cluster_specifier === 'cluster') {
    if (!p.cluster) at.field('cluster').invalid('must not be empty');
    clusters = [{ name: p.cluster, weight: 1 }];
  } else if (p.cluster_specifier === 'weighted_clusters') {
    const here = at.field('weighted_clusters');
    onlyFields(here, `${T}.WeightedCluster`, p.weighted_clusters, ['clusters']);
    clusters = (p.weighted_clusters.clusters ?? []).map((c: Obj, i: number) => {
      const item = here.field('clusters').index(i);
      onlyFields(item, `${T}.WeightedCluster.ClusterWeight`, c, ['name', 'weight']);
      if (!c.name) item.field('name').invalid('must not be empty');
      if (!c.weight) item.field('weight').invalid('must be at least 1');
      return { name: c.name, weight: c.weight };
    });
    if (clusters.length === 0) here.field('clusters').invalid('needs at least one cluster');
  } else {
    return at.invalid('needs cluster or weighted_clusters');
  }
  const out: TcpNetworkFilter = {
    kind: 'tcp',
    statPrefix: p.stat_prefix ?? '',
    clusters,
    totalWeight: clusters.reduce((sum, c) => sum + c.weight, 0),
  };
  if (p.idle_timeout) out.idleTimeoutMs = durationMs(at.field('idle_timeout'), p.idle_timeout, 0);
  return out;
}
