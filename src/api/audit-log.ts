// The audit log: every change made through the API by an operator (config,
// tokens, credentials, the CA, registrations by admins) with who, what and
// when. Kept in the store (etcd with replicas, <data-dir>/audit.json on the
// embedded store): the newest MAX_ENTRIES, each entry also leaving after
// RETENTION. Workloads' own registrations and renewals are not audited: they
// are the mesh running, not someone changing it.
import { randomBytes } from 'node:crypto';
import type { DocumentSet } from '../store/document-set';

export interface AuditEntry {
  id: string;
  time: string;
  /** Who: "credential <name> (<id>, <role>)", "dev mode". */
  who: string;
  method: string;
  path: string;
  status: number;
  /** What, in a few words (the resources applied, the token's service …). */
  what?: string;
}

const MAX_ENTRIES = 10_000;
const RETENTION_SECONDS = 90 * 24 * 3600;

export class AuditLog {
  constructor(
    private readonly docs: DocumentSet<AuditEntry>,
    private readonly onError: (err: unknown) => void = () => {},
  ) {}

  /** Records a change; never fails the request it describes (a failure is logged). */
  record(entry: Omit<AuditEntry, 'id' | 'time'>): void {
    const time = new Date().toISOString();
    // Sortable by time across replicas, unique without coordination.
    const id = `${time.replace(/[-:.TZ]/g, '')}-${randomBytes(4).toString('hex')}`;
    this.docs.put(id, { id, time, ...entry }, { ttlSeconds: RETENTION_SECONDS }).catch(this.onError);
    const all = this.docs.values();
    if (all.length > MAX_ENTRIES) {
      for (const old of all.sort((a, b) => a.id.localeCompare(b.id)).slice(0, all.length - MAX_ENTRIES)) this.docs.delete(old.id).catch(this.onError);
    }
  }

  /** The newest first, at most `limit`. */
  list(limit = 100): AuditEntry[] {
    return this.docs
      .values()
      .sort((a, b) => b.id.localeCompare(a.id))
      .slice(0, limit);
  }

  close(): Promise<void> {
    return this.docs.close();
  }
}
