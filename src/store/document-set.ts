// A set of JSON documents by id, for the control plane's state beside the
// resources: join tokens, registrations, issuance records, admin
// credentials. Reads are synchronous (from memory); writes are promises that
// resolve once the state is durable. Two backends: FileDocumentSet (the
// embedded store: one JSON file in the data directory) and EtcdDocumentSet
// (one key per document under a prefix, shared by every replica, documents
// with a time to live on etcd leases).
import { readJsonFile, SerialWriter } from './atomic-file';

export interface PutOptions {
  /**
   * The document expires unless kept alive within this many seconds: it then leaves the set
   * (and onChange hears it). Set again on every put of the same id.
   */
  ttlSeconds?: number;
}

export interface DocumentSet<T> {
  get(id: string): T | undefined;
  values(): T[];
  put(id: string, doc: T, opts?: PutOptions): Promise<void>;
  /** Puts only when no document has the id; false when one does (another replica won). */
  create(id: string, doc: T, opts?: PutOptions): Promise<boolean>;
  delete(id: string): Promise<boolean>;
  /** Restarts a document's time to live; false when it is gone (expired or deleted). */
  keepAlive(id: string): Promise<boolean>;
  /** Hears every change, made here or (etcd) by another replica; `doc` undefined: deleted or expired. */
  onChange(cb: (id: string, doc: T | undefined, expired: boolean) => void): () => void;
  close(): Promise<void>;
}

export interface FileDocumentSetOptions {
  /** The JSON file; in memory only when absent. */
  file?: string;
  /** The array field of the file ({"format": 1, "<field>": [...]}). */
  field: string;
  /** File mode (0600 for secrets and their hashes). */
  mode?: number;
  idOf: (doc: unknown) => string;
  /** How often documents with a time to live are checked for expiry (0: never; tests call sweep()). */
  sweepIntervalMs?: number;
  now?: () => number;
}

/** The embedded backend: a Map, written whole to one file on every change (keep-alives are not written). */
export class FileDocumentSet<T> implements DocumentSet<T> {
  private readonly docs = new Map<string, T>();
  /** id → [ttl ms, expires at] for documents with a time to live. */
  private readonly expiry = new Map<string, [number, number]>();
  private readonly listeners = new Set<(id: string, doc: T | undefined, expired: boolean) => void>();
  private readonly writer: SerialWriter | undefined;
  private readonly now: () => number;
  private readonly timer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: FileDocumentSetOptions) {
    this.now = opts.now ?? Date.now;
    if (opts.file) {
      this.writer = new SerialWriter(opts.file, opts.mode);
      const data = readJsonFile<Record<string, unknown>>(opts.file);
      for (const doc of (data?.[opts.field] as T[] | undefined) ?? []) this.docs.set(opts.idOf(doc), doc);
    }
    const interval = opts.sweepIntervalMs ?? 1000;
    if (interval > 0) {
      this.timer = setInterval(() => this.sweep(), interval);
      this.timer.unref();
    }
  }

  get(id: string): T | undefined {
    return this.docs.get(id);
  }

  values(): T[] {
    return [...this.docs.values()];
  }

  async put(id: string, doc: T, opts: PutOptions = {}): Promise<void> {
    this.docs.set(id, doc);
    if (opts.ttlSeconds !== undefined) this.expiry.set(id, [opts.ttlSeconds * 1000, this.now() + opts.ttlSeconds * 1000]);
    else this.expiry.delete(id);
    this.emit(id, doc, false);
    await this.persist();
  }

  async create(id: string, doc: T, opts?: PutOptions): Promise<boolean> {
    if (this.docs.has(id)) return false;
    await this.put(id, doc, opts);
    return true;
  }

  async delete(id: string): Promise<boolean> {
    if (!this.docs.delete(id)) return false;
    this.expiry.delete(id);
    this.emit(id, undefined, false);
    await this.persist();
    return true;
  }

  async keepAlive(id: string): Promise<boolean> {
    if (!this.docs.has(id)) return false;
    const e = this.expiry.get(id);
    if (e) e[1] = this.now() + e[0];
    return true;
  }

  /**
   * Documents read back from the file get a fresh time to live: nothing could renew them while
   * the control plane was down. `ttlOf` says which have one.
   */
  restoreTtl(ttlSecondsOf: (doc: T) => number | undefined): void {
    for (const [id, doc] of this.docs) {
      const ttl = ttlSecondsOf(doc);
      if (ttl !== undefined) this.expiry.set(id, [ttl * 1000, this.now() + ttl * 1000]);
    }
  }

  /** Removes the documents whose time to live ran out. */
  sweep(): void {
    const now = this.now();
    let any = false;
    for (const [id, [, at]] of this.expiry) {
      if (at > now) continue;
      this.expiry.delete(id);
      this.docs.delete(id);
      this.emit(id, undefined, true);
      any = true;
    }
    if (any) void this.persist().catch(() => {});
  }

  onChange(cb: (id: string, doc: T | undefined, expired: boolean) => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.persist().catch(() => {});
  }

  private persist(): Promise<void> {
    if (!this.writer) return Promise.resolve();
    return this.writer.write(JSON.stringify({ format: 1, [this.opts.field]: [...this.docs.values()] }, null, 1));
  }

  private emit(id: string, doc: T | undefined, expired: boolean): void {
    for (const cb of this.listeners) cb(id, doc, expired);
  }
}
