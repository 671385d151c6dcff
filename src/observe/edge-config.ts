// The config that applies to one call (source → destination, "<name>.<ns>"
// both), for the dashboard's edge view: what routes it, what shapes it, what
// secures and admits it.
//
//   routes                  HTTPRoute/GRPCRoute/TCPRoute whose parentRef is the destination
//                           (the call is routed by them) or that name it as a backend (the
//                           topology's destination is the backend a route picked)
//   trafficPolicies         TrafficPolicies targeting the destination, or a backend of a
//                           route whose parent it is
//   meshTls                 the MeshTLS that applies to the destination (its own, else its
//                           namespace's: translate/mtls.ts)
//   authorizationPolicies   those enforced by the destination's sidecar (targeting it, or
//                           its whole namespace)
import type { Resource } from '../config/kinds';
import { meshTlsOf } from '../translate/mtls';
import type { MeshView } from '../translate/types';
import { edgeSecurity, splitService } from './edge-security';
import type { ConfigBlock, EdgeConfig, Topology } from './topology';

type Ref = { name: string; namespace?: string };
type RouteSpec = { parentRefs: Ref[]; rules?: { backendRefs?: Ref[] }[] };

const key = (r: Ref, ns: string) => `${r.name}.${r.namespace ?? ns}`;

function block(r: Resource, why: string): ConfigBlock {
  return { kind: r.kind, name: r.metadata.name, namespace: r.metadata.namespace, why, spec: r.spec };
}

export function edgeConfig(view: MeshView, source: string, destination: string, topology?: Topology): EdgeConfig {
  const dest = splitService(destination);
  const routes: ConfigBlock[] = [];
  /** Services the call may end at: the destination and the backends of routes on it. */
  const targets = new Set([destination]);
  for (const r of [...view.httpRoutes, ...view.grpcRoutes, ...view.tcpRoutes] as Resource[]) {
    const spec = r.spec as RouteSpec;
    const ns = r.metadata.namespace;
    const backends = (spec.rules ?? []).flatMap((rule) => (rule.backendRefs ?? []).map((b) => key(b, ns)));
    if (spec.parentRefs.some((p) => key(p, ns) === destination)) {
      routes.push(block(r, `parentRef ${destination}`));
      for (const b of backends) targets.add(b);
    } else if (backends.includes(destination)) {
      routes.push(block(r, `${destination} is a backend (parent ${spec.parentRefs.map((p) => key(p, ns)).join(', ')})`));
    }
  }
  const trafficPolicies = view.trafficPolicies
    .filter((p) => targets.has(key(p.spec.targetRef, p.metadata.namespace)))
    .map((p) => block(p, `targets ${key(p.spec.targetRef, p.metadata.namespace)}`));
  const mtls = meshTlsOf(view, dest.name, dest.namespace);
  const authorizationPolicies = view.authorizationPolicies
    .filter((p) => p.metadata.namespace === dest.namespace && (!p.spec.targetRef || p.spec.targetRef.name === dest.name))
    .map((p) => block(p, p.spec.targetRef ? `targets ${destination}` : `namespace-wide (${dest.namespace})`));
  const security = edgeSecurity(view, source, destination);
  const signals = topology?.edges.find((e) => e.source === source && e.destination === destination);
  return {
    source,
    destination,
    ...(signals ? { signals: security ? { ...signals, ...security } : signals } : {}),
    ...(security ? { security } : {}),
    routes,
    trafficPolicies,
    meshTls: mtls ? [block(mtls, mtls.spec.targetRef ? `targets ${destination}` : `namespace-wide (${dest.namespace})`)] : [],
    authorizationPolicies,
  };
}
