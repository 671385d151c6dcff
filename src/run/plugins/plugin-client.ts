// `weft run` asks the control plane for its service's plugins, config already
// resolved for the service (GET /api/v1/plugins, src/api/plugins-api.ts), with
// the same join token and trust bundle as its registration.
import { apiRequestAny } from '../../api/api-request';
import type { ResolvedPlugin } from '../../config/plugin-config';
import type { Logger } from '../../observe/log';
import { ControlPlaneAddresses } from '../../xds/client/control-plane-addresses';

export class PluginFetchError extends Error {
  readonly code = 'E_PLUGINS_UNAVAILABLE';
}

export interface PluginQuery {
  api: string;
  service: string;
  namespace: string;
  token?: string;
  ca?: string;
  log: Logger;
}

/**
 * The service's plugins. A control plane without the route (an older one) or
 * without the Service yet means none; an unreachable API or a refused
 * credential is an error: an init plugin silently skipped (a restore, a
 * migration) would be worse than a unit that does not start.
 */
export async function fetchPlugins(q: PluginQuery): Promise<ResolvedPlugin[]> {
  const path = `/api/v1/plugins?service=${encodeURIComponent(q.service)}&namespace=${encodeURIComponent(q.namespace)}`;
  let res;
  try {
    res = await apiRequestAny(ControlPlaneAddresses.api(q.api), 'GET', path, { token: q.token, ca: q.ca, timeoutMs: 10_000 });
  } catch (err) {
    throw new PluginFetchError(`cannot fetch the plugins of ${q.namespace}/${q.service}: ${(err as Error).message}`);
  }
  if (res.status === 404) {
    q.log('debug', 'no plugins', { service: q.service, answer: res.text.slice(0, 200) });
    return [];
  }
  if (res.status !== 200) throw new PluginFetchError(`cannot fetch the plugins of ${q.namespace}/${q.service}: HTTP ${res.status} ${res.text.slice(0, 500)}`);
  return (JSON.parse(res.text) as { items: ResolvedPlugin[] }).items;
}
