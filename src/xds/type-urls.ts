// Every xDS type URL weft serves or consumes, in one place.
export const TYPE_URL = {
  Listener: 'type.googleapis.com/envoy.config.listener.v3.Listener',
  RouteConfiguration: 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
  Cluster: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
  ClusterLoadAssignment: 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
  Secret: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret',
  HttpConnectionManager:
    'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
  TcpProxy: 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy',
  Router: 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router',
  HttpFault: 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault',
  LocalRateLimit: 'type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit',
  RateLimit: 'type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit',
  JwtAuthentication: 'type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication',
  HttpProtocolOptions: 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
  HttpRbac: 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC',
  NetworkRbac: 'type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC',
  TlsInspector: 'type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector',
  DownstreamTlsContext: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
  UpstreamTlsContext: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
  /** An extension's config as a Struct, named by its own type_url (how Envoy carries configs it has no proto for). */
  TypedStruct: 'type.googleapis.com/xds.type.v3.TypedStruct',
} as const;

/** The type_url inside the TypedStruct of an http-filter Plugin: weft's own, unknown to Envoy (the filter is optional). */
export const MODULE_FILTER_TYPE_URL = 'weft.dev/filters.http.typescript';

/** The resource types of ADS, in the order a client should apply them (CDS before EDS, LDS before RDS). */
export const XDS_RESOURCE_TYPES = [
  TYPE_URL.Cluster,
  TYPE_URL.ClusterLoadAssignment,
  TYPE_URL.Listener,
  TYPE_URL.RouteConfiguration,
  TYPE_URL.Secret,
] as const;

export type XdsTypeUrl = (typeof XDS_RESOURCE_TYPES)[number];

/** Short names for logs, the API and `weft status`. */
export const TYPE_SHORT_NAME: Record<XdsTypeUrl, string> = {
  [TYPE_URL.Cluster]: 'CDS',
  [TYPE_URL.ClusterLoadAssignment]: 'EDS',
  [TYPE_URL.Listener]: 'LDS',
  [TYPE_URL.RouteConfiguration]: 'RDS',
  [TYPE_URL.Secret]: 'SDS',
};
