// The plugins of one service, their config resolved for it (config/plugin-config.ts):
//   GET /api/v1/plugins?service=S[&namespace=NS]   → { service, namespace, version, items: ResolvedPlugin[] }
//   …&version=V&wait=30s                           → the same, once it differs from V (or after the wait)
// What `weft run` asks before it starts the app, and then asks again with the
// version it holds: the answer comes when a Plugin or the Service changes,
// so a config change reaches the running plugins in moments without polling.
// A viewer or admin reads any service's; a join token only its own service's.
import * as crypto from 'node:crypto';
import type * as http from 'node:http';
import { durationToMs } from '../config/duration';
import { resolvePlugins, type ResolvedPlugin } from '../config/plugin-config';
import type { Store } from '../store/store';
import type { ApiServer } from './api-server';
import { requireOwnService } from './access';
import { HttpError } from './http-error';

/** The longest a watch is held open (a client asks again). */
const MAX_WAIT_MS = 60_000;

export function installPluginsApi(api: ApiServer, store: Store): void {
  api.route('GET', /^\/api\/v1\/plugins$/, 'reader', async (req, _p, url, caller) => {
    const service = url.searchParams.get('service');
    const namespace = url.searchParams.get('namespace') || 'default';
    if (!service) throw new HttpError(400, 'which service? GET /api/v1/plugins?service=<name>[&namespace=<ns>]', { code: 'E_MISSING_SERVICE' });
    requireOwnService(caller.principal, namespace, service, 'read plugins');
    const current = () => pluginsOf(store, namespace, service);
    const since = url.searchParams.get('version');
    const wait = url.searchParams.get('wait');
    let answer = current();
    if (since !== null && wait !== null && answer.version === since) {
      let waitMs: number;
      try {
        waitMs = Math.min(durationToMs(wait), MAX_WAIT_MS);
      } catch {
        throw new HttpError(400, `wait: a duration such as 30s (at most ${MAX_WAIT_MS / 1000}s)`, { code: 'E_INVALID' });
      }
      await changeOf(store, waitMs, () => current().version !== since, req);
      answer = current();
    }
    if (!answer.found) throw new HttpError(404, `Service ${namespace}/${service} not found`);
    return { service, namespace, version: answer.version, items: answer.items };
  });
}

function pluginsOf(store: Store, namespace: string, service: string): { found: boolean; version: string; items: ResolvedPlugin[] } {
  const svc = store.get('Service', namespace, service);
  const items = svc ? resolvePlugins(store.list('Plugin').map((i) => i.resource), svc.resource) : [];
  const version = crypto.createHash('sha256').update(JSON.stringify(items)).digest('hex').slice(0, 16);
  return { found: svc !== undefined, version, items };
}

/** Resolves once `changed()` holds after a change of a Plugin or Service, after `ms`, or when the caller hangs up (or the server closes). */
function changeOf(store: Store, ms: number, changed: () => boolean, req: http.IncomingMessage): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      req.socket.off('close', done);
      clearTimeout(timer);
      stopPlugins();
      stopServices();
      resolve();
    };
    const check = () => {
      if (changed()) done();
    };
    const stopPlugins = store.watch('Plugin', check);
    const stopServices = store.watch('Service', check);
    const timer = setTimeout(done, ms);
    req.socket.once('close', done);
  });
}
