// Protocol violations by a client. Each ends that client's stream with a gRPC
// status; no other stream is affected.
import { status as GrpcStatus } from '@grpc/grpc-js';

export type XdsProtocolErrorCode =
  | 'E_XDS_MALFORMED_REQUEST'
  | 'E_XDS_MISSING_NODE'
  | 'E_XDS_INVALID_NODE'
  | 'E_XDS_UNKNOWN_TYPE';

export class XdsProtocolError extends Error {
  readonly grpcCode = GrpcStatus.INVALID_ARGUMENT;
  constructor(
    readonly code: XdsProtocolErrorCode,
    message: string,
  ) {
    super(message);
  }
}
