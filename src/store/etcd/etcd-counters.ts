// Global rate-limit counters in etcd: one key per (descriptor, window),
// incremented with compare-and-swap, so replicas never lose each other's
// hits. Each window's keys hang on a lease that ends a little after the
// window: etcd removes old counters by itself.
//
//   ratelimit/<windowEnd>/<sha256 of the descriptor key>   "<hits>"
import { createHash } from 'node:crypto';
import type { SharedCounters } from '../../control/rate-limit-service';
import type { EtcdConnection } from './etcd-connection';

const ATTEMPTS = 20;

export class EtcdCounters implements SharedCounters {
  /** windowEnd → the lease its counters hang on (granted once per window by this replica). */
  private readonly leases = new Map<number, Promise<string>>();

  constructor(private readonly conn: EtcdConnection) {}

  async add(key: string, hits: number, windowEnd: number): Promise<number> {
    const name = `ratelimit/${windowEnd}/${createHash('sha256').update(key).digest('hex')}`;
    try {
      for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
        const res = await this.conn.kv.get(name).exec();
        const kv = res.kvs[0];
        if (!kv) {
          const lease = await this.leaseFor(windowEnd);
          const created = await this.conn.kv.if(name, 'Create', '==', 0).then(this.conn.kv.put(name).value(String(hits)).lease(lease)).commit();
          if (created.succeeded) return hits;
          continue;
        }
        const total = Number(kv.value.toString()) + hits;
        const swapped = await this.conn.kv.if(name, 'Mod', '==', kv.mod_revision).then(this.conn.kv.put(name).value(String(total)).ignoreLease()).commit();
        if (swapped.succeeded) return total;
      }
    } catch (err) {
      throw this.conn.unavailable(err, 'counting a global rate limit');
    }
    throw new Error(`rate-limit counter ${name}: too much contention (${ATTEMPTS} attempts)`);
  }

  private leaseFor(windowEnd: number): Promise<string> {
    let lease = this.leases.get(windowEnd);
    if (!lease) {
      // Counters outlive their window by a few seconds: a late call still finds its window's count.
      const ttl = Math.max(2, Math.ceil((windowEnd - Date.now()) / 1000) + 5);
      lease = this.conn.client.leaseClient.leaseGrant({ TTL: ttl }).then((r) => r.ID);
      lease.catch(() => this.leases.delete(windowEnd));
      this.leases.set(windowEnd, lease);
      for (const end of this.leases.keys()) if (end < Date.now() - 60_000) this.leases.delete(end);
    }
    return lease;
  }
}
