// #/ — the live topology: the graph, and services and calls as tables.
import { fmt, h, health, short, table } from '../dom';
import { topologyGraph } from '../graph';
import { securityBadge } from '../security';
import { app, edgeHref, noWindowYet, serviceHref, state, warmingUp } from '../state';

export function renderTopology(): void {
  const t = state.topology;
  if (!t) return void app.replaceChildren(h('p', {}, 'Waiting for the first scrape…'));
  const warming = warmingUp(t);
  // Before the first window there are no rates: dashes, not zeros.
  const sig = <T>(v: T) => (warming ? undefined : v);
  const services = table(
    ['Service', 'Instances', 'Req/s', 'Success', 'p50', 'p99'],
    t.services.map((x) => {
      const inst = x.instances;
      return [
        h('a', { href: serviceHref(x.name) }, short(x.name)),
        inst?.length ? `${inst.length} on ${new Set(inst.map((i) => i.host)).size} host(s)` : x.proxies || h('span', { class: 'muted' }, 'no sidecar'),
        fmt.rps(sig(x.rps)),
        h('span', { class: health(sig(x.successRate)) }, fmt.pct(sig(x.successRate))),
        fmt.ms(sig(x.p50Ms)),
        fmt.ms(sig(x.p99Ms)),
      ];
    }),
    { id: 'services-table' },
  );
  const edges = table(
    ['From', 'To', 'Transport', 'Req/s', 'Success', 'p50', 'p99'],
    t.edges.map((e) => [
      short(e.source),
      h('a', { href: edgeHref(e.source, e.destination) }, short(e.destination)),
      securityBadge(e),
      fmt.rps(sig(e.rps)),
      h('span', { class: health(sig(e.successRate)) }, fmt.pct(sig(e.successRate))),
      fmt.ms(sig(e.p50Ms)),
      fmt.ms(sig(e.p99Ms)),
    ]),
    { id: 'edges-table' },
  );
  app.replaceChildren(
    h('h1', {}, 'Topology'),
    warming
      ? h('p', { class: 'warn', id: 'warming-up' }, noWindowYet())
      : h('p', { class: 'muted', id: 'window' }, `Signals over the last ${t.windowSeconds}s, updated ${new Date(t.at).toLocaleTimeString()}. Click a service or a call for its charts and config.`),
    h(
      'div',
      { class: 'graph' },
      topologyGraph(t, {
        service: (name) => (location.hash = serviceHref(name)),
        edge: (source, destination) => (location.hash = edgeHref(source, destination)),
      }),
    ),
    h('div', { class: 'cols' }, h('section', {}, h('h2', {}, 'Services'), services), h('section', {}, h('h2', {}, 'Calls'), edges)),
    h('p', { class: 'warn' }, t.unreachable.length ? `Sidecars not scraped: ${t.unreachable.map((u) => `${u.nodeId} (${u.reason})`).join(', ')}` : ''),
  );
}
