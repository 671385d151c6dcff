// Small SVG line charts of a service's or an edge's golden signals over the
// last minutes (no chart library: a polyline per series, a baseline, the
// latest value). A gap in the samples (the series was absent, or the control
// plane was away) breaks the line instead of drawing across it.
import type { SignalPoint } from './api';
import { fmt, h, s } from './dom';

const W = 300;
const H = 90;
const PAD_L = 4;
const PAD_T = 8;
const PAD_B = 14;

interface Line {
  label: string;
  cls: string;
  value: (p: SignalPoint) => number | undefined;
}

interface ChartSpec {
  metric: string;
  title: string;
  lines: Line[];
  format: (n: number | undefined) => string;
  /** Fixed top of the y axis (success rate: 100 %). */
  max?: number;
  /** Bottom of the y axis; default 0. */
  min?: (values: number[]) => number;
}

const CHARTS: ChartSpec[] = [
  { metric: 'rps', title: 'Requests/s', lines: [{ label: 'rps', cls: 'l1', value: (p) => p.rps }], format: fmt.rps },
  {
    metric: 'success',
    title: 'Success rate',
    lines: [{ label: 'success', cls: 'l1', value: (p) => p.successRate }],
    format: fmt.pct,
    max: 1,
    min: (v) => Math.min(0.9, ...v.map((x) => Math.floor(x * 20) / 20)),
  },
  {
    metric: 'latency',
    title: 'Latency p50 / p99',
    lines: [
      { label: 'p50', cls: 'l1', value: (p) => p.p50Ms },
      { label: 'p99', cls: 'l2', value: (p) => p.p99Ms },
    ],
    format: fmt.ms,
  },
];

/** The three charts (rps, success, latency) of one series, over [now - minutes, now]. */
export function signalCharts(points: SignalPoint[], stepSeconds: number, minutes = 15): HTMLElement {
  const end = points.length ? Math.max(points[points.length - 1].at, Date.now() - 2000) : Date.now();
  // From the first point (at least 20 s wide), at most `minutes`: fresh data is not a sliver on the right.
  const first = points.length ? points[0].at : end;
  const start = Math.max(end - minutes * 60_000, Math.min(first, end - 20_000));
  return h('div', { class: 'charts', 'data-points': String(points.length) }, ...CHARTS.map((c) => chart(c, points, start, end, stepSeconds)));
}

function chart(c: ChartSpec, points: SignalPoint[], start: number, end: number, stepSeconds: number): HTMLElement {
  const values = points.flatMap((p) => c.lines.map((l) => l.value(p))).filter((v): v is number => v !== undefined);
  const top = c.max ?? niceMax(Math.max(0, ...values));
  const bottom = c.min ? c.min(values) : 0;
  const x = (t: number) => PAD_L + ((t - start) / Math.max(1, end - start)) * (W - PAD_L * 2);
  const y = (v: number) => PAD_T + (1 - (v - bottom) / Math.max(1e-9, top - bottom)) * (H - PAD_T - PAD_B);
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: 'chart-svg', role: 'img', 'aria-label': c.title });
  svg.append(
    s('line', { x1: PAD_L, x2: W - PAD_L, y1: y(bottom), y2: y(bottom), class: 'axis' }),
    s('line', { x1: PAD_L, x2: W - PAD_L, y1: y(top), y2: y(top), class: 'grid' }),
    s('text', { x: W - PAD_L, y: PAD_T - 1, 'text-anchor': 'end', class: 'tick' }, c.format(top)),
    s('text', { x: PAD_L, y: H - 2, class: 'tick' }, span(end - start)),
    s('text', { x: W - PAD_L, y: H - 2, 'text-anchor': 'end', class: 'tick' }, 'now'),
  );
  const gap = Math.max(3 * stepSeconds * 1000, 6000);
  let drawn = 0;
  for (const line of c.lines) {
    let segment: string[] = [];
    let last = -Infinity;
    const flush = () => {
      if (segment.length === 1) segment.push(segment[0]); // a lone point still shows (as a dot via the cap)
      if (segment.length) svg.append(s('polyline', { points: segment.join(' '), class: `line ${line.cls}` }));
      segment = [];
    };
    for (const p of points) {
      const v = line.value(p);
      if (p.at < start) continue;
      if (v === undefined || p.at - last > gap) flush();
      last = p.at;
      if (v === undefined) continue;
      segment.push(`${x(p.at).toFixed(1)},${y(Math.max(bottom, Math.min(top, v))).toFixed(1)}`);
      drawn++;
    }
    flush();
  }
  const latest = [...points].reverse().find((p) => c.lines.some((l) => l.value(p) !== undefined));
  const now = latest ? c.lines.map((l) => `${c.lines.length > 1 ? `${l.label} ` : ''}${c.format(l.value(latest))}`).join(' · ') : '—';
  return h(
    'figure',
    { class: 'chart', 'data-metric': c.metric, 'data-drawn': String(drawn) },
    h('figcaption', {}, h('span', {}, c.title), h('strong', {}, now)),
    svg,
    c.lines.length > 1 ? h('div', { class: 'legend' }, ...c.lines.map((l) => h('span', { class: l.cls }, l.label))) : null,
  );
}

/** The chart's width in time, as its left tick: "-40s", "-3m". */
function span(ms: number): string {
  return ms < 90_000 ? `-${Math.round(ms / 1000)}s` : `-${Math.round(ms / 60_000)}m`;
}

/** 1, 2 or 5 × a power of ten, at or above n. */
function niceMax(n: number): number {
  if (n <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(n));
  for (const m of [1, 2, 5, 10]) if (m * p >= n) return m * p;
  return 10 * p;
}
