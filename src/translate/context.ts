// The indexes one translation reads: services by key, the policy of each
// service, every route list in a stable order. Built once per translate() call.
import type { Resource, TrafficPolicySpec } from '../config/kinds';
import type { MeshView, NodeInfo, TranslateOptions } from './types';
import { DEFAULT_TRUST_DOMAIN } from '../ca/spiffe-id';
import { serviceKey } from './names';
import { compareStrings } from './proto-values';

export type Service = Resource<'Service'>;
export type ServicePort = Service['spec']['ports'][number];
export type HttpRoute = Resource<'HTTPRoute'>;
export type GrpcRoute = Resource<'GRPCRoute'>;
export type TcpRoute = Resource<'TCPRoute'>;

export interface TranslateContext {
  view: MeshView;
  node: NodeInfo;
  /** Services by "namespace/name". */
  services: Map<string, Service>;
  /** Every service, ordered by key. */
  sortedServices: Service[];
  /** The TrafficPolicy of a service by its key (one per service: the first by namespace/name wins). */
  policies: Map<string, TrafficPolicySpec>;
  /** The same policies as resources (their names, for warnings). */
  policyResources: Map<string, Resource<'TrafficPolicy'>>;
  httpRoutes: HttpRoute[];
  grpcRoutes: GrpcRoute[];
  tcpRoutes: TcpRoute[];
  /** The SPIFFE trust domain of workload identities (mtls.ts). */
  trustDomain: string;
}

export function keyOf(r: { metadata: { name: string; namespace: string } }): string {
  return serviceKey(r.metadata.name, r.metadata.namespace);
}

function byKey<T extends { metadata: { name: string; namespace: string } }>(items: readonly T[]): T[] {
  return [...items].sort((a, b) => compareStrings(keyOf(a), keyOf(b)));
}

export function buildContext(view: MeshView, node: NodeInfo, opts: TranslateOptions = {}): TranslateContext {
  const sortedServices = byKey(view.services);
  const services = new Map(sortedServices.map((s) => [keyOf(s), s]));
  const policies = new Map<string, TrafficPolicySpec>();
  const policyResources = new Map<string, Resource<'TrafficPolicy'>>();
  for (const p of byKey(view.trafficPolicies)) {
    const target = serviceKey(p.spec.targetRef.name, p.spec.targetRef.namespace ?? p.metadata.namespace);
    if (policies.has(target)) continue;
    policies.set(target, p.spec);
    policyResources.set(target, p);
  }
  return {
    view,
    node,
    services,
    sortedServices,
    policies,
    policyResources,
    httpRoutes: byKey(view.httpRoutes),
    grpcRoutes: byKey(view.grpcRoutes),
    tcpRoutes: byKey(view.tcpRoutes),
    trustDomain: opts.trustDomain ?? DEFAULT_TRUST_DOMAIN,
  };
}

/** HTTP-capable ports (everything but raw TCP) carry HTTP and gRPC routes. */
export function isHttpPort(port: ServicePort): boolean {
  return port.protocol !== 'tcp';
}

/** Ports whose upstream connections speak HTTP/2. */
export function isHttp2Port(port: ServicePort): boolean {
  return port.protocol === 'grpc' || port.protocol === 'http2';
}

/** Ports of a service ordered by number. */
export function sortedPorts(service: Service): ServicePort[] {
  return [...service.spec.ports].sort((a, b) => a.port - b.port);
}
