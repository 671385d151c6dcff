// A route's retry policy, the parts HTTP/1.1 and HTTP/2 downstreams share:
// which outcomes retry_on covers, the cluster's retry circuit breaker
// (max_retries, or the retry budget that replaces it, as in Envoy), and the
// back-off with full jitter.
import type { Endpoint, RetryPolicy } from './config/types';
import type { ClusterRuntime } from './runtime';
import type { RequestStats } from './stats';

/** Request bodies up to this size are kept for a retry to send again; a larger one is not retried. */
export const MAX_REPLAY_BODY = 64 * 1024;

/** What a failed attempt came to, short of a response: no connection, a reset, or the per-try timeout. */
export type LocalFailure = 'connect' | 'reset' | 'refused' | 'timeout';

/** Whether retry_on covers a response status. */
export function retryOnStatus(retry: RetryPolicy, status: number): boolean {
  const on = retry.retryOn;
  return (
    (status >= 500 && on.has('5xx')) ||
    ((status === 502 || status === 503 || status === 504) && on.has('gateway-error')) ||
    (status === 409 && on.has('retriable-4xx')) ||
    (on.has('retriable-status-codes') && retry.retriableStatusCodes.includes(status))
  );
}

/** Whether retry_on covers a local failure (5xx and gateway-error cover them all, as in Envoy). */
export function retryOnFailure(retry: RetryPolicy, failure: LocalFailure): boolean {
  const on = retry.retryOn;
  if (on.has('5xx') || on.has('gateway-error') || on.has('reset')) return true;
  if (failure === 'connect') return on.has('connect-failure');
  if (failure === 'refused') return on.has('refused-stream');
  return false;
}

const GRPC_RETRY_ON: Record<number, string> = { 1: 'cancelled', 4: 'deadline-exceeded', 8: 'resource-exhausted', 13: 'internal', 14: 'unavailable' };

/** Whether retry_on covers a grpc-status (of a trailers-only response). */
export function retryOnGrpc(retry: RetryPolicy, grpcStatus: number): boolean {
  const token = GRPC_RETRY_ON[grpcStatus];
  return token !== undefined && retry.retryOn.has(token);
}

/**
 * Takes one of the cluster's retry slots for a request that retries (held
 * until the request ends). Refused beyond max_retries, or, when the cluster
 * has a retry budget, beyond percent % of its active requests (at least
 * minConcurrency). A refusal is counted.
 */
export function takeRetrySlot(cluster: ClusterRuntime, stats: RequestStats): boolean {
  const load = cluster.load;
  const budget = cluster.config.retryBudget;
  const cap = budget ? Math.max(budget.minConcurrency, (budget.percent / 100) * load.active) : cluster.config.limits.maxRetries;
  if (load.retries >= cap) {
    stats.retryOverflow++;
    return false;
  }
  load.retries++;
  return true;
}

/** Why a failed attempt gets no retry: URX, retries used up or the body cannot be sent again; UO, the cluster's retry limit or budget. */
export type RetryDenial = '' | 'URX' | 'UO';

/**
 * Whether attempt number `attempt` may be followed by another. '' when it may:
 * the request then holds a retry slot (taken now unless `holdsSlot`) and the
 * retry is counted.
 */
export function admitRetry(
  retry: RetryPolicy,
  attempt: number,
  replayable: boolean,
  holdsSlot: boolean,
  cluster: ClusterRuntime,
  stats: RequestStats,
): RetryDenial {
  if (attempt > retry.numRetries || !replayable) return 'URX';
  if (!holdsSlot && !takeRetrySlot(cluster, stats)) return 'UO';
  stats.retries++;
  return '';
}

/** The next attempt's endpoint: another than the one that failed when the balancer has one; the in-flight count moves with it. */
export function repickEndpoint(cluster: ClusterRuntime, failed: Endpoint, hash: number | undefined): Endpoint | undefined {
  const opts = hash === undefined ? undefined : { hash };
  let endpoint = cluster.lb.pick(opts);
  for (let i = 0; i < 3 && endpoint && endpoint.key === failed.key; i++) endpoint = cluster.lb.pick(opts);
  cluster.load.ended(failed);
  if (endpoint) cluster.load.started(endpoint);
  return endpoint;
}

/** The flag and text of the local reply to a failed attempt that is not retried: its own, or URX/UO saying why no retry went. */
export function failedAttemptReply(denial: RetryDenial, attempt: number, flag: string, message: string): [flag: string, message: string] {
  if (denial === 'URX' && attempt > 1) return ['URX', `${message} (after ${attempt} attempts; last: ${flag})`];
  if (denial === 'UO') return ['UO', `${message} (retry not allowed: the cluster's retry limit is reached)`];
  return [flag, message];
}

/** Full jitter: uniform in [0, min(max, base × 2^retry)), retry counting from 0. */
export function backoffMs(retry: RetryPolicy, retryIndex: number): number {
  return Math.random() * Math.min(retry.backoff.maxMs, retry.backoff.baseMs * 2 ** retryIndex);
}
