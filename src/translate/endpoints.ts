// ClusterLoadAssignments: the live endpoints of a service port, grouped into
// localities by zone.
//
// A node with a zone prefers its own: localities of that zone are priority
// 0 and the others priority 1, so Envoy and gRPC fail over only when the
// local zone is unhealthy. With no endpoint in the node's zone everything is
// priority 0 (grpc-js rejects a priority 1 without a priority 0).
import type { Service, ServicePort, TranslateContext } from './context';
import { outboundClusterName, serviceKey } from './names';
import { compareStrings, ENUM, wrap } from './proto-values';
import type { Endpoint } from './types';
import { sidecarEndpointMetadata } from './mtls';

type Obj = Record<string, unknown>;

const HEALTH_STATUS: Record<Endpoint['health'], string> = {
  healthy: 'HEALTHY',
  unhealthy: 'UNHEALTHY',
  draining: 'DRAINING',
};


interface PortEndpoint {
  endpoint: Endpoint;
  port: number;
}

/**
 * The endpoints serving a port, ordered by address and port. Two endpoints
 * at the same address and port are one backend (grpc-js rejects duplicates):
 * the first in (address, port, origin) order is kept.
 */
function portEndpoints(endpoints: readonly Endpoint[], portName: string): PortEndpoint[] {
  const withPort = endpoints
    .filter((e) => e.ports[portName] !== undefined)
    .map((e) => ({ endpoint: e, port: e.ports[portName] }))
    .sort(
      (a, b) =>
        compareStrings(a.endpoint.address, b.endpoint.address) ||
        a.port - b.port ||
        compareStrings(a.endpoint.origin, b.endpoint.origin),
    );
  const seen = new Set<string>();
  return withPort.filter((e) => {
    const key = `${e.endpoint.address}|${e.port}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

export function loadAssignment(ctx: TranslateContext, service: Service, port: ServicePort): Obj {
  const { name, namespace } = service.metadata;
  const clusterName = outboundClusterName(name, namespace, port.port);
  const endpoints = portEndpoints(ctx.view.endpoints.get(serviceKey(name, namespace)) ?? [], port.name);

  const byZone = new Map<string, PortEndpoint[]>();
  for (const e of endpoints) {
    const zone = e.endpoint.zone ?? '';
    byZone.set(zone, [...(byZone.get(zone) ?? []), e]);
  }
  const nodeZone = ctx.node.zone;
  const preferZone = nodeZone !== undefined && byZone.has(nodeZone);
  const priorityOf = (zone: string) => (preferZone && zone !== nodeZone ? 1 : 0);
  const zones = [...byZone.keys()].sort((a, b) => priorityOf(a) - priorityOf(b) || compareStrings(a, b));

  return {
    cluster_name: clusterName,
    endpoints: zones.map((zone) => {
      const members = byZone.get(zone)!;
      const locality: Obj = {
        locality: zone ? { zone } : {},
        lb_endpoints: members.map(lbEndpoint),
        load_balancing_weight: wrap(localityWeight(members)),
      };
      if (priorityOf(zone) > 0) locality.priority = priorityOf(zone);
      return locality;
    }),
  };
}

function lbEndpoint(e: PortEndpoint): Obj {
  const out: Obj = {
    endpoint: { address: { socket_address: { address: e.endpoint.address, port_value: e.port } } },
    health_status: ENUM.healthStatus()[HEALTH_STATUS[e.endpoint.health]],
    load_balancing_weight: wrap(e.endpoint.weight),
  };
  // A sidecar's endpoint: callers' sidecars pick the mTLS transport socket for it (mtls.ts).
  if (e.endpoint.sidecar) out.metadata = sidecarEndpointMetadata();
  return out;
}

/**
 * gRPC drops a locality without a weight and spreads load across localities
 * by it, so it is the weight of the endpoints that can take traffic (at
 * least 1: Envoy requires it even when all are down).
 */
function localityWeight(members: PortEndpoint[]): number {
  const healthy = members.filter((m) => m.endpoint.health === 'healthy');
  return Math.max(1, healthy.reduce((sum, m) => sum + m.endpoint.weight, 0));
}
