// The topology graph in SVG: services as boxes laid out in columns by call
// depth (callers left of what they call), calls as arrows labelled with their
// golden signals and a lock for their transport (mTLS closed, plaintext
// open). Layout is recomputed on every update; it is cheap at mesh sizes a
// screen can show.
import type { Topology } from './api';
import { fmt, health, s, short } from './dom';
import { lockGlyph } from './security';

const BOX_W = 170;
const BOX_H = 72;
const COL = 380;
const ROW = 112;

export interface GraphEvents {
  service(name: string): void;
  edge(source: string, destination: string): void;
}

export function topologyGraph(t: Topology, on: GraphEvents): SVGElement {
  const warming = !(t.windowSeconds > 0);
  const names = t.services.map((x) => x.name);
  const depth = new Map(names.map((n) => [n, 0]));
  // Longest path from the callers; bounded passes so a cycle cannot loop.
  for (let pass = 0; pass < names.length; pass++) {
    let changed = false;
    for (const e of t.edges) {
      const d = (depth.get(e.source) ?? 0) + 1;
      if (e.source !== e.destination && d > (depth.get(e.destination) ?? 0) && d < names.length) {
        depth.set(e.destination, d);
        changed = true;
      }
    }
    if (!changed) break;
  }
  const columns = new Map<number, string[]>();
  for (const n of names) {
    const d = depth.get(n) ?? 0;
    columns.set(d, [...(columns.get(d) ?? []), n]);
  }
  const pos = new Map<string, { x: number; y: number }>();
  let maxRows = 1;
  for (const [d, list] of columns) {
    maxRows = Math.max(maxRows, list.length);
    list.forEach((n, i) => pos.set(n, { x: 20 + d * COL, y: 30 + i * ROW }));
  }
  const width = 40 + Math.max(...[...columns.keys(), 0]) * COL + BOX_W + 20;
  const height = 60 + maxRows * ROW;
  const svg = s('svg', { id: 'topology', viewBox: `0 0 ${width} ${height}`, width, height, role: 'img', 'aria-label': 'service topology' });
  svg.append(
    s('defs', {}, s('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' }, s('path', { d: 'M 0 0 L 10 5 L 0 10 z', class: 'arrowhead' }))),
  );

  for (const e of t.edges) {
    const a = pos.get(e.source);
    const b = pos.get(e.destination);
    if (!a || !b) continue;
    const x1 = a.x + BOX_W;
    const y1 = a.y + BOX_H / 2;
    const x2 = b.x;
    const y2 = b.y + BOX_H / 2;
    const bend = Math.max(40, Math.abs(x2 - x1) / 2);
    const mx = (x1 + x2) / 2;
    const my = (y1 + y2) / 2;
    const d = `M ${x1} ${y1} C ${x1 + bend} ${y1}, ${x2 - bend} ${y2}, ${x2} ${y2}`;
    const sec = e.security ? ` ${e.security}` : '';
    const g = s('g', { class: `edge ${warming ? 'idle' : health(e.successRate)}${sec}`, 'data-edge': `${e.source}->${e.destination}`, 'data-security': e.security, tabindex: 0 });
    g.append(
      s('path', { d, 'marker-end': 'url(#arrow)' }),
      // A wide transparent twin of the curve: a click near the line counts.
      s('path', { d, class: 'hit' }),
      s('text', { x: mx, y: my - 8, 'text-anchor': 'middle', class: 'edge-label' }, warming ? 'warming up' : `${fmt.rps(e.rps)} rps · ${fmt.pct(e.successRate)} · p99 ${fmt.ms(e.p99Ms)}`),
      s(
        'title',
        {},
        `${short(e.source)} → ${short(e.destination)}\n${fmt.rps(e.rps)} req/s, success ${fmt.pct(e.successRate)}, p50 ${fmt.ms(e.p50Ms)}, p99 ${fmt.ms(e.p99Ms)}` +
          (e.security ? `\n${e.security === 'mtls' ? 'mutual TLS' : 'PLAINTEXT'}: ${e.securityReason ?? ''}` : ''),
      ),
    );
    if (e.security) g.append(lockGlyph(mx - 6, my - 4, e.security === 'plaintext'));
    g.addEventListener('click', () => on.edge(e.source, e.destination));
    svg.append(g);
  }

  for (const svc of t.services) {
    const p = pos.get(svc.name)!;
    const g = s('g', { class: `service ${health(svc.successRate)}`, 'data-service': svc.name, transform: `translate(${p.x},${p.y})`, tabindex: 0 });
    const instances = svc.instances;
    const hosts = instances ? new Set(instances.map((i) => i.host)).size : 0;
    g.append(
      s('rect', { width: BOX_W, height: BOX_H, rx: 8 }),
      s('text', { x: 12, y: 22, class: 'service-name' }, short(svc.name)),
      s('text', { x: 12, y: 42, class: 'service-signals' }, warming ? 'warming up' : `${fmt.rps(svc.rps)} rps · ${fmt.pct(svc.successRate)} · p99 ${fmt.ms(svc.p99Ms)}`),
      s(
        'text',
        { x: 12, y: 60, class: 'service-instances' },
        instances?.length
          ? `${instances.length} instance${instances.length === 1 ? '' : 's'} · ${hosts} host${hosts === 1 ? '' : 's'}`
          : svc.proxies
            ? `${svc.proxies} sidecar${svc.proxies === 1 ? '' : 's'}`
            : 'no sidecar',
      ),
      s('title', {}, `${svc.name}: ${svc.proxies} proxy(ies)${instances ? `\non ${[...new Set(instances.map((i) => i.hostname ?? i.host))].join(', ')}` : ''}`),
    );
    g.addEventListener('click', () => on.service(svc.name));
    svg.append(g);
  }
  return svg;
}
