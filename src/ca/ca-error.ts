// The CA's errors, with stable codes the API maps to statuses.
export type CaErrorCode = 'CA_OPTIONS' | 'CA_FILES' | 'CSR_MALFORMED' | 'CSR_SIGNATURE' | 'CSR_KEY' | 'CSR_SANS' | 'CSR_IDENTITY' | 'CA_ROTATION';

export class CaError extends Error {
  constructor(
    readonly code: CaErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'CaError';
  }
}
