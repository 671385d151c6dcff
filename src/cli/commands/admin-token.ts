// `weft admin-token create|list|revoke` and `weft audit`: operators' API
// credentials (admin or viewer) and the log of changes, over the admin API.
import type { AuditEntry } from '../../api/audit-log';
import type { CredentialInfo } from '../../api/credentials';
import { apiRequest } from '../api-client';
import { table } from '../format';

type Out = { write(text: string): unknown };

export async function runAdminTokenCreate(opts: { name: string; role: string; api: string; out?: Out }): Promise<void> {
  const out = opts.out ?? process.stdout;
  const c = await apiRequest(opts.api, 'POST', '/api/v1/credentials', JSON.stringify({ name: opts.name, role: opts.role }), 'application/json');
  out.write(`${c.token}\n`);
  process.stderr.write(`${c.role} credential ${c.name} (${c.id}); shown once (only its hash is kept): give it as WEFT_TOKEN\n`);
}

export async function runAdminTokenList(opts: { api: string; out?: Out }): Promise<void> {
  const out = opts.out ?? process.stdout;
  const res = await apiRequest(opts.api, 'GET', '/api/v1/credentials');
  out.write(table(['ID', 'NAME', 'ROLE', 'CREATED'], (res.items as CredentialInfo[]).map((c) => [c.id, c.name, c.role, c.createdAt])));
}

export async function runAdminTokenRevoke(id: string, opts: { api: string; out?: Out }): Promise<void> {
  await apiRequest(opts.api, 'DELETE', `/api/v1/credentials/${encodeURIComponent(id)}`);
  (opts.out ?? process.stdout).write(`credential ${id} revoked\n`);
}

export async function runAudit(opts: { api: string; limit: number; out?: Out }): Promise<void> {
  const res = await apiRequest(opts.api, 'GET', `/api/v1/audit?limit=${opts.limit}`);
  (opts.out ?? process.stdout).write(table(['TIME', 'WHO', 'REQUEST', 'STATUS', 'WHAT'], (res.items as AuditEntry[]).map((e) => [e.time, e.who, `${e.method} ${e.path}`, String(e.status), e.what ?? ''])));
}
