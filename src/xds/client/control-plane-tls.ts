// TLS to the control plane (xDS, SDS, telemetry, rate limit), verified with
// the mesh's trust bundle (`--ca-file`). grpc-js's own SSL credentials always
// send the target host as SNI, an IP address too (Node then warns DEP0123:
// RFC 6066 allows no IP in SNI), and its one way out
// (`grpc.ssl_target_name_override`) would verify a name instead of the IP.
// Sidecars usually dial the control plane by IP, so this connector does what
// an HTTPS client does: SNI only for a DNS name, and the certificate checked
// against the host dialed, name or IP (the control plane's certificate
// carries its addresses as IP SANs).
import * as grpc from '@grpc/grpc-js';
import * as net from 'node:net';
import * as tls from 'node:tls';

type Target = Parameters<grpc.ChannelCredentials['_createSecureConnector']>[0];
type Connector = ReturnType<grpc.ChannelCredentials['_createSecureConnector']>;

/**
 * The host dialed: "198.18.0.2:15010" → 198.18.0.2, "[::1]:15010" → ::1. Through an HTTP CONNECT
 * proxy (grpc_proxy / https_proxy) the channel's target is the proxy; the real one is in
 * `grpc.http_connect_target` (as grpc-js itself reads it).
 */
export function targetHost(target: Target, options: grpc.ChannelOptions = {}): string {
  let path = target.path;
  const connect = options['grpc.http_connect_target'];
  // grpc-js's URI shape: [scheme:][//authority/]path
  if (typeof connect === 'string') path = /^(?:[A-Za-z0-9+.-]+:)?(?:\/\/[^/]*\/)?(.+)$/.exec(connect)?.[1] ?? path;
  path = path.replace(/^\/+/, '');
  return grpc.experimental.splitHostPort(path)?.host ?? path;
}

export class ControlPlaneCredentials extends grpc.ChannelCredentials {
  private readonly context: tls.SecureContext;

  constructor(readonly caPem: Buffer) {
    super();
    this.context = tls.createSecureContext({ ca: caPem });
  }

  _isSecure(): boolean {
    return true;
  }

  _equals(other: grpc.ChannelCredentials): boolean {
    return other === this || (other instanceof ControlPlaneCredentials && other.caPem.equals(this.caPem));
  }

  _createSecureConnector(target: Target, options: grpc.ChannelOptions, callCredentials?: grpc.CallCredentials): Connector {
    const host = targetHost(target, options);
    const context = this.context;
    return {
      connect: (socket) =>
        new Promise((resolve, reject) => {
          // Node checks the certificate against servername ?? host: the IP itself when there is no SNI.
          const s = tls.connect({ socket, secureContext: context, host, ALPNProtocols: ['h2'], ...(net.isIP(host) ? {} : { servername: host }) }, () => {
            if (!s.authorized) reject(s.authorizationError);
            else resolve({ socket: s, secure: true });
          });
          s.on('error', reject);
        }),
      waitForReady: () => Promise.resolve(),
      getCallCredentials: () => callCredentials ?? grpc.CallCredentials.createEmpty(),
      destroy: () => {},
    };
  }
}
