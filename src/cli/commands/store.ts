// `weft store export` / `weft store import`: a mesh's whole state as one JSON
// document, from and to a data directory (the embedded store) or etcd
// (src/store/migrate.ts). Export from a stopped control plane's data
// directory, or from etcd at any time; import into an empty target, then
// start the control plane (or its replicas) on it.
import * as fs from 'node:fs';
import { keyFromSecret } from '../../ca/key-wrap';
import { connectEtcd } from '../../store/etcd/etcd-connection';
import { etcdOptionsFrom, type EtcdFlags } from '../etcd-flags';
import { exportDataDir, exportEtcd, importDataDir, importEtcd, MigrationError, type MeshState } from '../../store/migrate';

interface StoreTarget extends EtcdFlags {
  dataDir?: string;
  caKeySecretFile?: string;
}

function target(opts: StoreTarget): 'etcd' | 'data-dir' {
  if (opts.store && opts.dataDir) throw new MigrationError('give either --store (etcd) or --data-dir, not both');
  if (!opts.store && !opts.dataDir) throw new MigrationError('give the store: --store etcd://host:port[,…] or --data-dir <dir>');
  return opts.store ? 'etcd' : 'data-dir';
}

async function withEtcd<T>(opts: StoreTarget, fn: (conn: Awaited<ReturnType<typeof connectEtcd>>, sealKey: Buffer | undefined) => Promise<T>): Promise<T> {
  const conn = await connectEtcd(etcdOptionsFrom(opts)!);
  try {
    return await fn(conn, opts.caKeySecretFile ? keyFromSecret(fs.readFileSync(opts.caKeySecretFile)) : undefined);
  } finally {
    conn.close();
  }
}

export async function runStoreExport(opts: StoreTarget & { output: string }): Promise<void> {
  const state = target(opts) === 'etcd' ? await withEtcd(opts, exportEtcd) : exportDataDir(opts.dataDir!);
  const text = JSON.stringify(state, null, 1) + '\n';
  if (opts.output === '-') process.stdout.write(text);
  // It holds the CA's private keys: readable by its owner only.
  else fs.writeFileSync(opts.output, text, { mode: 0o600 });
  const summary = `exported ${state.resources.length} resource(s), ${state.joinTokens.length} join token(s), ${state.ca ? 'the CA' : 'no CA'}, ${state.registrations.length} registration(s), ${state.issued.length} issuance record(s) from ${state.from}`;
  process.stderr.write(`${summary}${opts.output === '-' ? '' : ` to ${opts.output} (mode 0600: it holds the CA's private keys)`}\n`);
}

export async function runStoreImport(opts: StoreTarget & { input: string; force?: boolean }): Promise<void> {
  let state: MeshState;
  try {
    state = JSON.parse(fs.readFileSync(opts.input === '-' ? 0 : opts.input, 'utf8'));
  } catch (err) {
    throw new MigrationError(`${opts.input}: ${(err as Error).message}`);
  }
  if (target(opts) === 'etcd') await withEtcd(opts, (conn, key) => importEtcd(state, conn, key, { force: opts.force }));
  else await importDataDir(state, opts.dataDir!, { force: opts.force });
  process.stderr.write(`imported ${state.resources.length} resource(s), ${state.joinTokens.length} join token(s), ${state.ca ? 'the CA' : 'no CA'}, ${state.registrations.length} registration(s) into ${opts.store ?? opts.dataDir}\n`);
}
