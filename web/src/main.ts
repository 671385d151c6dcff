// The weft dashboard: a single page with hash routes
//   #/                               live topology (services, calls with golden signals and mTLS locks)
//   #/service/<ns>/<name>            one service: charts, instances and hosts, endpoints, routes, policies
//   #/edge/<source>/<destination>    one call: charts, mTLS state, the config that applies to it
//   #/errors                         recent failed requests across hosts
//   #/config                         resources and validation errors
//   #/proxies                        connected proxies and their sync state
// Live data comes over Server-Sent Events (/api/v1/events); pages re-render
// from it without reloading, and the open chart gains a point per tick.
import './style.css';
import { connectLive } from './api';
import { h } from './dom';
import { route, series, state } from './state';
import { renderConfig, renderProxies } from './views/config';
import { edgeKey, renderEdge } from './views/edge';
import { renderErrors } from './views/errors';
import { renderService, serviceKey } from './views/service';
import { renderTopology } from './views/topology';

const banner = document.getElementById('errors-banner')!;
const live = document.getElementById('live')!;

function render(): void {
  const [page, ...rest] = route();
  document.querySelectorAll('nav a').forEach((a) => a.classList.toggle('active', a.getAttribute('href') === `#/${page ?? ''}`));
  if (page !== 'service' && page !== 'edge') series.close();
  if (page === 'service') void renderService(rest[0], rest[1]);
  else if (page === 'edge') void renderEdge(rest[0], rest[1]);
  else if (page === 'errors') void renderErrors();
  else if (page === 'config') void renderConfig();
  else if (page === 'proxies') renderProxies();
  else renderTopology();
}

function renderBanner(): void {
  const errs = [...(state.errors?.config ?? []), ...(state.errors?.snapshots ?? [])];
  banner.hidden = errs.length === 0;
  banner.replaceChildren(
    h('strong', {}, `${errs.length} config error(s) — the last good config keeps serving. `),
    h('a', { href: '#/config' }, 'details'),
    h('ul', {}, ...errs.slice(0, 5).map((e) => h('li', { class: 'config-error' }, e.message ?? JSON.stringify(e)))),
  );
}

/** The open chart's new point from a topology tick. */
function appendPoint(): void {
  const t = state.topology;
  const [page, a, b] = route();
  if (!t) return;
  if (page === 'service') {
    const name = `${b}.${a}`;
    series.append(serviceKey(name), t, t.services.find((s) => s.name === name));
  } else if (page === 'edge') {
    series.append(edgeKey(a, b), t, t.edges.find((e) => e.source === a && e.destination === b));
  }
}

connectLive(
  state,
  (what) => {
    if (what === 'errors') renderBanner();
    const page = route()[0];
    if (what === 'topology') appendPoint();
    // Topology-driven pages re-render with each tick (the errors view asks again for recent failures).
    if (what === 'topology' && (page === undefined || page === 'service' || page === 'edge' || page === 'errors')) render();
    if (what === 'errors' && page === 'config') render();
    if (what === 'nodes' && page === 'proxies') render();
  },
  (ok) => {
    live.textContent = ok ? '● live' : '○ reconnecting…';
    live.className = `live ${ok ? 'good' : 'warn'}`;
  },
);
window.addEventListener('hashchange', render);
render();
