// The sidecar's secrets, by SDS name: its workload certificate ("default",
// obtained by CSR from the control plane's CA) and the trust bundle
// ("ROOTCA", pushed over ADS; old and new roots during a root rotation).
// TLS contexts read them here and rebuild when one changes, so a rotation
// reaches new connections without touching open ones.
import { EventEmitter } from 'node:events';

/** Envoy/Istio's SDS names for the workload certificate and the trust bundle. */
export const WORKLOAD_CERT_SECRET = 'default';
export const TRUST_BUNDLE_SECRET = 'ROOTCA';

export interface CertificateSecret {
  /** Leaf then intermediates, PEM. */
  certificateChainPem: string;
  /** The leaf's private key, PEM; generated in this process, never sent anywhere. */
  privateKeyPem: string;
  /** The SPIFFE ID in the leaf's URI SAN. */
  spiffeId: string;
  notBefore: Date;
  notAfter: Date;
}

export interface TrustBundleSecret {
  /** One or more root certificates, PEM, concatenated. */
  trustedCaPem: string;
}

export class SecretStore {
  private readonly certificates = new Map<string, CertificateSecret>();
  private readonly bundles = new Map<string, TrustBundleSecret>();
  private readonly events = new EventEmitter();

  certificate(name: string): CertificateSecret | undefined {
    return this.certificates.get(name);
  }

  trustBundle(name: string): TrustBundleSecret | undefined {
    return this.bundles.get(name);
  }

  setCertificate(name: string, secret: CertificateSecret): void {
    this.certificates.set(name, secret);
    this.events.emit('change', name);
  }

  setTrustBundle(name: string, secret: TrustBundleSecret): void {
    const old = this.bundles.get(name);
    if (old?.trustedCaPem === secret.trustedCaPem) return;
    this.bundles.set(name, secret);
    this.events.emit('change', name);
  }

  /** Calls `listener` with the secret's name whenever one is set or changes. */
  onChange(listener: (name: string) => void): () => void {
    this.events.on('change', listener);
    return () => this.events.off('change', listener);
  }

  /** Both kinds, for the admin /certs page. */
  entries(): { certificates: [string, CertificateSecret][]; bundles: [string, TrustBundleSecret][] } {
    return { certificates: [...this.certificates], bundles: [...this.bundles] };
  }
}
