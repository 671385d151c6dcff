// The sidecar's TLS contexts, built from its SecretStore: a tls.Server per
// downstream TLS config (mTLS termination on the inbound listener) and a
// SecureContext per upstream one (auto mTLS to endpoints with a sidecar).
// They are built once, and again when a secret changes: a certificate
// rotation reaches new connections, open ones keep the context they began
// with, and nothing is built per connection.
import * as tls from 'node:tls';
import type { Logger } from '../../observe/log';
import type { ClusterConfig, DownstreamTlsConfig, Endpoint, UpstreamTlsConfig } from '../config/types';
import type { ProxyStats } from '../stats';
import { peerIdentity, sansMatch, uriSans, type PeerIdentity } from './peer';
import type { SecretStore } from './secret-store';

/** A TLS handshake that has not finished in this long is abandoned (a stalled or truncated ClientHello). */
export const HANDSHAKE_TIMEOUT_MS = 10_000;
/** A refusal reason is logged at most once per this interval (with the count since). */
const LOG_EVERY_MS = 60_000;

/** Why an inbound connection was closed before it carried anything. */
export type TlsRefusal =
  | 'plaintext' // no plaintext chain (strict)
  | 'empty' // closed by the client before its first byte (strict): a TCP probe, not an attempt; logged at debug only
  | 'handshake_failed' // garbage, truncated, timed out, or protocol mismatch
  | 'no_client_certificate'
  | 'client_certificate_rejected' // untrusted, expired, or a SAN the chain does not accept
  | 'no_workload_certificate'; // this sidecar has no certificate yet

interface ServerEntry {
  server: tls.Server;
  cfg: DownstreamTlsConfig;
  /** Secrets were there when last (re)built. */
  ready: boolean;
}

type SecureHandler = { onSecure(socket: tls.TLSSocket, peer: PeerIdentity): void; cfg: DownstreamTlsConfig };

/** Where connectOptions() leaves the session cache's key for connect(). */
const SESSION_KEY = Symbol('weft.tlsSessionKey');
type SessionKeyed = { [SESSION_KEY]?: string };
/** Sessions kept at most (one per upstream endpoint in use; the oldest goes first). */
const MAX_SESSIONS = 4096;

export class TlsContexts {
  private readonly servers = new Map<string, ServerEntry>();
  private readonly clients = new Map<string, tls.SecureContext | null>();
  /**
   * The last TLS session per (cluster, endpoint, SNI) as its server offered
   * it: the next connection resumes it (an abbreviated handshake, no
   * certificate exchange or verify), which is most of a new mTLS
   * connection's cost. Dropped with the contexts when a secret changes.
   */
  private readonly sessions = new Map<string, Buffer>();
  /** Raw socket → what to do once its handshake completes (tls.Server reports by the TLS socket, whose _parent it is). */
  private readonly pending = new WeakMap<object, SecureHandler>();
  private readonly lastLogged = new Map<string, { at: number; count: number }>();
  private warnedFallback = false;

  constructor(
    private readonly secrets: SecretStore,
    private readonly stats: ProxyStats,
    private readonly log: Logger,
  ) {
    secrets.onChange(() => this.rebuild());
  }

  // ---- downstream (termination) ----

  /**
   * Terminates mTLS on `raw` (its first bytes unshifted) with the chain's
   * config; `onSecure` gets the TLS socket once the caller is verified.
   * Anything else closes the connection, counted and logged by reason.
   */
  accept(raw: import('node:net').Socket, cfg: DownstreamTlsConfig, onSecure: (socket: tls.TLSSocket, peer: PeerIdentity) => void): void {
    const entry = this.server(cfg);
    if (!entry.ready) {
      this.refused('no_workload_certificate', `secret "${cfg.certificateSecret}" or "${cfg.validationSecret}" is not there yet`, raw.remoteAddress);
      raw.destroy();
      return;
    }
    this.pending.set(raw, { onSecure, cfg });
    // A FIN during the handshake (a truncated ClientHello) must end it now, not at the handshake
    // timeout: the TLS socket copies this flag; it is set back once the handshake is done.
    raw.allowHalfOpen = false;
    entry.server.emit('connection', raw);
  }

