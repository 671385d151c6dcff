// Which TrafficPolicy decides each request-level setting of a route rule.
//
// A policy targets a Service. What it says about connections and endpoints
// (load balancer, connection pool, outlier detection, health checks, retry
// budget, timeouts.idle) lives on that Service's cluster, so it applies to
// every request sent there, whichever route sent it. What it says about
// requests (retries, timeouts.request, timeouts.streamIdle, fault) lives on
// routes, and one Envoy route serves every backend of a rule: a weighted
// split cannot retry the 10% to v2 and not the 90% to v1. So, for each of
// those settings and each rule, in order:
//
//   1. the rule's own `timeouts.request` (HTTPRoute), for that setting;
//   2. the policy of the called Service (the route's parent), when it says;
//   3. the backends' policies, when EVERY backend of the rule has the same
//      value (one backend: its own) — a policy on a canary's v2 applies to
//      the rule that sends only to v2;
//   4. nothing.
//
// A backend's value that none of these applied is accepted but ineffective
// for that rule; `ignored` says why, and policy-warnings.ts makes warnings of it.
import { isDeepStrictEqual } from 'node:util';
import type { TrafficPolicySpec } from '../config/kinds';
import type { Service, TranslateContext } from './context';
import { keyOf } from './context';

/** What routes read of a policy. */
export type RequestPolicy = Pick<TrafficPolicySpec, 'retries' | 'timeouts' | 'fault'>;

export const REQUEST_SETTINGS = ['retries', 'timeouts.request', 'timeouts.streamIdle', 'fault'] as const;
export type RequestSetting = (typeof REQUEST_SETTINGS)[number];

/** Why a backend's setting did not apply to a rule. */
export type IgnoredBecause =
  | { kind: 'rule' }
  | { kind: 'parent' }
  /** `other`, another backend of the rule, has no value or a different one. */
  | { kind: 'missing' | 'differs'; other: Service };

export interface IgnoredSetting {
  /** The backend whose policy says it. */
  service: Service;
  setting: RequestSetting;
  because: IgnoredBecause;
}

/** A policy's value of a request-level setting; undefined when it says nothing that acts on requests. */
export function requestSetting(policy: TrafficPolicySpec | undefined, setting: RequestSetting): unknown {
  switch (setting) {
    case 'retries': {
      // The budget is a cluster setting (circuit breakers of the backend's own cluster).
      const { budget: _budget, ...retries } = policy?.retries ?? { attempts: 0 };
      return retries.attempts === 0 && !retries.perTryTimeout ? undefined : retries;
    }
    case 'timeouts.request':
      return policy?.timeouts?.request;
    case 'timeouts.streamIdle':
      return policy?.timeouts?.streamIdle;
    case 'fault':
      return policy?.fault;
  }
}

function withSetting(policy: RequestPolicy, setting: RequestSetting, value: unknown): RequestPolicy {
  switch (setting) {
    case 'retries':
      return { ...policy, retries: value as RequestPolicy['retries'] };
    case 'timeouts.request':
      return { ...policy, timeouts: { ...policy.timeouts, request: value as string } };
    case 'timeouts.streamIdle':
      return { ...policy, timeouts: { ...policy.timeouts, streamIdle: value as string } };
    case 'fault':
      return { ...policy, fault: value as RequestPolicy['fault'] };
  }
}

/**
 * The request policy of one rule: the called Service's policy, with what it
 * leaves out taken from the backends' policies where they all agree; and
 * the backends' settings that did not apply.
 */
export function ruleRequestPolicy(
  ctx: TranslateContext,
  parent: Service,
  backendServices: readonly Service[],
  ruleTimeouts?: { request?: string },
): { policy: RequestPolicy | undefined; ignored: IgnoredSetting[] } {
  const parentPolicy = ctx.policies.get(keyOf(parent));
  const backends = [...new Map(backendServices.map((s) => [keyOf(s), s])).values()];
  let policy: RequestPolicy | undefined = parentPolicy;
  const ignored: IgnoredSetting[] = [];
  for (const setting of REQUEST_SETTINGS) {
    const values = backends.map((service) => ({ service, value: requestSetting(ctx.policies.get(keyOf(service)), setting) }));
    const said = values.filter((v) => v.value !== undefined && keyOf(v.service) !== keyOf(parent));
    const decided = setting === 'timeouts.request' && ruleTimeouts?.request !== undefined ? { kind: 'rule' as const, value: ruleTimeouts.request } : undefined;
    const parentValue = requestSetting(parentPolicy, setting);
    const over = decided ?? (parentValue !== undefined ? { kind: 'parent' as const, value: parentValue } : undefined);
    if (over) {
      for (const v of said) if (!isDeepStrictEqual(v.value, over.value)) ignored.push({ service: v.service, setting, because: { kind: over.kind } });
      continue;
    }
    if (values.length === 0 || said.length === 0) continue;
    const first = values[0].value;
    if (values.every((v) => v.value !== undefined && isDeepStrictEqual(v.value, first))) {
      policy = withSetting(policy ?? {}, setting, first);
      continue;
    }
    for (const v of said) {
      const other = values.find((o) => o.value === undefined) ?? values.find((o) => !isDeepStrictEqual(o.value, v.value))!;
      ignored.push({ service: v.service, setting, because: { kind: other.value === undefined ? 'missing' : 'differs', other: other.service } });
    }
  }
  return { policy, ignored };
}
