// Small builders for the protobuf value shapes the translator emits over and
// over (Durations, wrappers, Anys of well-known extensions), so the modules
// that build resources read like the Envoy docs.
import { durationToMs, msToProtoDuration } from '../config/duration';
import { anyOf, enumValues } from '../xds/protos';
import { TYPE_URL } from '../xds/type-urls';

/** Well-known extension names (the keys Envoy and grpc-js look them up by). */
export const EXTENSION_NAME = {
  httpConnectionManager: 'envoy.filters.network.http_connection_manager',
  tcpProxy: 'envoy.filters.network.tcp_proxy',
  router: 'envoy.filters.http.router',
  fault: 'envoy.filters.http.fault',
  httpProtocolOptions: 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
} as const;

const enumCache = new Map<string, Record<string, number>>();

/** The values of a proto enum by name (resources carry enums as numbers; names work too). */
export function protoEnum(fullName: string): Record<string, number> {
  let values = enumCache.get(fullName);
  if (!values) {
    // From the sidecar's pruned set: the full one (0.4 s to parse) loads only for an enum outside it.
    values = enumValues(fullName);
    enumCache.set(fullName, values);
  }
  return values;
}

/** Enums the translator uses. */
export const ENUM = {
  apiVersion: () => protoEnum('envoy.config.core.v3.ApiVersion'),
  discoveryType: () => protoEnum('envoy.config.cluster.v3.Cluster.DiscoveryType'),
  lbPolicy: () => protoEnum('envoy.config.cluster.v3.Cluster.LbPolicy'),
  routingPriority: () => protoEnum('envoy.config.core.v3.RoutingPriority'),
  healthStatus: () => protoEnum('envoy.config.core.v3.HealthStatus'),
  trafficDirection: () => protoEnum('envoy.config.core.v3.TrafficDirection'),
  headerAppendAction: () => protoEnum('envoy.config.core.v3.HeaderValueOption.HeaderAppendAction'),
  redirectResponseCode: () => protoEnum('envoy.config.route.v3.RedirectAction.RedirectResponseCode'),
  fractionDenominator: () => protoEnum('envoy.type.v3.FractionalPercent.DenominatorType'),
} as const;

export type ProtoDuration = { seconds: number; nanos: number };

/** A google.protobuf.Duration from a Gateway API duration string ("500ms", "1m30s"). */
export function duration(text: string): ProtoDuration {
  return msToProtoDuration(durationToMs(text));
}

export const ZERO_DURATION: Readonly<ProtoDuration> = Object.freeze({ seconds: 0, nanos: 0 });

/** A UInt32Value/UInt64Value/DoubleValue wrapper. */
export function wrap(value: number): { value: number } {
  return { value };
}

/** An ADS config source: everything comes over the one ADS stream. */
export function adsConfigSource(): Record<string, unknown> {
  return { ads: {}, resource_api_version: ENUM.apiVersion().V3 };
}

/** The terminal router filter every HttpConnectionManager ends with. */
export function routerFilter(): Record<string, unknown> {
  return { name: EXTENSION_NAME.router, typed_config: anyOf(TYPE_URL.Router, {}) };
}

/**
 * The fault filter with no fault of its own: proxyless routes that must
 * answer locally override it per route (see routes.ts, localAnswer).
 */
export function faultFilter(): Record<string, unknown> {
  return { name: EXTENSION_NAME.fault, typed_config: anyOf(TYPE_URL.HttpFault, {}) };
}

/** A fault filter override that aborts every request with a gRPC status. */
export function grpcAbort(grpcStatus: number): { type_url: string; value: Buffer } {
  return anyOf(TYPE_URL.HttpFault, {
    abort: { grpc_status: grpcStatus, percentage: { numerator: 100, denominator: ENUM.fractionDenominator().HUNDRED } },
  });
}

/** Orders strings by code unit, independent of locale: sorting must be byte-stable. */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
