// HTTP/2 upstream sessions of one cluster: one multiplexed connection per
// endpoint (weft's own client codec, client-connection.ts), made on first use
// and made again when the peer closes it or sends GOAWAY.
import * as net from 'node:net';
import type { ClusterConfig, Endpoint } from '../config/types';
import type { TlsContexts } from '../tls/tls-contexts';
import { H2ClientConnection } from './codec/client-connection';

/**
 * Streams a new connection starts before the server's SETTINGS say how many it takes (node and
 * nghttp2 assume 100 too). Starting all of a burst at once (the cluster allows 1024), nginx (128)
 * refused those beyond its limit with REFUSED_STREAM, each one a round trip to send again.
 */
const STREAMS_BEFORE_SETTINGS = 100;

export class H2SessionPool {
  private readonly sessions = new Map<string, H2ClientConnection>();
  /** Sessions of endpoints no longer in the cluster: their queued streams get no successor. */
  private readonly retired = new WeakSet<H2ClientConnection>();
  private closed = false;

  constructor(
    readonly cluster: ClusterConfig,
    /** Auto mTLS (transport_socket_matches): endpoints with a sidecar get h2 over TLS. */
    private readonly tls?: TlsContexts,
  ) {}

  /** An open session to the endpoint (connecting if needed); requests made on it queue until it connects. */
  session(endpoint: Endpoint): H2ClientConnection {
    const existing = this.sessions.get(endpoint.key);
    if (existing && existing.acceptsStreams) return existing;
    const tlsOptions = this.cluster.transportSocketMatches && this.tls?.upstream(this.cluster, endpoint);
    // TLS through TlsContexts.connect(): the next connection to the endpoint resumes the session.
    const socket = tlsOptions ? this.tls!.connect({ ...tlsOptions, ALPNProtocols: ['h2'] }) : net.connect({ host: endpoint.address, port: endpoint.port });
    const forget = () => {
      if (this.sessions.get(endpoint.key) === session) this.sessions.delete(endpoint.key);
    };
    // The streams a GOAWAY leaves unprocessed go on the next connection to the endpoint.
    const successor = (): H2ClientConnection | undefined => (this.closed || this.retired.has(session) ? undefined : this.session(endpoint));
    const session = new H2ClientConnection(socket, { peerMaxConcurrentStreams: Math.min(this.cluster.limits.maxRequests, STREAMS_BEFORE_SETTINGS), secure: !!tlsOptions, onGone: forget, successor });
    session.setTimeout(this.cluster.idleTimeoutMs || 3_600_000, () => session.close());
    this.sessions.set(endpoint.key, session);
    return session;
  }

  get openSessions(): number {
    return this.sessions.size;
  }

  retainEndpoints(keep: Set<string>): void {
    for (const [key, s] of this.sessions) {
      if (!keep.has(key)) {
        this.retired.add(s);
        s.close();
        this.sessions.delete(key);
      }
    }
  }

  close(): void {
    this.closed = true;
    for (const s of this.sessions.values()) s.close();
    this.sessions.clear();
  }
}

/** gRPC status codes a local reply maps to (gRPC over HTTP/2 says errors in grpc-status, with HTTP 200). */
export function grpcStatusFor(httpStatus: number): number {
  switch (httpStatus) {
    case 400:
      return 13; // INTERNAL
    case 404:
      return 12; // UNIMPLEMENTED
    case 429:
      return 8; // RESOURCE_EXHAUSTED
    case 403:
      return 7; // PERMISSION_DENIED
    case 504:
      return 4; // DEADLINE_EXCEEDED
    default:
      return 14; // UNAVAILABLE
  }
}

/** Headers that are connection-specific in HTTP/2 (RFC 9113 §8.2.2) or pseudo-headers. */
export function isH2Forbidden(lowerName: string): boolean {
  return (
    lowerName.charCodeAt(0) === 0x3a /* ":" */ ||
    lowerName === 'connection' ||
    lowerName === 'keep-alive' ||
    lowerName === 'proxy-connection' ||
    lowerName === 'transfer-encoding' ||
    lowerName === 'upgrade' ||
    lowerName === 'host' ||
    lowerName === 'te'
  );
}
