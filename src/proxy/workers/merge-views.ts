// One admin view from the workers' own (`weft proxy --concurrency`): the
// shapes a single process serves, so `weft status` and the dashboard read a
// multi-worker sidecar the same way.
import type { RequestRecord } from '../../observe/request-record';

type Obj = Record<string, any>;

/** Adds the numbers of `from` into `into`, field by field (nested objects too); other fields keep `into`'s. */
function addNumbers(into: Obj, from: Obj): void {
  for (const [k, v] of Object.entries(from)) {
    if (typeof v === 'number' && typeof into[k] === 'number') into[k] += v;
    else if (v && typeof v === 'object' && !Array.isArray(v) && into[k] && typeof into[k] === 'object') addNumbers(into[k], v);
  }
}

/**
 * /clusters: per cluster, active requests and connection counts summed over
 * workers, per endpoint its active requests summed; health and outlier state
 * (per worker) as the first worker that knows the endpoint sees it.
 */
export function mergeClusters(views: Obj[][]): Obj[] {
  const byName = new Map<string, Obj>();
  for (const view of views) {
    for (const c of view) {
      const have = byName.get(c.name);
      if (!have) {
        byName.set(c.name, structuredClone(c));
        continue;
      }
      have.activeRequests += c.activeRequests;
      addNumbers(have.connections, c.connections);
      for (const e of c.endpoints ?? []) {
        const mine = have.endpoints.find((x: Obj) => x.address === e.address);
        if (mine) mine.activeRequests += e.activeRequests;
        else have.endpoints.push(structuredClone(e));
      }
    }
  }
  return [...byName.values()];
}

/** /listeners: a listener is as bound as its worst worker (one that failed to bind says so). */
export function mergeListeners(views: Obj[][]): Obj[] {
  const byName = new Map<string, Obj>();
  for (const view of views) {
    for (const l of view) {
      const have = byName.get(l.name);
      if (!have || (have.state === 'bound' && l.state !== 'bound')) byName.set(l.name, l);
    }
  }
  return [...byName.values()];
}

/** /requests: the latest `limit` of all workers' rings, oldest first. */
export function mergeRequests(views: { capacity: number; items: RequestRecord[] }[], limit: number): { capacity: number; items: RequestRecord[] } {
  const items = views.flatMap((v) => v.items).sort((a, b) => a.time - b.time);
  return { capacity: views.reduce((n, v) => n + v.capacity, 0), items: items.slice(Math.max(0, items.length - limit)) };
}
