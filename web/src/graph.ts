// The topology graph in SVG: services as boxes laid out in columns by call
// depth (callers left of what they call), calls as arrows labelled with their
// golden signals. Layout is recomputed on every update; it is cheap at mesh
// sizes a screen can show.
import type { Topology } from './api';
import { fmt, health, s, short } from './dom';

const BOX_W = 170;
const BOX_H = 58;
const COL = 380;
const ROW = 100;

export function topologyGraph(t: Topology, onSelect: (service: string) => void): SVGElement {
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
    const g = s('g', { class: `edge ${health(e.successRate)}`, 'data-edge': `${e.source}->${e.destination}` });
    g.append(
      s('path', { d: `M ${x1} ${y1} C ${x1 + bend} ${y1}, ${x2 - bend} ${y2}, ${x2} ${y2}`, 'marker-end': 'url(#arrow)' }),
      s('text', { x: (x1 + x2) / 2, y: (y1 + y2) / 2 - 6, 'text-anchor': 'middle', class: 'edge-label' }, `${fmt.rps(e.rps)} rps · ${fmt.pct(e.successRate)} · p99 ${fmt.ms(e.p99Ms)}`),
      s('title', {}, `${short(e.source)} → ${short(e.destination)}\n${fmt.rps(e.rps)} req/s, success ${fmt.pct(e.successRate)}, p50 ${fmt.ms(e.p50Ms)}, p99 ${fmt.ms(e.p99Ms)}`),
    );
    svg.append(g);
  }

  for (const svc of t.services) {
    const p = pos.get(svc.name)!;
    const g = s('g', { class: `service ${health(svc.successRate)}`, 'data-service': svc.name, transform: `translate(${p.x},${p.y})`, tabindex: 0 });
    g.append(
      s('rect', { width: BOX_W, height: BOX_H, rx: 8 }),
      s('text', { x: 12, y: 22, class: 'service-name' }, short(svc.name)),
      s('text', { x: 12, y: 42, class: 'service-signals' }, `${fmt.rps(svc.rps)} rps · ${fmt.pct(svc.successRate)} · p99 ${fmt.ms(svc.p99Ms)}`),
      s('title', {}, `${svc.name}: ${svc.proxies} proxy(ies)`),
    );
    g.addEventListener('click', () => onSelect(svc.name));
    svg.append(g);
  }
  return svg;
}
