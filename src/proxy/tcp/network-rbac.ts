// envoy.filters.network.rbac before tcp_proxy: a connection RBAC denies is
// closed before a byte goes upstream (no upstream connection is even made).
//
// Supported subset of envoy.extensions.filters.network.rbac.v3.RBAC (anything else is a NACK
// naming it): rules (rbac-engine.ts, connection fields only: any, and/or/not, destination_port,
// authenticated), stat_prefix, enforcement_type ONE_TIME_ON_FIRST_BYTE (checked once, at
// accept: the connection's identity and port do not change). Not supported: matcher,
// shadow_rules, shadow_matcher, shadow_rules_stat_prefix, enforcement_type CONTINUOUS.
// Decoded only before tcp_proxy: on an HTTP chain, use the HTTP RBAC filter.
import type * as net from 'node:net';
import { onlyFields, type FieldPath } from '../config/nack';
import type { Obj } from '../config/read-proto';
import { allowed, decodeRbacRules, firstMatch, type RbacRules } from '../filters/rbac-engine';
import { denialLog } from '../filters/rbac';
import { filterEnv } from '../filters/filter-env';
import type { Runtime } from '../runtime';

export interface NetworkRbacConfig {
  name: string;
  statPrefix: string;
  /** Absent: no rules, every connection passes. */
  rules?: RbacRules;
}

export function decodeNetworkRbac(at: FieldPath, name: string, msg: Obj): NetworkRbacConfig {
  onlyFields(at, 'envoy.extensions.filters.network.rbac.v3.RBAC', msg, ['rules', 'stat_prefix', 'enforcement_type']);
  if (!msg.stat_prefix) at.field('stat_prefix').invalid('must not be empty');
  if (msg.enforcement_type && msg.enforcement_type !== 'ONE_TIME_ON_FIRST_BYTE') {
    at.field('enforcement_type').unsupported(`${msg.enforcement_type} is not supported by weft proxy yet (ONE_TIME_ON_FIRST_BYTE)`);
  }
  const out: NetworkRbacConfig = { name, statPrefix: msg.stat_prefix };
  if (msg.rules) out.rules = decodeRbacRules(at.field('rules'), msg.rules, false);
  return out;
}

/**
 * Whether the connection may go on through every RBAC filter of its chain;
 * a denial is counted and logged. `peerPrincipal`: the caller's SPIFFE ID
 * when the connection came over mTLS.
 */
export function networkRbacAllows(filters: readonly NetworkRbacConfig[], socket: net.Socket, peerPrincipal: string | undefined, runtime: Runtime): boolean {
  const subject = { peerPrincipal, destinationPort: socket.localPort };
  for (const f of filters) {
    if (!f.rules || allowed(f.rules, subject)) continue;
    const env = filterEnv(runtime.filterState);
    env.stats?.rbacDenied('network', f.rules.action, f.statPrefix);
    const hit = firstMatch(f.rules, subject);
    denialLog(runtime.filterState).write(env, {
      filter: f.name,
      action: f.rules.action,
      policy: hit >= 0 ? f.rules.names[hit] : undefined,
      principal: peerPrincipal,
      source: `${socket.remoteAddress}:${socket.remotePort}`,
      port: socket.localPort,
    });
    return false;
  }
  return true;
}
