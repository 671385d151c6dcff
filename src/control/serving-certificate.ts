// The control plane's own serving certificate (xDS, SDS, rate limit), from
// the mesh CA, renewed before it expires and at once when the CA's material
// changes (a root rotation or retirement, here or on another replica), so it
// always chains to the trust bundle sidecars verify it with. It is a gRPC
// CertificateProvider: the server picks a new certificate up for new
// connections without a restart.
import * as grpc from '@grpc/grpc-js';
import type { CertificateAuthority } from '../ca/certificate-authority';
import type { Logger } from '../observe/log';

type Identity = { certificate: Buffer; privateKey: Buffer };
type Listener = (update: Identity | null) => void;

/** Lifetime of a serving certificate: short, since it renews itself. */
export const SERVING_CERT_TTL_MS = 30 * 24 * 3_600_000;

export class ServingCertificate implements grpc.experimental.CertificateProvider {
  private identity: Identity | undefined;
  private readonly listeners = new Set<Listener>();
  private timer: NodeJS.Timeout | undefined;
  private stopCa: (() => void) | undefined;
  private renewing: Promise<void> = Promise.resolve();

  private constructor(
    private readonly ca: CertificateAuthority,
    private readonly hosts: string[],
    private readonly log: Logger,
    private readonly ttlMs: number,
  ) {}

  static async start(ca: CertificateAuthority, hosts: string[], log: Logger, ttlMs = SERVING_CERT_TTL_MS): Promise<ServingCertificate> {
    const s = new ServingCertificate(ca, hosts, log, ttlMs);
    await s.renew('start');
    s.stopCa = ca.onChange(() => void s.renew('the CA changed'));
    return s;
  }

  /** The credentials for a gRPC server that serve whatever certificate is current. */
  serverCredentials(): grpc.ServerCredentials {
    return grpc.experimental.createCertificateProviderServerCredentials(this, null, false);
  }

  get current(): Identity {
    return this.identity!;
  }

  /** Called after each renewal (the API's HTTPS server swaps its context). */
  onChange(cb: () => void): () => void {
    const l: Listener = () => cb();
    this.changeListeners.add(l);
    return () => this.changeListeners.delete(l);
  }

  private readonly changeListeners = new Set<Listener>();

  close(): void {
    clearTimeout(this.timer);
    this.stopCa?.();
  }

  private renew(why: string): Promise<void> {
    this.renewing = this.renewing.then(async () => {
      clearTimeout(this.timer);
      try {
        const issued = await this.ca.serverCertificate(this.hosts, this.ttlMs);
        this.identity = { certificate: Buffer.from(issued.chainPem), privateKey: Buffer.from(issued.keyPem) };
        for (const l of this.listeners) l(this.identity);
        for (const l of this.changeListeners) l(this.identity);
        if (why !== 'start') this.log('info', 'control plane serving certificate renewed', { why });
        // At two thirds of its life, well before sidecars would refuse it.
        this.timer = setTimeout(() => void this.renew('two thirds of its lifetime'), (this.ttlMs * 2) / 3);
      } catch (err) {
        this.log('error', 'could not renew the serving certificate; retrying in a minute', { error: String(err) });
        this.timer = setTimeout(() => void this.renew('retry'), 60_000);
      }
      this.timer.unref();
    });
    return this.renewing;
  }

  // ---- CertificateProvider ----
  addCaCertificateListener(): void {}
  removeCaCertificateListener(): void {}
  addIdentityCertificateListener(listener: Listener): void {
    this.listeners.add(listener);
    // Later, not now: grpc-js registers its own watcher only after adding this listener.
    process.nextTick(() => this.listeners.has(listener) && this.identity && listener(this.identity));
  }
  removeIdentityCertificateListener(listener: Listener): void {
    this.listeners.delete(listener);
  }
}
