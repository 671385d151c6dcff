// Errors of the xDS client itself (decoding errors are ConfigNackErrors, see
// src/proxy/config/nack.ts).

export type XdsClientErrorCode =
  /** The options cannot work: no node id, a server that is not host:port, bad backoff. */
  | 'E_XDS_CLIENT_OPTIONS'
  /** start() after stop(): a client is not restartable. */
  | 'E_XDS_CLIENT_STOPPED';

export class XdsClientError extends Error {
  constructor(
    readonly code: XdsClientErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'XdsClientError';
  }
}

/** A delta Resource that cannot be read as what it claims: wrong type URL, bytes that do not decode, a name mismatch. */
export class XdsResourceError extends Error {
  readonly code = 'E_XDS_RESOURCE';
}
