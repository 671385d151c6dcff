// The translator's inputs and outputs: a read-only view of the mesh, the node
// asking, and the Envoy v3 resources that node should receive.
import type { Resource } from '../config/kinds';
import type { XdsTypeUrl } from '../xds/type-urls';

/** One live endpoint of a service: static from its spec or registered through the API. */
export interface Endpoint {
  address: string;
  /** service port name → port on this endpoint */
  ports: Record<string, number>;
  labels: Record<string, string>;
  zone?: string;
  weight: number;
  health: 'healthy' | 'unhealthy' | 'draining';
  /** 'static' or the registration id */
  origin: string;
  /** A weft sidecar fronts this endpoint (registered by `weft run`): callers' sidecars speak mTLS to it. */
  sidecar?: boolean;
}

/** Mesh-wide settings of the translation (control plane options). */
export interface TranslateOptions {
  /** SPIFFE trust domain of workload identities; default cluster.local. */
  trustDomain?: string;
}

/** Everything the translator may read: validated resources and live endpoints. */
export interface MeshView {
  services: Resource<'Service'>[];
  httpRoutes: Resource<'HTTPRoute'>[];
  grpcRoutes: Resource<'GRPCRoute'>[];
  tcpRoutes: Resource<'TCPRoute'>[];
  trafficPolicies: Resource<'TrafficPolicy'>[];
  meshTls: Resource<'MeshTLS'>[];
  authorizationPolicies: Resource<'AuthorizationPolicy'>[];
  requestAuthentications: Resource<'RequestAuthentication'>[];
  /** Plugins; the translator reads the http-filter ones (filter-plugins.ts). Absent: none. */
  plugins?: Resource<'Plugin'>[];
  /** "namespace/name" of a Service → its endpoints */
  endpoints: Map<string, Endpoint[]>;
}

/**
 * What kind of xDS client a node is. A weft sidecar or Envoy gets socket
 * listeners (outbound, inbound); a proxyless gRPC client gets one API
 * listener per `xds:///` target it may dial.
 */
export type NodeRole = 'sidecar' | 'proxyless';

/** The node as the translator sees it: derived from the xDS Node message. */
export interface NodeInfo {
  id: string;
  role: NodeRole;
  /** The service this node runs beside (absent: a client with no service of its own). */
  service?: string;
  namespace: string;
  zone?: string;
  /**
   * A sidecar's own ports, from its bootstrap (several sidecars share a bare
   * host): where it listens for its app's calls (default 15001) and for
   * callers (default 15006), and where its app listens (default: the service
   * port's targetPort or port).
   */
  outboundPort?: number;
  inboundPort?: number;
  appPort?: number;
  /** Where the sidecar reaches its app (default 127.0.0.1): a transparent unit's own address. */
  appAddress?: string;
  /** Under `weft run --transparent`: TCP listeners are virtual (bind_to_port false), reached from the unit's VIP sockets. */
  transparent?: boolean;
  /** An Envoy with a local SDS server (`weft run --proxy envoy`): the workload certificate "default" is fetched from the static cluster weft_sds, the trust bundle still over ADS. */
  localSds?: boolean;
  /** A sidecar's admin port on its host's loopback (not translated: `weft status` reads /clusters there). */
  adminPort?: number;
  /** The host's name the node announced (WEFT_HOSTNAME). */
  hostname?: string;
  /** Where a sidecar serves /stats/prometheus beyond loopback, "host:port" (0.0.0.0 / [::]: every address of its host). Not translated: the control plane's Prometheus service discovery lists it. */
  metricsAddress?: string;
}

/** One Envoy resource, a plain object that protobufjs `fromObject` accepts for its type. */
export interface XdsResource {
  name: string;
  /** The resource message (snake_case fields, nested Anys already encoded as {type_url, value}). */
  resource: Record<string, unknown>;
}

/** The translator's output for one node: type URL → resources by name. */
export type ResourceSet = Map<XdsTypeUrl, Map<string, XdsResource>>;
