// The CA's private keys at rest in a shared store (etcd): sealed with
// AES-256-GCM under a key-encryption secret every replica is given
// (--ca-key-secret-file), so etcd, its backups and anyone who can read its
// keys see only ciphertext. Without a secret the keys are stored as PEM and
// are exactly as safe as etcd's own access control (README: trust model).
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { CaError } from './ca-error';

const PREFIX = 'weft-sealed:v1:';

/** A 256-bit key from the secret file's content (any length, trimmed). */
export function keyFromSecret(secret: Buffer): Buffer {
  const trimmed = Buffer.from(secret.toString('utf8').trim(), 'utf8');
  if (trimmed.length < 16) throw new CaError('CA_OPTIONS', 'the CA key secret must hold at least 16 bytes (e.g. `openssl rand -base64 32`)');
  return createHash('sha256').update('weft ca key secret\0').update(trimmed).digest();
}

export function seal(plain: string, key: Buffer | undefined): string {
  if (!key) return plain;
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  const ct = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
  return `${PREFIX}${iv.toString('base64')}:${cipher.getAuthTag().toString('base64')}:${ct.toString('base64')}`;
}

/** The PEM back; CaError when it is sealed and the key is missing or not the one it was sealed with. */
export function unseal(text: string, key: Buffer | undefined): string {
  if (!text.startsWith(PREFIX)) return text;
  if (!key) throw new CaError('CA_FILES', 'the CA keys in the store are sealed: give this replica the same --ca-key-secret-file as the others');
  const [iv, tag, ct] = text.slice(PREFIX.length).split(':').map((p) => Buffer.from(p, 'base64'));
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, iv);
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(ct), decipher.final()]).toString('utf8');
  } catch {
    throw new CaError('CA_FILES', 'the CA keys in the store were sealed with another secret: every replica needs the same --ca-key-secret-file');
  }
}

export function isSealed(text: string): boolean {
  return text.startsWith(PREFIX);
}
