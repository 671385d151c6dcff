// AuthorizationPolicy → Envoy RBAC on the callee's inbound listener, per port.
//
//   policies that apply      those of the service's namespace with no targetRef or a targetRef to it
//   DENY policies            one RBAC filter, action DENY, before the ALLOW filter (deny wins)
//   ALLOW policies           one RBAC filter, action ALLOW; an ALLOW policy with no rules adds the
//                            filter with no policy of its own: nothing matches, everything is denied
//   HTTP port                envoy.extensions.filters.http.rbac.v3.RBAC filters first in the HCM
//   TCP port                 envoy.extensions.filters.network.rbac.v3.RBAC filters before tcp_proxy
//   rule                     one rbac Policy "<ns>/<name>[<i>]": principals = its `from` (any of them),
//                            permissions = its `to` (any of them), each AND its `when` conditions
//   source.principals        authenticated.principal_name (exact, prefix "x*", suffix "*x"; "*" = any
//                            authenticated caller: authenticated {})
//   source.namespaces        principal_name prefix "spiffe://<td>/ns/<ns>/sa/"
//   source.services          principal_name exact "spiffe://<td>/ns/<ns>/sa/<name>"
//   source.requestPrincipals metadata matchers on envoy.filters.http.jwt_authn payload.iss / payload.sub
//   operation.ports          resolved here for each port (a rule for other ports is left out)
//   operation.paths          url_path (exact, prefix "/x/*" → "/x/", suffix "*.x"; "*" = any)
//   operation.methods        header ":method" exact
//   operation.hosts          header ":authority" (lower case; "*" prefix/suffix)
//   when request.headers[h]  header h (values with "*" prefix/suffix; "*" = present)
//   when request.auth.claims[a][b]  metadata payload.a.b: the claim, or any element of a list claim
//   not* fields              not_id / not_rule of the same matchers
// HTTP-only fields (requestPrincipals, paths, methods, hosts, when) on a TCP port fail closed, as
// Istio: an ALLOW rule that uses one is left out (it never matches), a DENY rule drops them (it
// matches more). Proxyless gRPC servers (grpc-js-xds, gRFC A41) cannot read dynamic metadata (its
// metadata matchers never match, negated or not): JWT conditions (requestPrincipals,
// request.auth.claims) fail closed the same way for them.
import type { AuthorizationPolicySpec, Resource } from '../config/kinds';
import { splitRequestPrincipal } from '../config/kinds';
import { anyOf } from '../xds/protos';
import { TYPE_URL } from '../xds/type-urls';
import type { Service, ServicePort, TranslateContext } from './context';
import { isHttpPort } from './context';
import { compareStrings } from './proto-values';

type Obj = Record<string, unknown>;
type Policy = Resource<'AuthorizationPolicy'>;
type Rule = AuthorizationPolicySpec['rules'][number];
type Source = NonNullable<Rule['from']>[number]['source'];
type Operation = NonNullable<Rule['to']>[number]['operation'];
type Condition = NonNullable<Rule['when']>[number];

export const JWT_FILTER = 'envoy.filters.http.jwt_authn';
export const RBAC_FILTER_NAME = {
  httpDeny: 'envoy.filters.http.rbac.deny',
  httpAllow: 'envoy.filters.http.rbac.allow',
  networkDeny: 'envoy.filters.network.rbac.deny',
  networkAllow: 'envoy.filters.network.rbac.allow',
} as const;

const ANY = Object.freeze({ any: true });

/** The AuthorizationPolicies that apply to a service, ordered by name. */
export function policiesFor(ctx: TranslateContext, service: Service): Policy[] {
  const { name, namespace } = service.metadata;
  return ctx.view.authorizationPolicies
    .filter((p) => p.metadata.namespace === namespace && (!p.spec.targetRef || p.spec.targetRef.name === name))
    .sort((a, b) => compareStrings(a.metadata.name, b.metadata.name));
}

/** What one port's filter chain needs: HTTP filters for the HCM, or network filters before tcp_proxy. */
export interface PortRbac {
  http: Obj[];
  network: Obj[];
}

/** The RBAC filters of one inbound port (empty when no policy applies); `proxyless`: for a gRPC server. */
export function inboundRbac(policies: readonly Policy[], port: ServicePort, trustDomain: string, opts: { proxyless?: boolean } = {}): PortRbac {
  const out: PortRbac = { http: [], network: [] };
  const http = isHttpPort(port);
  for (const action of ['DENY', 'ALLOW'] as const) {
    const mine = policies.filter((p) => p.spec.action === action);
    if (mine.length === 0) continue;
    const rules = rbacRules(mine, port, trustDomain, http, opts.proxyless);
    // A DENY filter with nothing to deny would only cost time.
    if (action === 'DENY' && Object.keys(rules.policies as Obj).length === 0) continue;
    if (http) {
      const name = action === 'DENY' ? RBAC_FILTER_NAME.httpDeny : RBAC_FILTER_NAME.httpAllow;
      out.http.push({ name, typed_config: anyOf(TYPE_URL.HttpRbac, { rules }) });
    } else {
      const name = action === 'DENY' ? RBAC_FILTER_NAME.networkDeny : RBAC_FILTER_NAME.networkAllow;
      out.network.push({ name, typed_config: anyOf(TYPE_URL.NetworkRbac, { rules, stat_prefix: `${name}.${port.port}` }) });
    }
  }
  return out;
}

