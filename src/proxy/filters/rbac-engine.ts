// envoy.config.rbac.v3.RBAC → a compiled matcher, shared by the HTTP RBAC
// filter (rbac.ts) and the network RBAC filter before tcp_proxy
// (tcp/network-rbac.ts). Decoding compiles every matcher once (regexes
// included) into closures; a check allocates nothing.
//
// Supported subset (anything else is a NACK naming it):
//   RBAC        action ALLOW | DENY (LOG: NACK), policies (map name → Policy)
//   Policy      permissions, principals (both non-empty); condition / checked_condition (CEL): NACK
//   Permission  any, and_rules, or_rules, not_rule, destination_port (the connection's local
//               port), and on HTTP only: url_path (path without the query), header (":method",
//               ":authority", ":path" and headers; HeaderMatcher as routes), metadata
//   Principal   any, and_ids, or_ids, not_id, authenticated (principal_name StringMatcher against the
//               mTLS caller's SPIFFE ID; unset = any caller with a certificate; none over
//               plaintext), and on HTTP only: header, url_path, metadata
//   metadata    MetadataMatcher {filter, path[].key, value, invert} on the request's dynamic
//               metadata (jwt_authn's payload); ValueMatcher string_match, present_match,
//               bool_match, list_match.one_of, or_match
// Envoy's semantics: ALLOW lets a request through when some policy matches, DENY refuses it when
// some policy does; a policy matches when one of its permissions and one of its principals match.
import { onlyFields, type FieldPath } from '../config/nack';
import type { Obj } from '../config/read-proto';
import { headerMatcher, stringMatcher } from '../config/decode-matchers';
import { CompiledHeaderMatcher } from '../router/header-matcher';
import type { RequestInfo } from '../router/route-table';

/** What RBAC reads of a connection (network filter) or a request (HTTP filter: a FilterRequest). */
export interface RbacSubject {
  /** The caller's SPIFFE ID from its mTLS certificate; undefined over plaintext. */
  readonly peerPrincipal: string | undefined;
  /** The local port of the downstream connection. */
  readonly destinationPort: number | undefined;
}

export interface HttpRbacSubject extends RbacSubject, RequestInfo {
  readonly filterMetadata: Record<string, Record<string, unknown>> | undefined;
}

type Check = (s: HttpRbacSubject) => boolean;

export interface RbacRules {
  action: 'ALLOW' | 'DENY';
  /** Policy names in config order, and their checks (permission AND principal). */
  names: string[];
  checks: Check[];
}

/** The index of the first policy that matches, or -1. */
export function firstMatch(rules: RbacRules, s: RbacSubject): number {
  const checks = rules.checks;
  for (let i = 0; i < checks.length; i++) if (checks[i](s as HttpRbacSubject)) return i;
  return -1;
}

/** Whether RBAC lets the subject through. */
export function allowed(rules: RbacRules, s: RbacSubject): boolean {
  const hit = firstMatch(rules, s) >= 0;
  return rules.action === 'ALLOW' ? hit : !hit;
}

const P = 'envoy.config.rbac.v3.';
const ALWAYS: Check = () => true;

/** Decodes an RBAC message; `http` false: the network filter, where request fields are a NACK. */
export function decodeRbacRules(at: FieldPath, msg: Obj | undefined, http: boolean): RbacRules {
  if (!msg) at.invalid('is required');
  onlyFields(at, `${P}RBAC`, msg, ['action', 'policies']);
  const action = msg.action ?? 'ALLOW';
  if (action !== 'ALLOW' && action !== 'DENY') at.field('action').unsupported(`${action} is not supported by weft proxy yet (ALLOW, DENY)`);
  const names = Object.keys(msg.policies ?? {}).sort();
  const d = new Decoder(http);
  const checks = names.map((name) => {
    const here = at.field('policies').note(name);
    const p: Obj = msg.policies[name];
    onlyFields(here, `${P}Policy`, p, ['permissions', 'principals']);
    const perms: Obj[] = p.permissions ?? [];
    const princs: Obj[] = p.principals ?? [];
    if (perms.length === 0) here.field('permissions').invalid('needs at least one permission');
    if (princs.length === 0) here.field('principals').invalid('needs at least one principal');
    const permission = anyOf(perms.map((x, i) => d.permission(here.field('permissions').index(i), x)));
    const principal = anyOf(princs.map((x, i) => d.principal(here.field('principals').index(i), x)));
    return (s: HttpRbacSubject) => permission(s) && principal(s);
  });
  return { action, names, checks };
}

function anyOf(checks: Check[]): Check {
  if (checks.length === 1) return checks[0];
  if (checks.includes(ALWAYS)) return ALWAYS;
  return (s) => {
    for (let i = 0; i < checks.length; i++) if (checks[i](s)) return true;
    return false;
  };
}

