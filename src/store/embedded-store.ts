// The embedded store, weft's default backend: resources from YAML files in a
// config directory (watched: an edit applies within a second) plus resources
// applied through the API, kept in the data directory (written atomically).
//
// A changed file is accepted whole or not at all: if it does not parse, or
// the mesh it would produce does not validate, its last good content keeps
// serving and its errors are kept for the API until the file is fixed.
//
// A change is taken only once it has settled: a file written in place (a
// shell's `>` truncates it first, a tool writes it in pieces) is empty or cut
// short for a moment, and an empty file is valid YAML that would remove all
// its resources from the mesh. So a file's new content (or its absence) is
// applied when a scan at least SETTLE_MS after the first one that saw it
// still sees the same.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { resourceKey, type Kind, type Resource } from '../config/kinds';
import { ConfigError } from '../config/errors';
import { parseConfigFile, type ParsedEntry } from '../config/parse';
import { validateDelete, validateSet } from '../config/validate';
import { silentLogger, type Logger } from '../observe/log';
import { readJsonFile, SerialWriter } from './atomic-file';
import { StoreWatchers } from './store-watchers';
import { ConfigRejectedError, type ResourceOrigin, type ResourceSource, type Store, type StoredResource, type WatchEvent } from './store';

/** How long a config file's new content (or its removal) must stay the same before it is applied. */
const SETTLE_MS = 300;

/** The content hash `settling` records for a file that is gone. */
const ABSENT = '';

export interface EmbeddedStoreOptions {
  /** Directory of YAML files to load and watch; optional. */
  configDir?: string;
  /** Where API-applied resources are kept across restarts. */
  dataDir: string;
  log?: Logger;
  /** How often the config directory is re-scanned besides fs.watch events. */
  pollIntervalMs?: number;
}

interface FileState {
  hash: string;
  entries: ParsedEntry[];
}

interface PersistedResources {
  format: 1;
  revision: number;
  resources: { resource: Resource; revision: number }[];
}

const YAML_FILE = /\.ya?ml$/;

export class EmbeddedStore implements Store {
  private readonly log: Logger;
  private readonly watchers: StoreWatchers;
  private readonly configDir?: string;
  private readonly resourcesFile: string;
  private readonly writer: SerialWriter;
  /** Last good content of each config file. */
  private readonly files = new Map<string, FileState>();
  /** Errors of files whose latest content was rejected, by file. */
  private readonly fileErrors = new Map<string, ConfigError[]>();
  /** Hash of the rejected content, so an unchanged bad file is not re-logged every scan. */
  private readonly rejectedHash = new Map<string, string>();
  private readonly apiItems = new Map<string, StoredResource>();
  /** The effective view: file resources and API resources by key. */
  private readonly items = new Map<string, StoredResource>();
  private rev = 0;
  /** One non-recursive watcher per directory of the config tree. */
  private readonly dirWatchers = new Map<string, fs.FSWatcher>();
  private pollTimer?: NodeJS.Timeout;
  private debounce?: NodeJS.Timeout;
  private settleTimer?: NodeJS.Timeout;
  /** Per file, content seen changed (or the file gone) and not yet settled: its hash and when a scan first saw it. */
  private readonly settling = new Map<string, { hash: string; since: number }>();
  private scanning: Promise<void> = Promise.resolve();
  private closed = false;

  private constructor(opts: EmbeddedStoreOptions) {
    this.log = opts.log ?? silentLogger;
    this.watchers = new StoreWatchers(this.log);
    this.configDir = opts.configDir ? path.resolve(opts.configDir) : undefined;
    this.resourcesFile = path.join(opts.dataDir, 'resources.json');
    this.writer = new SerialWriter(this.resourcesFile);
  }

  static async open(opts: EmbeddedStoreOptions): Promise<EmbeddedStore> {
    await fs.promises.mkdir(opts.dataDir, { recursive: true, mode: 0o700 });
    const store = new EmbeddedStore(opts);
    store.loadPersisted();
    if (store.configDir) {
      if (!fs.statSync(store.configDir, { throwIfNoEntry: false })?.isDirectory()) {
        throw new Error(`config directory ${store.configDir} does not exist`);
      }
      await store.scan({ settle: false }); // what is there at start is taken as it is
      store.startWatching(opts.pollIntervalMs ?? 1000);
    }
    return store;
  }

  // ---- Store interface ----

