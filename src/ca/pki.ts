// X.509 building blocks for the mesh's identities: ECDSA P-256 keys, a root,
// an intermediate, CSRs carrying one SPIFFE URI SAN, and leaf certificates
// signed from them. Built on @peculiar/x509 (WebCrypto); everything crosses
// this module's edge as PEM text, so callers never see its object model.
// Not on any hot path: a sidecar signs one CSR per rotation.
import 'reflect-metadata'; // @peculiar/x509's dependency injection needs the Reflect polyfill
import * as x509 from '@peculiar/x509';
import { randomBytes, webcrypto } from 'node:crypto';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
/** Certificates start this far in the past, so a peer's clock running a little behind still accepts them. */
const BACKDATE_MS = 5 * 60_000;

/** A certificate and its private key, both PEM. */
export interface KeyedCertificate {
  certPem: string;
  keyPem: string;
}

export class PkiError extends Error {
  constructor(
    readonly code: 'CSR_MALFORMED' | 'CSR_SIGNATURE' | 'CSR_KEY' | 'CSR_IDENTITY' | 'PEM_MALFORMED',
    message: string,
  ) {
    super(message);
    this.name = 'PkiError';
  }
}

// ---- SPIFFE identities ----

export { parseSpiffeId, spiffeId, type SpiffeIdentity } from './spiffe-id';

// ---- keys ----

/** A fresh ECDSA P-256 private key, PKCS#8 PEM. */
export async function generateKeyPem(): Promise<string> {
  const keys = await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify']);
  return toPem(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY');
}

async function importKeys(keyPem: string): Promise<CryptoKeyPair> {
  const der = fromPem(keyPem, 'PRIVATE KEY');
  const privateKey = await webcrypto.subtle.importKey('pkcs8', der, EC_P256, true, ['sign']);
  // The public half: export as JWK, drop d, import again.
  const jwk = await webcrypto.subtle.exportKey('jwk', privateKey);
  delete jwk.d;
  jwk.key_ops = ['verify'];
  const publicKey = await webcrypto.subtle.importKey('jwk', jwk, EC_P256, true, ['verify']);
  return { privateKey, publicKey } as CryptoKeyPair;
}

// ---- authorities ----

export interface AuthorityOptions {
  commonName: string;
  ttlMs: number;
  /** Organization in the subject (the trust domain, by convention). */
  organization?: string;
}

/** A self-signed root CA. */
export async function createRoot(opts: AuthorityOptions): Promise<KeyedCertificate> {
  const keyPem = await generateKeyPem();
  const keys = await importKeys(keyPem);
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: subject(opts),
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(now + opts.ttlMs),
    signingAlgorithm: EC_P256,
    keys,
    extensions: [...authorityExtensions(undefined), await x509.SubjectKeyIdentifierExtension.create(keys.publicKey)],
  });
  return { certPem: pemText(cert), keyPem };
}

/** An intermediate CA signed by `issuer` (path length 0: it signs only leaves). */
export async function createIntermediate(issuer: KeyedCertificate, opts: AuthorityOptions): Promise<KeyedCertificate> {
  const keyPem = await generateKeyPem();
  const keys = await importKeys(keyPem);
  const certPem = await signCertificate(issuer, keys.publicKey, {
    subject: subject(opts),
    ttlMs: opts.ttlMs,
    extensions: authorityExtensions(0),
  });
  return { certPem, keyPem };
}

// ---- CSRs and leaves ----

/** A PKCS#10 request for `uri` (one URI SAN, nothing else), signed with `keyPem`. */
export async function createCsr(keyPem: string, uri: string): Promise<string> {
  const keys = await importKeys(keyPem);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: 'O=weft',
    keys,
    signingAlgorithm: EC_P256,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: uri }])],
  });
  return pemText(csr);
}

export interface ParsedCsr {
  /** The URI SANs the request asks for. */
  uris: string[];
  /** Any other SAN (DNS, IP, email): a workload request must carry none. */
  otherNames: string[];
  publicKey: CryptoKey;
}

