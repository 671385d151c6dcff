// The gRPC definition of envoy.service.discovery.v3.AggregatedDiscoveryService.
// The server writes pre-encoded response bytes, so its response serializer is
// the identity. SotW requests use the hot-path decoder of discovery-request.ts,
// delta requests protobufjs (snake_case fields, defaults on the prototype);
// bytes that do not decode become a MalformedMessage, which the stream turns
// into an INVALID_ARGUMENT status.
import type * as grpc from '@grpc/grpc-js';
import { messageType } from '../protos';
import type { XdsNodeLike } from '../node-info';
import { decodeDiscoveryRequest, MalformedMessage, type RpcStatusLike } from './discovery-request';

export { DiscoveryRequestMessage, MalformedMessage, type RpcStatusLike } from './discovery-request';

export const ADS_SERVICE_NAME = 'envoy.service.discovery.v3.AggregatedDiscoveryService';
export const ADS_PATHS = {
  sotw: `/${ADS_SERVICE_NAME}/StreamAggregatedResources`,
  delta: `/${ADS_SERVICE_NAME}/DeltaAggregatedResources`,
} as const;

const MSG = {
  request: 'envoy.service.discovery.v3.DiscoveryRequest',
  response: 'envoy.service.discovery.v3.DiscoveryResponse',
  deltaRequest: 'envoy.service.discovery.v3.DeltaDiscoveryRequest',
  deltaResponse: 'envoy.service.discovery.v3.DeltaDiscoveryResponse',
} as const;

/** A decoded envoy.service.discovery.v3.DeltaDiscoveryRequest. */
export interface DeltaDiscoveryRequestMessage {
  node?: XdsNodeLike | null;
  type_url: string;
  resource_names_subscribe: string[];
  resource_names_unsubscribe: string[];
  initial_resource_versions: Record<string, string>;
  response_nonce: string;
  error_detail?: RpcStatusLike | null;
}

function decoder<T>(typeName: string): (bytes: Buffer) => T | MalformedMessage {
  const type = messageType(typeName);
  return (bytes) => {
    try {
      return type.decode(bytes) as unknown as T;
    } catch (err) {
      return new MalformedMessage(`${typeName} does not decode: ${(err as Error).message}`);
    }
  };
}

function objectEncoder(typeName: string): (obj: object) => Buffer {
  const type = messageType(typeName);
  return (obj) => Buffer.from(type.encode(type.fromObject(obj as Record<string, unknown>)).finish());
}

function objectDecoder(typeName: string): (bytes: Buffer) => Record<string, any> {
  const type = messageType(typeName);
  return (bytes) =>
    type.toObject(type.decode(bytes), { enums: String, longs: Number, defaults: true, oneofs: true, arrays: true });
}

const identity = (b: Buffer) => b;

/** The definition the server registers: requests decoded, responses already bytes. */
export function adsServerDefinition(): grpc.ServiceDefinition {
  const method = (
    path: string,
    request: string,
    response: string,
    originalName: string,
    requestDeserialize: (b: Buffer) => unknown,
  ) => ({
    path,
    requestStream: true,
    responseStream: true,
    requestSerialize: objectEncoder(request),
    requestDeserialize,
    responseSerialize: identity,
    responseDeserialize: objectDecoder(response),
    originalName,
  });
  return {
    StreamAggregatedResources: method(ADS_PATHS.sotw, MSG.request, MSG.response, 'streamAggregatedResources', decodeDiscoveryRequest),
    DeltaAggregatedResources: method(
      ADS_PATHS.delta,
      MSG.deltaRequest,
      MSG.deltaResponse,
      'deltaAggregatedResources',
      decoder<DeltaDiscoveryRequestMessage>(MSG.deltaRequest),
    ),
  } as grpc.ServiceDefinition;
}

/**
 * The definition a client uses (tests, tools): plain-object requests in,
 * plain-object responses out (Any values stay {type_url, value} bytes).
 */
export function adsClientDefinition(): grpc.ServiceDefinition {
  const method = (path: string, request: string, response: string, originalName: string) => ({
    path,
    requestStream: true,
    responseStream: true,
    requestSerialize: objectEncoder(request),
    requestDeserialize: objectDecoder(request),
    responseSerialize: objectEncoder(response),
    responseDeserialize: objectDecoder(response),
    originalName,
  });
  return {
    StreamAggregatedResources: method(ADS_PATHS.sotw, MSG.request, MSG.response, 'streamAggregatedResources'),
    DeltaAggregatedResources: method(ADS_PATHS.delta, MSG.deltaRequest, MSG.deltaResponse, 'deltaAggregatedResources'),
  } as grpc.ServiceDefinition;
}