  list<K extends Kind>(kind: K): StoredResource<K>[] {
    const out: StoredResource<K>[] = [];
    for (const item of this.items.values()) if (item.resource.kind === kind) out.push(item as StoredResource<K>);
    return out.sort((a, b) => resourceKey(a.resource).localeCompare(resourceKey(b.resource)));
  }

  /** Every resource, of every kind. */
  listAll(): StoredResource[] {
    return [...this.items.values()];
  }

  get<K extends Kind>(kind: K, namespace: string, name: string): StoredResource<K> | undefined {
    return this.items.get(`${kind}/${namespace}/${name}`) as StoredResource<K> | undefined;
  }

  async apply(resources: Resource[], origins: ResourceOrigin[] = []): Promise<StoredResource[]> {
    const errors: ConfigError[] = [];
    const batch = new Map<string, Resource>();
    const where = new Map<Resource, ResourceOrigin>();
    resources.forEach((r, i) => {
      const key = resourceKey(r);
      const origin = origins[i] ?? {};
      where.set(r, origin);
      const owner = this.items.get(key);
      if (owner?.source.type === 'file') {
        const detail = `${key} is defined in ${owner.source.file}; edit that file instead`;
        errors.push(new ConfigError('E_CONFLICT', detail, { ...origin, path: 'metadata.name' }));
      }
      if (batch.has(key)) {
        errors.push(new ConfigError('E_DUPLICATE', `${key} appears twice in one apply`, { ...origin, path: 'metadata.name' }));
      }
      batch.set(key, r);
    });
    if (errors.length === 0) {
      const union = [...this.items.values()].filter((i) => !batch.has(resourceKey(i.resource))).map((i) => i.resource);
      errors.push(...validateSet([...union, ...batch.values()], (r) => where.get(r) ?? {}));
    }
    if (errors.length > 0) throw new ConfigRejectedError(errors);

    const changed: StoredResource[] = [];
    for (const [key, resource] of batch) {
      const previous = this.apiItems.get(key);
      if (previous && sameContent(previous.resource, resource)) {
        changed.push(previous);
        continue;
      }
      const item: StoredResource = { resource, source: { type: 'api' }, revision: ++this.rev };
      this.apiItems.set(key, item);
      this.items.set(key, item);
      changed.push(item);
    }
    await this.persist();
    for (const item of changed) this.emit({ type: 'put', kind: item.resource.kind, key: resourceKey(item.resource), item });
    return changed;
  }

  async delete(kind: Kind, namespace: string, name: string): Promise<boolean> {
    const key = `${kind}/${namespace}/${name}`;
    const item = this.items.get(key);
    if (!item) return false;
    if (item.source.type === 'file') {
      throw new ConfigRejectedError([
        new ConfigError('E_CONFLICT', `${key} is defined in ${item.source.file}; remove it from that file instead`, {}),
      ]);
    }
    const errors = validateDelete(
      [...this.items.values()].map((i) => i.resource),
      key,
    );
    if (errors.length > 0) throw new ConfigRejectedError(errors);
    this.apiItems.delete(key);
    this.items.delete(key);
    this.rev++;
    await this.persist();
    this.emit({ type: 'delete', kind, key });
    return true;
  }

  configErrors(): ConfigError[] {
    return [...this.fileErrors.values()].flat();
  }

  revision(): number {
    return this.rev;
  }

