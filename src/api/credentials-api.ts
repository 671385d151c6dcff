// Operators' credentials and the audit log on the admin API (all admin-only):
//   GET    /api/v1/credentials           ids, names, roles (never the secrets)
//   POST   /api/v1/credentials           {name, role} → the token, shown once
//   DELETE /api/v1/credentials/:id       revoked at once, on every replica
//   GET    /api/v1/audit[?limit=N]       the newest changes first
import type { ApiServer } from './api-server';
import type { AuditLog } from './audit-log';
import { CredentialError, type CredentialStore, type Role } from './credentials';
import { HttpError } from './http-error';
import { readBody } from './read-body';

export function installCredentialsApi(api: ApiServer, deps: { credentials: CredentialStore; audit: AuditLog }): void {
  const { credentials, audit } = deps;
  api.route('GET', /^\/api\/v1\/credentials$/, 'admin', () => ({ items: credentials.list() }));
  api.route('POST', /^\/api\/v1\/credentials$/, 'admin', async (req, _p, _u, caller) => {
    const body = JSON.parse((await readBody(req)) || '{}') as { name?: string; role?: Role };
    try {
      const made = await credentials.create({ name: body.name ?? '', role: body.role ?? 'viewer' });
      caller.note(`created ${made.role} credential ${made.name} (${made.id})`);
      return made;
    } catch (err) {
      if (err instanceof CredentialError) throw new HttpError(400, err.message, { code: err.code });
      throw err;
    }
  });
  api.route('DELETE', /^\/api\/v1\/credentials\/([^/]+)$/, 'admin', async (_req, [id], _u, caller) => {
    if (!(await credentials.revoke(id))) throw new HttpError(404, `no credential ${id}`);
    caller.note(`revoked credential ${id}`);
    return { revoked: id };
  });
  api.route('GET', /^\/api\/v1\/audit$/, 'admin', (_req, _p, url) => ({ items: audit.list(Math.min(10_000, Number(url.searchParams.get('limit') ?? 100) || 100)) }));
}
