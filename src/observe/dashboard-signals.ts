// The dashboard's routes for signals over time and for one edge, on the
// control plane's API port (installed by dashboard-api.ts):
//
//   GET /api/v1/history?minutes=15                        every service and edge, column-wise
//   GET /api/v1/history?minutes=15&service=<name.ns>      one service's series
//   GET /api/v1/history?minutes=15&source=&destination=   one edge's series
//   GET /api/v1/edges/<source>/<destination>              one edge: signals, security, and the
//                                                          routes and policies that apply
//
// and the decorator that adds each edge's mTLS state to the topology the
// dashboard reads (edge-security.ts).
import { HttpError } from '../api/http-error';
import type { ApiServer } from '../api/api-server';
import type { MeshView } from '../translate/types';
import { edgeConfig } from './edge-config';
import { withEdgeSecurity } from './edge-security';
import type { MeshObserver } from './mesh-observer';
import { SignalHistory } from './signal-history';
import type { Topology } from './topology';

export interface DashboardSignals {
  history: SignalHistory;
  /** The topology with each edge's security (a new object; the observer's stays as it is). */
  decorate(t: Topology): Topology;
}

export function installDashboardSignals(api: ApiServer, deps: { observer: MeshObserver; view(): MeshView }): DashboardSignals {
  // 15 minutes, one sample every 2 s (the observer ticks as often or more).
  const history = new SignalHistory({ capacity: 450, stepSeconds: 2 });
  deps.observer.onTopology((t) => history.add(t));
  // Every subscriber of the event stream gets the same topology object per tick: decorate it once.
  const decorated = new WeakMap<Topology, Topology>();
  const decorate = (t: Topology): Topology => {
    let d = decorated.get(t);
    if (!d) decorated.set(t, (d = withEdgeSecurity(deps.view(), t)));
    return d;
  };

  api.route('GET', /^\/api\/v1\/history$/, 'viewer', (_req, _p, url) => {
    const q = url.searchParams;
    const raw = q.get('minutes') ?? '15';
    const minutes = Number(raw);
    if (!(minutes > 0) || minutes > 15) throw new HttpError(400, `minutes must be a number in (0, 15], not ${JSON.stringify(raw)}`);
    const since = Date.now() - minutes * 60_000;
    const service = q.get('service');
    const source = q.get('source');
    const destination = q.get('destination');
    if (service && (source || destination)) throw new HttpError(400, 'ask for a service or an edge (source and destination), not both');
    if (service) return history.service(service, since);
    if (source || destination) {
      if (!source || !destination) throw new HttpError(400, 'an edge needs both source and destination (<name>.<namespace>)');
      return history.edge(source, destination, since);
    }
    return history.all(since);
  });
  api.route('GET', /^\/api\/v1\/edges\/([^/]+)\/([^/]+)$/, 'viewer', (_req, [source, destination]) =>
    edgeConfig(deps.view(), source, destination, deps.observer.topology()),
  );
  return { history, decorate };
}
