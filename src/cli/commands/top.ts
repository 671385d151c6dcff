// `weft top`: the mesh's golden signals in the terminal, per service and per
// call (edge): request rate, success rate, p50 and p99, as the control plane's
// aggregator computes them from the metrics every sidecar reports (/api/v1/topology).
// Redraws every --interval seconds; --once prints one snapshot (scripts, tests).
import { apiRequest } from '../api-client';
import { table } from '../format';
import type { Signals, Topology } from '../../observe/mesh-observer';

export interface TopOptions {
  api: string;
  once?: boolean;
  interval?: number;
  out?: { write(text: string): unknown };
}

const rps = (n: number) => (n >= 100 ? n.toFixed(0) : n.toFixed(1));
const pct = (n: number | undefined) => (n === undefined ? '-' : `${(n * 100).toFixed(n === 1 ? 0 : 1)}%`);
const ms = (n: number | undefined) => (n === undefined ? '-' : `${n >= 100 ? n.toFixed(0) : n.toFixed(1)}ms`);
const short = (s: string) => (s.endsWith('.default') ? s.slice(0, -8) : s);
const cells = (s: Signals) => [rps(s.rps), pct(s.successRate), ms(s.p50Ms), ms(s.p99Ms)];

export function renderTop(t: Topology): string {
  const services = t.services.map((s) => [short(s.name), String(s.proxies), ...cells(s)]);
  const edges = t.edges.map((e) => [short(e.source), short(e.destination), ...cells(e)]);
  let text = `weft top — ${new Date(t.at).toLocaleTimeString()}, rates over the last ${t.windowSeconds}s\n\n`;
  text += table(['SERVICE', 'PROXIES', 'RPS', 'SUCCESS', 'P50', 'P99'], services);
  text += '\n' + (edges.length ? table(['FROM', 'TO', 'RPS', 'SUCCESS', 'P50', 'P99'], edges) : 'No calls between services seen yet.\n');
  if (t.unreachable.length) text += `\nNo metrics from: ${t.unreachable.map((u) => `${u.nodeId} (${u.reason})`).join(', ')}\n`;
  return text;
}

export async function runTop(opts: TopOptions): Promise<void> {
  const out = opts.out ?? process.stdout;
  const intervalMs = Math.max(0.5, opts.interval ?? 2) * 1000;
  if (opts.once) {
    // Rates need two scrapes: a control plane that just started has none yet.
    let t = (await apiRequest(opts.api, 'GET', '/api/v1/topology')) as Topology;
    for (let i = 0; i < 10 && t.windowSeconds === 0; i++) {
      await new Promise((r) => setTimeout(r, 500));
      t = (await apiRequest(opts.api, 'GET', '/api/v1/topology')) as Topology;
    }
    out.write(renderTop(t));
    return;
  }
  for (;;) {
    let text: string;
    try {
      text = renderTop((await apiRequest(opts.api, 'GET', '/api/v1/topology')) as Topology);
    } catch (err) {
      text = `weft top: ${(err as Error).message}\n`;
    }
    // Home, draw, clear what is left of the previous frame.
    out.write(`\x1b[H${text.replace(/\n/g, '\x1b[K\n')}\x1b[J`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
