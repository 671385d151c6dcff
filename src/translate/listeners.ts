// Listeners: socket listeners for a sidecar, API listeners for a proxyless
// gRPC client (see names.ts for every name and address).
import { anyOf } from '../xds/protos';
import type { NodeInfo } from './types';
import { TYPE_URL } from '../xds/type-urls';
import { attachedTcpRoute, resolveBackend } from './attach';
import type { Service, ServicePort, TranslateContext } from './context';
import { isHttpPort, keyOf, sortedPorts } from './context';
import {
  apiListenerNames,
  inboundClusterName,
  inboundRouteConfigName,
  INBOUND_LISTENER,
  OUTBOUND_LISTENER,
  OUTBOUND_ROUTE_CONFIG,
  outboundClusterName,
  servicePortName,
  reservedPorts,
  tcpListenerName,
} from './names';
import {
  adsConfigSource,
  duration,
  ENUM,
  EXTENSION_NAME,
  faultFilter,
  routerFilter,
  ZERO_DURATION,
} from './proto-values';
import { httpPorts } from './routes';
import type { TrafficPolicySpec } from '../config/kinds';
import { inboundRateLimit } from './rate-limit';
import type { PortRbac } from './authz';
import { downstreamTlsSocket, inspectorFields, type MeshTlsMode } from './mtls';

type Obj = Record<string, unknown>;

function socketAddress(address: string, port: number): Obj {
  return { socket_address: { address, port_value: port } };
}

function hcmFilter(hcm: Obj): Obj {
  return { name: EXTENSION_NAME.httpConnectionManager, typed_config: anyOf(TYPE_URL.HttpConnectionManager, hcm) };
}

function tcpProxyFilter(tcpProxy: Obj): Obj {
  return { name: EXTENSION_NAME.tcpProxy, typed_config: anyOf(TYPE_URL.TcpProxy, tcpProxy) };
}

/** The sidecar's HTTP listener for everything its app calls; routes come from RDS `outbound`. */
export function outboundListener(node: NodeInfo, opts: { fault?: boolean; plugins?: Obj[] } = {}): Obj {
  return {
    name: OUTBOUND_LISTENER.name,
    address: socketAddress(OUTBOUND_LISTENER.address, node.outboundPort ?? OUTBOUND_LISTENER.port),
    traffic_direction: ENUM.trafficDirection().OUTBOUND,
    filter_chains: [
      {
        filters: [
          hcmFilter({
            stat_prefix: OUTBOUND_LISTENER.name,
            rds: { config_source: adsConfigSource(), route_config_name: OUTBOUND_ROUTE_CONFIG },
            // The fault filter only when a route overrides it (fault.ts): no filter, no per-request cost.
            // Then the outbound http-filter plugins of the node's service (filter-plugins.ts).
            http_filters: [...(opts.fault ? [faultFilter()] : []), ...(opts.plugins ?? []), routerFilter()],
          }),
        ],
      },
    ],
  };
}

/**
 * One listener per TCP port of the callable services, on 127.0.0.1 at the
 * service port. A port can be bound once: ports the sidecar keeps, ports its
 * own app listens on, and a port an earlier service (by namespace/name)
 * took are skipped. A port whose TCPRoute has no usable backend gets no
 * listener, so connections are refused as the Gateway API asks.
 * A transparent node's TCP listeners bind nothing (bind_to_port false, as
 * Envoy's virtual listeners behind its original-destination listener): its
 * program reaches each service port on a VIP socket of its own, so no port
 * is taken and two services may share a port number.
 */
export function tcpListeners(ctx: TranslateContext, callable: Service[], own: Service | undefined): Obj[] {
  const virtual = ctx.node.transparent === true;
  const taken = new Set<number>(virtual ? [] : [...reservedPorts(ctx.node), ...(own?.spec.ports ?? []).map((p) => p.targetPort ?? p.port)]);
  if (ctx.node.appPort && !virtual) taken.add(ctx.node.appPort);
  const out: Obj[] = [];
  for (const service of callable) {
    for (const port of sortedPorts(service)) {
      if (port.protocol !== 'tcp' || taken.has(port.port)) continue;
      const destination = tcpDestination(ctx, service, port);
      if (!destination) continue;
      if (!virtual) taken.add(port.port);
      const name = tcpListenerName(service.metadata.name, service.metadata.namespace, port.port);
      const tcpProxy: Obj = { stat_prefix: name, ...destination };
      const idle = ctx.policies.get(keyOf(service))?.timeouts?.idle;
      if (idle) tcpProxy.idle_timeout = duration(idle);
      out.push({
        name,
        address: socketAddress(OUTBOUND_LISTENER.address, port.port),
        traffic_direction: ENUM.trafficDirection().OUTBOUND,
        filter_chains: [{ filters: [tcpProxyFilter(tcpProxy)] }],
        ...(virtual ? { bind_to_port: { value: false } } : {}),
      });
    }
  }
  return out;
}

/** tcp_proxy's cluster or weighted_clusters: the first rule of the port's TCPRoute, else the service itself. */
function tcpDestination(ctx: TranslateContext, service: Service, port: ServicePort): Obj | undefined {
  const route = attachedTcpRoute(ctx, service, port);
  if (!route) return { cluster: outboundClusterName(service.metadata.name, service.metadata.namespace, port.port) };
  const weights = new Map<string, number>();
  for (const ref of route.spec.rules[0].backendRefs) {
    if (ref.weight === 0) continue;
    const backend = resolveBackend(ctx, ref, route.metadata.namespace, port.port);
    if (backend) weights.set(backend.cluster, (weights.get(backend.cluster) ?? 0) + ref.weight);
  }
  if (weights.size === 0) return undefined;
  if (weights.size === 1) return { cluster: [...weights.keys()][0] };
  return { weighted_clusters: { clusters: [...weights].map(([name, weight]) => ({ name, weight })) } };
}

