// A TrafficPolicy's `fault` → Envoy's HTTPFault (envoy.filters.http.fault),
// set as a per-route override on every route of the service's virtual host.
// The listener carries the filter with no fault of its own (faultFilter()).
//
//   delay.fixed / percent          delay.fixed_delay / delay.percentage
//   abort.httpStatus | grpcStatus  abort.http_status | abort.grpc_status, abort.percentage
//   headers                        headers (HeaderMatcher, every one must match)
//
// grpc-js-xds implements HTTPFault (gRFC A33) but ignores `headers`, so a
// proxyless client gets the header condition in the route match instead: each
// route is preceded by a copy that also matches the headers and carries the
// fault, while the original carries none.
import type { TrafficPolicySpec } from '../config/kinds';
import type { NodeRole } from './types';
import { anyOf } from '../xds/protos';
import { TYPE_URL } from '../xds/type-urls';
import { duration, ENUM, EXTENSION_NAME } from './proto-values';

type Obj = Record<string, unknown>;
type Fault = NonNullable<TrafficPolicySpec['fault']>;

/** A FractionalPercent: per hundred when whole, else per million (4 decimals kept). */
function fraction(percent: number): Obj {
  const d = ENUM.fractionDenominator();
  if (Number.isInteger(percent)) return { numerator: percent, denominator: d.HUNDRED };
  return { numerator: Math.round(percent * 10_000), denominator: d.MILLION };
}

function headerMatchers(fault: Fault): Obj[] {
  return (fault.headers ?? []).map((h) => ({
    name: h.name.toLowerCase(),
    string_match: h.type === 'Exact' ? { exact: h.value } : { safe_regex: { regex: h.value } },
  }));
}

/** The HTTPFault message of a policy's fault; `withHeaders` false leaves the header condition out. */
export function httpFault(fault: Fault, withHeaders = true): Obj {
  const out: Obj = {};
  if (fault.delay) out.delay = { fixed_delay: duration(fault.delay.fixed), percentage: fraction(fault.delay.percent) };
  if (fault.abort) {
    const abort: Obj = { percentage: fraction(fault.abort.percent) };
    if (fault.abort.grpcStatus !== undefined) abort.grpc_status = fault.abort.grpcStatus;
    else abort.http_status = fault.abort.httpStatus;
    out.abort = abort;
  }
  if (withHeaders && fault.headers?.length) out.headers = headerMatchers(fault);
  return out;
}

/**
 * The routes of a service port with the service's fault applied. Routes that
 * already override the fault filter (proxyless local answers) keep theirs.
 */
export function withFault(routes: Obj[], fault: Fault | undefined, role: NodeRole): Obj[] {
  if (!fault) return routes;
  const splitByHeaders = role === 'proxyless' && !!fault.headers?.length;
  const override = { [EXTENSION_NAME.fault]: anyOf(TYPE_URL.HttpFault, httpFault(fault, !splitByHeaders)) };
  return routes.flatMap((route) => {
    if (route.typed_per_filter_config) return [route];
    if (!splitByHeaders) return [{ ...route, typed_per_filter_config: override }];
    const match = route.match as Obj;
    const faulted = {
      ...route,
      name: `${route.name as string}|fault`,
      match: { ...match, headers: [...((match.headers as Obj[]) ?? []), ...headerMatchers(fault)] },
      typed_per_filter_config: override,
    };
    return [faulted, route];
  });
}

/**
 * Whether a sidecar's outbound listener needs the fault filter: some route of
 * its route config overrides it (a called service's fault, or its backends').
 */
export function routesUseFault(routeConfig: Obj): boolean {
  const hosts = (routeConfig.virtual_hosts ?? []) as Obj[];
  return hosts.some((vh) => ((vh.routes ?? []) as Obj[]).some((r) => (r.typed_per_filter_config as Obj | undefined)?.[EXTENSION_NAME.fault] !== undefined));
}
