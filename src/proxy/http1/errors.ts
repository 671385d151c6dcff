/**
 * A malformed or unsupported HTTP/1.x message. `code` is stable (tests and
 * access logs use it); `status` is what a server answers before closing.
 */
export class HttpParseError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: 400 | 413 | 431 | 501 | 505,
  ) {
    super(message);
    this.name = 'HttpParseError';
  }
}
