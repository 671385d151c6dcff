// Join tokens: the credential a sidecar presents to obtain a certificate.
// Each binds one identity (namespace, service); the CA signs only a CSR for
// that identity. Kept in <dataDir>/join-tokens.json as SHA-256 hashes (the
// token itself is shown once, at creation), mode 0600.
//
// A token reads "weft.<id>.<secret>": the id names it in lists and revocation,
// the secret (32 random bytes, base64url) is what is hashed.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import * as path from 'node:path';
import { readJsonFile, writeFileAtomic } from '../store/atomic-file';
import type { WorkloadIdentity } from './certificate-authority';

export interface JoinTokenInfo {
  id: string;
  namespace: string;
  service: string;
  createdAt: string;
  /** Absent: valid until revoked. */
  expiresAt?: string;
}

interface StoredToken extends JoinTokenInfo {
  /** SHA-256 of the secret part, hex. */
  hash: string;
}

interface PersistedTokens {
  format: 1;
  tokens: StoredToken[];
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
  private readonly tokens = new Map<string, StoredToken>();
  private readonly file: string | undefined;
  private chain: Promise<void> = Promise.resolve();

  /** `dataDir` undefined: in memory only. */
  constructor(dataDir: string | undefined, private readonly now: () => number = Date.now) {
    this.file = dataDir ? path.join(dataDir, 'join-tokens.json') : undefined;
    const persisted = this.file ? readJsonFile<PersistedTokens>(this.file) : undefined;
    for (const t of persisted?.tokens ?? []) this.tokens.set(t.id, t);
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
    this.tokens.set(id, stored);
    await this.persist();
    return { ...info(stored), token: `weft.${id}.${secret}` };
  }

  list(): JoinTokenInfo[] {
    return [...this.tokens.values()].map(info).sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  /** Removes a token by id (or by the whole token); returns whether it existed. */
  async revoke(idOrToken: string): Promise<boolean> {
    const id = TOKEN_RE.exec(idOrToken)?.[1] ?? idOrToken;
    if (!this.tokens.delete(id)) return false;
    await this.persist();
    return true;
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

  /** Waits for pending writes. */
  flush(): Promise<void> {
    return this.chain;
  }

  private persist(): Promise<void> {
    const file = this.file;
    if (!file) return Promise.resolve();
    const data: PersistedTokens = { format: 1, tokens: [...this.tokens.values()] };
    const next = this.chain.then(() => writeFileAtomic(file, JSON.stringify(data, null, 1), 0o600));
    this.chain = next.catch(() => {});
    return next;
  }
}

function hashOf(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

function info(t: StoredToken): JoinTokenInfo {
  const { hash: _hash, ...rest } = t;
  return rest;
}