/** What guards a service's inbound listener: callers' mTLS mode, authorization, JWT verification. */
export interface InboundSecurity {
  mode?: MeshTlsMode;
  /** The RBAC filters of a port (authz.ts): network ones before tcp_proxy, HTTP ones in the HCM. */
  rbac?: (port: ServicePort) => PortRbac;
  /** The jwt_authn HTTP filter (jwt-authn.ts), first in every HCM. */
  jwtAuthn?: Obj;
  /** The inbound http-filter plugins (filter-plugins.ts): after every guard, just before the router. */
  plugins?: Obj[];
}

/**
 * The sidecar's listener for traffic to its own service: a filter chain per
 * port, chosen by the connection's original destination port (after
 * interception); a connection made to the listener itself goes to the lowest port.
 * Callers' mTLS (mtls.ts): tls_inspector picks, per port, the TLS chain for a
 * ClientHello and (permissive only) the plaintext chain for anything else.
 */
export function inboundListener(own: Service, node: NodeInfo, policy?: TrafficPolicySpec, security: InboundSecurity = {}): Obj {
  const ports = sortedPorts(own);
  const plaintext = (security.mode ?? 'permissive') === 'permissive';
  const portFilters = (port: ServicePort): Obj[] => {
    const rbac = security.rbac?.(port);
    return [...(rbac?.network ?? []), inboundFilter(port, own, policy, rbac?.http, security.jwtAuthn, security.plugins)];
  };
  const chains: Obj[] = [];
  for (const port of ports) {
    const name = inboundRouteConfigName(port.port);
    chains.push({
      name: `${name}|tls`,
      filter_chain_match: { destination_port: { value: port.port }, transport_protocol: 'tls' },
      filters: portFilters(port),
      transport_socket: downstreamTlsSocket(node),
    });
    if (plaintext) chains.push({ name, filter_chain_match: { destination_port: { value: port.port } }, filters: portFilters(port) });
  }
  // Connections to the listener's own port: the lowest service port, over TLS (and plaintext when permissive).
  chains.push({
    name: `${INBOUND_LISTENER.name}|default|tls`,
    filter_chain_match: { transport_protocol: 'tls' },
    filters: portFilters(ports[0]),
    transport_socket: downstreamTlsSocket(node),
  });
  return {
    name: INBOUND_LISTENER.name,
    address: socketAddress(INBOUND_LISTENER.address, node.inboundPort ?? INBOUND_LISTENER.port),
    traffic_direction: ENUM.trafficDirection().INBOUND,
    ...inspectorFields(),
    filter_chains: chains,
    ...(plaintext ? { default_filter_chain: { name: `${INBOUND_LISTENER.name}|default`, filters: portFilters(ports[0]) } } : {}),
  };
}

function inboundFilter(port: ServicePort, own: Service, policy: TrafficPolicySpec | undefined, rbac: Obj[] = [], jwtAuthn?: Obj, plugins: Obj[] = []): Obj {
  const cluster = inboundClusterName(port.port);
  const name = inboundRouteConfigName(port.port);
  if (!isHttpPort(port)) return tcpProxyFilter({ stat_prefix: name, cluster });
  // Rate limits protect this service: every caller's request is counted here.
  const limits = inboundRateLimit(policy?.rateLimit, own.metadata, name);
  const action: Obj = { cluster, timeout: ZERO_DURATION };
  if (limits?.rateLimits.length) action.rate_limits = limits.rateLimits;
  // The service's own idle timeout closes its callers' idle connections on this side too.
  const idle = policy?.timeouts?.idle;
  return hcmFilter({
    ...(idle ? { common_http_protocol_options: { idle_timeout: duration(idle) } } : {}),
    stat_prefix: name,
    route_config: {
      name,
      virtual_hosts: [
        // The caller's sidecar applied the timeouts already; this hop adds none.
        { name, domains: ['*'], routes: [{ name: 'default', match: { prefix: '/' }, route: action }] },
      ],
    },
    // jwt_authn first (the RBAC filters read the claims it verified), then RBAC
    // (deny, then allow) before anything counts the request; the plugins' modules
    // last, so they never see a request the guards refuse.
    http_filters: [...(jwtAuthn ? [jwtAuthn] : []), ...rbac, ...(limits?.httpFilters ?? []), ...plugins, routerFilter()],
  });
}

/**
 * A proxyless client's API listeners: every name it may dial an HTTP port of
 * a callable service by, each an HttpConnectionManager reading the port's
 * route config over RDS. The fault filter comes before the router so routes
 * that must answer locally can abort (see rules.ts).
 */
export function apiListeners(ctx: TranslateContext, callable: Service[]): Obj[] {
  const out: Obj[] = [];
  for (const service of callable) {
    const { name: svc, namespace } = service.metadata;
    const { ports, defaultPort } = httpPorts(service);
    for (const port of ports) {
      const routeConfig = servicePortName(svc, namespace, port.port);
      const opts = { sameNamespace: namespace === ctx.node.namespace, isDefaultPort: port.port === defaultPort };
      for (const name of apiListenerNames(svc, namespace, port.port, opts)) {
        const hcm = {
          stat_prefix: name,
          rds: { config_source: adsConfigSource(), route_config_name: routeConfig },
          http_filters: [faultFilter(), routerFilter()],
        };
        out.push({ name, api_listener: { api_listener: anyOf(TYPE_URL.HttpConnectionManager, hcm) } });
      }
    }
  }
  return out;
}
