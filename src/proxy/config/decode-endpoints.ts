// envoy.config.endpoint.v3.ClusterLoadAssignment → EndpointSet, for EDS
// resources and a STATIC cluster's inline load_assignment.
//
// Supported subset (anything else that changes behaviour is a NACK naming it):
//   ClusterLoadAssignment  cluster_name, endpoints; policy only when empty
//   LocalityLbEndpoints    locality {zone; region, sub_zone accepted}, lb_endpoints,
//                          load_balancing_weight (default 1), priority (contiguous from 0)
//                          (metadata accepted)
//   LbEndpoint             endpoint.address.socket_address (TCP, IP literal, port 1-65535),
//                          health_status UNKNOWN | HEALTHY | UNHEALTHY | DRAINING | TIMEOUT
//                          (as unhealthy), load_balancing_weight (default 1)
//                          metadata.filter_metadata["envoy.transport_socket_match"] (string
//                          values: the cluster's transport_socket_matches pick mTLS by them;
//                          other metadata accepted), endpoint.health_check_config accepted (no
//                          active health checking is configured, so it changes nothing)
// Not supported (NACK): hostnames (endpoint.hostname or a non-IP address), DEGRADED,
// named_endpoints, endpoint_name, additional_addresses, LEDS, proximity, drop_overloads,
// overprovisioning_factor.
import { isIPv6 } from 'node:net';
import { FieldPath, onlyFields } from './nack';
import { endpointSocketMatch } from './decode-tls';
import { ipSocketAddress, u32, type Obj } from './read-proto';
import type { Endpoint, EndpointSet, Locality } from './types';

const T = 'envoy.config.endpoint.v3.';

const HEALTH: Record<string, Endpoint['health']> = {
  UNKNOWN: 'unknown',
  HEALTHY: 'healthy',
  UNHEALTHY: 'unhealthy',
  DRAINING: 'draining',
  // A health check timed out: Envoy treats the endpoint as unhealthy.
  TIMEOUT: 'unhealthy',
};

/** Decodes a ClusterLoadAssignment resource (EDS). */
export function decodeClusterLoadAssignment(msg: Obj): EndpointSet {
  return decodeLoadAssignment(new FieldPath('ClusterLoadAssignment', msg.cluster_name ?? ''), msg, msg.cluster_name ?? '');
}

/** A ClusterLoadAssignment at `at`, as the endpoints of `clusterName`. */
export function decodeLoadAssignment(at: FieldPath, msg: Obj, clusterName: string): EndpointSet {
  onlyFields(at, `${T}ClusterLoadAssignment`, msg, ['cluster_name', 'endpoints', 'policy']);
  if (msg.policy) onlyFields(at.field('policy'), `${T}ClusterLoadAssignment.Policy`, msg.policy, []);
  const localities: Locality[] = (msg.endpoints ?? []).map((l: Obj, i: number) => locality(at.field('endpoints').index(i), l));
  // Stable: localities of one priority keep the order the control plane gave.
  localities.sort((a, b) => a.priority - b.priority);
  let expected = 0;
  for (const l of localities) {
    if (l.priority > expected) at.field('endpoints').invalid(`priorities must be contiguous from 0: ${expected} is missing`);
    expected = l.priority + 1;
  }
  return { clusterName, localities };
}

function locality(at: FieldPath, l: Obj): Locality {
  onlyFields(at, `${T}LocalityLbEndpoints`, l, ['locality', 'lb_endpoints', 'load_balancing_weight', 'priority', 'metadata']);
  if (l.locality) onlyFields(at.field('locality'), 'envoy.config.core.v3.Locality', l.locality, ['region', 'zone', 'sub_zone']);
  const zone: string = l.locality?.zone ?? '';
  const weight = u32(l.load_balancing_weight, 1);
  if (weight === 0) at.field('load_balancing_weight').invalid('must be at least 1');
  const endpoints = (l.lb_endpoints ?? []).map((e: Obj, i: number) => lbEndpoint(at.field('lb_endpoints').index(i), e, zone));
  return { zone, priority: l.priority ?? 0, weight, endpoints };
}

function lbEndpoint(at: FieldPath, e: Obj, zone: string): Endpoint {
  onlyFields(at, `${T}LbEndpoint`, e, ['endpoint', 'health_status', 'load_balancing_weight', 'metadata']);
  if (!e.endpoint) at.field('endpoint').invalid('is required');
  const here = at.field('endpoint');
  onlyFields(here, `${T}Endpoint`, e.endpoint, ['address', 'health_check_config']);
  const { address, port } = ipSocketAddress(here.field('address'), e.endpoint.address, { allowPortZero: false });
  const status: string = e.health_status ?? 'UNKNOWN';
  const health = HEALTH[status];
  if (!health) at.field('health_status').unsupported(`${status} is not supported by weft proxy yet`);
  const weight = u32(e.load_balancing_weight, 1);
  if (weight === 0) at.field('load_balancing_weight').invalid('must be at least 1');
  const key = isIPv6(address) ? `[${address}]:${port}` : `${address}:${port}`;
  const out: Endpoint = { address, port, weight, health, zone, key };
  const socketMatch = endpointSocketMatch(at.field('metadata'), e.metadata);
  if (socketMatch) out.socketMatch = socketMatch;
  return out;
}