function allOf(checks: Check[]): Check {
  if (checks.length === 1) return checks[0];
  return (s) => {
    for (let i = 0; i < checks.length; i++) if (!checks[i](s)) return false;
    return true;
  };
}

/** A compiled StringMatcher. */
function stringTest(at: FieldPath, m: Obj | undefined): (v: string) => boolean {
  if (!m) at.invalid('is required');
  const sm = stringMatcher(at, m, ['exact', 'prefix', 'suffix', 'contains', 'regex']);
  const value = sm.value ?? '';
  switch (sm.kind) {
    case 'exact':
      return (v) => v === value;
    case 'prefix':
      return (v) => v.startsWith(value);
    case 'suffix':
      return (v) => v.endsWith(value);
    case 'contains':
      return (v) => v.includes(value);
    default: {
      const re = sm.regex!;
      return (v) => re.test(v);
    }
  }
}

/** A compiled StringMatcher on the path up to its query, without slicing it. */
function pathTest(at: FieldPath, m: Obj | undefined): (path: string) => boolean {
  if (!m) at.invalid('is required');
  const sm = stringMatcher(at, m, ['exact', 'prefix', 'suffix', 'contains', 'regex']);
  const value = sm.value ?? '';
  const end = (p: string) => {
    const q = p.indexOf('?');
    return q < 0 ? p.length : q;
  };
  switch (sm.kind) {
    case 'exact':
      return (p) => end(p) === value.length && p.startsWith(value);
    case 'prefix':
      return (p) => value.length <= end(p) && p.startsWith(value);
    case 'suffix':
      return (p) => p.endsWith(value, end(p));
    case 'contains': {
      return (p) => {
        const i = p.indexOf(value);
        return i >= 0 && i + value.length <= end(p);
      };
    }
    default: {
      const re = sm.regex!;
      return (p) => re.test(p.slice(0, end(p)));
    }
  }
}

/** The members of an and/or set (a Permission.Set's `rules`, a Principal.Set's `ids`), each decoded; an empty set is invalid. */
function members(at: FieldPath, items: Obj[] | undefined, list: 'rules' | 'ids', decode: (at: FieldPath, item: Obj) => Check): Check[] {
  if (!items?.length) at.field(list).invalid(`needs at least one ${list === 'rules' ? 'rule' : 'id'}`);
  return items!.map((item, i) => decode(at.field(list).index(i), item));
}

/** The names one of Envoy's two RBAC trees gives to the parts they share. */
interface TreeShape {
  message: string;
  /** The oneof holding which field is set. */
  oneof: 'rule' | 'identifier';
  and: string;
  or: string;
  not: string;
  list: 'rules' | 'ids';
  /** The leaf only this tree has. */
  own: string;
  missing: string;
}

const PERMISSION: TreeShape = { message: `${P}Permission`, oneof: 'rule', and: 'and_rules', or: 'or_rules', not: 'not_rule', list: 'rules', own: 'destination_port', missing: 'needs a rule' };
const PRINCIPAL: TreeShape = { message: `${P}Principal`, oneof: 'identifier', and: 'and_ids', or: 'or_ids', not: 'not_id', list: 'ids', own: 'authenticated', missing: 'needs an identifier' };

class Decoder {
  constructor(private readonly http: boolean) {}

  private httpOnly(at: FieldPath): void {
    if (!this.http) at.unsupported('is a request field: the network RBAC filter sees only the connection');
  }

  permission(at: FieldPath, p: Obj): Check {
    return this.tree(at, p, PERMISSION, (here, value) => {
      // The only permission leaf the shared tree does not know: destination_port.
      const port: number = value ?? 0;
      if (port < 1 || port > 65535) here.invalid(`must be a port 1-65535, got ${port}`);
      return (s) => s.destinationPort === port;
    });
  }

  principal(at: FieldPath, p: Obj): Check {
    return this.tree(at, p, PRINCIPAL, (here, value) => {
      // The only principal leaf the shared tree does not know: authenticated.
      onlyFields(here, `${P}Principal.Authenticated`, value, ['principal_name']);
      if (!value.principal_name) return (s) => s.peerPrincipal !== undefined;
      const test = stringTest(here.field('principal_name'), value.principal_name);
      return (s) => s.peerPrincipal !== undefined && test(s.peerPrincipal);
    });
  }

