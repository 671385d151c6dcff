// translate(view, node): the Envoy v3 resources one node should receive.
// Pure and deterministic: the same view and node give byte-identical
// resources (every list is built in a sorted order), so the cache can hash
// them and skip pushes that change nothing.
//
// MeshTLS: mtls.ts; RequestAuthentication: jwt-authn.ts; AuthorizationPolicy: authz.ts;
// http-filter Plugins: filter-plugins.ts.
import { TYPE_URL, XDS_RESOURCE_TYPES } from '../xds/type-urls';
import { inboundRbac, policiesFor } from './authz';
import { inboundCluster, outboundCluster } from './clusters';
import { buildContext, keyOf, sortedPorts } from './context';
import { routesUseFault } from './fault';
import { loadAssignment } from './endpoints';
import { jwtAuthnFilter } from './jwt-authn';
import { pluginFilters } from './filter-plugins';
import { apiListeners, inboundListener, outboundListener, tcpListeners } from './listeners';
import { compareStrings } from './proto-values';
import { meshTlsMode } from './mtls';
import { httpPorts, outboundRouteConfig, proxylessRouteConfig } from './routes';
import { computeScope } from './scope';
import { serverListeners } from './server-listeners';
import type { MeshView, NodeInfo, ResourceSet, TranslateOptions, XdsResource } from './types';

type Obj = Record<string, unknown>;

export function translate(view: MeshView, node: NodeInfo, opts: TranslateOptions = {}): ResourceSet {
  const ctx = buildContext(view, node, opts);
  const scope = computeScope(ctx);
  const clusters: Obj[] = [];
  const loadAssignments: Obj[] = [];
  const listeners: Obj[] = [];
  const routeConfigs: Obj[] = [];

  for (const service of scope.withClusters) {
    for (const port of service.spec.ports) {
      clusters.push(outboundCluster(ctx, service, port));
      loadAssignments.push(loadAssignment(ctx, service, port));
    }
  }

  if (node.role === 'sidecar') {
    const outbound = outboundRouteConfig(ctx, scope.callable);
    listeners.push(outboundListener(node, { fault: routesUseFault(outbound), plugins: pluginFilters(ctx, scope.own, 'outbound') }), ...tcpListeners(ctx, scope.callable, scope.own));
    routeConfigs.push(outbound);
    if (scope.own) {
      const authz = policiesFor(ctx, scope.own);
      const rbac = authz.length ? (port: Parameters<typeof inboundRbac>[1]) => inboundRbac(authz, port, ctx.trustDomain) : undefined;
      listeners.push(inboundListener(scope.own, node, ctx.policies.get(keyOf(scope.own)), { mode: meshTlsMode(ctx, scope.own), rbac, jwtAuthn: jwtAuthnFilter(ctx, scope.own), plugins: pluginFilters(ctx, scope.own, 'inbound') }));
      const lowest = sortedPorts(scope.own)[0].port;
      clusters.push(...scope.own.spec.ports.map((p) => inboundCluster(p, p.port === lowest ? node.appPort : undefined, node.appAddress)));
    }
  } else {
    listeners.push(...apiListeners(ctx, scope.callable));
    // A proxyless node with a service of its own may be its gRPC server (XdsServer).
    if (scope.own) {
      const authz = policiesFor(ctx, scope.own);
      const rbac = authz.length ? (port: Parameters<typeof inboundRbac>[1]) => inboundRbac(authz, port, ctx.trustDomain, { proxyless: true }) : undefined;
      listeners.push(...serverListeners(scope.own, rbac));
    }
    for (const service of scope.callable) {
      for (const port of httpPorts(service).ports) routeConfigs.push(proxylessRouteConfig(ctx, service, port));
    }
  }

  const set: ResourceSet = new Map(XDS_RESOURCE_TYPES.map((t) => [t, new Map<string, XdsResource>()]));
  const put = (typeUrl: (typeof XDS_RESOURCE_TYPES)[number], resources: Obj[], nameOf: (r: Obj) => string) => {
    const named = resources.map((r) => ({ name: nameOf(r), resource: r }));
    named.sort((a, b) => compareStrings(a.name, b.name));
    const byName = set.get(typeUrl)!;
    for (const r of named) byName.set(r.name, r);
  };
  put(TYPE_URL.Cluster, clusters, (r) => r.name as string);
  put(TYPE_URL.ClusterLoadAssignment, loadAssignments, (r) => r.cluster_name as string);
  put(TYPE_URL.Listener, listeners, (r) => r.name as string);
  put(TYPE_URL.RouteConfiguration, routeConfigs, (r) => r.name as string);
  return set;
}
