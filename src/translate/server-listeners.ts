// A proxyless gRPC server's Listeners (gRFC A36 xDS-enabled servers, A41 RBAC).
// grpc-js-xds's XdsServer asks for the Listener named by the bootstrap's
// server_listener_resource_name_template with its listening address
// ("0.0.0.0:50051"), and requires the Listener's address to be that address.
// The control plane does not know which address a server binds, so each HTTP
// port of the node's own Service (at its targetPort, else its port) gets one
// Listener per usual bind address. Each has one filter chain: an
// HttpConnectionManager with an inline route config whose one route is a
// non_forwarding_action (the server handles the call itself), and the
// AuthorizationPolicy RBAC filters before the router.
import { anyOf } from '../xds/protos';
import { SERVER_LISTENER_NAME_TEMPLATE } from '../xds/bootstrap';
import { TYPE_URL } from '../xds/type-urls';
import type { PortRbac } from './authz';
import type { Service, ServicePort } from './context';
import { isHttpPort, sortedPorts } from './context';
import { EXTENSION_NAME, ENUM, routerFilter } from './proto-values';

type Obj = Record<string, unknown>;

/** Addresses a gRPC server commonly binds: every IPv4 interface, loopback, every IPv6 interface. */
export const SERVER_BIND_HOSTS = ['0.0.0.0', '127.0.0.1', '::'] as const;

export function serverListenerName(host: string, port: number): string {
  return SERVER_LISTENER_NAME_TEMPLATE.replace('%s', host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`);
}

export function serverListeners(own: Service, rbac: ((port: ServicePort) => PortRbac) | undefined): Obj[] {
  const out: Obj[] = [];
  for (const port of sortedPorts(own)) {
    if (!isHttpPort(port)) continue;
    const bound = port.targetPort ?? port.port;
    const name = `inbound|${bound}`;
    const hcm = {
      stat_prefix: name,
      route_config: {
        name,
        virtual_hosts: [{ name, domains: ['*'], routes: [{ name: 'default', match: { prefix: '' }, non_forwarding_action: {} }] }],
      },
      http_filters: [...(rbac?.(port).http ?? []), routerFilter()],
    };
    for (const host of SERVER_BIND_HOSTS) {
      out.push({
        name: serverListenerName(host, bound),
        address: { socket_address: { address: host, port_value: bound } },
        traffic_direction: ENUM.trafficDirection().INBOUND,
        default_filter_chain: {
          name,
          filters: [{ name: EXTENSION_NAME.httpConnectionManager, typed_config: anyOf(TYPE_URL.HttpConnectionManager, hcm) }],
        },
      });
    }
  }
  return out;
}
