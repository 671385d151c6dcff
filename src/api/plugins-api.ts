// The plugins of one service, their config resolved for it (config/plugin-config.ts):
//   GET /api/v1/plugins?service=S[&namespace=NS]   → { service, namespace, items: ResolvedPlugin[] }
// What `weft run` asks before it starts the app. A viewer or admin reads any
// service's; a join token only its own service's (403 otherwise).
import { resolvePlugins } from '../config/plugin-config';
import type { Store } from '../store/store';
import type { ApiServer } from './api-server';
import { requireOwnService } from './access';
import { HttpError } from './http-error';

export function installPluginsApi(api: ApiServer, store: Store): void {
  api.route('GET', /^\/api\/v1\/plugins$/, 'reader', (_req, _p, url, caller) => {
    const service = url.searchParams.get('service');
    const namespace = url.searchParams.get('namespace') || 'default';
    if (!service) throw new HttpError(400, 'which service? GET /api/v1/plugins?service=<name>[&namespace=<ns>]', { code: 'E_MISSING_SERVICE' });
    requireOwnService(caller.principal, namespace, service, 'read plugins');
    const svc = store.get('Service', namespace, service);
    if (!svc) throw new HttpError(404, `Service ${namespace}/${service} not found`);
    return { service, namespace, items: resolvePlugins(store.list('Plugin').map((i) => i.resource), svc.resource) };
  });
}
