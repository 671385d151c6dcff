// `weft control --store etcd://… --config <dir>`: a directory of YAML (a
// GitOps checkout) feeding an etcd-backed mesh. Every replica may be given
// the directory, but only the one elected for the "config-sync" role reads it
// and writes its resources into the store (as file-sourced resources, which
// the API refuses to overwrite); the others stand by and take over when it
// dies. So two replicas watching two copies never fight: one writer at a time.
//
// The directory is loaded and validated exactly as the embedded store does
// (a bad file keeps its last good content and reports its errors); what it
// holds is then synced into etcd, and its errors are written under
// config-errors/ so every replica reports them.
import * as path from 'node:path';
import type { ConfigError } from '../../config/errors';
import type { Logger } from '../../observe/log';
import { EmbeddedStore } from '../embedded-store';
import type { EtcdConnection } from './etcd-connection';
import type { EtcdStore } from './etcd-store';
import { runSingleton, type Singleton } from './singleton';

export class ConfigDirectorySync {
  private files: EmbeddedStore | undefined;
  private stopWatch: (() => void) | undefined;
  private syncing: Promise<void> = Promise.resolve();
  private readonly role: Singleton;

  constructor(
    private readonly conn: EtcdConnection,
    private readonly store: EtcdStore,
    private readonly opts: { configDir: string; dataDir: string; replica: string; log: Logger },
  ) {
    this.role = runSingleton(conn, {
      name: 'config-sync',
      replica: opts.replica,
      log: opts.log,
      start: () => this.start(),
      stop: () => this.stop(),
    });
  }

  get leading(): boolean {
    return this.role.leading;
  }

  async close(): Promise<void> {
    await this.role.close();
    await this.stop();
  }

  private async start(): Promise<void> {
    // The directory's own state (last good file contents) is this replica's, in its data directory.
    this.files = await EmbeddedStore.open({ configDir: this.opts.configDir, dataDir: path.join(this.opts.dataDir, 'config-sync'), log: this.opts.log });
    this.stopWatch = this.files.watch('*', () => this.sync());
    this.opts.log('info', 'syncing the config directory into the store', { configDir: this.opts.configDir });
    this.sync();
  }

  private async stop(): Promise<void> {
    this.stopWatch?.();
    this.stopWatch = undefined;
    const files = this.files;
    this.files = undefined;
    await this.syncing;
    await files?.close();
  }

  /** Writes the directory's resources and errors to the store (serialised; each run writes the latest). */
  private sync(): void {
    this.syncing = this.syncing.then(async () => {
      const files = this.files;
      if (!files) return;
      const items = files.listAll().filter((i) => i.source.type === 'file');
      try {
        await this.store.syncFiles(items.map((i) => ({ resource: i.resource, file: (i.source as { file: string }).file, document: (i.source as { document: number }).document })));
        await this.writeErrors(files.configErrors());
      } catch (err) {
        this.opts.log('error', 'could not sync the config directory into the store; will retry on the next change', { error: String(err) });
      }
    });
  }

  private async writeErrors(errors: ConfigError[]): Promise<void> {
    const value = JSON.stringify(errors.map((e) => e.toJSON()));
    if (this.lastErrors === value) return;
    await this.conn.kv.put('config-errors/config-directory').value(value);
    this.lastErrors = value;
  }

  private lastErrors: string | undefined;
}