  /**
   * Envoy's Permission and Principal are one tree under different names: any,
   * and/or sets, a negation, the request leaves (url_path, header, metadata),
   * and one leaf of their own, decoded by `own`.
   */
  private tree(at: FieldPath, p: Obj, shape: TreeShape, own: (at: FieldPath, value: any) => Check): Check {
    onlyFields(at, shape.message, p, ['any', shape.and, shape.or, shape.not, shape.own, 'url_path', 'header', 'metadata']);
    const recurse = (here: FieldPath, q: Obj) => this.tree(here, q, shape, own);
    const field: string = p[shape.oneof];
    switch (field) {
      case 'any':
        if (p.any !== true) at.field('any').invalid('must be true');
        return ALWAYS;
      case shape.and:
        return allOf(members(at.field(field), p[field]?.[shape.list], shape.list, recurse));
      case shape.or:
        return anyOf(members(at.field(field), p[field]?.[shape.list], shape.list, recurse));
      case shape.not: {
        const inner = recurse(at.field(field), p[field]);
        return (s) => !inner(s);
      }
      case shape.own:
        return own(at.field(field), p[field]);
      case 'url_path':
        this.httpOnly(at.field('url_path'));
        return this.urlPath(at.field('url_path'), p.url_path);
      case 'header':
        this.httpOnly(at.field('header'));
        return this.header(at.field('header'), p.header);
      case 'metadata':
        this.httpOnly(at.field('metadata'));
        return metadata(at.field('metadata'), p.metadata);
      default:
        return at.invalid(shape.missing);
    }
  }

  private urlPath(at: FieldPath, m: Obj): Check {
    onlyFields(at, 'envoy.type.matcher.v3.PathMatcher', m, ['path']);
    const test = pathTest(at.field('path'), m.path);
    return (s) => test(s.path);
  }

  private header(at: FieldPath, h: Obj): Check {
    const matcher = new CompiledHeaderMatcher(headerMatcher(at, h));
    return (s) => matcher.matches(s);
  }
}

type ValueTest = (v: unknown) => boolean;

/** A MetadataMatcher on the request's dynamic metadata: the value at filter/path must match. */
function metadata(at: FieldPath, m: Obj): Check {
  onlyFields(at, 'envoy.type.matcher.v3.MetadataMatcher', m, ['filter', 'path', 'value', 'invert']);
  if (!m.filter) at.field('filter').invalid('must not be empty');
  const path: string[] = (m.path ?? []).map((seg: Obj, i: number) => {
    const here = at.field('path').index(i);
    onlyFields(here, 'envoy.type.matcher.v3.MetadataMatcher.PathSegment', seg, ['key']);
    if (!seg.key) here.field('key').invalid('must not be empty');
    return seg.key as string;
  });
  if (path.length === 0) at.field('path').invalid('needs at least one segment');
  if (!m.value) at.field('value').invalid('is required');
  const test = valueTest(at.field('value'), m.value);
  const filter: string = m.filter;
  const invert = m.invert === true;
  return (s) => {
    let v: unknown = s.filterMetadata?.[filter];
    for (let i = 0; i < path.length && v !== undefined; i++) {
      v = v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>)[path[i]] : undefined;
    }
    return test(v) !== invert;
  };
}

function valueTest(at: FieldPath, m: Obj): ValueTest {
  onlyFields(at, 'envoy.type.matcher.v3.ValueMatcher', m, ['string_match', 'present_match', 'bool_match', 'list_match', 'or_match']);
  switch (m.match_pattern) {
    case 'string_match': {
      const test = stringTest(at.field('string_match'), m.string_match);
      return (v) => typeof v === 'string' && test(v);
    }
    case 'present_match': {
      const want = m.present_match === true;
      return (v) => (v !== undefined && v !== null) === want;
    }
    case 'bool_match': {
      const want = m.bool_match === true;
      return (v) => v === want;
    }
    case 'list_match': {
      const here = at.field('list_match');
      onlyFields(here, 'envoy.type.matcher.v3.ListMatcher', m.list_match, ['one_of']);
      if (!m.list_match.one_of) here.field('one_of').invalid('is required');
      const one = valueTest(here.field('one_of'), m.list_match.one_of);
      return (v) => Array.isArray(v) && v.some(one);
    }
    case 'or_match': {
      const here = at.field('or_match');
      onlyFields(here, 'envoy.type.matcher.v3.OrMatcher', m.or_match, ['value_matchers']);
      const list: Obj[] = m.or_match.value_matchers ?? [];
      if (list.length < 2) here.field('value_matchers').invalid('needs at least two matchers');
      const tests = list.map((x, i) => valueTest(here.field('value_matchers').index(i), x));
      return (v) => {
        for (let i = 0; i < tests.length; i++) if (tests[i](v)) return true;
        return false;
      };
    }
    default:
      return at.invalid('needs a match pattern');
  }
}
