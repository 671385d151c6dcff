// Protocol violations by a client. Each ends that client's stream with a gRPC
// status; no other stream is affected.
import { status as GrpcStatus } from '@grpc/grpc-js';

export type XdsProtocolErrorCode =
  | 'E_XDS_MALFORMED_REQUEST'
  | 'E_XDS_MISSING_NODE'
  | 'E_XDS_INVALID_NODE'
  | 'E_XDS_UNKNOWN_TYPE'
  | 'E_XDS_ACCESS';

export class XdsProtocolError extends Error {
  readonly grpcCode: GrpcStatus = GrpcStatus.INVALID_ARGUMENT;
  constructor(
    readonly code: XdsProtocolErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** A caller the control plane does not let in (outside --dev): UNAUTHENTICATED or PERMISSION_DENIED. */
export class XdsAccessError extends XdsProtocolError {
  override readonly grpcCode: GrpcStatus;
  constructor(denied: boolean, message: string) {
    super('E_XDS_ACCESS', message);
    this.grpcCode = denied ? GrpcStatus.PERMISSION_DENIED : GrpcStatus.UNAUTHENTICATED;
  }
}
