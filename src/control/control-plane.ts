// The control plane as one unit: store → registry → translator → snapshot
// cache → xDS server, plus the admin API. Every store or registry change
// rebuilds the mesh view and asks the cache to refresh the live node groups.
import * as path from 'node:path';
import { ApiServer, TypedBody } from '../api/api-server';
import { installDashboard } from '../observe/dashboard-api';
import { ControlMetrics } from './control-metrics';
import { jsonLogger, type Logger } from '../observe/log';
import type { MeshObserver } from '../observe/mesh-observer';
import { Registry } from '../registry/registry';
import { EmbeddedStore } from '../store/embedded-store';
import type { Store } from '../store/store';
import { translate } from '../translate/translate';
import type { MeshView, NodeInfo } from '../translate/types';
import { SnapshotCache } from '../xds/cache/snapshot-cache';
import { XdsServer } from '../xds/server/ads-server';
import { buildMeshView } from './mesh-view';
import { GlobalRateLimiter } from './rate-limit-service';

export interface ControlPlaneOptions {
  /** YAML config directory, loaded and watched. */
  configDir?: string;
  /** Persistent state (API-applied resources, registrations). */
  dataDir?: string;
  /** Port of the xDS server; 0 picks a free one. */
  xdsPort?: number;
  /** Port of the admin API; 0 picks a free one. */
  apiPort?: number;
  host?: string;
  log?: Logger;
  /** Interval of the registry's lease sweep. */
  sweepIntervalMs?: number;
  /** How often the dashboard's aggregator scrapes the sidecars' metrics (default 2 s). */
  observeIntervalMs?: number;
}

export interface ControlPlane {
  xdsPort: number;
  apiPort: number;
  store: Store;
  registry: Registry;
  cache: SnapshotCache;
  xds: XdsServer;
  api: ApiServer;
  rateLimiter: GlobalRateLimiter;
  observer: MeshObserver;
  close(): Promise<void>;
}

export async function startControlPlane(opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const log = opts.log ?? jsonLogger();
  const host = opts.host ?? '127.0.0.1';
  const dataDir = path.resolve(opts.dataDir ?? '.weft');
  const store = await EmbeddedStore.open({ configDir: opts.configDir, dataDir, log });
  const registry = new Registry({ store, dataDir, log, sweepIntervalMs: opts.sweepIntervalMs });

  // The view is rebuilt at most once per change burst and shared by every node group.
  let view: MeshView | undefined;
  const currentView = () => (view ??= buildMeshView(store, registry));
  const metrics = new ControlMetrics();
  const cache = new SnapshotCache({ generate: metrics.timed((node: NodeInfo) => translate(currentView(), node)), log });
  const invalidate = () => {
    view = undefined;
    cache.refresh();
  };
  const stopWatch = store.watch('*', invalidate);
  const stopRegistry = registry.onChange(invalidate);

  const xds = new XdsServer({ cache, log, onStatusChange: metrics.statusChanged, onNack: metrics.nacked });
  // Global rate limits: sidecars ask here, on the port they already reach for xDS.
  const rateLimiter = new GlobalRateLimiter(() => currentView().trafficPolicies);
  const rls = rateLimiter.service();
  xds.addService(rls.definition, rls.handlers);
  const api = new ApiServer({
    store,
    registry,
    nodes: () => xds.status(),
    snapshotErrors: () => cache.errors(),
    log,
  });
  const observer = installDashboard(api, {
    store,
    registry,
    nodes: () => xds.status(),
    errors: () => ({ config: store.configErrors().map((e) => e.toJSON()), snapshots: cache.errors() }),
    view: currentView,
    intervalMs: opts.observeIntervalMs,
  });
  api.route('GET', /^\/metrics$/, () => new TypedBody('text/plain; version=0.0.4; charset=utf-8', metrics.render({ nodes: xds.status(), store, cache })));
  let xdsPort: number;
  let apiPort: number;
  try {
    xdsPort = await xds.listen(opts.xdsPort ?? 15010, host);
    apiPort = await api.listen(opts.apiPort ?? 15000, host);
  } catch (err) {
    observer.stop();
    await xds.close().catch(() => {});
    await registry.close();
    await store.close();
    throw err;
  }
  log('info', 'control plane started', { xds: `${host}:${xdsPort}`, api: `http://${host}:${apiPort}`, configDir: opts.configDir, dataDir });

  return {
    xdsPort,
    apiPort,
    store,
    registry,
    cache,
    xds,
    api,
    rateLimiter,
    observer,
    async close() {
      observer.stop();
      stopWatch();
      stopRegistry();
      await Promise.all([api.close(), xds.close()]);
      await registry.close();
      await store.close();
    },
  };
}
