// The watchers of a Store (embedded or etcd): who hears which kind's changes.
// A watcher that throws is logged and the others still hear the event.
import type { Kind } from '../config/kinds';
import type { Logger } from '../observe/log';
import type { WatchEvent } from './store';

export class StoreWatchers {
  private readonly watchers = new Set<{ kind: Kind | '*'; cb: (e: WatchEvent) => void }>();

  constructor(private readonly log: Logger) {}

  add(kind: Kind | '*', cb: (event: WatchEvent) => void): () => void {
    const w = { kind, cb };
    this.watchers.add(w);
    return () => this.watchers.delete(w);
  }

  emit(event: WatchEvent): void {
    for (const w of this.watchers) {
      if (w.kind !== '*' && w.kind !== event.kind) continue;
      try {
        w.cb(event);
      } catch (err) {
        this.log('error', 'store watcher threw', { error: String(err) });
      }
    }
  }
}
