// Moving a mesh between stores: `weft store export` reads everything a control
// plane keeps (API-applied resources, join-token hashes, the CA, live
// registrations and the latest issuance per node) from a data directory or
// from etcd into one JSON document; `weft store import` writes such a
// document into an empty data directory or an empty etcd prefix. So a team
// starts on one machine and grows to replicas, or goes back.
//
// The document holds the CA's private keys in the clear: it is written with
// mode 0600 and must be kept like the keys themselves. Resources that came
// from a config directory are not exported: the directory is their source,
// and it comes along as it is (`--config`).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { resourceKey, type Resource } from '../config/kinds';
import { parseResource } from '../config/parse';
import type { CaMaterial, IssuanceRecord } from '../ca/certificate-authority';
import { splitPemCertificates } from '../ca/cert-info';
import type { StoredToken } from '../ca/join-tokens';
import { seal, unseal } from '../ca/key-wrap';
import type { Registration } from '../registry/registry';
import { readJsonFile, writeFileAtomic } from './atomic-file';
import type { EtcdConnection } from './etcd/etcd-connection';

export const EXPORT_FORMAT = 'weft-store/1';

export interface MeshState {
  format: typeof EXPORT_FORMAT;
  exportedAt: string;
  /** Where it came from, for the reader: "data-dir <path>" or "etcd <endpoints><prefix>". */
  from: string;
  resources: Resource[];
  joinTokens: StoredToken[];
  /** Private keys in the clear (PEM); absent when the source had no CA yet. */
  ca?: CaMaterial;
  issued: IssuanceRecord[];
  registrations: Registration[];
}

export class MigrationError extends Error {
  readonly code = 'E_MIGRATION';
}

// ---- the data directory (embedded store) ----

const CA_FILES = { rootCert: 'root-cert.pem', rootKey: 'root-key.pem', caCert: 'ca-cert.pem', caKey: 'ca-key.pem', previous: 'previous-roots.pem', bundle: 'trust-bundle.pem' };

export function exportDataDir(dataDir: string): MeshState {
  if (!fs.existsSync(dataDir)) throw new MigrationError(`data directory ${dataDir} does not exist`);
  const resources = readJsonFile<{ resources: { resource: Resource }[] }>(path.join(dataDir, 'resources.json'))?.resources.map((r) => r.resource) ?? [];
  const joinTokens = readJsonFile<{ tokens: StoredToken[] }>(path.join(dataDir, 'join-tokens.json'))?.tokens ?? [];
  const registrations = readJsonFile<{ registrations: Registration[] }>(path.join(dataDir, 'registrations.json'))?.registrations ?? [];
  const issued = readJsonFile<{ issued: IssuanceRecord[] }>(path.join(dataDir, 'ca', 'issued.json'))?.issued ?? [];
  const dir = path.join(dataDir, 'ca');
  const read = (f: string) => (fs.existsSync(path.join(dir, f)) ? fs.readFileSync(path.join(dir, f), 'utf8') : undefined);
  const [rootCert, rootKey, caCert, caKey] = [read(CA_FILES.rootCert), read(CA_FILES.rootKey), read(CA_FILES.caCert), read(CA_FILES.caKey)];
  let ca: CaMaterial | undefined;
  if (caCert && caKey) {
    // A root brought from files (--root-cert) is not in the data directory: only its certificate, from the bundle.
    const bundleRoot = splitPemCertificates(read(CA_FILES.bundle) ?? '')[0];
    const root = rootCert && rootKey ? { certPem: rootCert, keyPem: rootKey } : bundleRoot ? { certPem: bundleRoot, keyPem: '' } : undefined;
    if (root) ca = { root, intermediate: { certPem: caCert, keyPem: caKey }, previousRoots: splitPemCertificates(read(CA_FILES.previous) ?? ''), broughtRoot: !rootKey };
  }
  return { format: EXPORT_FORMAT, exportedAt: new Date().toISOString(), from: `data-dir ${path.resolve(dataDir)}`, resources, joinTokens, ca, issued, registrations };
}

export async function importDataDir(state: MeshState, dataDir: string, opts: { force?: boolean } = {}): Promise<void> {
  checkFormat(state);
  const existing = ['resources.json', 'join-tokens.json', path.join('ca', CA_FILES.caKey)].filter((f) => fs.existsSync(path.join(dataDir, f)));
  if (existing.length > 0 && !opts.force) throw new MigrationError(`data directory ${dataDir} already holds a mesh (${existing.join(', ')}); import into an empty one, or pass --force to overwrite`);
  await fs.promises.mkdir(path.join(dataDir, 'ca'), { recursive: true, mode: 0o700 });
  await writeFileAtomic(path.join(dataDir, 'resources.json'), JSON.stringify({ format: 1, revision: state.resources.length, resources: state.resources.map((resource, i) => ({ resource, revision: i + 1 })) }, null, 1));
  await writeDocs(path.join(dataDir, 'join-tokens.json'), 'tokens', state.joinTokens, 0o600);
  await writeDocs(path.join(dataDir, 'registrations.json'), 'registrations', state.registrations);
  await writeDocs(path.join(dataDir, 'ca', 'issued.json'), 'issued', state.issued);
  if (state.ca) {
    const dir = path.join(dataDir, 'ca');
    if (!state.ca.broughtRoot) {
      await writeFileAtomic(path.join(dir, CA_FILES.rootKey), state.ca.root.keyPem, 0o600);
      await writeFileAtomic(path.join(dir, CA_FILES.rootCert), state.ca.root.certPem);
    }
    await writeFileAtomic(path.join(dir, CA_FILES.caKey), state.ca.intermediate.keyPem, 0o600);
    await writeFileAtomic(path.join(dir, CA_FILES.caCert), state.ca.intermediate.certPem);
    if (state.ca.previousRoots.length > 0) await writeFileAtomic(path.join(dir, CA_FILES.previous), state.ca.previousRoots.join(''));
    await writeFileAtomic(path.join(dir, CA_FILES.bundle), [state.ca.root.certPem, ...state.ca.previousRoots].join(''));
  }
}

