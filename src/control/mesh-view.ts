// Assembles the translator's read-only MeshView from the store and registry.
import type { Registry } from '../registry/registry';
import type { Store } from '../store/store';
import type { MeshView } from '../translate/types';

export function buildMeshView(store: Store, registry: Registry): MeshView {
  const resources = <K extends Parameters<Store['list']>[0]>(kind: K) => store.list(kind).map((i) => i.resource);
  return {
    services: resources('Service'),
    httpRoutes: resources('HTTPRoute'),
    grpcRoutes: resources('GRPCRoute'),
    tcpRoutes: resources('TCPRoute'),
    trafficPolicies: resources('TrafficPolicy'),
    meshTls: resources('MeshTLS'),
    authorizationPolicies: resources('AuthorizationPolicy'),
    requestAuthentications: resources('RequestAuthentication'),
    plugins: resources('Plugin'),
    endpoints: registry.endpoints(),
  };
}