  private server(cfg: DownstreamTlsConfig): ServerEntry {
    const key = `${cfg.certificateSecret}\u0000${cfg.validationSecret}\u0000${cfg.alpn.join(',')}`;
    let entry = this.servers.get(key);
    if (entry) return entry;
    // Verification is ours (rejectUnauthorized false): a refused caller gets a reason in the log.
    const server = tls.createServer({ requestCert: true, rejectUnauthorized: false, ALPNProtocols: cfg.alpn.length ? cfg.alpn : undefined, handshakeTimeout: HANDSHAKE_TIMEOUT_MS });
    entry = { server, cfg, ready: false };
    this.servers.set(key, entry);
    this.configure(entry, cfg);
    server.on('secureConnection', (socket: tls.TLSSocket) => this.secured(socket));
    server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: tls.TLSSocket) => {
      this.pending.delete(parentOf(socket) ?? socket);
      this.refused('handshake_failed', err.code ?? err.message, socket.remoteAddress);
      socket.destroy();
    });
    return entry;
  }

  private configure(entry: ServerEntry, cfg: DownstreamTlsConfig): void {
    const opts = this.material(cfg.certificateSecret, cfg.validationSecret);
    entry.ready = false;
    if (!opts) return;
    try {
      entry.server.setSecureContext(opts);
      entry.ready = true;
    } catch (err) {
      this.log('error', 'TLS server context could not be built from the secrets', { error: String(err) });
    }
  }

  private secured(socket: tls.TLSSocket): void {
    const raw = parentOf(socket);
    const handler = raw ? this.pending.get(raw) : undefined;
    if (raw) this.pending.delete(raw);
    if (!handler) return void socket.destroy();
    if (!socket.authorized) {
      const cert = socket.getPeerCertificate();
      const none = !cert || Object.keys(cert).length === 0;
      this.refused(none ? 'no_client_certificate' : 'client_certificate_rejected', none ? 'the caller sent no certificate' : String(socket.authorizationError), socket.remoteAddress);
      return void socket.destroy();
    }
    const uris = uriSans(socket.getPeerCertificate());
    if (uris.length === 0 || !sansMatch(uris, handler.cfg.sanMatchers)) {
      this.refused('client_certificate_rejected', `caller identity ${uris.join(' ') || '(no URI SAN)'} is not accepted`, socket.remoteAddress);
      return void socket.destroy();
    }
    this.stats.tlsHandshakes++;
    // A resumed session skipped the certificate exchange; the caller's certificate (checked above) is the one its session holds.
    if (socket.isSessionReused()) this.stats.tlsResumed++;
    socket.allowHalfOpen = true; // as the listener's plaintext sockets: a client's FIN ends only its direction
    handler.onSecure(socket, peerIdentity(uris[0]));
  }

  /** Counts a refused inbound connection; logs its reason at most once a minute. */
  refused(reason: TlsRefusal, detail: string, peer: string | undefined): void {
    this.stats.tlsRefused.set(reason, (this.stats.tlsRefused.get(reason) ?? 0) + 1);
    this.warnLimited(reason, 'inbound connection refused', { reason, detail, peer }, reason === 'empty' ? 'debug' : 'warn');
  }

  /** A warning logged at most once a minute per key, with how many were not logged since. */
  private warnLimited(key: string, message: string, fields: Record<string, unknown>, level: 'warn' | 'debug' = 'warn'): void {
    const now = Date.now();
    const last = this.lastLogged.get(key);
    if (last && now - last.at < LOG_EVERY_MS) {
      last.count++;
      return;
    }
    this.log(level, message, { ...fields, suppressedSinceLast: last?.count ?? 0 });
    this.lastLogged.set(key, { at: now, count: 0 });
  }

  // ---- upstream (origination) ----

  /** The transport_socket_matches entry of `endpoint` (first whose every key matches), if any. */
  static upstreamConfig(cluster: ClusterConfig, endpoint: Endpoint): UpstreamTlsConfig | undefined {
    const matches = cluster.transportSocketMatches;
    if (!matches) return undefined;
    const meta = endpoint.socketMatch;
    for (const m of matches) {
      let ok = true;
      for (const k in m.match) if (meta?.[k] !== m.match[k]) ok = false;
      if (ok) return m.tls;
    }
    return undefined;
  }

  /**
   * tls.connect options for an endpoint that wants mTLS; undefined means
   * plaintext: no match, or no certificate yet (logged once: a strict peer will refuse).
   */
  upstream(cluster: ClusterConfig, endpoint: Endpoint): tls.ConnectionOptions | undefined {
    const cfg = TlsContexts.upstreamConfig(cluster, endpoint);
    if (!cfg) return undefined;
    const secureContext = this.clientContext(cfg);
    if (!secureContext) {
      if (!this.warnedFallback) {
        this.warnedFallback = true;
        this.log('warn', 'no workload certificate yet: connecting to mTLS endpoints in plaintext', { cluster: cluster.name, endpoint: endpoint.key });
      }
      return undefined;
    }
    return this.connectOptions(cluster, endpoint, cfg, secureContext);
  }

  /**
   * What a health check of an endpoint connects with: the options traffic
   * gets (undefined: plaintext), or 'no_certificate' while the endpoint wants
   * mTLS and this sidecar has no certificate yet. A check then waits, as
   * Envoy's wait for their cluster's secrets, rather than probe in plaintext.
   */
  healthCheckTransport(cluster: ClusterConfig, endpoint: Endpoint): tls.ConnectionOptions | undefined | 'no_certificate' {
    const cfg = TlsContexts.upstreamConfig(cluster, endpoint);
    if (!cfg) return undefined;
    const secureContext = this.clientContext(cfg);
    return secureContext ? this.connectOptions(cluster, endpoint, cfg, secureContext) : 'no_certificate';
  }

  /** tls.connect with the options upstream() gave, resuming the last session to the same endpoint and keeping the one the server offers. */
  connect(options: tls.ConnectionOptions): tls.TLSSocket {
    const key = (options as SessionKeyed)[SESSION_KEY];
    const session = key !== undefined ? this.sessions.get(key) : undefined;
    const socket = tls.connect(session ? { ...options, session } : options);
    if (key !== undefined) {
      socket.on('session', (s: Buffer) => {
        if (this.sessions.size >= MAX_SESSIONS && !this.sessions.has(key)) this.sessions.delete(this.sessions.keys().next().value!);
        this.sessions.set(key, s);
      });
    }
    return socket;
  }

  private connectOptions(cluster: ClusterConfig, endpoint: Endpoint, cfg: UpstreamTlsConfig, secureContext: tls.SecureContext): tls.ConnectionOptions {
    const options: tls.ConnectionOptions & SessionKeyed = {
      [SESSION_KEY]: `${cluster.name}\u0000${endpoint.key}\u0000${cfg.sni}`,
      host: endpoint.address,
      port: endpoint.port,
      secureContext,
      servername: cfg.sni || undefined,
      ALPNProtocols: cfg.alpn.length ? cfg.alpn : undefined,
      checkServerIdentity: (_host, cert) => {
        const uris = uriSans(cert);
        if (sansMatch(uris, cfg.sanMatchers)) return undefined;
        const expected = cfg.sanMatchers.map((m) => m.value).join(' or ');
        const err = new Error(`TLS connect failure: ${endpoint.key} presented ${uris.join(' ') || 'no URI SAN'}, expected ${expected}`) as NodeJS.ErrnoException;
        err.code = 'ERR_TLS_PEER_IDENTITY';
        this.warnLimited(`identity|${cluster.name}`, 'upstream refused: its certificate is not the expected identity', { cluster: cluster.name, endpoint: endpoint.key, presented: uris, expected });
        return err;
      },
    };
    return options;
  }

  private clientContext(cfg: UpstreamTlsConfig): tls.SecureContext | undefined {
    const key = `${cfg.certificateSecret}\u0000${cfg.validationSecret}`;
    let ctx = this.clients.get(key);
    if (ctx === undefined) {
      const opts = this.material(cfg.certificateSecret, cfg.validationSecret);
      ctx = null;
      try {
        if (opts) ctx = tls.createSecureContext(opts);
      } catch (err) {
        this.log('error', 'TLS client context could not be built from the secrets', { error: String(err) });
      }
      this.clients.set(key, ctx);
    }
    return ctx ?? undefined;
  }

  // ---- secrets ----

  private material(certName: string, caName: string): { key: string; cert: string; ca: string } | undefined {
    const cert = this.secrets.certificate(certName);
    const bundle = this.secrets.trustBundle(caName);
    if (!cert || !bundle) return undefined;
    return { key: cert.privateKeyPem, cert: cert.certificateChainPem, ca: bundle.trustedCaPem };
  }

  /** A secret changed: new contexts for new connections (open ones keep theirs). */
  private rebuild(): void {
    this.clients.clear();
    this.sessions.clear();
    this.warnedFallback = false;
    for (const entry of this.servers.values()) this.configure(entry, entry.cfg);
  }
}

/** The raw socket a server-side TLS socket wraps (node keeps it as `_parent`). */
function parentOf(socket: tls.TLSSocket): object | undefined {
  return (socket as unknown as { _parent?: object })._parent;
}
