// Accepted but ineffective: request-level settings of a TrafficPolicy on a
// backend Service that a route rule sending there does not apply
// (backend-policy.ts decides which, and why). The config is valid and
// serves; these say what it does not do. `weft validate` prints them, the
// API's /api/v1/errors carries them (`weft status`, the dashboard).
import { resourceLabel, type ResourceRef } from '../config/errors';
import type { Resource } from '../config/kinds';
import { attachesTo, resolveBackend } from './attach';
import { requestSetting, REQUEST_SETTINGS, ruleRequestPolicy, type IgnoredSetting, type RequestSetting } from './backend-policy';
import { buildContext, isHttpPort, keyOf, type Service } from './context';
import type { MeshView } from './types';

export interface PolicyWarning {
  code: 'W_POLICY_NOT_APPLIED';
  /** `TrafficPolicy ns/name: spec.retries: detail`, as a ConfigError's message reads. */
  message: string;
  detail: string;
  /** The policy whose setting is not applied. */
  resource: ResourceRef;
  /** The setting, e.g. `spec.retries`. */
  path: string;
  /** The route rule that does not apply it (absent: no route could, e.g. the Service speaks only TCP). */
  route?: ResourceRef & { rule: number };
}

const LABEL: Record<RequestSetting, string> = {
  retries: 'retries',
  'timeouts.request': 'timeouts.request',
  'timeouts.streamIdle': 'timeouts.streamIdle',
  fault: 'fault',
};

function viewOf(resources: readonly Resource[]): MeshView {
  const of = <K extends Resource['kind']>(kind: K) => resources.filter((r): r is Resource<K> => r.kind === kind);
  return {
    services: of('Service'),
    httpRoutes: of('HTTPRoute'),
    grpcRoutes: of('GRPCRoute'),
    tcpRoutes: of('TCPRoute'),
    trafficPolicies: of('TrafficPolicy'),
    meshTls: of('MeshTLS'),
    authorizationPolicies: of('AuthorizationPolicy'),
    requestAuthentications: of('RequestAuthentication'),
    endpoints: new Map(),
  };
}

function name(s: Service): string {
  return s.metadata.name;
}

function reason(i: IgnoredSetting, parent: Service, ruleLabel: string, parentPolicy: ResourceRef | undefined, ruleTimeout: string | undefined): string {
  const what = LABEL[i.setting];
  switch (i.because.kind) {
    case 'rule':
      return `${ruleLabel} sets its own timeouts.request (${ruleTimeout}), and it decides`;
    case 'parent':
      return `the called Service's own ${resourceLabel(parentPolicy!)} sets ${what}, and it decides`;
    case 'missing':
    case 'differs': {
      const has = i.because.kind === 'missing' ? `has no ${what}` : `has other ${what}`;
      return (
        `${name(i.because.other)} ${has}; one route carries every backend of a rule, so a backend policy's ${what} setting takes effect ` +
        `only when all the rule's backends have the same (give them all the same, or set it in the TrafficPolicy of ${name(parent)}, the called Service)`
      );
    }
  }
}

/** The warnings of a set of resources (valid or not: what cannot be resolved is skipped), each once, in a stable order. */
export function policyWarnings(resources: readonly Resource[]): PolicyWarning[] {
  return policyWarningsOf(viewOf(resources));
}

/** The same for the control plane's view of the mesh. */
export function policyWarningsOf(view: MeshView): PolicyWarning[] {
  const ctx = buildContext(view, { id: 'weft-policy-warnings', role: 'sidecar', namespace: 'default' });
  const out = new Map<string, PolicyWarning>();
  const routes = [...ctx.httpRoutes, ...ctx.grpcRoutes];
  for (const route of routes) {
    const ns = route.metadata.namespace;
    for (const ref of route.spec.parentRefs) {
      const parent = ctx.services.get(`${ref.namespace ?? ns}/${ref.name}`);
      if (!parent) continue;
      for (const port of parent.spec.ports.filter((p) => isHttpPort(p) && attachesTo(route, parent, p))) {
        route.spec.rules.forEach((rule, ruleIndex) => {
          const filters = ('filters' in rule ? rule.filters : undefined) ?? [];
          if (filters.some((f) => f.type === 'RequestRedirect')) return;
          const backends = (rule.backendRefs ?? [])
            .filter((b) => b.weight !== 0)
            .map((b) => resolveBackend(ctx, b, ns, port.port)?.service)
            .filter((s): s is Service => s !== undefined);
          const timeouts = 'timeouts' in rule ? rule.timeouts : undefined;
          const { ignored } = ruleRequestPolicy(ctx, parent, backends, timeouts);
          const routeRef = { kind: route.kind, namespace: ns, name: route.metadata.name };
          const ruleLabel = `rule ${ruleIndex} of ${resourceLabel(routeRef)}`;
          for (const i of ignored) {
            const policy = ctx.policyResources.get(keyOf(i.service))!;
            const policyRef = { kind: 'TrafficPolicy', namespace: policy.metadata.namespace, name: policy.metadata.name };
            const parentPolicy = ctx.policyResources.get(keyOf(parent));
            const parentRef = parentPolicy && { kind: 'TrafficPolicy', namespace: parentPolicy.metadata.namespace, name: parentPolicy.metadata.name };
            const path = `spec.${i.setting}`;
            const detail = `not applied to the requests ${ruleLabel} sends to ${name(i.service)}: ${reason(i, parent, ruleLabel, parentRef, timeouts?.request)}`;
            const message = `${resourceLabel(policyRef)}: ${path}: ${detail}`;
            out.set(message, { code: 'W_POLICY_NOT_APPLIED', message, detail, resource: policyRef, path, route: { ...routeRef, rule: ruleIndex } });
          }
        });
      }
    }
  }
  // A Service with only TCP ports has no requests: what a policy says of them does nothing.
  for (const [key, policy] of ctx.policyResources) {
    const service = ctx.services.get(key);
    if (!service || service.spec.ports.some(isHttpPort)) continue;
    const policyRef = { kind: 'TrafficPolicy', namespace: policy.metadata.namespace, name: policy.metadata.name };
    const said = [...REQUEST_SETTINGS.filter((s) => requestSetting(policy.spec, s) !== undefined), ...(policy.spec.rateLimit ? ['rateLimit'] : [])];
    for (const setting of said) {
      const path = `spec.${setting}`;
      const detail = `not applied: Service ${key} has only TCP ports, and ${setting} acts on HTTP and gRPC requests`;
      const message = `${resourceLabel(policyRef)}: ${path}: ${detail}`;
      out.set(message, { code: 'W_POLICY_NOT_APPLIED', message, detail, resource: policyRef, path });
    }
  }
  return [...out.values()];
}
