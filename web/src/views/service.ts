// #/service/<ns>/<name> — one service: its signals over time, the hosts its
// instances run on, endpoints (their monitor's verdict, their plugins' restarts)
// and their health in callers' sidecars, calls,
// routes, policies, recent errors.
import { getJsonAtMost, type EdgeSignals, type Instance } from '../api';
import { signalCharts } from '../charts';
import { fmt, h, short, table } from '../dom';
import { securityBadge } from '../security';
import { app, edgeHref, route, series, state, warmingUp } from '../state';
import { yaml } from '../yaml';

export const serviceKey = (name: string) => `service:${name}`;

export async function renderService(ns: string, name: string): Promise<void> {
  const key = `${name}.${ns}`;
  let d: any;
  try {
    [d] = await Promise.all([
      getJsonAtMost(`api/v1/services/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`, 5000),
      series.open(serviceKey(key), `api/v1/history?minutes=15&service=${encodeURIComponent(key)}`),
    ]);
  } catch (err) {
    return void app.replaceChildren(h('p', { class: 'bad' }, String(err)));
  }
  const [page, routeNs, routeName] = route();
  if (page !== 'service' || routeNs !== ns || routeName !== name) return; // navigated away meanwhile
  const t = state.topology;
  const live = t?.services.find((s) => s.name === key);
  const sig = warmingUp(t) ? undefined : (live ?? d.signals);
  // Edges from the live topology carry their security; the service detail's are the same calls.
  const edges: EdgeSignals[] = t ? t.edges.filter((e) => e.source === key || e.destination === key) : [...d.inbound, ...d.outbound];
  const instances: Instance[] | undefined = live?.instances ?? d.signals?.instances;
  const health_ = (e: any) => {
    const view = (d.endpointHealth as any[]).filter((v) => v.address === `${e.address}:${Object.values(e.ports)[0]}`);
    const ejected = view.filter((v) => v.outlier?.ejected).map((v) => `ejected by ${v.caller ?? v.node}`);
    const hc = view.filter((v) => v.healthCheck && v.healthCheck.state !== 'healthy').map((v) => `health check ${v.healthCheck.state} (${v.caller ?? v.node})`);
    return [...ejected, ...hc].join('; ') || (view.length ? 'in load balancing' : '—');
  };
  // Each plugin of the instance with its restarts, flagged when it restarted or is not running.
  const plugins_ = (list: any[] | undefined) =>
    list?.length
      ? h(
          'span',
          { class: 'plugins' },
          ...list.map((p) =>
            h('span', { class: `plugin ${p.state !== 'running' ? 'bad' : p.restarts > 0 ? 'warn' : 'good'}`, title: p.lastExit ? `last exit: ${p.lastExit}` : undefined }, `${p.name} ${p.restarts}↻${p.state === 'running' ? '' : ` ${p.state}`} `),
          ),
        )
      : '—';
  const block = (title: string, spec: unknown) => h('details', { open: '' }, h('summary', {}, title), h('pre', { class: 'yaml' }, yaml(spec)));
  app.replaceChildren(
    h('h1', {}, key),
    h('p', { class: 'warn' }, d.declared ? '' : 'No Service resource declares it.'),
    sig
      ? h('p', {}, `${fmt.rps(sig.rps)} req/s · success ${fmt.pct(sig.successRate)} · p50 ${fmt.ms(sig.p50Ms)} · p99 ${fmt.ms(sig.p99Ms)}`)
      : h('p', { class: 'warn', id: 'warming-up' }, 'Warming up: no window of signals yet.'),
    h('h2', {}, 'Last 15 minutes'),
    signalCharts(series.points, series.stepSeconds),
    h('h2', {}, 'Instances'),
    instances?.length
      ? table(
          ['Instance', 'Host', 'Hostname', 'Replica'],
          instances.map((i) => [i.nodeId, i.host, i.hostname ?? '—', i.replica]),
          { id: 'instances-table' },
        )
      : h('p', { class: 'muted', id: 'instances-table' }, `${live?.proxies ?? 0} sidecar(s) connected; the control plane does not say where they run.`),
    h('h2', {}, 'Endpoints'),
    table(
      ['Address', 'Ports', 'Zone', 'Registry health', 'In callers’ sidecars', 'Plugins', 'Origin'],
      (d.endpoints as any[]).map((e) => [
        e.address,
        JSON.stringify(e.ports),
        e.zone ?? '',
        // An instance its monitor plugin marked unhealthy says why.
        h('span', { class: e.health === 'healthy' ? 'good' : 'bad', title: e.healthReason }, e.healthReason ? `${e.health}: ${e.healthReason}` : e.health),
        health_(e),
        plugins_(e.plugins),
        e.origin,
      ]),
      { id: 'endpoints-table' },
    ),
    h('h2', {}, 'Calls'),
    table(
      ['From', 'To', 'Transport', 'Req/s', 'Success', 'p99', ''],
      edges.map((e) => [short(e.source), short(e.destination), securityBadge(e), fmt.rps(e.rps), fmt.pct(e.successRate), fmt.ms(e.p99Ms), h('a', { href: edgeHref(e.source, e.destination) }, 'charts & config')]),
      { id: 'calls-table' },
    ),
    h('h2', {}, 'Routes'),
    d.routes.length ? h('div', {}, ...d.routes.map((r: any) => block(`${r.kind} ${r.namespace}/${r.name}`, r.spec))) : h('p', { class: 'muted' }, 'No route: callers reach it directly.'),
    h('h2', {}, 'Policies'),
    d.policies.length ? h('div', {}, ...d.policies.map((p: any) => block(`TrafficPolicy ${p.namespace}/${p.name}`, p.spec))) : h('p', { class: 'muted' }, 'No TrafficPolicy targets it.'),
    h('h2', {}, 'Its proxies'),
    table(['Node', 'Sync'], (d.proxies as any[]).map((p) => [p.nodeId, p.types.map((t: any) => `${t.type} ${t.state}`).join(' · ')])),
    h('h2', {}, 'Recent errors'),
    d.recentErrors.length
      ? table(
          ['Time', 'Direction', 'Request', 'Status', 'Flags', 'Duration', 'Host'],
          (d.recentErrors as any[]).map((r) => [new Date(r.time).toLocaleTimeString(), r.direction, `${r.method} ${r.authority ?? ''}${r.path ?? ''}`, r.status || '—', r.flags ?? '', fmt.ms(r.durationMs), r.host ?? '—']),
        )
      : h('p', { class: 'muted' }, 'None recorded by its sidecars.'),
  );
}
