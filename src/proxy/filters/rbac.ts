// envoy.filters.http.rbac: allow or deny a request by who calls (the mTLS
// SPIFFE ID, the verified JWT in the dynamic metadata) and what it asks for
// (path, method, headers, port). The rules engine is rbac-engine.ts.
//
// Supported subset of envoy.extensions.filters.http.rbac.v3.RBAC (anything else is a NACK naming
// it): rules (see rbac-engine.ts), rules_stat_prefix. No rules = the filter lets everything
// through, as Envoy. Not supported: matcher, shadow_rules, shadow_matcher,
// shadow_rules_stat_prefix, track_per_rule_stats, per-route RBACPerRoute.
// A denied request gets 403 "RBAC: access denied" (gRPC: PERMISSION_DENIED), response flag RBAC,
// a count in weft_rbac_denied_total and a log line (at most DENIAL_LOGS_PER_SECOND a second).
import { onlyFields, type FieldPath } from '../config/nack';
import type { Obj } from '../config/read-proto';
import type { Route } from '../config/types';
import { TYPE_URL } from '../../xds/type-urls';
import { RateLimitedLog } from './rate-limited-log';
import type { FilterState, HttpFilterType } from './catalog';
import { filterEnv, type FilterEnv } from './filter-env';
import type { FilterRequest, FilterVerdict, HttpFilter } from './http-filter';
import { decodeRbacRules, firstMatch, type RbacRules } from './rbac-engine';

export const GRPC_PERMISSION_DENIED = 7;
export const RBAC_DENIED_BODY = 'RBAC: access denied';
export const DENIAL_LOGS_PER_SECOND = 10;

export interface HttpRbacConfig {
  /** Absent: no rules, every request passes. */
  rules?: RbacRules;
  statPrefix: string;
}

export function decodeHttpRbac(at: FieldPath, msg: Obj): HttpRbacConfig {
  onlyFields(at, 'envoy.extensions.filters.http.rbac.v3.RBAC', msg, ['rules', 'rules_stat_prefix']);
  const out: HttpRbacConfig = { statPrefix: msg.rules_stat_prefix ?? '' };
  if (msg.rules) out.rules = decodeRbacRules(at.field('rules'), msg.rules, true);
  return out;
}

/** The one verdict every denied request gets: built once. */
const DENIED: FilterVerdict = Object.freeze({
  kind: 'reply',
  reply: Object.freeze({ status: 403, flag: 'RBAC', detail: RBAC_DENIED_BODY, grpcStatus: GRPC_PERMISSION_DENIED }),
});

/** The RBAC denial log: at most DENIAL_LOGS_PER_SECOND lines a second per proxy (network RBAC shares it). */
export function denialLog(state: FilterState): RateLimitedLog {
  return RateLimitedLog.of(state, 'rbac.denial-log', 'info', 'rbac: access denied', DENIAL_LOGS_PER_SECOND);
}

class HttpRbacFilter implements HttpFilter {
  private readonly env: FilterEnv;
  private readonly log: RateLimitedLog;

  constructor(
    readonly name: string,
    private readonly rules: RbacRules,
    private readonly statPrefix: string,
    state: FilterState,
  ) {
    this.env = filterEnv(state);
    this.log = denialLog(state);
  }

  decodeHeaders(req: FilterRequest): FilterVerdict {
    const rules = this.rules;
    const hit = firstMatch(rules, req);
    if (rules.action === 'ALLOW' ? hit >= 0 : hit < 0) return undefined;
    this.env.stats?.rbacDenied('http', rules.action, this.statPrefix || this.name);
    this.log.write(this.env, {
      filter: this.name,
      action: rules.action,
      policy: hit >= 0 ? rules.names[hit] : undefined,
      principal: req.peerPrincipal,
      source: req.sourceAddress,
      method: req.method,
      authority: req.host,
      path: req.path,
    });
    return DENIED;
  }
}

/** No rules: Envoy lets everything through. */
const PASS: HttpFilter = { name: 'rbac', decodeHeaders: (_req: FilterRequest, _route: Route) => undefined };

export const HTTP_RBAC_TYPE: HttpFilterType = {
  typeUrl: TYPE_URL.HttpRbac,
  decode: decodeHttpRbac,
  create: (name, config, state) => {
    const c = config as HttpRbacConfig;
    return c.rules ? new HttpRbacFilter(name, c.rules, c.statPrefix, state) : PASS;
  },
};
