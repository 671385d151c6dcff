// The naming scheme of every resource the translator emits. Names are part of
// the contract with data planes, dashboards and the cache's consistency check,
// so they are built here and nowhere else, and never change once released.
//
//   Cluster (CDS), outbound      outbound|<port>||<service>.<namespace>      (Istio-like)
//   ClusterLoadAssignment (EDS)  the same as its cluster; the cluster's eds service_name too
//   Cluster, inbound (sidecar)   inbound|<port>||                            STATIC, to 127.0.0.1:<targetPort|port>
//
//   sidecar:
//     Listener `outbound`                 127.0.0.1:15001, HTTP, RDS route config `outbound`
//     RouteConfiguration `outbound`       one virtual host per HTTP service port, named <service>.<namespace>:<port>
//     Listener outbound|<port>|<service>.<namespace>   127.0.0.1:<port>, tcp_proxy (TCP ports)
//     Listener `inbound`                  0.0.0.0:15006, one filter chain per port of the node's service
//                                         (inline route configs inbound|<port>)
//
//   proxyless gRPC client:
//     Listener (API listener), named as the client dials it (`xds:///<name>`):
//       <service>.<namespace>:<port>, and <service>:<port> for services of the node's own namespace;
//       for a service's default port (see defaultPort) also <service>.<namespace> and <service>
//     RouteConfiguration <service>.<namespace>:<port>   one virtual host, domains ['*']
//
// Route entries are named <kind>/<namespace>/<name>/<rule>/<match> (or `default`)
// so a NACK or a log line points at the user's resource.

import type { NodeInfo } from './types';

/** The xDS listener address of the sidecar's outbound HTTP listener. */
export const OUTBOUND_LISTENER = { name: 'outbound', address: '127.0.0.1', port: 15001 } as const;
/** The route configuration the outbound listener reads over RDS. */
export const OUTBOUND_ROUTE_CONFIG = 'outbound';
/** The sidecar's inbound listener: traffic to the node's own service. */
export const INBOUND_LISTENER = { name: 'inbound', address: '0.0.0.0', port: 15006 } as const;
/** Ports the sidecar keeps for itself; a TCP service on one of them gets no outbound listener. */
export function reservedPorts(node: NodeInfo): number[] {
  return [node.outboundPort ?? OUTBOUND_LISTENER.port, node.inboundPort ?? INBOUND_LISTENER.port];
}

/** "namespace/name": the key of MeshView.endpoints and of services in scope. */
export function serviceKey(name: string, namespace: string): string {
  return `${namespace}/${name}`;
}

/** The host a service is known by: <service>.<namespace>. */
export function serviceHost(name: string, namespace: string): string {
  return `${name}.${namespace}`;
}

export function outboundClusterName(name: string, namespace: string, port: number): string {
  return `outbound|${port}||${serviceHost(name, namespace)}`;
}

export function inboundClusterName(port: number): string {
  return `inbound|${port}||`;
}

export function inboundRouteConfigName(port: number): string {
  return `inbound|${port}`;
}

export function tcpListenerName(name: string, namespace: string, port: number): string {
  return `outbound|${port}|${serviceHost(name, namespace)}`;
}

/** A virtual host of the sidecar's `outbound` route config, and a proxyless route config. */
export function servicePortName(name: string, namespace: string, port: number): string {
  return `${serviceHost(name, namespace)}:${port}`;
}

/**
 * The port a name without a port means: 80 when the service has it, otherwise
 * its lowest-numbered port among `candidates` (the HTTP-capable ones).
 */
export function defaultPort(candidates: readonly number[]): number | undefined {
  if (candidates.includes(80)) return 80;
  return candidates.length ? Math.min(...candidates) : undefined;
}

/** HTTP authorities a sidecar's app may use for a service port (virtual host domains). */
export function serviceDomains(
  name: string,
  namespace: string,
  port: number,
  opts: { sameNamespace: boolean; isDefaultPort: boolean },
): string[] {
  const hosts = [serviceHost(name, namespace), `${serviceHost(name, namespace)}.svc`];
  if (opts.sameNamespace) hosts.unshift(name);
  const domains: string[] = [];
  for (const host of hosts) {
    if (opts.isDefaultPort) domains.push(host);
    domains.push(`${host}:${port}`);
  }
  return domains;
}

/** Names a proxyless client may dial a service port by (API listener names). */
export function apiListenerNames(
  name: string,
  namespace: string,
  port: number,
  opts: { sameNamespace: boolean; isDefaultPort: boolean },
): string[] {
  const hosts = opts.sameNamespace ? [name, serviceHost(name, namespace)] : [serviceHost(name, namespace)];
  const names: string[] = [];
  for (const host of hosts) {
    names.push(`${host}:${port}`);
    if (opts.isDefaultPort) names.push(host);
  }
  return names;
}

/** A route entry's name: where it came from. */
export function routeEntryName(kind: string, namespace: string, name: string, rule: number, match: number): string {
  return `${kind}/${namespace}/${name}/${rule}/${match}`;
}

export const DEFAULT_ROUTE_NAME = 'default';
