// The CA's errors, with stable codes the API maps to statuses.
export type CaErrorCode = 'CA_OPTIONS' | 'CA_FILES' | 'CSR_MALFORMED' | 'CSR_SIGNATURE' | 'CSR_KEY' | 'CSR_SANS' | 'CSR_IDENTITY' | 'CA_ROTATION' | 'CA_ROOT_IN_USE';

export class CaError extends Error {
  constructor(
    readonly code: CaErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'CaError';
  }
}

/** Retiring the previous roots would cut off live certificates that chain to them: the nodes holding them. */
export class RootInUseError extends CaError {
  constructor(
    message: string,
    readonly nodes: { nodeId: string; spiffeId: string; serial: string; notAfter: string; root: string }[],
  ) {
    super('CA_ROOT_IN_USE', message);
  }
}
