// Work that must run on one replica at a time (syncing a config directory
// into the store): an etcd election whose leadership lives on a lease. The
// elected replica runs `start`; when it loses the lease (it died, or lost
// etcd for longer than the TTL) another replica is elected and runs it, and
// the old one, if still alive, runs `stop` and campaigns again.
import type { Campaign } from 'etcd3';
import type { Logger } from '../../observe/log';
import type { EtcdConnection } from './etcd-connection';

export interface Singleton {
  /** True while this replica holds the role. */
  readonly leading: boolean;
  close(): Promise<void>;
}

export function runSingleton(
  conn: EtcdConnection,
  opts: { name: string; replica: string; ttlSeconds?: number; log: Logger; start: () => void | Promise<void>; stop: () => void | Promise<void> },
): Singleton {
  const election = conn.kv.election(`elections/${opts.name}`, opts.ttlSeconds ?? 5);
  let campaign: Campaign | undefined;
  let leading = false;
  let closed = false;
  const run = () => {
    if (closed) return;
    const c = election.campaign(opts.replica);
    campaign = c;
    c.on('elected', () => {
      if (closed || campaign !== c) return;
      leading = true;
      opts.log('info', 'elected for a singleton role', { role: opts.name, replica: opts.replica });
      void Promise.resolve(opts.start()).catch((err) => opts.log('error', 'singleton role failed to start', { role: opts.name, error: String(err) }));
    });
    c.on('error', (err) => {
      if (campaign !== c) return;
      if (leading) {
        leading = false;
        opts.log('warn', 'lost a singleton role', { role: opts.name, error: String(err) });
        void Promise.resolve(opts.stop()).catch(() => {});
      }
      // Campaign again once etcd answers; the backoff keeps a replica cut off from etcd quiet.
      setTimeout(run, 1000).unref();
    });
  };
  run();
  return {
    get leading() {
      return leading;
    },
    async close() {
      closed = true;
      if (leading) await Promise.resolve(opts.stop()).catch(() => {});
      leading = false;
      await campaign?.resign().catch(() => {});
    },
  };
}
