// Ending an HTTP/2 stream of an exchange that failed, so that nothing reads as its end.
import type * as http2 from 'node:http2';
import { addAbortSignal } from 'node:stream';
import { H2ClientStream } from './codec/client-stream';
import { H2ServerStream } from './codec/server-stream';

/** Already aborted: addAbortSignal(ABORTED, stream) destroys the stream at once with an AbortError. */
const ABORTED = AbortSignal.abort();
const PEER_FAILED = new Error('the other side of the exchange failed');

/**
 * Resets an h2 stream with nothing that could read as its end. Http2Stream.close(code) first
 * ends the writable side (closeStream() calls end(), whose _final queues END_STREAM) and Node
 * flushes pending frames before an RST_STREAM, so the peer saw a complete message, then the
 * reset: a cut request body arrived upstream as a complete shorter request. destroy() never
 * runs _final: with an AbortError (Node's documented way to cancel a stream) it sends
 * RST_STREAM(CANCEL), with another error RST_STREAM(INTERNAL_ERROR). A stream not yet sent
 * (its session still connecting) is dropped without a frame.
 */
export function resetStream(stream: http2.Http2Stream | H2ServerStream | H2ClientStream, code: 'cancel' | 'internal'): void {
  if (stream.destroyed) return;
  // A stream of weft's own codec (either side) resets with exactly the code asked for.
  if (stream instanceof H2ServerStream || stream instanceof H2ClientStream) return void stream.destroy(code === 'cancel' ? undefined : PEER_FAILED);
  if (code === 'cancel') addAbortSignal(ABORTED, stream);
  else stream.destroy(PEER_FAILED);
}

/**
 * Calls `then` when a stream's body really ended. Node emits 'end' also on a stream the peer
 * reset (Http2Stream._destroy pushes EOF), already destroyed: that 'end' is no end of message,
 * and a pipe() that took it for one ended the other side (END_STREAM, or a chunked request's
 * last chunk) with the body cut short.
 */
export function onBodyEnd(stream: http2.Http2Stream | H2ServerStream | H2ClientStream, then: () => void): void {
  stream.on('end', () => stream.destroyed || then());
}