/** The envoy.config.rbac.v3.RBAC of the policies of one action, for one port. */
export function rbacRules(policies: readonly Policy[], port: ServicePort, trustDomain: string, http = isHttpPort(port), proxyless = false): Obj {
  const action = policies[0]?.spec.action ?? 'ALLOW';
  const out: Record<string, Obj> = {};
  for (const p of policies) {
    p.spec.rules.forEach((rule, i) => {
      const b = new RuleBuilder(p, trustDomain, port.port, http, action === 'DENY', proxyless);
      const policy = b.rule(rule);
      if (policy) out[`${p.metadata.namespace}/${p.metadata.name}[${i}]`] = policy;
    });
  }
  return { action, policies: out };
}

/** A matcher, or NEVER when it can never match on this port, or ANY when it always does. */
const NEVER = null;
type M = Obj | null;

class RuleBuilder {
  constructor(
    private readonly policy: Policy,
    private readonly td: string,
    private readonly port: number,
    private readonly http: boolean,
    /** HTTP-only conditions on a TCP port: a DENY rule drops them, an ALLOW rule never matches. */
    private readonly deny: boolean,
    /** A proxyless gRPC server: JWT (metadata) conditions fail closed like HTTP-only ones on TCP. */
    private readonly proxyless = false,
  ) {}

  rule(rule: Rule): Obj | undefined {
    const principals = rule.from ? rule.from.map((f) => this.source(f.source)).filter((p): p is Obj => p !== NEVER) : [ANY];
    if (principals.length === 0) return undefined;
    const when = (rule.when ?? []).map((c) => this.condition(c));
    const ops = rule.to ? rule.to.map((t) => this.operation(t.operation)) : [ANY];
    const permissions = ops.map((op) => andRules([op, ...when])).filter((p): p is Obj => p !== NEVER);
    if (permissions.length === 0) return undefined;
    return { permissions, principals };
  }

  /** An HTTP-only condition: itself on HTTP ports; on TCP, ANY for DENY, NEVER for ALLOW. */
  private httpOnly(build: () => M): M {
    if (this.http) return build();
    return this.deny ? ANY : NEVER;
  }

  /** A condition on the verified JWT: HTTP-only, and not readable by a proxyless server. */
  private jwtOnly(build: () => M): M {
    if (this.proxyless) return this.deny ? ANY : NEVER;
    return this.httpOnly(build);
  }

  private source(s: Source): M {
    const ids: M[] = [];
    const ns = this.policy.metadata.namespace;
    const either = (values: string[] | undefined, negate: boolean, one: (v: string) => Obj) => {
      if (values) ids.push(negate ? notId(orIds(values.map(one))) : orIds(values.map(one)));
    };
    const principal = (v: string) => authenticated(wild(v));
    const namespace = (v: string) => authenticated({ prefix: `spiffe://${this.td}/ns/${v}/sa/` });
    const service = (v: string) => {
      const [n, name] = v.includes('/') ? v.split('/') : [ns, v];
      return authenticated({ exact: `spiffe://${this.td}/ns/${n}/sa/${name}` });
    };
    either(s.principals, false, principal);
    either(s.notPrincipals, true, principal);
    either(s.namespaces, false, namespace);
    either(s.notNamespaces, true, namespace);
    either(s.services, false, service);
    either(s.notServices, true, service);
    if (s.requestPrincipals) ids.push(this.jwtOnly(() => orIds(s.requestPrincipals!.map(requestPrincipal))));
    if (s.notRequestPrincipals) ids.push(this.jwtOnly(() => notId(orIds(s.notRequestPrincipals!.map(requestPrincipal)))));
    return andIds(ids);
  }

  private operation(o: Operation): M {
    const rules: M[] = [];
    if (o.ports && !o.ports.includes(this.port)) return NEVER;
    if (o.notPorts?.includes(this.port)) return NEVER;
    const either = (values: string[] | undefined, negate: boolean, one: (v: string) => Obj) => {
      if (values) rules.push(this.httpOnly(() => (negate ? notRule(orRules(values.map(one))) : orRules(values.map(one)))));
    };
    either(o.paths, false, urlPath);
    either(o.notPaths, true, urlPath);
    either(o.methods, false, (m) => ({ header: { name: ':method', string_match: { exact: m } } }));
    either(o.notMethods, true, (m) => ({ header: { name: ':method', string_match: { exact: m } } }));
    either(o.hosts, false, (h) => headerRule(':authority', h.toLowerCase()));
    either(o.notHosts, true, (h) => headerRule(':authority', h.toLowerCase()));
    return andRules(rules);
  }

