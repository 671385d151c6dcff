// Downstream HTTP/2 connections (h2c with prior knowledge, h2 over mTLS): the
// HTTP/1 connection hands over a socket that opened with the h2 preface, and
// weft's own codec (codec/server-connection.ts) runs it. This file owns the
// connections (their idle sweep, the proxy's drain) and what happens to a
// request the codec found well-formed: malformed for weft's own reasons
// (400/405), too large (431), or an H2Exchange (h2-exchange.ts).
import type * as net from 'node:net';
import type { IncomingHttpHeaders } from 'node:http2';
import type { HttpChainContext } from '../http1/connection';
import { RESPONSE_FLAGS_HEADER } from '../http1/head-writer';
import { activityClock, SWEEP_MS } from '../listener/activity-clock';
import { OpenSet } from '../listener/open-set';
import { setPeer, peerOf } from '../tls/peer';
import { ErrorCode } from './codec/frames';
import { H2ServerConnection, type H2ServerHandler } from './codec/server-connection';
import type { H2ServerStream } from './codec/server-stream';
import type { RequestHead } from './codec/request-fields';
import { H2Exchange } from './h2-exchange';

export { codeName } from './codec/frames';

export class H2Downstream {
  /** Open connections, for the idle sweep and the drain (an OpenSet, not a Set: see open-set.ts). */
  private readonly connections = new OpenSet<H2ServerConnection>();
  private sweep: NodeJS.Timeout | undefined;

  take(socket: net.Socket, firstBytes: Buffer, ctx: HttpChainContext): void {
    const connection = new H2ServerConnection(socket, handlerFor(ctx));
    const peer = peerOf(socket);
    if (peer) setPeer(connection, peer);
    connection.idleTimeoutMs = ctx.idleTimeoutMs;
    this.connections.add(connection);
    socket.once('close', () => {
      this.connections.delete(connection);
      if (this.connections.size === 0) this.stopSweep();
    });
    this.startSweep();
    connection.onData(firstBytes);
  }

  /** The proxy is stopping: every connection gets GOAWAY; streams in flight may finish. */
  drain(): void {
    for (const connection of this.connections.values()) connection.goaway();
  }

  private startSweep(): void {
    if (this.sweep) return;
    this.sweep = setInterval(() => {
      const now = activityClock.now;
      for (const connection of this.connections.values()) connection.sweepIdle(now);
    }, SWEEP_MS);
    this.sweep.unref();
  }

  private stopSweep(): void {
    clearInterval(this.sweep);
    this.sweep = undefined;
  }
}

function handlerFor(ctx: HttpChainContext): H2ServerHandler {
  return {
    onRequest(stream: H2ServerStream, head: RequestHead): void {
      const problem = malformedRequest(head.headers);
      if (problem) return refuseMalformed(stream, ctx, problem);
      new H2Exchange(stream, head.headers, ctx).start();
    },
    onError(scope, reason): void {
      ctx.stats.h2Error(scope, reason);
      if (reason.startsWith('malformed_')) ctx.stats.downstreamProtocolErrors++;
    },
    onOversizedHeaders(stream: H2ServerStream): void {
      ctx.stats.h2Error('stream', 'header_list_too_large');
      ctx.stats.downstreamProtocolErrors++;
      reply(stream, 431, `request header fields larger than ${65_536} bytes\n`);
    },
  };
}

/**
 * What the codec leaves to weft (it refuses what RFC 9113 calls malformed): a request weft
 * would have to guess about. Returns the reason, or undefined for a request to route.
 */
export function malformedRequest(headers: IncomingHttpHeaders): string | undefined {
  // weft does not tunnel: a CONNECT would otherwise be routed like a request without a path.
  if (headers[':method'] === 'CONNECT') return 'connect';
  // RFC 9113 8.3.1: a Host that names another authority than :authority is malformed; routing on
  // one while the upstream reads the other is how requests are smuggled past route rules.
  const host = headers.host;
  const authority = headers[':authority'];
  if (host !== undefined && authority !== undefined && String(host).toLowerCase() !== String(authority).toLowerCase()) return 'authority_mismatch';
  return undefined;
}

const MALFORMED_TEXT: Record<string, string> = {
  connect: 'CONNECT is not supported (weft does not tunnel)',
  authority_mismatch: 'the host header names another authority than :authority',
};

/** A malformed request: 400 (405 for CONNECT) with flag DPE, counted. */
function refuseMalformed(stream: H2ServerStream, ctx: HttpChainContext, problem: string): void {
  ctx.stats.h2Error('stream', `malformed_${problem}`);
  ctx.stats.downstreamProtocolErrors++;
  reply(stream, problem === 'connect' ? 405 : 400, `malformed request: ${MALFORMED_TEXT[problem]}\n`);
}

/** A local reply with flag DPE; a request body still on its way is cut off with RST_STREAM(NO_ERROR) (RFC 9113 §8.1). */
function reply(stream: H2ServerStream, status: number, text: string): void {
  stream.respond({ ':status': status, [RESPONSE_FLAGS_HEADER]: 'DPE', 'content-type': 'text/plain; charset=utf-8' });
  stream.end(text);
  if (!stream.endAfterHeaders) stream.close(ErrorCode.NO_ERROR);
}
