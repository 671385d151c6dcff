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
  /** --once: how long to wait for a first window (ONCE_WAIT_MS). */
  waitMs?: number;
  interval?: number;
  out?: { write(text: string): unknown };
}

const rps = (n: number) => (n >= 100 ? n.toFixed(0) : n.toFixed(1));
const pct = (n: number | undefined) => (n === undefined ? '-' : `${(n * 100).toFixed(n === 1 ? 0 : 1)}%`);
const ms = (n: number | undefined) => (n === undefined ? '-' : `${n >= 100 ? n.toFixed(0) : n.toFixed(1)}ms`);
const short = (s: string) => (s.endsWith('.default') ? s.slice(0, -8) : s);
const cells = (s: Signals) => [rps(s.rps), pct(s.successRate), ms(s.p50Ms), ms(s.p99Ms)];

/** How long `--once` waits for a first window (rates need two reports of a sidecar, sent every 2 s). */
export const ONCE_WAIT_MS = 5000;

export function renderTop(t: Topology): string {
  // No window yet (no sidecar has reported twice): zeros would read as "no traffic".
  const warming = t.windowSeconds <= 0;
  const services = t.services.map((s) => [short(s.name), String(s.proxies), ...(warming ? ['-', '-', '-', '-'] : cells(s))]);
  const edges = t.edges.map((e) => [short(e.source), short(e.destination), ...(warming ? ['-', '-', '-', '-'] : cells(e))]);
  let text = `weft top — ${new Date(t.at).toLocaleTimeString()}, ${warming ? 'warming up: no full window yet (rates need two metrics reports of a sidecar that saw traffic)' : `rates over the last ${t.windowSeconds}s`}\n\n`;
  text += table(['SERVICE', 'PROXIES', 'RPS', 'SUCCESS', 'P50', 'P99'], services);
  text += '\n' + (edges.length ? table(['FROM', 'TO', 'RPS', 'SUCCESS', 'P50', 'P99'], edges) : 'No calls between services seen yet.\n');
  if (t.unreachable.length) text += `\nNo metrics from: ${t.unreachable.map((u) => `${u.nodeId} (${u.reason})`).join(', ')}\n`;
  return text;
}

export async function runTop(opts: TopOptions): Promise<void> {
  const out = opts.out ?? process.stdout;
  const intervalMs = Math.max(0.5, opts.interval ?? 2) * 1000;
  if (opts.once) {
    // Rates need two reports: a control plane that just started has none yet. A window
    // without requests may only lag: sidecars report every 2 s, so traffic that just
    // started after an idle spell shows within the wait.
    const deadline = Date.now() + (opts.waitMs ?? ONCE_WAIT_MS);
    const seen = (t: Topology) => t.windowSeconds > 0 && [...t.services, ...t.edges].some((s) => s.requests > 0);
    let t = (await apiRequest(opts.api, 'GET', '/api/v1/topology')) as Topology;
    while (!seen(t) && Date.now() < deadline) {
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
