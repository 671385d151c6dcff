// Per-node scoping: a proxy receives only the services it may call.
//
// The node's own Service (node.service in node.namespace) decides: with
// `dependsOn`, the node may call exactly those services; without it (or with
// no service of its own), every service in the mesh. The node also needs the
// clusters of every backend the routes of those services lead to (a canary's
// v2, a mirror target), but not their virtual hosts or listeners: traffic
// sent to a backend cluster does not pass through the backend's own routes.
import { routeBackends } from './attach';
import { jwksServices } from './jwt-authn';
import type { Service, TranslateContext } from './context';
import { keyOf } from './context';
import { serviceKey } from './names';
import { compareStrings } from './proto-values';

export interface Scope {
  /** The node's own Service, when it declares one that exists. */
  own?: Service;
  /** Services the node addresses by name: virtual hosts and listeners. Ordered by key. */
  callable: Service[];
  /** Services whose clusters and endpoints the node receives: callable plus their backends. Ordered by key. */
  withClusters: Service[];
}

export function computeScope(ctx: TranslateContext): Scope {
  const { node } = ctx;
  const own = node.service ? ctx.services.get(serviceKey(node.service, node.namespace)) : undefined;
  const dependsOn = own?.spec.dependsOn;
  const callable = dependsOn
    ? uniqueSorted(
        dependsOn
          .map((ref) => ctx.services.get(serviceKey(ref.name, ref.namespace ?? own!.metadata.namespace)))
          .filter((s): s is Service => s !== undefined),
      )
    : ctx.sortedServices;
  const clusters = new Map(callable.map((s) => [keyOf(s), s]));
  for (const service of callable) {
    for (const port of service.spec.ports) {
      for (const backend of routeBackends(ctx, service, port)) clusters.set(keyOf(backend.service), backend.service);
    }
  }
  // A sidecar fetches its RequestAuthentications' JWKS through the serving services' clusters.
  for (const s of jwksServices(ctx, own)) clusters.set(keyOf(s), s);
  const scope: Scope = { callable, withClusters: uniqueSorted([...clusters.values()]) };
  if (own) scope.own = own;
  return scope;
}

function uniqueSorted(services: Service[]): Service[] {
  const byKey = new Map(services.map((s) => [keyOf(s), s]));
  return [...byKey.keys()].sort(compareStrings).map((k) => byKey.get(k)!);
}
