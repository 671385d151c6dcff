// Tiny DOM helpers: elements from tag, attributes and children; formatting.

type Child = Node | string | number | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string | undefined> = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined) el.setAttribute(k, v);
  append(el, children);
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

export function s(tag: string, attrs: Record<string, string | number | undefined> = {}, ...children: Child[]): SVGElement {
  const el = document.createElementNS(SVG_NS, tag) as SVGElement;
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined) el.setAttribute(k, String(v));
  append(el, children);
  return el;
}

function append(el: Element, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === 'number' ? String(c) : c);
  }
}

export function table(headers: string[], rows: Child[][], attrs: Record<string, string> = {}): HTMLTableElement {
  return h('table', attrs, h('thead', {}, h('tr', {}, ...headers.map((x) => h('th', {}, x)))), h('tbody', {}, ...rows.map((r) => h('tr', {}, ...r.map((c) => h('td', {}, c))))));
}

export const fmt = {
  rps: (n: number | undefined) => (n === undefined ? '—' : n >= 100 ? n.toFixed(0) : n.toFixed(1)),
  pct: (n: number | undefined) => (n === undefined ? '—' : `${(n * 100).toFixed(n === 1 ? 0 : 1)}%`),
  ms: (n: number | undefined) => (n === undefined ? '—' : n >= 100 ? `${n.toFixed(0)}ms` : `${n.toFixed(1)}ms`),
};

/** The service's short name: "product.default" → "product" (namespace default only). */
export function short(name: string): string {
  return name.endsWith('.default') ? name.slice(0, -'.default'.length) : name;
}

export function health(rate: number | undefined): string {
  if (rate === undefined) return 'idle';
  return rate >= 0.99 ? 'good' : rate >= 0.9 ? 'warn' : 'bad';
}
