// RouteConfigurations: the routes of one service port (a virtual host), the
// sidecar's `outbound` route config with a virtual host per HTTP service port,
// and a proxyless client's route config per service port.
import { attachedHttpRoutes } from './attach';
import type { Service, ServicePort, TranslateContext } from './context';
import { isHttpPort, keyOf, sortedPorts } from './context';
import { withFault } from './fault';
import { withIdempotentRetries } from './retry-methods';
import { comparePrecedence, fromGrpcMatch, fromHttpMatch, routeMatch, type NormalMatch } from './matches';
import {
  DEFAULT_ROUTE_NAME,
  defaultPort,
  OUTBOUND_ROUTE_CONFIG,
  routeEntryName,
  serviceDomains,
  servicePortName,
} from './names';
import { compareStrings } from './proto-values';
import { defaultRoute, rulePolicy, ruleRoute, type Parent } from './rules';
import type { RequestPolicy } from './backend-policy';

type Obj = Record<string, unknown>;
type RuleWithMatches = { rule: Parameters<typeof ruleRoute>[3]; matches: NormalMatch[] | undefined };

interface Entry {
  match: NormalMatch;
  /** Route namespace/name, kind, rule index, match index: the order among equally specific matches. */
  tie: [string, string, number, number];
  route: Obj;
  /** Where the route's retries and fault come from (backend-policy.ts). */
  policy: RequestPolicy | undefined;
}

function compareEntries(a: Entry, b: Entry): number {
  return (
    comparePrecedence(a.match, b.match) ||
    compareStrings(a.tie[0], b.tie[0]) ||
    compareStrings(a.tie[1], b.tie[1]) ||
    a.tie[2] - b.tie[2] ||
    a.tie[3] - b.tie[3]
  );
}

/**
 * The ordered routes of a service port: one Envoy route per (rule, match) of
 * every attached HTTPRoute and GRPCRoute, most specific first; a port no
 * route attaches to gets one route to its own cluster.
 */
export function servicePortRoutes(ctx: TranslateContext, service: Service, port: ServicePort): Obj[] {
  const parent: Parent = { service, port };
  const { http, grpc } = attachedHttpRoutes(ctx, service, port);
  if (http.length === 0 && grpc.length === 0) {
    const routes = [{ name: DEFAULT_ROUTE_NAME, match: { prefix: '/' }, ...defaultRoute(ctx, parent) }];
    return withFault(withIdempotentRetries(routes, ctx.policies.get(keyOf(service)), port), faultOf(ctx, service), ctx.node.role);
  }
  const sources: { kind: 'HTTPRoute' | 'GRPCRoute'; meta: { name: string; namespace: string }; rules: RuleWithMatches[] }[] = [
    ...http.map((r) => ({
      kind: 'HTTPRoute' as const,
      meta: r.metadata,
      rules: r.spec.rules.map((rule) => ({ rule, matches: rule.matches?.map(fromHttpMatch) })),
    })),
    ...grpc.map((r) => ({
      kind: 'GRPCRoute' as const,
      meta: r.metadata,
      rules: r.spec.rules.map((rule) => ({ rule, matches: rule.matches?.map(fromGrpcMatch) })),
    })),
  ];
  const entries: Entry[] = [];
  for (const { kind, meta, rules } of sources) {
    rules.forEach(({ rule, matches }, ruleIndex) => {
      const policy = rulePolicy(ctx, parent, { kind, namespace: meta.namespace }, rule);
      // No matches (absent or empty) match every request.
      const effective = matches?.length ? matches : [fromHttpMatch({})];
      effective.forEach((match, matchIndex) => {
        const envoyMatch = routeMatch(match, ctx.node.role);
        if (!envoyMatch) return;
        entries.push({
          match,
          tie: [`${meta.namespace}/${meta.name}`, kind, ruleIndex, matchIndex],
          route: {
            name: routeEntryName(kind, meta.namespace, meta.name, ruleIndex, matchIndex),
            match: envoyMatch,
            ...ruleRoute(ctx, parent, { kind, namespace: meta.namespace }, rule, match),
          },
          policy,
        });
      });
    });
  }
  return entries
    .sort(compareEntries)
    .flatMap((e) => withFault(withIdempotentRetries([e.route], e.policy, port), e.policy?.fault, ctx.node.role));
}

/** The fault of the called service's TrafficPolicy: it applies to every route of its virtual hosts. */
function faultOf(ctx: TranslateContext, service: Service) {
  return ctx.policies.get(keyOf(service))?.fault;
}

/** Hostnames of the routes attached to a service port (extra virtual host domains on a sidecar). */
function routeHostnames(ctx: TranslateContext, service: Service, port: ServicePort): string[] {
  const { http, grpc } = attachedHttpRoutes(ctx, service, port);
  const names = [...http, ...grpc].flatMap((r) => r.spec.hostnames ?? []);
  return [...new Set(names.map((h) => h.toLowerCase()))].sort(compareStrings);
}

/** The HTTP ports of a service, with the one a port-less name means. */
export function httpPorts(service: Service): { ports: ServicePort[]; defaultPort: number | undefined } {
  const ports = sortedPorts(service).filter(isHttpPort);
  return { ports, defaultPort: defaultPort(ports.map((p) => p.port)) };
}

/**
 * The sidecar's `outbound` route config: a virtual host per HTTP port of
 * every callable service. Envoy rejects a domain used by two virtual hosts,
 * so service names are claimed first (they cannot collide), then route
 * hostnames in virtual host order; a hostname already claimed is skipped.
 */
export function outboundRouteConfig(ctx: TranslateContext, callable: Service[]): Obj {
  const hosts: { vhost: Obj; domains: string[]; hostnames: string[] }[] = [];
  for (const service of callable) {
    const { ports, defaultPort } = httpPorts(service);
    for (const port of ports) {
      const { name, namespace } = service.metadata;
      hosts.push({
        vhost: { name: servicePortName(name, namespace, port.port), routes: servicePortRoutes(ctx, service, port) },
        domains: serviceDomains(name, namespace, port.port, {
          sameNamespace: namespace === ctx.node.namespace,
          isDefaultPort: port.port === defaultPort,
        }),
        hostnames: routeHostnames(ctx, service, port).flatMap((h) => [h, `${h}:${port.port}`]),
      });
    }
  }
  const claimed = new Set(hosts.flatMap((h) => h.domains));
  for (const h of hosts) {
    for (const hostname of h.hostnames) {
      if (claimed.has(hostname)) continue;
      claimed.add(hostname);
      h.domains.push(hostname);
    }
  }
  return {
    name: OUTBOUND_ROUTE_CONFIG,
    virtual_hosts: hosts.map((h) => ({ name: h.vhost.name, domains: h.domains, routes: h.vhost.routes })),
  };
}

/**
 * A proxyless client's route config for one service port. The API listener
 * already chose the service, and grpc-js matches virtual hosts against the
 * dialed target (or grpc.default_authority), so one virtual host takes '*'.
 */
export function proxylessRouteConfig(ctx: TranslateContext, service: Service, port: ServicePort): Obj {
  const name = servicePortName(service.metadata.name, service.metadata.namespace, port.port);
  return { name, virtual_hosts: [{ name, domains: ['*'], routes: servicePortRoutes(ctx, service, port) }] };
}
