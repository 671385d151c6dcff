// Retries only for idempotent methods unless the policy says otherwise
// (`retries.nonIdempotent: true`). Envoy's retry_policy has no method
// condition, so the translator says it with routes: each HTTP route with a
// retry policy is preceded by a copy for the non-idempotent methods (POST,
// PATCH, CONNECT, matched on :method) whose retry policy keeps only the
// conditions under which the request never reached the upstream
// (connect-failure, refused-stream). gRPC ports are left alone: gRPC calls
// are all POST, and gRPC's own retry design (retryable status codes) decides.
import type { RequestPolicy } from './backend-policy';
import type { ServicePort } from './context';

type Obj = Record<string, unknown>;

/** Conditions under which nothing of the request was processed: safe for any method. */
const SAFE_RETRY_ON = new Set(['connect-failure', 'refused-stream']);
export const NON_IDEMPOTENT_METHODS = ['POST', 'PATCH', 'CONNECT'] as const;
const NON_IDEMPOTENT = `^(${NON_IDEMPOTENT_METHODS.join('|')})$`;
/** Appended to the name of the route's copy for those methods (explain maps it back). */
export const NON_IDEMPOTENT_SUFFIX = '|non-idempotent';

export function withIdempotentRetries(routes: Obj[], policy: RequestPolicy | undefined, port: ServicePort): Obj[] {
  if (!policy?.retries || policy.retries.nonIdempotent || port.protocol === 'grpc') return routes;
  return routes.flatMap((route) => {
    const action = route.route as Obj | undefined;
    const retry = action?.retry_policy as Obj | undefined;
    if (!retry?.retry_on) return [route];
    const tokens = String(retry.retry_on).split(',');
    const safe = tokens.filter((t) => SAFE_RETRY_ON.has(t));
    if (safe.length === tokens.length) return [route];
    const copyAction: Obj = { ...action };
    if (safe.length) {
      const narrowed: Obj = { ...retry, retry_on: safe.join(',') };
      delete narrowed.retriable_status_codes;
      copyAction.retry_policy = narrowed;
    } else if (retry.per_try_timeout) {
      copyAction.retry_policy = { per_try_timeout: retry.per_try_timeout };
    } else {
      delete copyAction.retry_policy;
    }
    const match = route.match as Obj;
    const methodMatch = { name: ':method', string_match: { safe_regex: { regex: NON_IDEMPOTENT } } };
    const copy = { ...route, name: `${route.name as string}${NON_IDEMPOTENT_SUFFIX}`, match: { ...match, headers: [...((match.headers as Obj[]) ?? []), methodMatch] }, route: copyAction };
    return [copy, route];
  });
}
