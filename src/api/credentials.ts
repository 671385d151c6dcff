// API credentials of operators and tools: bearer tokens with a role.
//   admin   everything
//   viewer  read-only: get, status, top, explain, certs, the dashboard
// A token reads "weftapi.<id>.<secret>"; only the SHA-256 of the secret is
// kept (<data-dir>/api-credentials.json, mode 0600, or etcd with replicas),
// so a leaked store reveals no usable credential. The first admin credential
// is made when the control plane starts outside --dev and the store holds
// none: its secret goes to <data-dir>/admin.token (0600), never to a log.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { DocumentSet } from '../store/document-set';

export type Role = 'admin' | 'viewer';
export const ROLES: readonly Role[] = ['admin', 'viewer'];

export interface CredentialInfo {
  id: string;
  name: string;
  role: Role;
  createdAt: string;
}

export interface StoredCredential extends CredentialInfo {
  /** SHA-256 of the secret, hex. */
  hash: string;
}

export class CredentialError extends Error {
  constructor(
    readonly code: 'E_CREDENTIAL_FIELD' | 'E_CREDENTIAL_INVALID',
    message: string,
  ) {
    super(message);
  }
}

const TOKEN_RE = /^weftapi\.([0-9a-f]{12})\.([A-Za-z0-9_-]{43})$/;
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,62}$/;
/** The id of the credential made at first start: one per mesh, whichever replica makes it. */
export const BOOTSTRAP_ID = '000000000000';

export function looksLikeApiToken(token: string): boolean {
  return token.startsWith('weftapi.');
}

export class CredentialStore {
  constructor(private readonly docs: DocumentSet<StoredCredential>) {}

  /** A new credential; its token is returned once and never stored. */
  /** `ttlSeconds`: the credential expires unless kept alive (keepAlive) within that time (a replica's own, for its peers). */
  async create(opts: { name: string; role: Role; id?: string; ttlSeconds?: number }): Promise<CredentialInfo & { token: string }> {
    if (!NAME_RE.test(opts.name ?? '')) throw new CredentialError('E_CREDENTIAL_FIELD', `name: "${opts.name ?? ''}" must be 1-63 letters, digits, ".", "_", "@" or "-"`);
    if (!ROLES.includes(opts.role)) throw new CredentialError('E_CREDENTIAL_FIELD', `role: must be one of ${ROLES.join(', ')}, got "${opts.role}"`);
    const id = opts.id ?? randomBytes(6).toString('hex');
    const secret = randomBytes(32).toString('base64url');
    const stored: StoredCredential = { id, name: opts.name, role: opts.role, createdAt: new Date().toISOString(), hash: hashOf(secret) };
    if (!(await this.docs.create(id, stored, { ttlSeconds: opts.ttlSeconds }))) throw new CredentialError('E_CREDENTIAL_FIELD', `a credential with id ${id} exists`);
    return { ...info(stored), token: `weftapi.${id}.${secret}` };
  }

  list(): CredentialInfo[] {
    return this.docs.values().map(info).sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  get size(): number {
    return this.docs.values().length;
  }

  has(id: string): boolean {
    return this.docs.get(id) !== undefined;
  }

  /** Restarts a credential's time to live; false when it is gone. */
  keepAlive(id: string): Promise<boolean> {
    return this.docs.keepAlive(id);
  }

  revoke(idOrToken: string): Promise<boolean> {
    return this.docs.delete(TOKEN_RE.exec(idOrToken)?.[1] ?? idOrToken);
  }

  /** The credential a token proves; throws CredentialError (malformed, unknown or revoked). */
  verify(token: string): CredentialInfo {
    const m = TOKEN_RE.exec(token);
    if (!m) throw new CredentialError('E_CREDENTIAL_INVALID', 'the API token is malformed (expected weftapi.<id>.<secret>)');
    const stored = this.docs.get(m[1]);
    if (!stored || !timingSafeEqual(Buffer.from(hashOf(m[2]), 'hex'), Buffer.from(stored.hash, 'hex'))) {
      throw new CredentialError('E_CREDENTIAL_INVALID', `API credential ${m[1]} is unknown or revoked`);
    }
    return info(stored);
  }

  close(): Promise<void> {
    return this.docs.close();
  }
}

function hashOf(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

function info(c: StoredCredential): CredentialInfo {
  const { hash: _hash, ...rest } = c;
  return rest;
}