/** Parses and verifies a CSR: its self-signature must hold and its key must be EC P-256. */
export async function parseCsr(csrPem: string): Promise<ParsedCsr> {
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(csrPem);
  } catch (err) {
    throw new PkiError('CSR_MALFORMED', `CSR is not a PEM PKCS#10 request: ${(err as Error).message}`);
  }
  const alg = csr.publicKey.algorithm as webcrypto.EcKeyAlgorithm;
  if (alg.name !== 'ECDSA' || alg.namedCurve !== 'P-256') throw new PkiError('CSR_KEY', `CSR key must be ECDSA P-256, got ${alg.name}${alg.namedCurve ? ` ${alg.namedCurve}` : ''}`);
  let valid = false;
  try {
    valid = await csr.verify();
  } catch {
    valid = false;
  }
  if (!valid) throw new PkiError('CSR_SIGNATURE', 'CSR signature does not verify');
  const san = csr.extensions.find((e): e is x509.SubjectAlternativeNameExtension => e instanceof x509.SubjectAlternativeNameExtension);
  const uris: string[] = [];
  const otherNames: string[] = [];
  for (const name of san?.names.items ?? []) {
    if (name.type === 'url') uris.push(name.value);
    else otherNames.push(`${name.type}:${name.value}`);
  }
  return { uris, otherNames, publicKey: await csr.publicKey.export(EC_P256, ['verify']) };
}

export interface LeafOptions {
  /** The SPIFFE ID for the URI SAN. */
  uri: string;
  ttlMs: number;
  /** Extra SANs, for a server certificate reached by name or address (the control plane's xDS port). */
  dnsNames?: string[];
  ipAddresses?: string[];
  /** Override the start of validity (tests make expired certificates). */
  notBefore?: Date;
}

/** A workload certificate for `publicKey`, signed by `issuer`, usable as TLS client and server. */
export async function issueLeaf(issuer: KeyedCertificate, publicKey: CryptoKey, opts: LeafOptions): Promise<string> {
  const names: x509.JsonGeneralName[] = [{ type: 'url', value: opts.uri }];
  for (const dns of opts.dnsNames ?? []) names.push({ type: 'dns', value: dns });
  for (const ip of opts.ipAddresses ?? []) names.push({ type: 'ip', value: ip });
  return signCertificate(issuer, publicKey, {
    subject: 'O=weft',
    ttlMs: opts.ttlMs,
    notBefore: opts.notBefore,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      new x509.SubjectAlternativeNameExtension(names, true),
    ],
  });
}

/** A leaf with a key made here (tests, the control plane's own serving certificate). */
export async function issueKeyedLeaf(issuer: KeyedCertificate, opts: LeafOptions): Promise<KeyedCertificate> {
  const keyPem = await generateKeyPem();
  const keys = await importKeys(keyPem);
  return { certPem: await issueLeaf(issuer, keys.publicKey, opts), keyPem };
}

// ---- helpers ----

async function signCertificate(
  issuer: KeyedCertificate,
  publicKey: CryptoKey,
  opts: { subject: string; ttlMs: number; notBefore?: Date; extensions: x509.Extension[] },
): Promise<string> {
  const issuerCert = new x509.X509Certificate(issuer.certPem);
  const issuerKeys = await importKeys(issuer.keyPem);
  const notBefore = opts.notBefore ?? new Date(Date.now() - BACKDATE_MS);
  let notAfter = new Date(notBefore.getTime() + BACKDATE_MS + opts.ttlMs);
  // A certificate never outlives its issuer.
  if (notAfter > issuerCert.notAfter) notAfter = issuerCert.notAfter;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: opts.subject,
    issuer: issuerCert.subject,
    notBefore,
    notAfter,
    signingAlgorithm: EC_P256,
    publicKey,
    signingKey: issuerKeys.privateKey,
    extensions: [
      ...opts.extensions,
      await x509.SubjectKeyIdentifierExtension.create(publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(issuerCert),
    ],
  });
  return pemText(cert);
}

function authorityExtensions(pathLength: number | undefined): x509.Extension[] {
  return [new x509.BasicConstraintsExtension(true, pathLength, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true)];
}

function subject(opts: AuthorityOptions): string {
  return opts.organization ? `O=${opts.organization}, CN=${opts.commonName}` : `CN=${opts.commonName}`;
}

/** A positive 128-bit serial number, hex. */
function serial(): string {
  const bytes = randomBytes(16);
  bytes[0] &= 0x7f;
  return bytes.toString('hex');
}

function toPem(der: ArrayBuffer, label: string): string {
  const b64 = Buffer.from(der).toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

function fromPem(pem: string, label: string): Buffer {
  const m = new RegExp(`-----BEGIN ${label}-----([\\s\\S]+?)-----END ${label}-----`).exec(pem);
  if (!m) throw new PkiError('PEM_MALFORMED', `expected a PEM ${label}`);
  return Buffer.from(m[1].replace(/\s+/g, ''), 'base64');
}

/** PEM text ending in a newline, so PEMs concatenate into chains and bundles. */
function pemText(obj: { toString(format: 'pem'): string }): string {
  return `${obj.toString('pem').trimEnd()}\n`;
}
