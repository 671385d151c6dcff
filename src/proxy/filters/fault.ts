// envoy.filters.http.fault: delay and/or abort a share of the requests,
// optionally only those whose headers match. The listener's HTTPFault is the
// default; a route's typed_per_filter_config replaces it whole (Envoy's
// override semantics), so a listener may carry an empty fault and let routes
// say what to inject.
//
// Supported subset (anything else is a NACK naming it):
//   HTTPFault   delay {fixed_delay, percentage}, abort {http_status (200-599) | grpc_status,
//               percentage}, headers (HeaderMatcher, as in route matches), max_active_faults
//   FractionalPercent  numerator, denominator HUNDRED | TEN_THOUSAND | MILLION
//               (absent: 0%, as in Envoy; above the denominator: 100%)
// Not supported (NACK): header_delay, header_abort (faults chosen by request headers),
// upstream_cluster, downstream_nodes, response_rate_limit, the *_runtime keys, …
//
// A delayed request is flagged DI and goes on after the delay (or is aborted
// then, when both fire); an aborted one is answered locally, flagged FI; a
// gRPC request gets the grpc-status (the configured one, else gRPC's mapping
// of the HTTP status). Both dice are rolled at request-head time.
import { TYPE_URL } from '../../xds/type-urls';
import { headerMatcher } from '../config/decode-matchers';
import { onlyFields, type FieldPath } from '../config/nack';
import { durationMs, u32, type Obj } from '../config/read-proto';
import type { HeaderMatcher, Route } from '../config/types';
import { CompiledHeaderMatcher } from '../router/header-matcher';
import type { HttpFilterType } from './catalog';
import type { FilterRequest, FilterVerdict, HttpFilter, LocalReplySpec } from './http-filter';

/** A share of requests, as numerator per denominator. */
export interface Fraction {
  numerator: number;
  denominator: number;
}

export interface FaultConfig {
  delay?: { ms: number; percentage: Fraction };
  abort?: { httpStatus?: number; grpcStatus?: number; percentage: Fraction };
  headers: HeaderMatcher[];
  /** Faults (delays in progress) at once; absent: no limit. */
  maxActiveFaults?: number;
}

const DENOMINATOR: Record<string, number> = { HUNDRED: 100, TEN_THOUSAND: 10_000, MILLION: 1_000_000 };
const FAULT = 'envoy.extensions.filters.http.fault.v3.';
const COMMON = 'envoy.extensions.filters.common.fault.v3.';

function fraction(at: FieldPath, f: Obj | undefined): Fraction {
  if (!f) return { numerator: 0, denominator: 100 };
  onlyFields(at, 'envoy.type.v3.FractionalPercent', f, ['numerator', 'denominator']);
  const denominator = DENOMINATOR[f.denominator ?? 'HUNDRED'];
  if (!denominator) at.field('denominator').invalid(`must be HUNDRED, TEN_THOUSAND or MILLION, got ${f.denominator}`);
  return { numerator: Math.min(f.numerator ?? 0, denominator), denominator };
}

export function decodeFault(at: FieldPath, msg: Obj): FaultConfig {
  onlyFields(at, `${FAULT}HTTPFault`, msg, ['delay', 'abort', 'headers', 'max_active_faults']);
  const out: FaultConfig = {
    headers: (msg.headers ?? []).map((h: Obj, i: number) => headerMatcher(at.field('headers').index(i), h)),
  };
  if (msg.delay) {
    const here = at.field('delay');
    onlyFields(here, `${COMMON}FaultDelay`, msg.delay, ['fixed_delay', 'percentage']);
    if (!msg.delay.fixed_delay) here.field('fixed_delay').invalid('is required');
    out.delay = { ms: durationMs(here.field('fixed_delay'), msg.delay.fixed_delay, 0), percentage: fraction(here.field('percentage'), msg.delay.percentage) };
  }
  if (msg.abort) {
    const here = at.field('abort');
    onlyFields(here, `${FAULT}FaultAbort`, msg.abort, ['http_status', 'grpc_status', 'percentage']);
    const percentage = fraction(here.field('percentage'), msg.abort.percentage);
    if (msg.abort.error_type === 'http_status') {
      const status: number = msg.abort.http_status ?? 0;
      if (status < 200 || status > 599) here.field('http_status').invalid(`must be 200-599, got ${status}`);
      out.abort = { httpStatus: status, percentage };
    } else if (msg.abort.error_type === 'grpc_status') {
      out.abort = { grpcStatus: msg.abort.grpc_status ?? 0, percentage };
    } else {
      here.invalid('needs http_status or grpc_status');
    }
  }
  if (msg.max_active_faults) out.maxActiveFaults = u32(msg.max_active_faults, 0);
  return out;
}

function roll(f: Fraction): boolean {
  return f.numerator > 0 && Math.random() * f.denominator < f.numerator;
}

/** A non-gRPC request aborted with only a grpc_status gets 503. */
const GRPC_ONLY_HTTP_STATUS = 503;

class FaultFilter implements HttpFilter {
  /** Header matchers compiled once per config object (listener or route). */
  private readonly compiled = new WeakMap<FaultConfig, CompiledHeaderMatcher[]>();
  private active = 0;

  constructor(
    readonly name: string,
    private readonly config: FaultConfig,
  ) {}

  decodeHeaders(req: FilterRequest, route: Route): FilterVerdict {
    const fault = (route.perFilterConfig?.[this.name] as FaultConfig | undefined) ?? this.config;
    if (!fault.delay && !fault.abort) return undefined;
    if (fault.headers.length > 0 && !this.headersMatch(fault, req)) return undefined;
    if (fault.maxActiveFaults !== undefined && this.active >= fault.maxActiveFaults) return undefined;
    const abort = fault.abort && roll(fault.abort.percentage) ? this.abortReply(fault.abort, req) : undefined;
    if (fault.delay && roll(fault.delay.percentage)) {
      const ms = fault.delay.ms;
      this.active++;
      setTimeout(() => this.active--, ms).unref();
      return { kind: 'delay', ms, flag: 'DI', then: abort };
    }
    return abort ? { kind: 'reply', reply: abort } : undefined;
  }

  private headersMatch(fault: FaultConfig, req: FilterRequest): boolean {
    let matchers = this.compiled.get(fault);
    if (!matchers) this.compiled.set(fault, (matchers = fault.headers.map((h) => new CompiledHeaderMatcher(h))));
    return matchers.every((m) => m.matches(req));
  }

  private abortReply(abort: NonNullable<FaultConfig['abort']>, req: FilterRequest): LocalReplySpec {
    const status = abort.httpStatus ?? GRPC_ONLY_HTTP_STATUS;
    const reply: LocalReplySpec = { status, flag: 'FI', detail: 'fault filter abort' };
    if (abort.grpcStatus !== undefined && req.grpc) reply.grpcStatus = abort.grpcStatus;
    return reply;
  }
}

export const FAULT_FILTER_TYPE: HttpFilterType = {
  typeUrl: TYPE_URL.HttpFault,
  decode: decodeFault,
  perRoute: { typeUrl: TYPE_URL.HttpFault, decode: decodeFault },
  create: (name, config) => new FaultFilter(name, config as FaultConfig),
};
