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
export async function fetchPlugins(q: PluginQuery): Promise<PluginSet> {
  return fetchPluginSet(q, undefined);
}

/** The service's plugins and the version of that answer (undefined when the service is unknown). */
export interface PluginSet {
  version?: string;
  items: ResolvedPlugin[];
}

/** How long the API holds a watch open; the request's own deadline is longer. */
const WATCH_WAIT_S = 30;

async function fetchPluginSet(q: PluginQuery, since: string | undefined): Promise<PluginSet> {
  const watch = since !== undefined ? `&version=${encodeURIComponent(since)}&wait=${WATCH_WAIT_S}s` : '';
  const path = `/api/v1/plugins?service=${encodeURIComponent(q.service)}&namespace=${encodeURIComponent(q.namespace)}${watch}`;
  let res;
  try {
    res = await apiRequestAny(ControlPlaneAddresses.api(q.api), 'GET', path, { token: q.token, ca: q.ca, timeoutMs: since !== undefined ? (WATCH_WAIT_S + 15) * 1000 : 10_000 });
  } catch (err) {
    throw new PluginFetchError(`cannot fetch the plugins of ${q.namespace}/${q.service}: ${(err as Error).message}`);
  }
  if (res.status === 404) {
    q.log('debug', 'no plugins', { service: q.service, answer: res.text.slice(0, 200) });
    return { items: [] };
  }
  if (res.status !== 200) throw new PluginFetchError(`cannot fetch the plugins of ${q.namespace}/${q.service}: HTTP ${res.status} ${res.text.slice(0, 500)}`);
  return JSON.parse(res.text) as PluginSet;
}

/**
 * Follows the service's plugins from `version` on: each answer that differs
 * is handed to `onChange`. A failed ask is retried after a wait that doubles
 * up to 30 s (the plugins keep running as they are). Returns a stop function.
 */
export function watchPlugins(q: PluginQuery, version: string | undefined, onChange: (set: PluginSet) => void): () => void {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let held = version;
  const sleep = (ms: number) => new Promise<void>((r) => (timer = setTimeout(r, ms)));
  void (async () => {
    let failures = 0;
    while (!stopped) {
      try {
        // An unknown service (no version) has nothing to watch: ask again after a while.
        if (held === undefined) await sleep(WATCH_WAIT_S * 1000);
        if (stopped) return;
        const set = await fetchPluginSet(q, held);
        failures = 0;
        if (stopped) return;
        if (set.version !== held) {
          held = set.version;
          onChange(set);
        }
      } catch (err) {
        failures++;
        const waitMs = Math.min(30_000, 1000 * 2 ** Math.min(failures - 1, 5));
        q.log('warn', `cannot follow plugin changes; asking again in ${waitMs / 1000} s (the plugins run on as they are)`, { error: (err as Error).message });
        await sleep(waitMs);
      }
    }
  })();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
