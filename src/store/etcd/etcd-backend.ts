// Everything a control plane replica keeps in etcd, opened together on one
// connection. The key layout under the prefix (default /weft/):
//
//   resources/<Kind>/<ns>/<name>   the mesh's config (etcd-store.ts)
//   meta/resources                 write guard of the resources
//   config-errors/<source>         errors of the synced config directory
//   registrations/<id>             instances, each on an etcd lease of its TTL
//   join-tokens/<id>               token hashes
//   ca/material                    root, intermediate (keys sealed), previous roots
//   ca-issued/<node>               latest issuance per node, leased until expiry
//   ratelimit/<window>/<hash>      global rate-limit counters, leased per window
//   api-credentials/<id>           operators' API credentials (hashes)
//   audit/<time-id>                the audit log
//   elections/<role>               singleton roles (config-sync)
//   replicas/<id>                  live replicas and their API URLs, leased (telemetry peers)
import type { CaMaterial, IssuanceRecord } from '../../ca/certificate-authority';
import type { StoredToken } from '../../ca/join-tokens';
import type { Logger } from '../../observe/log';
import type { Registration } from '../../registry/registry';
import type { AuditEntry } from '../../api/audit-log';
import type { StoredCredential } from '../../api/credentials';
import type { ReplicaRecord } from '../../observe/telemetry/replica-peers';
import { connectEtcd, type EtcdConnection, type EtcdStoreOptions } from './etcd-connection';
import { EtcdCounters } from './etcd-counters';
import { EtcdDocumentSet } from './etcd-document-set';
import { EtcdStore } from './etcd-store';

export interface EtcdBackend {
  conn: EtcdConnection;
  store: EtcdStore;
  registrations: EtcdDocumentSet<Registration>;
  tokens: EtcdDocumentSet<StoredToken>;
  caMaterial: EtcdDocumentSet<CaMaterial>;
  issued: EtcdDocumentSet<IssuanceRecord>;
  credentials: EtcdDocumentSet<StoredCredential>;
  audit: EtcdDocumentSet<AuditEntry>;
  replicas: EtcdDocumentSet<ReplicaRecord>;
  counters: EtcdCounters;
  close(): Promise<void>;
}

export async function openEtcdBackend(opts: EtcdStoreOptions, log: Logger): Promise<EtcdBackend> {
  const conn = await connectEtcd(opts);
  try {
    const [store, registrations, tokens, caMaterial, issued, credentials, audit, replicas] = await Promise.all([
      EtcdStore.open({ conn, log }),
      EtcdDocumentSet.open<Registration>(conn, 'registrations/', 'registrations'),
      EtcdDocumentSet.open<StoredToken>(conn, 'join-tokens/', 'join tokens'),
      EtcdDocumentSet.open<CaMaterial>(conn, 'ca/', 'the CA'),
      EtcdDocumentSet.open<IssuanceRecord>(conn, 'ca-issued/', 'issuance records'),
      EtcdDocumentSet.open<StoredCredential>(conn, 'api-credentials/', 'API credentials'),
      EtcdDocumentSet.open<AuditEntry>(conn, 'audit/', 'the audit log'),
      EtcdDocumentSet.open<ReplicaRecord>(conn, 'replicas/', 'replicas'),
    ]);
    log('info', 'store: etcd', { endpoints: conn.endpoints.join(','), prefix: conn.prefix, revision: store.revision() });
    return {
      conn,
      store,
      registrations,
      tokens,
      caMaterial,
      issued,
      credentials,
      audit,
      replicas,
      counters: new EtcdCounters(conn),
      async close() {
        await Promise.all([store.close(), registrations.close(), tokens.close(), caMaterial.close(), issued.close(), credentials.close(), audit.close(), replicas.close()]);
        conn.close();
      },
    };
  } catch (err) {
    conn.close();
    throw err;
  }
}