  watch(kind: Kind | '*', cb: (event: WatchEvent) => void): () => void {
    return this.watchers.add(kind, cb);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const w of this.dirWatchers.values()) w.close();
    this.dirWatchers.clear();
    clearInterval(this.pollTimer);
    clearTimeout(this.debounce);
    clearTimeout(this.settleTimer);
    await this.scanning;
    await this.writer.write(this.serialize()).catch(() => {});
  }

  /** Re-reads the config directory now (the watcher calls this; tests may too); what changed applies once settled. */
  rescan(): Promise<void> {
    this.scanning = this.scanning.then(() => this.scan()).catch((err) => {
      this.log('error', 'config scan failed', { error: String(err) });
    });
    return this.scanning;
  }

  // ---- config directory ----

  private startWatching(pollIntervalMs: number): void {
    this.syncDirWatchers();
    // Polling backs the watchers up (network filesystems, missed events).
    this.pollTimer = setInterval(() => void this.rescan(), pollIntervalMs);
    this.pollTimer.unref();
  }

  /**
   * Watches every directory of the config tree on its own. Node 20's
   * recursive fs.watch on Linux misses a file renamed over an existing one,
   * which is how many editors save; a watch on the directory itself sees it.
   */
  private syncDirWatchers(): void {
    if (this.closed || !this.configDir) return;
    const dirs = new Set(listDirectories(this.configDir));
    for (const [dir, w] of this.dirWatchers) {
      if (!dirs.has(dir)) {
        w.close();
        this.dirWatchers.delete(dir);
      }
    }
    for (const dir of dirs) {
      if (this.dirWatchers.has(dir)) continue;
      try {
        const w = fs.watch(dir, () => {
          clearTimeout(this.debounce);
          this.debounce = setTimeout(() => void this.rescan(), 50);
        });
        w.on('error', () => {
          w.close();
          this.dirWatchers.delete(dir);
        });
        this.dirWatchers.set(dir, w);
      } catch (err) {
        this.log('warn', 'cannot watch a config directory; polling covers it', { dir, error: String(err) });
      }
    }
  }

  /**
   * True when `file`'s content `hash` (ABSENT: the file is gone) has stayed
   * the same since a scan at least SETTLE_MS before `now`; else records it,
   * and a rescan comes once it may have settled.
   */
  private settled(file: string, hash: string, now: number): boolean {
    let seen = this.settling.get(file);
    if (seen?.hash !== hash) this.settling.set(file, (seen = { hash, since: now }));
    if (now - seen.since >= SETTLE_MS) return true;
    if (!this.settleTimer) {
      this.settleTimer = setTimeout(() => {
        this.settleTimer = undefined;
        void this.rescan();
      }, seen.since + SETTLE_MS - now);
      this.settleTimer.unref();
    }
    return false;
  }

  private async scan({ settle = true } = {}): Promise<void> {
    if (this.closed || !this.configDir) return;
    if (this.dirWatchers.size > 0) this.syncDirWatchers();
    const now = performance.now();
    const present = listYamlFiles(this.configDir);
    const candidates = new Map<string, FileState | null>(); // null: the file was removed
    const parseErrors = new Map<string, ConfigError[]>();

    for (const file of present) {
      let text: string;
      try {
        text = fs.readFileSync(file, 'utf8');
      } catch {
        continue; // removed between listing and reading; the next scan sees it gone
      }
      const hash = crypto.createHash('sha256').update(text).digest('hex');
      // What is serving, or content that did not parse (nothing to retry until it changes).
      if ((this.files.get(file)?.hash === hash && !this.fileErrors.has(file)) || this.rejectedHash.get(file) === hash) {
        this.settling.delete(file);
        continue;
      }
      if (settle && !this.settled(file, hash, now)) continue;
      const parsed = parseConfigFile(text, relativeName(file));
      if (parsed.errors.length > 0) {
        parseErrors.set(file, parsed.errors);
        this.rejectedHash.set(file, hash);
      } else {
        candidates.set(file, { hash, entries: parsed.entries });
      }
    }
    for (const file of this.files.keys()) {
      if (!present.includes(file) && (!settle || this.settled(file, ABSENT, now))) candidates.set(file, null);
    }
    for (const file of this.fileErrors.keys()) {
      if (!present.includes(file)) {
        this.fileErrors.delete(file);
        this.rejectedHash.delete(file);
      }
    }
    // A file that came and went before it settled.
    for (const file of this.settling.keys()) if (!present.includes(file) && !this.files.has(file)) this.settling.delete(file);

    for (const [file, errors] of parseErrors) this.reject(file, errors);
    if (candidates.size === 0) return;

    // Validate the mesh the candidates would produce. Files the errors point
    // at are set aside and the rest tried again, so one bad file does not
    // hold back an unrelated good one.
    let accepted = candidates;
    for (;;) {
      const { errors, where } = this.validateWith(accepted);
      if (errors.length === 0) {
        for (const [file, state] of accepted) {
          if (state) this.files.set(file, state);
          else this.files.delete(file);
          this.fileErrors.delete(file);
          this.rejectedHash.delete(file);
        }
        if (accepted.size > 0) this.rebuildFromFiles(where);
        return;
      }
      const blamed = new Map<string, ConfigError[]>();
      for (const file of accepted.keys()) {
        const own = errors.filter((e) => e.file === relativeName(file));
        if (own.length > 0) blamed.set(file, own);
      }
      if (blamed.size === 0 || blamed.size === accepted.size) {
        for (const file of accepted.keys()) this.reject(file, blamed.get(file) ?? errors);
        return;
      }
      for (const [file, own] of blamed) this.reject(file, own);
      accepted = new Map([...accepted].filter(([file]) => !blamed.has(file)));
    }
  }

  /** Validates the mesh with the given file changes applied on top of the last good files and the API resources. */
  private validateWith(changes: Map<string, FileState | null>) {
    const nextFiles = new Map(this.files);
    for (const [file, state] of changes) {
      if (state) nextFiles.set(file, state);
      else nextFiles.delete(file);
    }
    const where = new Map<Resource, { file: string; document: number }>();
    const union: Resource[] = [];
    for (const [file, state] of nextFiles) {
      for (const e of state.entries) {
        where.set(e.resource, { file: relativeName(file), document: e.document });
        union.push(e.resource);
      }
    }
    union.push(...[...this.apiItems.values()].map((i) => i.resource));
    return { errors: validateSet(union, (r) => where.get(r) ?? {}), where };
  }

  private reject(file: string, errors: ConfigError[]): void {
    const previous = this.fileErrors.get(file)?.map((e) => e.message).join('\n');
    this.fileErrors.set(file, errors);
    // A rejected file is re-validated on every scan; log only what is new.
    if (previous === errors.map((e) => e.message).join('\n')) return;
    for (const e of errors) this.log('error', 'config rejected; last good config keeps serving', { error: e.message });
  }

  /** Recomputes the file part of the view and emits the differences. */
  private rebuildFromFiles(where: Map<Resource, { file: string; document: number }>): void {
    const next = new Map<string, StoredResource>();
    for (const state of this.files.values()) {
      for (const e of state.entries) {
        const key = resourceKey(e.resource);
        const source: ResourceSource = { type: 'file', ...where.get(e.resource)! };
        const previous = this.items.get(key);
        const unchanged = previous && previous.source.type === 'file' && sameContent(previous.resource, e.resource);
        next.set(key, unchanged ? { ...previous, source } : { resource: e.resource, source, revision: this.rev + 1 });
      }
    }
    const events: WatchEvent[] = [];
    for (const [key, item] of this.items) {
      if (item.source.type === 'file' && !next.has(key)) {
        this.items.delete(key);
        events.push({ type: 'delete', kind: item.resource.kind, key });
      }
    }
    for (const [key, item] of next) {
      const previous = this.items.get(key);
      this.items.set(key, item);
      if (previous?.revision !== item.revision) events.push({ type: 'put', kind: item.resource.kind, key, item });
    }
    if (events.length > 0) {
      this.rev++;
      this.log('info', 'config applied', { changes: events.length, revision: this.rev });
    }
    for (const e of events) this.emit(e);
  }

  // ---- data directory ----

  private loadPersisted(): void {
    const data = readJsonFile<PersistedResources>(this.resourcesFile);
    if (!data) return;
    this.rev = data.revision;
    for (const { resource, revision } of data.resources) {
      const item: StoredResource = { resource, source: { type: 'api' }, revision };
      this.apiItems.set(resourceKey(resource), item);
      this.items.set(resourceKey(resource), item);
    }
  }

  private serialize(): string {
    const data: PersistedResources = {
      format: 1,
      revision: this.rev,
      resources: [...this.apiItems.values()].map((i) => ({ resource: i.resource, revision: i.revision })),
    };
    return JSON.stringify(data, null, 1);
  }

  private persist(): Promise<void> {
    return this.writer.write(this.serialize());
  }

  private emit(event: WatchEvent): void {
    this.watchers.emit(event);
  }

}

/** Files are named relative to the working directory in errors, as the user typed them. */
function relativeName(file: string): string {
  return path.relative(process.cwd(), file) || file;
}

function sameContent(a: Resource, b: Resource): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** The directory and its subdirectories, dot-directories left out as the loader does. */
function listDirectories(dir: string): string[] {
  const out = [dir];
  for (const e of readEntries(dir)) {
    if (e.isDirectory() && !e.name.startsWith('.')) out.push(...listDirectories(path.join(dir, e.name)));
  }
  return out;
}

function listYamlFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readEntries(dir)) {
    if (e.name.startsWith('.')) continue;
    const full = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...listYamlFiles(full));
    // Symlinked files count (a Kubernetes ConfigMap mount is made of them).
    else if (YAML_FILE.test(e.name) && (e.isFile() || (e.isSymbolicLink() && fs.statSync(full, { throwIfNoEntry: false })?.isFile()))) {
      out.push(full);
    }
  }
  return out.sort();
}

function readEntries(dir: string): fs.Dirent[] {
  try {
    return fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return []; // removed while we looked; the next scan sees it gone
  }
}
