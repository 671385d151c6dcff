// The sidecar's admin /certs: its workload certificate (identity, serial,
// validity, time left, the root of its trust bundle it chains to) and the
// roots of its trust bundle.
import { certificateInfo, isSignedBy, splitPemCertificates } from '../../ca/cert-info';
import type { CertificateAgentStatus } from './certificate-agent';
import type { SecretStore } from './secret-store';

export interface CertsView {
  certificates: {
    name: string;
    spiffeId: string;
    serial: string;
    issuer: string;
    notBefore: string;
    notAfter: string;
    secondsToExpiry: number;
    /** SHA-256 fingerprint of the trust bundle's root that signed the chain's last certificate; absent when none did. */
    rootFingerprint256?: string;
  }[];
  trustBundles: { name: string; roots: { subject: string; serial: string; notAfter: string; fingerprint256: string }[] }[];
  agent?: CertificateAgentStatus;
}

export function certsView(secrets: SecretStore, agent: CertificateAgentStatus | undefined, now = Date.now()): CertsView {
  const { certificates, bundles } = secrets.entries();
  const roots = bundles.flatMap(([, b]) => splitPemCertificates(b.trustedCaPem));
  return {
    certificates: certificates.map(([name, c]) => {
      const info = certificateInfo(c.certificateChainPem);
      const top = splitPemCertificates(c.certificateChainPem).at(-1);
      const root = top ? roots.find((r) => isSignedBy(top, r)) : undefined;
      return {
        name,
        spiffeId: c.spiffeId,
        serial: info.serial,
        issuer: info.issuer,
        notBefore: c.notBefore.toISOString(),
        notAfter: c.notAfter.toISOString(),
        secondsToExpiry: Math.round((c.notAfter.getTime() - now) / 1000),
        ...(root ? { rootFingerprint256: certificateInfo(root).fingerprint256 } : {}),
      };
    }),
    trustBundles: bundles.map(([name, b]) => ({
      name,
      roots: splitPemCertificates(b.trustedCaPem).map((pem) => {
        const info = certificateInfo(pem);
        return { subject: info.subject, serial: info.serial, notAfter: info.notAfter.toISOString(), fingerprint256: info.fingerprint256 };
      }),
    })),
    ...(agent ? { agent } : {}),
  };
}