  private condition(c: Condition): M {
    const claim = /^request\.auth\.claims((\[[^[\]]+\])+)$/.exec(c.key);
    return (claim ? this.jwtOnly.bind(this) : this.httpOnly.bind(this))(() => {
      const one = claim ? claimRule([...claim[1].matchAll(/\[([^[\]]+)\]/g)].map((m) => m[1])) : headerRuleFor(headerOf(c.key));
      const parts: M[] = [];
      if (c.values) parts.push(orRules(c.values.map(one)));
      if (c.notValues) parts.push(notRule(orRules(c.notValues.map(one))));
      return andRules(parts);
    });
  }
}

/** The header a `when` key names: request.headers[x] or a bare name, lower case. */
function headerOf(key: string): string {
  const m = /^request\.headers\[(.+)\]$/.exec(key);
  return (m ? m[1] : key).toLowerCase();
}

/** A value with Istio's wildcards as a StringMatcher: "x*" prefix, "*x" suffix, else exact. */
function wild(v: string): Obj {
  if (v === '*') return {};
  if (v.length > 1 && v.endsWith('*')) return { prefix: v.slice(0, -1) };
  if (v.length > 1 && v.startsWith('*')) return { suffix: v.slice(1) };
  return { exact: v };
}

function authenticated(match: Obj): Obj {
  return Object.keys(match).length ? { authenticated: { principal_name: match } } : { authenticated: {} };
}

function urlPath(p: string): Obj {
  if (p === '*') return ANY;
  return { url_path: { path: wild(p) } };
}

function headerRule(name: string, v: string): Obj {
  if (v === '*') return { header: { name, present_match: true } };
  return { header: { name, string_match: wild(v) } };
}

function headerRuleFor(name: string): (v: string) => Obj {
  return (v) => headerRule(name, v);
}

function jwtMetadata(path: string[], value: Obj): Obj {
  return { metadata: { filter: JWT_FILTER, path: ['payload', ...path].map((key) => ({ key })), value } };
}

/** A claim equal to `v`, or a list claim holding `v` (e.g. groups, aud). */
function claimRule(path: string[]): (v: string) => Obj {
  return (v) => {
    const s = { string_match: wild(v) };
    return jwtMetadata(path, { or_match: { value_matchers: [s, { list_match: { one_of: s } }] } });
  };
}

/** "iss/sub" as metadata matchers on the verified JWT; "*" = any verified token. */
function requestPrincipal(v: string): Obj {
  const present = { present_match: true };
  if (v === '*') return jwtMetadata(['iss'], present);
  const { iss, sub } = splitRequestPrincipal(v)!;
  const part = (key: string, value: string) => jwtMetadata([key], value === '*' ? present : { string_match: { exact: value } });
  return andIds([part('iss', iss), part('sub', sub)]) as Obj;
}

function combine(nested: M[], key: string, setKey: string, shortCircuit: 'and' | 'or'): M {
  // and(and(a, b), c) = and(a, b, c): flat sets read better and match faster.
  const items = nested.flatMap((i) => (i && i[key] ? ((i[key] as Obj)[setKey] as Obj[]) : [i]));
  if (shortCircuit === 'and') {
    if (items.some((i) => i === NEVER)) return NEVER;
    const rest = items.filter((i) => i !== ANY && !(i as Obj).any) as Obj[];
    if (rest.length === 0) return ANY;
    return rest.length === 1 ? rest[0] : { [key]: { [setKey]: rest } };
  }
  const live = items.filter((i): i is Obj => i !== NEVER);
  if (live.length === 0) return NEVER;
  if (live.some((i) => i.any)) return ANY;
  return live.length === 1 ? live[0] : { [key]: { [setKey]: live } };
}

function andRules(items: M[]): M {
  return combine(items, 'and_rules', 'rules', 'and');
}

function orRules(items: M[]): M {
  return combine(items, 'or_rules', 'rules', 'or');
}

function notRule(m: M): M {
  if (m === NEVER) return ANY;
  if (m.any) return NEVER;
  return { not_rule: m };
}

function andIds(items: M[]): M {
  return combine(items, 'and_ids', 'ids', 'and');
}

function orIds(items: M[]): Obj {
  return combine(items, 'or_ids', 'ids', 'or') ?? { not_id: ANY };
}

function notId(m: M): M {
  if (m === NEVER) return ANY;
  if (m.any) return NEVER;
  return { not_id: m };
}
