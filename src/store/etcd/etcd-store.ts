// The mesh's resources in etcd, for control planes that run as replicas.
// Each replica keeps a validated copy (PrefixMirror + the same validation as
// a config file) and serves reads and the translator from it; a change made
// through any replica reaches every replica through etcd's watch.
//
// Keys (under the store prefix, default /weft/):
//   resources/<Kind>/<namespace>/<name>   {"resource": …, "source": …}
//   meta/resources                        bumped by every write: the guard of
//                                         optimistic concurrency (a write
//                                         validated against an older mesh fails
//                                         its compare and is validated again)
//
// A value that does not validate (written into etcd behind weft's back) is
// held back like a bad file: the last good version keeps serving and the
// error is reported by configErrors() on every replica.
import { resourceKey, type Kind, type Resource } from '../../config/kinds';
import { ConfigError, type ConfigErrorInit } from '../../config/errors';
import { parseResource } from '../../config/parse';
import { validateDelete, validateSet } from '../../config/validate';
import { silentLogger, type Logger } from '../../observe/log';
import { ConfigRejectedError, type ResourceOrigin, type ResourceSource, type Store, type StoredResource, type WatchEvent } from '../store';
import type { EtcdConnection } from './etcd-connection';
import { PrefixMirror, type MirrorChange } from './prefix-mirror';
import { StoreWatchers } from '../store-watchers';

const RESOURCES = 'resources/';
const GUARD = 'meta/resources';
/** Attempts of a write whose compare failed because another replica wrote first. */
const WRITE_ATTEMPTS = 5;

interface StoredValue {
  resource: unknown;
  source: ResourceSource;
}

