// An in-memory copy of every key under one etcd prefix, kept current by a
// watch (what Kubernetes calls an informer). Readers on a replica read the
// copy synchronously, so the hot paths (translation, token checks, the
// registry) never wait for etcd, and a replica that loses etcd keeps serving
// what it last saw. The watch resumes from the last revision seen when etcd
// returns; if etcd compacted that revision away, the prefix is read again
// and the difference is reported as changes.
import type { Watcher } from 'etcd3';
import type { EtcdConnection } from './etcd-connection';

export interface MirrorEntry {
  value: string;
  modRevision: number;
  /** The etcd lease the key is attached to ('0': none). */
  lease: string;
}

/** One key changed: its new entry, or undefined when it was deleted. */
export interface MirrorChange {
  key: string;
  entry: MirrorEntry | undefined;
}

export class PrefixMirror {
  readonly entries = new Map<string, MirrorEntry>();
  /** The etcd revision this copy reflects. */
  revision = 0;
  private watcher: Watcher | undefined;
  private closed = false;
  private readonly revisionWaiters = new Set<{ rev: number; resolve: () => void }>();

  private constructor(
    private readonly conn: EtcdConnection,
    /** Relative to the connection's prefix, e.g. "resources/". */
    readonly prefix: string,
    private readonly onChange: (changes: MirrorChange[]) => void,
  ) {}

  /** Reads the prefix and starts watching it; `onChange` hears every later change, in revision order. */
  static async open(conn: EtcdConnection, prefix: string, onChange: (changes: MirrorChange[]) => void): Promise<PrefixMirror> {
    const mirror = new PrefixMirror(conn, prefix, onChange);
    await mirror.load(false);
    await mirror.watch();
    return mirror;
  }

  get(key: string): MirrorEntry | undefined {
    return this.entries.get(key);
  }

  /** Resolves once the copy has seen `revision` (a write of this replica's own, made visible here). */
  waitForRevision(revision: number, timeoutMs = 5000): Promise<void> {
    if (this.revision >= revision) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter = { rev: revision, resolve: () => (clearTimeout(timer), resolve()) };
      const timer = setTimeout(() => {
        this.revisionWaiters.delete(waiter);
        reject(new Error(`the store's watch did not reach revision ${revision} within ${timeoutMs} ms`));
      }, timeoutMs);
      timer.unref();
      this.revisionWaiters.add(waiter);
    });
  }

  /** Stops the watch (once: every owner of a set may close it). */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true;
      await this.watcher?.cancel().catch(() => {});
    })();
    return this.closing;
  }

  private closing: Promise<void> | undefined;

  /** Reads the whole prefix; with `diff`, reports what changed since the copy (after a compaction). */
  private async load(diff: boolean): Promise<void> {
    const res = await this.conn.kv.getAll().prefix(this.prefix).exec();
    const seen = new Map<string, MirrorEntry>();
    for (const kv of res.kvs) seen.set(kv.key.toString().slice(this.prefix.length), entryOf(kv));
    const changes: MirrorChange[] = [];
    if (diff) {
      for (const key of this.entries.keys()) if (!seen.has(key)) changes.push({ key, entry: undefined });
      for (const [key, entry] of seen) if (this.entries.get(key)?.modRevision !== entry.modRevision) changes.push({ key, entry });
    }
    this.entries.clear();
    for (const [key, entry] of seen) this.entries.set(key, entry);
    this.setRevision(Number(res.header.revision));
    if (changes.length > 0) this.onChange(changes);
  }

  private async watch(): Promise<void> {
    const watcher = await this.conn.kv.watch().prefix(this.prefix).startRevision(String(this.revision + 1)).create();
    this.watcher = watcher;
    watcher.on('data', (res) => {
      const changes: MirrorChange[] = [];
      for (const ev of res.events) {
        const key = ev.kv.key.toString().slice(this.prefix.length);
        if (ev.type === 'Delete') {
          this.entries.delete(key);
          changes.push({ key, entry: undefined });
        } else {
          const entry = entryOf(ev.kv);
          this.entries.set(key, entry);
          changes.push({ key, entry });
        }
      }
      if (changes.length > 0) this.onChange(changes);
      this.setRevision(Number(res.header.revision));
    });
    watcher.on('error', () => {
      // Compacted past our revision, or the watch was cancelled by etcd: read the prefix again.
      if (this.closed) return;
      void watcher.cancel().catch(() => {});
      void this.resync();
    });
  }

  private async resync(): Promise<void> {
    for (let attempt = 0; !this.closed; attempt++) {
      try {
        await this.load(true);
        await this.watch();
        return;
      } catch {
        await new Promise((r) => setTimeout(r, Math.min(5000, 100 * 2 ** attempt)).unref());
      }
    }
  }

  private setRevision(rev: number): void {
    if (rev <= this.revision) return;
    this.revision = rev;
    for (const w of this.revisionWaiters) {
      if (w.rev <= rev) {
        this.revisionWaiters.delete(w);
        w.resolve();
      }
    }
  }
}

function entryOf(kv: { value: Buffer; mod_revision: string; lease: string }): MirrorEntry {
  return { value: kv.value.toString(), modRevision: Number(kv.mod_revision), lease: kv.lease };
}
