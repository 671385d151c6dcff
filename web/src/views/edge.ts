// #/edge/<source>/<destination> — one call: its signals over time, whether
// it is mutual TLS and why, and the config that applies to it (routes,
// traffic policies, MeshTLS, authorization policies) as readable blocks.
import { getJsonAtMost, type ConfigBlock, type EdgeConfig } from '../api';
import { signalCharts } from '../charts';
import { fmt, h, short } from '../dom';
import { securityBadge } from '../security';
import { app, route, series, serviceHref, state, warmingUp } from '../state';
import { yaml } from '../yaml';

export const edgeKey = (source: string, destination: string) => `edge:${source} -> ${destination}`;

export async function renderEdge(source: string, destination: string): Promise<void> {
  let c: EdgeConfig;
  try {
    [c] = await Promise.all([
      getJsonAtMost<EdgeConfig>(`api/v1/edges/${encodeURIComponent(source)}/${encodeURIComponent(destination)}`, 5000),
      series.open(edgeKey(source, destination), `api/v1/history?minutes=15&source=${encodeURIComponent(source)}&destination=${encodeURIComponent(destination)}`),
    ]);
  } catch (err) {
    return void app.replaceChildren(h('p', { class: 'bad' }, String(err)));
  }
  const [page, s, d] = route();
  if (page !== 'edge' || s !== source || d !== destination) return;
  const t = state.topology;
  const sig = warmingUp(t) ? undefined : (t?.edges.find((e) => e.source === source && e.destination === destination) ?? c.signals);
  const security = sig?.security ? sig : c.security;
  const section = (title: string, id: string, blocks: ConfigBlock[], none: string) => [
    h('h2', {}, title),
    blocks.length
      ? h(
          'div',
          { id, class: 'config-blocks' },
          ...blocks.map((b) =>
            h(
              'details',
              { open: '', class: 'config-block', 'data-kind': b.kind, 'data-name': b.name },
              h('summary', {}, h('strong', {}, `${b.kind} ${b.namespace}/${b.name}`), h('span', { class: 'muted' }, ` — ${b.why}`)),
              h('pre', { class: 'yaml' }, yaml(b.spec)),
            ),
          ),
        )
      : h('p', { class: 'muted', id }, none),
  ];
  app.replaceChildren(
    h('h1', { id: 'edge-title' }, h('a', { href: serviceHref(source) }, short(source)), ' → ', h('a', { href: serviceHref(destination) }, short(destination))),
    h('p', { id: 'edge-security' }, securityBadge(security), security?.securityReason ? h('span', { class: 'muted' }, ` — ${security.securityReason}`) : null),
    sig
      ? h('p', {}, `${fmt.rps(sig.rps)} req/s · success ${fmt.pct(sig.successRate)} · p50 ${fmt.ms(sig.p50Ms)} · p99 ${fmt.ms(sig.p99Ms)}`)
      : h('p', { class: 'muted' }, warmingUp(t) ? 'Warming up: no window of signals yet.' : 'No traffic on this call in the current window.'),
    h('h2', {}, 'Last 15 minutes'),
    signalCharts(series.points, series.stepSeconds),
    ...section('Routes', 'edge-routes', c.routes, `No route: ${short(source)} reaches ${short(destination)} directly.`),
    ...section('Traffic policies', 'edge-policies', c.trafficPolicies, 'No TrafficPolicy targets the destination.'),
    ...section('MeshTLS', 'edge-meshtls', c.meshTls, 'No MeshTLS applies: permissive (mTLS and plaintext accepted).'),
    ...section('Authorization', 'edge-authz', c.authorizationPolicies, 'No AuthorizationPolicy applies: every caller is allowed.'),
  );
}
