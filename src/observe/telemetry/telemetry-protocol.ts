// The two gRPC services a sidecar opens to the control plane replica it is
// connected to, on the xDS port (no inbound port on any host):
//
//   envoy.service.metrics.v3.MetricsService/StreamMetrics
//     Envoy's own protocol (its metrics_service stats sink): a client stream
//     of StreamMetricsMessage, the node first, then Prometheus metric
//     families with cumulative values. weft sidecars send the families the
//     control plane's golden signals come from (metrics-report.ts).
//
//   weft.telemetry.v1.AdminRelay/Connect
//     What Envoy has no protocol for: reading a sidecar's admin views
//     (/clusters, /requests, /certs, …) and tapping its requests, while
//     someone watches. The sidecar opens the stream and says who it is;
//     the control plane sends requests down it and the sidecar answers.
//     Messages are JSON (RelayUp / RelayDown below): weft's own service,
//     with weft's own record shapes.
//
// Both carry `authorization: Bearer <join token>` like the ADS stream.
import type * as grpc from '@grpc/grpc-js';
import { messageType } from '../../xds/protos';
import type { XdsNodeLike } from '../../xds/node-info';
import type { RequestRecord } from '../request-record';

export const METRICS_SERVICE_PATH = '/envoy.service.metrics.v3.MetricsService/StreamMetrics';
export const ADMIN_RELAY_PATH = '/weft.telemetry.v1.AdminRelay/Connect';

/** io.prometheus.client.MetricFamily as protobufjs objects (snake_case, longs as numbers). */
export interface MetricFamily {
  name: string;
  help?: string;
  type?: 'COUNTER' | 'GAUGE' | 'SUMMARY' | 'UNTYPED' | 'HISTOGRAM' | 'GAUGE_HISTOGRAM' | number;
  metric: PromMetric[];
}

export interface PromMetric {
  label?: { name: string; value: string }[];
  counter?: { value: number } | null;
  gauge?: { value: number } | null;
  untyped?: { value: number } | null;
  histogram?: { sample_count?: number; sample_sum?: number; bucket?: { cumulative_count?: number; upper_bound?: number }[] } | null;
}

export interface StreamMetricsMessage {
  identifier?: { node?: XdsNodeLike | null } | null;
  envoy_metrics?: MetricFamily[];
}

/** Sidecar → control plane on the relay stream. */
export type RelayUp =
  | { hello: { node: XdsNodeLike } }
  /** The answer to a `get`: the admin view's JSON, or why not. */
  | { id: number; body?: unknown; error?: string }
  /** Records of a tap, in order. */
  | { id: number; records: RequestRecord[] };

/** Control plane → sidecar on the relay stream. */
export type RelayDown =
  /** An admin view: path and query as on the admin port (`/requests`, `limit=50&status=5xx`). */
  | { id: number; get: string; query?: string }
  /** Start streaming finished requests matching the query (record-filter.ts; `since` replays the ring). */
  | { id: number; tap: string }
  | { id: number; cancel: true };

const METRICS_MESSAGE = 'envoy.service.metrics.v3.StreamMetricsMessage';
const METRICS_RESPONSE = 'envoy.service.metrics.v3.StreamMetricsResponse';

function protoCodec(typeName: string) {
  const type = messageType(typeName);
  return {
    serialize: (o: object) => Buffer.from(type.encode(type.fromObject(o as Record<string, unknown>)).finish()),
    deserialize: (b: Buffer) => type.toObject(type.decode(b), { enums: String, longs: Number, arrays: true }),
  };
}

const json = {
  serialize: (o: unknown) => Buffer.from(JSON.stringify(o)),
  deserialize: (b: Buffer) => JSON.parse(b.toString('utf8')) as unknown,
};

let metricsDefinition: grpc.ServiceDefinition | undefined;

export function metricsServiceDefinition(): grpc.ServiceDefinition {
  if (metricsDefinition) return metricsDefinition;
  const req = protoCodec(METRICS_MESSAGE);
  const res = protoCodec(METRICS_RESPONSE);
  metricsDefinition = {
    StreamMetrics: {
      path: METRICS_SERVICE_PATH,
      requestStream: true,
      responseStream: false,
      requestSerialize: req.serialize,
      requestDeserialize: req.deserialize,
      responseSerialize: res.serialize,
      responseDeserialize: res.deserialize,
      originalName: 'streamMetrics',
    },
  } as grpc.ServiceDefinition;
  return metricsDefinition;
}

export function adminRelayDefinition(): grpc.ServiceDefinition {
  return {
    Connect: {
      path: ADMIN_RELAY_PATH,
      requestStream: true,
      responseStream: true,
      requestSerialize: json.serialize,
      requestDeserialize: json.deserialize,
      responseSerialize: json.serialize,
      responseDeserialize: json.deserialize,
      originalName: 'connect',
    },
  } as grpc.ServiceDefinition;
}
