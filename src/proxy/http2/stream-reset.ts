// Ending an HTTP/2 stream of an exchange that failed, so that nothing reads as its end.
import type { H2ClientStream } from './codec/client-stream';
import type { H2ServerStream } from './codec/server-stream';

const PEER_FAILED = new Error('the other side of the exchange failed');

/**
 * Resets a stream with nothing that could read as its end: RST_STREAM(CANCEL) when the proxy
 * gives up on it, RST_STREAM(INTERNAL_ERROR) when the other side of the exchange failed, never
 * END_STREAM first (a cut request body must not reach the upstream as a complete shorter one).
 * A stream not yet sent (waiting for its connection) is dropped without a frame.
 */
export function resetStream(stream: H2ServerStream | H2ClientStream, code: 'cancel' | 'internal'): void {
  if (stream.destroyed) return;
  stream.destroy(code === 'cancel' ? undefined : PEER_FAILED);
}

/**
 * Calls `then` when a stream's body really ended. A response the server cut short by a reset
 * also ends (as node:http2 gives it), on a stream already destroyed: that 'end' is no end of
 * message, and taking it for one would end the other side (END_STREAM, or a chunked message's
 * last chunk) with the body cut short.
 */
export function onBodyEnd(stream: H2ServerStream | H2ClientStream, then: () => void): void {
  stream.on('end', () => stream.destroyed || then());
}
