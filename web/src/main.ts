// The weft dashboard: a single page with hash routes
//   #/                         live topology (services, calls, golden signals)
//   #/service/<ns>/<name>      one service: endpoints and health, routes, policies, recent errors
//   #/config                   resources and validation errors
//   #/proxies                  connected proxies and their sync state
// Live data comes over Server-Sent Events (/api/v1/events); pages re-render
// from it without reloading.
import './style.css';
import { connectLive, getJson, type LiveState, type NodeStatus } from './api';
import { fmt, h, health, short, table } from './dom';
import { topologyGraph } from './graph';

const state: LiveState = {};
const app = document.getElementById('app')!;
const banner = document.getElementById('errors-banner')!;
const live = document.getElementById('live')!;

function route(): string[] {
  return location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
}

function render(): void {
  const [page, ...rest] = route();
  document.querySelectorAll('nav a').forEach((a) => a.classList.toggle('active', a.getAttribute('href') === `#/${page ?? ''}`));
  if (page === 'service') void renderService(rest[0], rest[1]);
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

function renderTopology(): void {
  const t = state.topology;
  if (!t) return void app.replaceChildren(h('p', {}, 'Waiting for the first scrape…'));
  const services = table(
    ['Service', 'Proxies', 'Req/s', 'Success', 'p50', 'p99'],
    t.services.map((x) => [h('a', { href: `#/service/${x.namespace}/${x.name.split('.')[0]}` }, short(x.name)), x.proxies, fmt.rps(x.rps), h('span', { class: health(x.successRate) }, fmt.pct(x.successRate)), fmt.ms(x.p50Ms), fmt.ms(x.p99Ms)]),
    { id: 'services-table' },
  );
  const edges = table(
    ['From', 'To', 'Req/s', 'Success', 'p50', 'p99'],
    t.edges.map((e) => [short(e.source), short(e.destination), fmt.rps(e.rps), h('span', { class: health(e.successRate) }, fmt.pct(e.successRate)), fmt.ms(e.p50Ms), fmt.ms(e.p99Ms)]),
    { id: 'edges-table' },
  );
  app.replaceChildren(
    h('h1', {}, 'Topology'),
    h('p', { class: 'muted' }, `Signals over the last ${t.windowSeconds}s, updated ${new Date(t.at).toLocaleTimeString()}.`),
    h('div', { class: 'graph' }, topologyGraph(t, (name) => (location.hash = `#/service/${name.split('.').slice(1).join('.')}/${name.split('.')[0]}`))),
    h('div', { class: 'cols' }, h('section', {}, h('h2', {}, 'Services'), services), h('section', {}, h('h2', {}, 'Calls'), edges)),
    h('p', { class: 'warn' }, t.unreachable.length ? `Sidecars not scraped: ${t.unreachable.map((u) => `${u.nodeId} (${u.reason})`).join(', ')}` : ''),
  );
}

function pre(v: unknown): HTMLElement {
  return h('pre', {}, JSON.stringify(v, null, 2));
}

async function renderService(ns: string, name: string): Promise<void> {
  let d: any;
  try {
    d = await getJson(`api/v1/services/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`);
  } catch (err) {
    return void app.replaceChildren(h('p', { class: 'bad' }, String(err)));
  }
  if (route()[0] !== 'service') return; // navigated away meanwhile
  const sig = d.signals ?? {};
  const health_ = (e: any) => {
    const view = (d.endpointHealth as any[]).filter((v) => v.address === `${e.address}:${Object.values(e.ports)[0]}`);
    const ejected = view.filter((v) => v.outlier?.ejected).map((v) => `ejected by ${v.caller ?? v.node}`);
    const hc = view.filter((v) => v.healthCheck && v.healthCheck.state !== 'healthy').map((v) => `health check ${v.healthCheck.state} (${v.caller ?? v.node})`);
    return [...ejected, ...hc].join('; ') || (view.length ? 'in load balancing' : '—');
  };
  app.replaceChildren(
    h('h1', {}, `${name}.${ns}`),
    h('p', { class: 'warn' }, d.declared ? '' : 'No Service resource declares it.'),
    h('p', {}, `${fmt.rps(sig.rps)} req/s · success ${fmt.pct(sig.successRate)} · p50 ${fmt.ms(sig.p50Ms)} · p99 ${fmt.ms(sig.p99Ms)}`),
    h('h2', {}, 'Endpoints'),
    table(
      ['Address', 'Ports', 'Zone', 'Registry health', 'In callers’ sidecars', 'Origin'],
      (d.endpoints as any[]).map((e) => [e.address, JSON.stringify(e.ports), e.zone ?? '', h('span', { class: e.health === 'healthy' ? 'good' : 'bad' }, e.health), health_(e), e.origin]),
      { id: 'endpoints-table' },
    ),
    h('h2', {}, 'Calls'),
    table(
      ['From', 'To', 'Req/s', 'Success', 'p99'],
      [...d.inbound, ...d.outbound].map((e: any) => [short(e.source), short(e.destination), fmt.rps(e.rps), fmt.pct(e.successRate), fmt.ms(e.p99Ms)]),
    ),
    h('h2', {}, 'Routes'),
    d.routes.length ? h('div', {}, ...d.routes.map((r: any) => h('details', { open: '' }, h('summary', {}, `${r.kind} ${r.namespace}/${r.name}`), pre(r.spec)))) : h('p', { class: 'muted' }, 'No route: callers reach it directly.'),
    h('h2', {}, 'Policies'),
    d.policies.length ? h('div', {}, ...d.policies.map((p: any) => h('details', { open: '' }, h('summary', {}, `TrafficPolicy ${p.namespace}/${p.name}`), pre(p.spec)))) : h('p', { class: 'muted' }, 'No TrafficPolicy targets it.'),
    h('h2', {}, 'Its proxies'),
    table(['Node', 'Sync'], (d.proxies as any[]).map((p) => [p.nodeId, p.types.map((t: any) => `${t.type} ${t.state}`).join(' · ')])),
    h('h2', {}, 'Recent errors'),
    d.recentErrors.length
      ? table(
          ['Time', 'Direction', 'Request', 'Status', 'Flags', 'Duration'],
          (d.recentErrors as any[]).map((r) => [r.time, r.direction, `${r.method} ${r.authority ?? ''}${r.path ?? ''}`, r.status ?? '—', r.flags ?? '', fmt.ms(r.durationMs)]),
        )
      : h('p', { class: 'muted' }, 'None recorded by its sidecars.'),
  );
}

async function renderConfig(): Promise<void> {
  let resources: any[] = [];
  try {
    resources = (await getJson<{ items: any[] }>('api/v1/resources')).items;
  } catch {
    // the errors still show
  }
  if (route()[0] !== 'config') return;
  const errs = state.errors ?? { config: [], snapshots: [] };
  app.replaceChildren(
    h('h1', {}, 'Config'),
    h('h2', {}, 'Validation errors'),
    errs.config.length + errs.snapshots.length === 0
      ? h('p', { class: 'good' }, 'None: the config is valid.')
      : table(
          ['Where', 'Field', 'Message'],
          [
            ...errs.config.map((e) => [`${e.file ?? ''}${e.document !== undefined ? ` #${e.document}` : ''}`, String(e.path ?? e.field ?? ''), h('span', { class: 'bad config-error' }, e.message ?? '')]),
            ...errs.snapshots.map((e) => ['snapshot', '', h('span', { class: 'bad config-error' }, e.message ?? JSON.stringify(e))]),
          ],
          { id: 'config-errors' },
        ),
    ...((errs.warnings ?? []).length
      ? [h('h2', {}, 'Warnings: accepted, not in effect'), h('ul', { id: 'config-warnings' }, ...(errs.warnings ?? []).map((w) => h('li', { class: 'warn' }, w.message)))]
      : []),
    h('h2', {}, 'Resources'),
    table(
      ['Kind', 'Namespace', 'Name', 'Source', 'Revision'],
      resources.map((r) => [r.kind, r.metadata.namespace, r.metadata.name, r.status?.source?.file ?? r.status?.source ?? '', r.status?.revision ?? '']),
    ),
  );
}

function syncCell(t: NodeStatus['types'][number] | undefined): HTMLElement {
  if (!t) return h('span', { class: 'muted' }, '—');
  const cls = t.state === 'SYNCED' ? 'good' : t.state === 'NACKED' ? 'bad' : 'warn';
  return h('span', { class: cls, title: t.lastNack?.message ?? '' }, `${t.state}${t.ackedVersion ? ` ${t.ackedVersion}` : ''}`);
}

function renderProxies(): void {
  const nodes = state.nodes ?? [];
  const types = ['CDS', 'EDS', 'LDS', 'RDS'];
  app.replaceChildren(
    h('h1', {}, 'Proxies'),
    table(
      ['Node', 'Service', 'Role', 'Mode', 'Peer', ...types],
      nodes.map((n) => [n.nodeId, n.node.service ? `${n.node.service}.${n.node.namespace}` : '—', n.node.role, n.mode, n.peer, ...types.map((t) => syncCell(n.types.find((x) => x.type === t)))]),
      { id: 'proxies-table' },
    ),
  );
}

connectLive(
  state,
  (what) => {
    if (what === 'errors') renderBanner();
    const page = route()[0];
    // The service page is fetched on navigation and refreshed with each topology tick.
    if (what === 'topology' && (page === undefined || page === 'service')) render();
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
