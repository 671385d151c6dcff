// DocumentSet on etcd: one key per document under a prefix, mirrored by
// every replica. A document with a time to live is attached to an etcd lease
// of that length, so it expires with its owner (a `weft run` instance that
// stopped renewing), not with the replica that wrote it: etcd deletes the key
// and every replica's watch hears it. Keep-alives go to the lease; a put of
// the same id keeps its lease.
import type { DocumentSet, PutOptions } from '../document-set';
import type { EtcdConnection } from './etcd-connection';
import { PrefixMirror } from './prefix-mirror';

export class EtcdDocumentSet<T> implements DocumentSet<T> {
  private readonly docs = new Map<string, T>();
  private readonly listeners = new Set<(id: string, doc: T | undefined, expired: boolean) => void>();
  private mirror!: PrefixMirror;
  /** Ids this replica deleted itself: their deletion is not an expiry. */
  private readonly deleting = new Set<string>();

  private constructor(
    private readonly conn: EtcdConnection,
    /** Relative to the store prefix, ending in "/". */
    private readonly prefix: string,
    private readonly what: string,
  ) {}

  static async open<T>(conn: EtcdConnection, prefix: string, what: string): Promise<EtcdDocumentSet<T>> {
    const set = new EtcdDocumentSet<T>(conn, prefix, what);
    set.mirror = await PrefixMirror.open(conn, prefix, (changes) => {
      for (const { key, entry } of changes) {
        if (entry) {
          const doc = set.decode(entry.value);
          if (doc === undefined) continue;
          set.docs.set(key, doc);
          set.emit(key, doc, false);
        } else if (set.docs.delete(key)) {
          const expired = !set.deleting.delete(key);
          set.emit(key, undefined, expired);
        }
      }
    });
    for (const [key, entry] of set.mirror.entries) {
      const doc = set.decode(entry.value);
      if (doc !== undefined) set.docs.set(key, doc);
    }
    return set;
  }

  get(id: string): T | undefined {
    return this.docs.get(id);
  }

  values(): T[] {
    return [...this.docs.values()];
  }

  async put(id: string, doc: T, opts: PutOptions = {}): Promise<void> {
    try {
      const lease = await this.leaseFor(id, opts.ttlSeconds);
      const res = await this.conn.kv.put(this.prefix + id).value(JSON.stringify(doc)).lease(lease ?? '0').exec();
      await this.mirror.waitForRevision(Number(res.header.revision)).catch(() => {});
    } catch (err) {
      throw this.conn.unavailable(err, `writing ${this.what}`);
    }
  }

  async create(id: string, doc: T, opts: PutOptions = {}): Promise<boolean> {
    try {
      const lease = await this.leaseFor(undefined, opts.ttlSeconds);
      const put = this.conn.kv.put(this.prefix + id).value(JSON.stringify(doc));
      if (lease) put.lease(lease);
      const res = await this.conn.kv.if(this.prefix + id, 'Create', '==', 0).then(put).commit();
      await this.mirror.waitForRevision(Number(res.header.revision)).catch(() => {});
      return res.succeeded;
    } catch (err) {
      throw this.conn.unavailable(err, `writing ${this.what}`);
    }
  }

  async delete(id: string): Promise<boolean> {
    this.deleting.add(id);
    try {
      const res = await this.conn.kv.delete().key(this.prefix + id).exec();
      await this.mirror.waitForRevision(Number(res.header.revision)).catch(() => {});
      if (Number(res.deleted) === 0) this.deleting.delete(id);
      return Number(res.deleted) > 0;
    } catch (err) {
      this.deleting.delete(id);
      throw this.conn.unavailable(err, `deleting ${this.what}`);
    }
  }

  async keepAlive(id: string): Promise<boolean> {
    const entry = this.mirror.get(id);
    if (!entry) return false;
    if (entry.lease === '0') return true;
    try {
      return await this.keepAliveOnce(entry.lease);
    } catch (err) {
      throw this.conn.unavailable(err, `renewing ${this.what}`);
    }
  }

  onChange(cb: (id: string, doc: T | undefined, expired: boolean) => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  async close(): Promise<void> {
    await this.mirror.close();
  }

  /** The lease of an existing document with the same TTL, or a new lease (undefined: no TTL). */
  private async leaseFor(id: string | undefined, ttlSeconds: number | undefined): Promise<string | undefined> {
    if (ttlSeconds === undefined) return undefined;
    const existing = id === undefined ? undefined : this.mirror.get(id);
    if (existing && existing.lease !== '0' && (await this.keepAliveOnce(existing.lease))) return existing.lease;
    const res = await this.conn.client.leaseClient.leaseGrant({ TTL: ttlSeconds });
    return res.ID;
  }

  /**
   * One keep-alive of a lease; false when etcd says it is gone (TTL ≤ 0). A keep-alive is a stream, which
   * the client's per-member breaker and retries do not cover: a stream opened to a member that died fails
   * only once used, and the next stream goes to a member drawn at random. So a failed attempt is made
   * again, up to 8 times within two call deadlines (a dead member refuses at once; with one of three down,
   * all 8 land on it once in 6,500 renewals).
   */
  private async keepAliveOnce(lease: string): Promise<boolean> {
    const until = Date.now() + 2 * this.conn.callTimeoutMs;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.keepAliveAttempt(lease);
      } catch (err) {
        if (attempt >= 8 || Date.now() >= until) throw err;
      }
    }
  }

  /** One keep-alive stream, with the deadline a stream does not have of its own. */
  private async keepAliveAttempt(lease: string): Promise<boolean> {
    const stream = await this.conn.client.leaseClient.leaseKeepAlive();
    let timer: NodeJS.Timeout | undefined;
    try {
      return await new Promise<boolean>((resolve, reject) => {
        timer = setTimeout(() => reject(new Error('lease keep-alive: deadline exceeded')), this.conn.callTimeoutMs);
        stream.on('data', (r: { TTL: string }) => resolve(Number(r.TTL) > 0));
        stream.on('error', reject);
        stream.write({ ID: lease });
      });
    } finally {
      clearTimeout(timer);
      stream.end();
    }
  }

  private decode(text: string): T | undefined {
    try {
      return JSON.parse(text) as T;
    } catch {
      return undefined; // not ours to serve; a document is only ever written whole by weft
    }
  }

  private emit(id: string, doc: T | undefined, expired: boolean): void {
    for (const cb of this.listeners) cb(id, doc, expired);
  }
}