/** The file format of a FileDocumentSet. */
function writeDocs<T>(file: string, field: string, docs: T[], mode?: number): Promise<void> {
  return writeFileAtomic(file, JSON.stringify({ format: 1, [field]: docs }, null, 1), mode);
}

// ---- etcd ----

export async function exportEtcd(conn: EtcdConnection, sealKey: Buffer | undefined): Promise<MeshState> {
  const all = async (prefix: string) => {
    const res = await conn.kv.getAll().prefix(prefix).strings();
    return Object.entries(res);
  };
  const resources: Resource[] = [];
  for (const [key, value] of await all('resources/')) {
    const stored = JSON.parse(value) as { resource: unknown; source?: { type: string } };
    if (stored.source?.type === 'file') continue;
    const { resource, errors } = parseResource(stored.resource, { file: `etcd:${conn.prefix}${key}` });
    if (!resource) throw new MigrationError(`the store holds a resource that does not validate: ${errors.map((e) => e.message).join('; ')}`);
    resources.push(resource);
  }
  const docs = async <T>(prefix: string) => (await all(prefix)).map(([, v]) => JSON.parse(v) as T);
  const material = (await docs<CaMaterial>('ca/'))[0];
  const ca = material && {
    ...material,
    root: { certPem: material.root.certPem, keyPem: material.broughtRoot ? '' : unseal(material.root.keyPem, sealKey) },
    intermediate: { certPem: material.intermediate.certPem, keyPem: unseal(material.intermediate.keyPem, sealKey) },
  };
  return {
    format: EXPORT_FORMAT,
    exportedAt: new Date().toISOString(),
    from: `etcd ${conn.endpoints.join(',')}${conn.prefix}`,
    resources,
    joinTokens: await docs<StoredToken>('join-tokens/'),
    ca,
    issued: await docs<IssuanceRecord>('ca-issued/'),
    registrations: await docs<Registration>('registrations/'),
  };
}

export async function importEtcd(state: MeshState, conn: EtcdConnection, sealKey: Buffer | undefined, opts: { force?: boolean } = {}): Promise<void> {
  checkFormat(state);
  const held = await conn.kv.getAll().prefix('').count();
  if (held > 0 && !opts.force) throw new MigrationError(`etcd already holds ${held} weft key(s) under ${conn.prefix}; import into an empty prefix (--store-prefix), or pass --force to overwrite`);
  const now = Date.now();
  const put = (key: string, value: unknown) => conn.kv.put(key).value(JSON.stringify(value)).exec();
  for (const resource of state.resources) await put(`resources/${resourceKey(resource)}`, { resource, source: { type: 'api' } });
  for (const t of state.joinTokens) await put(`join-tokens/${t.id}`, t);
  if (state.ca) {
    const m = state.ca;
    await put('ca/material', { ...m, root: { certPem: m.root.certPem, keyPem: m.broughtRoot ? '' : seal(m.root.keyPem, sealKey) }, intermediate: { certPem: m.intermediate.certPem, keyPem: seal(m.intermediate.keyPem, sealKey) } });
  }
  // Leased state keeps the time it had left (at least a few seconds: the instance renews or registers again).
  const leased = async (key: string, doc: unknown, until: number) => {
    const lease = await conn.client.leaseClient.leaseGrant({ TTL: Math.max(5, Math.ceil((until - now) / 1000)) });
    await conn.kv.put(key).value(JSON.stringify(doc)).lease(lease.ID).exec();
  };
  for (const r of state.issued) if (Date.parse(r.notAfter) > now) await leased(`ca-issued/${r.nodeId}`, r, Date.parse(r.notAfter));
  for (const r of state.registrations) await leased(`registrations/${r.id}`, r, now + r.ttlSeconds * 1000);
  await conn.kv.put('meta/resources').value(String(now)).exec();
}

function checkFormat(state: MeshState): void {
  if (state?.format !== EXPORT_FORMAT) throw new MigrationError(`not a weft store export (expected "format": "${EXPORT_FORMAT}", got ${JSON.stringify(state?.format)})`);
}
