// Join tokens: the credential a sidecar presents to obtain a certificate.
// Each binds one identity (namespace, service); the CA signs only a CSR for
// that identity. Kept as SHA-256 hashes (the token itself is shown once, at
// creation): in <dataDir>/join-tokens.json (mode 0600) on the embedded store,
// under join-tokens/<id> in etcd, where every replica verifies against the
// same set and a revocation reaches all of them through the watch.
//
// A token reads "weft.<id>.<secret>": the id names it in lists and revocation,
// the secret (32 random bytes, base64url) is what is hashed.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import * as path from 'node:path';
import { FileDocumentSet, type DocumentSet } from '../store/document-set';
import type { WorkloadIdentity } from './certificate-authority';

export interface JoinTokenInfo {
  id: string;
  namespace: string;
  service: string;
  createdAt: string;
  /** Absent: valid until revoked. */
  expiresAt?: string;
}

export interface StoredToken extends JoinTokenInfo {
  /** SHA-256 of the secret part, hex. */
  hash: string;
}

export class JoinTokenError extends Error {
  constructor(
    readonly code: 'E_TOKEN_INVALID' | 'E_TOKEN_UNKNOWN' | 'E_TOKEN_EXPIRED' | 'E_TOKEN_FIELD',
    message: string,
  ) {
    super(message);
    this.name = 'JoinTokenError';
  }
}

const NAME_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const TOKEN_RE = /^weft\.([0-9a-f]{12})\.([A-Za-z0-9_-]{43})$/;

export class JoinTokenStore {
  private readonly tokens: DocumentSet<StoredToken>;

  /** `where`: the data directory (undefined: in memory only), or the set to keep tokens in (etcd). */
  constructor(where: string | undefined | DocumentSet<StoredToken>, private readonly now: () => number = Date.now) {
    this.tokens =
      typeof where === 'object'
        ? where
        : new FileDocumentSet<StoredToken>({ file: where ? path.join(where, 'join-tokens.json') : undefined, field: 'tokens', mode: 0o600, idOf: (t) => (t as StoredToken).id, sweepIntervalMs: 0 });
  }

  /** A new token for (namespace, service); the returned `token` is never stored and cannot be shown again. */
  async create(opts: { service: string; namespace?: string; ttlMs?: number }): Promise<JoinTokenInfo & { token: string }> {
    const namespace = opts.namespace ?? 'default';
    if (!NAME_RE.test(opts.service ?? '')) throw new JoinTokenError('E_TOKEN_FIELD', `service: "${opts.service ?? ''}" is not a valid service name`);
    if (!NAME_RE.test(namespace)) throw new JoinTokenError('E_TOKEN_FIELD', `namespace: "${namespace}" is not a valid namespace name`);
    if (opts.ttlMs !== undefined && !(Number.isFinite(opts.ttlMs) && opts.ttlMs > 0)) throw new JoinTokenError('E_TOKEN_FIELD', `ttl: must be positive, got ${opts.ttlMs}`);
    const id = randomBytes(6).toString('hex');
    const secret = randomBytes(32).toString('base64url');
    const now = this.now();
    const stored: StoredToken = {
      id,
      namespace,
      service: opts.service,
      createdAt: new Date(now).toISOString(),
      ...(opts.ttlMs !== undefined ? { expiresAt: new Date(now + opts.ttlMs).toISOString() } : {}),
      hash: hashOf(secret),
    };
    await this.tokens.put(id, stored);
    return { ...info(stored), token: `weft.${id}.${secret}` };
  }

  list(): JoinTokenInfo[] {
    return this.tokens.values().map(info).sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  /** Removes a token by id (or by the whole token); returns whether it existed. */
  async revoke(idOrToken: string): Promise<boolean> {
    const id = TOKEN_RE.exec(idOrToken)?.[1] ?? idOrToken;
    return this.tokens.delete(id);
  }

  /** The identity a presented token grants; throws JoinTokenError saying why not. */
  verify(token: string): WorkloadIdentity {
    const m = TOKEN_RE.exec(token);
    if (!m) throw new JoinTokenError('E_TOKEN_INVALID', 'join token is malformed (expected weft.<id>.<secret>)');
    const stored = this.tokens.get(m[1]);
    const hash = Buffer.from(hashOf(m[2]), 'hex');
    if (!stored || !timingSafeEqual(hash, Buffer.from(stored.hash, 'hex'))) {
      throw new JoinTokenError('E_TOKEN_UNKNOWN', `join token ${m[1]} is unknown or revoked`);
    }
    if (stored.expiresAt && Date.parse(stored.expiresAt) <= this.now()) {
      throw new JoinTokenError('E_TOKEN_EXPIRED', `join token ${m[1]} expired at ${stored.expiresAt}`);
    }
    return { namespace: stored.namespace, service: stored.service };
  }

  close(): Promise<void> {
    return this.tokens.close();
  }
}

function hashOf(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

function info(t: StoredToken): JoinTokenInfo {
  const { hash: _hash, ...rest } = t;
  return rest;
}