export class EtcdStore implements Store {
  private readonly items = new Map<string, StoredResource>();
  private readonly watchers: StoreWatchers;
  /** Keys whose value in etcd is rejected, with why; their last good version (if any) stays in `items`. */
  private readonly held = new Map<string, { modRevision: number; errors: ConfigError[] }>();
  private resources!: PrefixMirror;
  private guard!: PrefixMirror;
  /** Errors the config-directory sync (config-sync.ts) wrote for every replica to report. */
  private storedErrors!: PrefixMirror;
  /** A write of this replica is in flight: writes are serialised so each validates against the last. */
  private writing: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly conn: EtcdConnection,
    private readonly log: Logger,
  ) {
    this.watchers = new StoreWatchers(log);
  }

  static async open(opts: { conn: EtcdConnection; log?: Logger }): Promise<EtcdStore> {
    const store = new EtcdStore(opts.conn, opts.log ?? silentLogger);
    store.guard = await PrefixMirror.open(opts.conn, GUARD, () => {});
    store.storedErrors = await PrefixMirror.open(opts.conn, 'config-errors/', () => {});
    store.resources = await PrefixMirror.open(opts.conn, RESOURCES, (changes) => store.received(changes));
    store.received([...store.resources.entries].map(([key, entry]) => ({ key, entry })));
    return store;
  }

  // ---- Store interface ----

  list<K extends Kind>(kind: K): StoredResource<K>[] {
    const out: StoredResource<K>[] = [];
    for (const item of this.items.values()) if (item.resource.kind === kind) out.push(item as StoredResource<K>);
    return out.sort((a, b) => resourceKey(a.resource).localeCompare(resourceKey(b.resource)));
  }

  get<K extends Kind>(kind: K, namespace: string, name: string): StoredResource<K> | undefined {
    return this.items.get(`${kind}/${namespace}/${name}`) as StoredResource<K> | undefined;
  }

  apply(resources: Resource[], origins: ResourceOrigin[] = []): Promise<StoredResource[]> {
    return this.serialised(() => this.write(resources, origins, { type: 'api' }));
  }

  delete(kind: Kind, namespace: string, name: string): Promise<boolean> {
    return this.serialised(() => this.remove(`${kind}/${namespace}/${name}`));
  }

  configErrors(): ConfigError[] {
    const stored: ConfigError[] = [];
    for (const entry of this.storedErrors.entries.values()) {
      try {
        for (const e of JSON.parse(entry.value) as ({ code: ConfigError['code']; detail: string } & ConfigErrorInit)[]) stored.push(new ConfigError(e.code, e.detail, e));
      } catch {
        // not weft's: nothing to report
      }
    }
    return [...stored, ...[...this.held.values()].flatMap((h) => h.errors)];
  }

  revision(): number {
    return this.resources.revision;
  }

  watch(kind: Kind | '*', cb: (event: WatchEvent) => void): () => void {
    return this.watchers.add(kind, cb);
  }

  async close(): Promise<void> {
    await this.writing.catch(() => {});
    await this.resources.close();
    await this.guard.close();
    await this.storedErrors.close();
  }

  /**
   * Replaces the resources that came from a config directory with `files` (the one replica
   * that syncs a directory calls this): puts what changed, deletes what left the files.
   */
  syncFiles(files: { resource: Resource; file: string; document: number }[]): Promise<void> {
    return this.serialised(async () => {
      const next = new Map(files.map((f) => [resourceKey(f.resource), f]));
      const puts = files.filter((f) => {
        const item = this.items.get(resourceKey(f.resource));
        return !item || item.source.type !== 'file' || item.source.file !== f.file || item.source.document !== f.document || !sameContent(item.resource, f.resource);
      });
      const deletes = [...this.items.entries()].filter(([key, item]) => item.source.type === 'file' && !next.has(key)).map(([key]) => key);
      if (puts.length === 0 && deletes.length === 0) return;
      await this.commit(
        puts.map((f) => ({ key: resourceKey(f.resource), value: { resource: f.resource, source: { type: 'file', file: f.file, document: f.document } } })),
        deletes,
        () => {},
      );
    });
  }

  // ---- writes ----

  private serialised<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.writing.then(fn, fn);
    this.writing = run.catch(() => {});
    return run;
  }

  private async write(resources: Resource[], origins: ResourceOrigin[], source: ResourceSource): Promise<StoredResource[]> {
    const batch = new Map<string, Resource>();
    const where = new Map<Resource, ResourceOrigin>();
    const check = () => {
      const errors: ConfigError[] = [];
      batch.clear();
      resources.forEach((r, i) => {
        const key = resourceKey(r);
        const origin = origins[i] ?? {};
        where.set(r, origin);
        const owner = this.items.get(key);
        if (owner?.source.type === 'file' && source.type === 'api') {
          errors.push(new ConfigError('E_CONFLICT', `${key} is defined in ${owner.source.file}; edit that file instead`, { ...origin, path: 'metadata.name' }));
        }
        if (batch.has(key)) errors.push(new ConfigError('E_DUPLICATE', `${key} appears twice in one apply`, { ...origin, path: 'metadata.name' }));
        batch.set(key, r);
      });
      if (errors.length === 0) {
        const union = [...this.items.values()].filter((i) => !batch.has(resourceKey(i.resource))).map((i) => i.resource);
        errors.push(...validateSet([...union, ...batch.values()], (r) => where.get(r) ?? {}));
      }
      if (errors.length > 0) throw new ConfigRejectedError(errors);
    };
    const puts = () =>
      [...batch].filter(([key, r]) => !(this.items.get(key) && sameContent(this.items.get(key)!.resource, r) && this.items.get(key)!.source.type === source.type)).map(([key, resource]) => ({ key, value: { resource, source } }));
    await this.commit(puts, [], check);
    return [...batch.keys()].map((key) => this.items.get(key)!).filter(Boolean);
  }

  private async remove(key: string): Promise<boolean> {
    let existed = true;
    const check = () => {
      const item = this.items.get(key);
      existed = item !== undefined;
      if (!item) return;
      if (item.source.type === 'file') {
        throw new ConfigRejectedError([new ConfigError('E_CONFLICT', `${key} is defined in ${item.source.file}; remove it from that file instead`, {})]);
      }
      const errors = validateDelete([...this.items.values()].map((i) => i.resource), key);
      if (errors.length > 0) throw new ConfigRejectedError(errors);
    };
    await this.commit(() => [], () => (existed ? [key] : []), check);
    return existed;
  }

  /**
   * Validates (`check`, against this replica's copy) and writes in one etcd transaction guarded by
   * meta/resources; when another replica wrote in between, waits until the copy has its write and
   * validates again. Returns once this replica's copy shows the change.
   */
  private async commit(
    puts: { key: string; value: StoredValue }[] | (() => { key: string; value: StoredValue }[]),
    deletes: string[] | (() => string[]),
    check: () => void,
  ): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      check();
      const p = typeof puts === 'function' ? puts() : puts;
      const d = typeof deletes === 'function' ? deletes() : deletes;
      if (p.length === 0 && d.length === 0) return;
      const guardRevision = this.guard.get('')?.modRevision ?? 0;
      let res;
      try {
        const ops = [
          ...p.map(({ key, value }) => this.conn.kv.put(RESOURCES + key).value(JSON.stringify(value))),
          ...d.map((key) => this.conn.kv.delete().key(RESOURCES + key)),
          this.conn.kv.put(GUARD).value(String(Date.now())),
        ];
        res = await this.conn.kv.if(GUARD, 'Mod', '==', guardRevision).then(...ops).commit();
      } catch (err) {
        throw this.conn.unavailable(err, 'writing resources');
      }
      const revision = Number(res.header.revision);
      // Read-your-writes: this replica's copy (and its translator) has the change when we return;
      // after a lost compare, the copy must have the other write before validating again.
      await Promise.all([this.resources.waitForRevision(revision), this.guard.waitForRevision(revision)]).catch(() => {});
      if (res.succeeded) return;
      if (attempt >= WRITE_ATTEMPTS) throw this.conn.unavailable(new Error(`another replica kept writing; gave up after ${attempt} attempts`), 'writing resources');
    }
  }

  // ---- the watch ----

  /** Changes from etcd: decoded, validated against the mesh, applied or held back. */
  private received(changes: MirrorChange[]): void {
    const candidates = new Map<string, StoredResource | null>();
    for (const { key, entry } of changes) {
      if (!entry) {
        candidates.set(key, null);
        continue;
      }
      const decoded = this.decode(key, entry.value, entry.modRevision);
      if (decoded instanceof Array) this.hold(key, entry.modRevision, decoded);
      else candidates.set(key, decoded);
    }
    // Held keys are tried again with every change: the change may be what they were missing.
    for (const [key, h] of this.held) {
      if (candidates.has(key)) continue;
      const entry = this.resources.get(key);
      if (!entry || entry.modRevision !== h.modRevision) continue;
      const decoded = this.decode(key, entry.value, entry.modRevision);
      if (!(decoded instanceof Array)) candidates.set(key, decoded);
    }
    if (candidates.size === 0) return;
    let accepted = candidates;
    if (this.validateWith(accepted).length > 0) {
      // Accept what validates on its own; hold the rest with their errors.
      accepted = new Map();
      for (const [key, c] of candidates) {
        const errors = this.validateWith(new Map([...accepted, [key, c]]));
        if (errors.length === 0) accepted.set(key, c);
        else this.hold(key, this.resources.get(key)?.modRevision ?? 0, errors);
      }
    }
    const events: WatchEvent[] = [];
    for (const [key, item] of accepted) {
      this.held.delete(key);
      const previous = this.items.get(key);
      if (item) {
        this.items.set(key, item);
        events.push({ type: 'put', kind: item.resource.kind, key, item });
      } else if (previous) {
        this.items.delete(key);
        events.push({ type: 'delete', kind: previous.resource.kind, key });
      }
    }
    for (const e of events) this.emit(e);
  }

  private decode(key: string, text: string, modRevision: number): StoredResource | ConfigError[] {
    const file = `etcd:${this.conn.prefix}${RESOURCES}${key}`;
    let value: StoredValue;
    try {
      value = JSON.parse(text);
    } catch (err) {
      return [new ConfigError('E_YAML', `not JSON: ${(err as Error).message}`, { file })];
    }
    const { resource, errors } = parseResource(value?.resource, { file });
    if (!resource) return errors;
    if (resourceKey(resource) !== key) return [new ConfigError('E_INVALID', `the key names ${key} but the value is ${resourceKey(resource)}`, { file, path: 'metadata' })];
    const source: ResourceSource = value.source?.type === 'file' ? value.source : { type: 'api' };
    return { resource, source, revision: modRevision };
  }

  private validateWith(changes: Map<string, StoredResource | null>): ConfigError[] {
    const union: Resource[] = [];
    for (const [key, item] of this.items) if (!changes.has(key)) union.push(item.resource);
    for (const item of changes.values()) if (item) union.push(item.resource);
    const where = (r: Resource) => {
      const item = changes.get(resourceKey(r)) ?? this.items.get(resourceKey(r));
      return item?.source.type === 'file' ? { file: item.source.file, document: item.source.document } : { file: `etcd:${this.conn.prefix}${RESOURCES}${resourceKey(r)}` };
    };
    // A deletion another resource still refers to fails here as a dangling reference.
    return validateSet(union, where);
  }

  private hold(key: string, modRevision: number, errors: ConfigError[]): void {
    const previous = this.held.get(key);
    this.held.set(key, { modRevision, errors });
    if (previous?.modRevision === modRevision) return;
    for (const e of errors) this.log('error', 'a resource in the store does not validate; its last good version keeps serving', { key, error: e.message });
  }

  private emit(event: WatchEvent): void {
    this.watchers.emit(event);
  }

}

function sameContent(a: Resource, b: Resource): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
