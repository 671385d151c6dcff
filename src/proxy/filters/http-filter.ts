// The HTTP filter seam (Envoy's decodeHeaders): filters run in listener
// order after the route is matched and before a cluster is chosen. A filter
// lets the request go on, answers it locally (rate limit, fault abort), or
// holds it for a while first (fault delay). Filters are built once per
// config by their factory (see catalog.ts); state that must outlive a config
// change (token buckets) lives in the FilterState the runtime carries over.
// With no filter configured none of this runs.
import type { Route } from '../config/types';
import type { RequestInfo } from '../router/route-table';

/** What a filter can read of a request. */
export interface FilterRequest extends RequestInfo {
  /** The downstream peer's IP address (no port). */
  readonly sourceAddress: string | undefined;
  /** A gRPC request: a local reply is sent as a grpc-status. */
  readonly grpc: boolean;
  /** The caller's SPIFFE ID, from the certificate it presented over mTLS; undefined over plaintext. */
  readonly peerPrincipal: string | undefined;
  /** The local port of the downstream connection (RBAC destination_port). */
  readonly destinationPort: number | undefined;
  /**
   * Envoy's dynamic metadata: what a filter leaves for the filters after it,
   * by filter name (jwt_authn's verified payload, read by RBAC). Undefined
   * until a filter writes it.
   */
  filterMetadata: Record<string, Record<string, unknown>> | undefined;
  /** Removes every field `lowerName` from the request sent upstream (jwt_authn with forward false). */
  removeRequestHeader?(lowerName: string): void;
}

/** A local answer a filter asks for. `headers` are extra response headers, flat name/value pairs. */
export interface LocalReplySpec {
  status: number;
  /** Envoy response flag: RL, FI, … */
  flag: string;
  detail: string;
  headers?: string[];
  /** For gRPC requests, the grpc-status to answer with (else derived from `status`). */
  grpcStatus?: number;
}

/**
 * A filter's verdict at request-head time: undefined to go on now, a local
 * reply to answer, a delay after which the next filter runs, or a wait for
 * an answer from elsewhere.
 */
export type FilterVerdict =
  | undefined
  | { kind: 'reply'; reply: LocalReplySpec }
  /** `then`: the answer after the delay (a fault that both delays and aborts). */
  | { kind: 'delay'; ms: number; flag: string; then?: LocalReplySpec }
  /** An answer from elsewhere (the global rate limit service): a reply, or undefined to go on. Must not reject. */
  | { kind: 'wait'; until: Promise<LocalReplySpec | undefined> };

export interface HttpFilter {
  readonly name: string;
  decodeHeaders(req: FilterRequest, route: Route): FilterVerdict;
}

/** Where a request is in the chain: cancel() stops a pending delay (the client went away). */
export interface FilterRun {
  cancel(): void;
  /** Response flags the filters added without answering (FI for an injected delay). */
  flags: string;
}

/** Who runs the chain: told once whether the request goes on (undefined) or is answered (a reply). */
export interface FilterHost {
  filtersDone(reply: LocalReplySpec | undefined, run: FilterRun): void;
}

/** The run of a chain that finished synchronously: nothing to cancel, no flags. */
const SYNC_RUN: FilterRun = Object.freeze({ flags: '', cancel() {} });

/**
 * Runs `filters` from the first and tells `host` the outcome. A chain whose
 * filters all answer at once (the common case) allocates nothing; only a
 * delay or a wait makes a run that can be cancelled.
 */
export function runRequestFilters(filters: readonly HttpFilter[], req: FilterRequest, route: Route, host: FilterHost): FilterRun {
  for (let i = 0; i < filters.length; i++) {
    const verdict = filters[i].decodeHeaders(req, route);
    if (verdict === undefined) continue;
    if (verdict.kind === 'reply') {
      host.filtersDone(verdict.reply, SYNC_RUN);
      return SYNC_RUN;
    }
    return runAsync(filters, i, verdict, req, route, host);
  }
  host.filtersDone(undefined, SYNC_RUN);
  return SYNC_RUN;
}

/** The rest of a chain after filter `at` asked to delay or wait. */
function runAsync(
  filters: readonly HttpFilter[],
  at: number,
  first: Exclude<FilterVerdict, undefined | { kind: 'reply' }>,
  req: FilterRequest,
  route: Route,
  host: FilterHost,
): FilterRun {
  let timer: NodeJS.Timeout | undefined;
  let cancelled = false;
  const run: FilterRun = {
    flags: '',
    cancel() {
      cancelled = true;
      clearTimeout(timer);
    },
  };
  const hold = (i: number, verdict: typeof first): void => {
    const next = i + 1;
    if (verdict.kind === 'wait') {
      verdict.until.then((reply) => {
        if (cancelled) return;
        if (reply) host.filtersDone(reply, run);
        else step(next);
      });
      return;
    }
    run.flags = run.flags ? `${run.flags},${verdict.flag}` : verdict.flag;
    timer = setTimeout(() => {
      timer = undefined;
      if (cancelled) return;
      if (verdict.then) return host.filtersDone(verdict.then, run);
      step(next);
    }, verdict.ms);
  };
  const step = (i: number): void => {
    for (; i < filters.length; i++) {
      const verdict = filters[i].decodeHeaders(req, route);
      if (!verdict) continue;
      if (verdict.kind === 'reply') return host.filtersDone(verdict.reply, run);
      return hold(i, verdict);
    }
    host.filtersDone(undefined, run);
  };
  hold(at, first);
  return run;
}
