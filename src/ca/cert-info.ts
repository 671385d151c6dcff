// Read-only views of PEM certificates with node:crypto (no @peculiar/x509 on
// the sidecar's startup path): subject, serial, validity, URI SANs, and the
// PEM blocks of a bundle. Used by the CA's records, the sidecar's /certs and
// `weft certs`.
import { X509Certificate } from 'node:crypto';

export interface CertificateInfo {
  subject: string;
  issuer: string;
  /** Hex, upper case as node:crypto gives it. */
  serial: string;
  notBefore: Date;
  notAfter: Date;
  /** URI SANs (the SPIFFE ID of a workload certificate). */
  uris: string[];
  fingerprint256: string;
}

/** The PEM certificates of a chain or bundle, in order. */
export function splitPemCertificates(pem: string): string[] {
  return [...pem.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)].map((m) => `${m[0]}\n`);
}

/** The first certificate of `pem`, described. Throws on text that holds no certificate. */
export function certificateInfo(pem: string): CertificateInfo {
  const cert = new X509Certificate(pem);
  const uris = (cert.subjectAltName ?? '')
    .split(/,\s*/)
    .filter((s) => s.startsWith('URI:'))
    .map((s) => s.slice(4));
  return {
    subject: cert.subject.replace(/\n/g, ', '),
    issuer: cert.issuer.replace(/\n/g, ', '),
    serial: cert.serialNumber,
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
    uris,
    fingerprint256: cert.fingerprint256,
  };
}

/** Whether `certPem` is signed by the key of `issuerPem`. */
export function isSignedBy(certPem: string, issuerPem: string): boolean {
  try {
    return new X509Certificate(certPem).verify(new X509Certificate(issuerPem).publicKey);
  } catch {
    return false;
  }
}

/** A fingerprint as people compare it: its first 8 hex digits (roots all share one subject, so this is how `weft certs` tells them apart). */
export function shortFingerprint(fingerprint256: string): string {
  return fingerprint256.replace(/:/g, '').slice(0, 8).toUpperCase();
}
