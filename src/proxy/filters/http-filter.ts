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
  /** Replaces every field `name` of the request sent upstream with one (filter modules). */
  setRequestHeader?(name: string, value: string): void;
  /** Adds a field to the request sent upstream (filter modules). */
  addRequestHeader?(name: string, value: string): void;
  /**
   * Asks to see the response head before it goes downstream (Envoy's
   * encodeHeaders): `hook` runs once, on the upstream's final response (not
   * on local replies, not on a 101 upgrade). Hooks run in the order they
   * were registered. With none registered the response path is unchanged.
   */
  onResponseHeaders?(hook: EncodeHeadersHook): void;
}

/** A response head as an encode hook sees it: the status, and its fields to read and change. */
export interface FilterResponseHead {
  readonly status: number;
  header(lowerName: string): string | undefined;
  setHeader(name: string, value: string): void;
  addHeader(name: string, value: string): void;
  removeHeader(lowerName: string): void;
}

/** An encode hook: undefined lets the (maybe edited) response go on; a reply replaces it, the upstream's is dropped. */
export type EncodeHeadersHook = (res: FilterResponseHead) => LocalReplySpec | undefined;

/** Runs a request's encode hooks on a response head; the first reply wins. */
export function runEncodeHooks(hooks: readonly EncodeHeadersHook[], res: FilterResponseHead): LocalReplySpec | undefined {
  for (let i = 0; i < hooks.length; i++) {
    const reply = hooks[i](res);
    if (reply !== undefined) return reply;
  }
  return undefined;
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
