// Which routes apply to a service port for this node (GAMMA attachment), and
// what a backendRef resolves to.
import type { GrpcRoute, HttpRoute, Service, ServicePort, TcpRoute, TranslateContext } from './context';
import { isHttpPort } from './context';
import { outboundClusterName, serviceKey } from './names';

type Attachable = HttpRoute | GrpcRoute | TcpRoute;

export function attachesTo(route: Attachable, service: Service, port: ServicePort): boolean {
  return route.spec.parentRefs.some(
    (p) =>
      p.kind === 'Service' &&
      p.name === service.metadata.name &&
      (p.namespace ?? route.metadata.namespace) === service.metadata.namespace &&
      (p.port === undefined || p.port === port.port),
  );
}

/**
 * GAMMA: a route in the service's own namespace (producer route) applies to
 * every client; a route in another namespace (consumer route) applies only
 * to clients of that namespace, and for them replaces the producer routes.
 */
function forNode<T extends Attachable>(routes: T[], service: Service, nodeNamespace: string): { producer: T[]; consumer: T[] } {
  const ns = service.metadata.namespace;
  return {
    producer: routes.filter((r) => r.metadata.namespace === ns),
    consumer: routes.filter((r) => r.metadata.namespace !== ns && r.metadata.namespace === nodeNamespace),
  };
}

export interface AttachedHttpRoutes {
  http: HttpRoute[];
  grpc: GrpcRoute[];
}

/** HTTPRoutes and GRPCRoutes of an HTTP-capable service port, in namespace/name order. */
export function attachedHttpRoutes(ctx: TranslateContext, service: Service, port: ServicePort): AttachedHttpRoutes {
  if (!isHttpPort(port)) return { http: [], grpc: [] };
  const http = forNode(ctx.httpRoutes.filter((r) => attachesTo(r, service, port)), service, ctx.node.namespace);
  const grpc = forNode(ctx.grpcRoutes.filter((r) => attachesTo(r, service, port)), service, ctx.node.namespace);
  if (http.consumer.length || grpc.consumer.length) return { http: http.consumer, grpc: grpc.consumer };
  return { http: http.producer, grpc: grpc.producer };
}

/**
 * The TCPRoute of a TCP service port. A TCP listener has one destination, so
 * when several routes attach, the first (consumer before producer, then by
 * namespace/name) wins.
 */
export function attachedTcpRoute(ctx: TranslateContext, service: Service, port: ServicePort): TcpRoute | undefined {
  if (port.protocol !== 'tcp') return undefined;
  const { producer, consumer } = forNode(
    ctx.tcpRoutes.filter((r) => attachesTo(r, service, port)),
    service,
    ctx.node.namespace,
  );
  return consumer[0] ?? producer[0];
}

export interface ResolvedBackend {
  service: Service;
  port: ServicePort;
  cluster: string;
}

/**
 * A backendRef (or mirror ref) as a cluster. Without a port it means the port
 * of the same number as the parent's, or the backend's only port. Undefined
 * when the service or port does not exist: such a backend is left out.
 */
export function resolveBackend(
  ctx: TranslateContext,
  ref: { name: string; namespace?: string; port?: number },
  routeNamespace: string,
  parentPort: number,
): ResolvedBackend | undefined {
  const namespace = ref.namespace ?? routeNamespace;
  const service = ctx.services.get(serviceKey(ref.name, namespace));
  if (!service) return undefined;
  const ports = service.spec.ports;
  const wanted = ref.port ?? (ports.some((p) => p.port === parentPort) ? parentPort : ports.length === 1 ? ports[0].port : undefined);
  const port = ports.find((p) => p.port === wanted);
  if (!port) return undefined;
  return { service, port, cluster: outboundClusterName(ref.name, namespace, port.port) };
}

/** Every backend (and mirror target) the routes of a service port lead to. */
export function routeBackends(ctx: TranslateContext, service: Service, port: ServicePort): ResolvedBackend[] {
  const found: ResolvedBackend[] = [];
  const add = (ref: { name: string; namespace?: string; port?: number }, routeNamespace: string) => {
    const b = resolveBackend(ctx, ref, routeNamespace, port.port);
    if (b) found.push(b);
  };
  const { http, grpc } = attachedHttpRoutes(ctx, service, port);
  for (const route of http) {
    for (const rule of route.spec.rules) {
      for (const ref of rule.backendRefs ?? []) add(ref, route.metadata.namespace);
      for (const f of rule.filters ?? []) {
        if (f.type === 'RequestMirror') add(f.requestMirror.backendRef, route.metadata.namespace);
      }
    }
  }
  for (const route of grpc) {
    for (const rule of route.spec.rules) for (const ref of rule.backendRefs ?? []) add(ref, route.metadata.namespace);
  }
  const tcp = attachedTcpRoute(ctx, service, port);
  for (const rule of tcp?.spec.rules ?? []) for (const ref of rule.backendRefs) add(ref, tcp!.metadata.namespace);
  return found;
}
