// A sidecar's certificate request (PKCS#10, RFC 2986) built with node:crypto
// alone: subject O=weft, the key's SubjectPublicKeyInfo, one extension
// request with a single URI SAN (the SPIFFE ID), signed ECDSA-with-SHA256.
// The sidecar makes one per renewal; a hand-made DER writer of a few tags
// keeps @peculiar/x509 (and its ~10 MiB) out of every sidecar's memory. The
// CA parses requests with @peculiar/x509 (pki.ts parseCsr), so each one the
// sidecars send is checked by an independent parser.
import { createPrivateKey, createPublicKey, generateKeyPair, sign } from 'node:crypto';

const OID = {
  organizationName: '2.5.4.10',
  extensionRequest: '1.2.840.113549.1.9.14',
  subjectAltName: '2.5.29.17',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
};

function length(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v >>= 8) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function tlv(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), length(body.length), body]);
}

const sequence = (...c: Buffer[]) => tlv(0x30, ...c);
const set = (...c: Buffer[]) => tlv(0x31, ...c);

function oid(dotted: string): Buffer {
  const [a, b, ...rest] = dotted.split('.').map(Number);
  const bytes = [40 * a + b];
  for (const n of rest) {
    const chunk: number[] = [n & 0x7f];
    for (let v = n >>> 7; v > 0; v >>>= 7) chunk.unshift((v & 0x7f) | 0x80);
    bytes.push(...chunk);
  }
  return tlv(0x06, Buffer.from(bytes));
}

/** A PKCS#10 request for `uri` (one URI SAN), signed with the PKCS#8 PEM `keyPem`; PEM. */
export function createCsrPem(keyPem: string, uri: string): string {
  const key = createPrivateKey(keyPem);
  const spki = createPublicKey(key).export({ type: 'spki', format: 'der' });
  const subject = sequence(set(sequence(oid(OID.organizationName), tlv(0x0c, Buffer.from('weft')))));
  const san = sequence(tlv(0x86, Buffer.from(uri, 'ascii'))); // GeneralNames { uniformResourceIdentifier [6] }
  const extensions = sequence(sequence(oid(OID.subjectAltName), tlv(0x04, san)));
  const attributes = tlv(0xa0, sequence(oid(OID.extensionRequest), set(extensions)));
  const info = sequence(tlv(0x02, Buffer.from([0])), subject, spki, attributes);
  const signature = sign('sha256', info, key); // DER ECDSA-Sig-Value, as X.509 wants it
  const der = sequence(info, sequence(oid(OID.ecdsaWithSha256)), tlv(0x03, Buffer.from([0]), signature));
  const b64 = der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '');
  return `-----BEGIN CERTIFICATE REQUEST-----\n${b64}\n-----END CERTIFICATE REQUEST-----\n`;
}

/** A fresh ECDSA P-256 private key, PKCS#8 PEM (what pki.ts generateKeyPem makes, without webcrypto's import cost). */
export function generateEcKeyPem(): Promise<string> {
  return new Promise((resolve, reject) =>
    generateKeyPair('ec', { namedCurve: 'P-256', privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } }, (err, _pub, priv) => (err ? reject(err) : resolve(priv))),
  );
}
