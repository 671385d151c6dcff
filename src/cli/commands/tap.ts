// `weft tap <service>`: the live requests passing the sidecars of a service.
// The control plane knows which sidecars run beside the service and their
// admin ports (node metadata WEFT_ADMIN_PORT); each sidecar streams its
// finished requests as NDJSON from its admin /tap, filtered there; the
// streams are merged as they come and printed one line per request. Admin
// ports bind loopback, so this reaches the sidecars on this host (as
// `weft status` does) and names the others.
import * as http from 'node:http';
import { connectedNodes } from '../api-client';
import type { RequestRecord } from '../../observe/request-record';

export interface TapOptions {
  api: string;
  method?: string;
  path?: string;
  status?: string;
  flag?: string;
  direction?: string;
  /** First the sidecars' recent requests of the last seconds. */
  since?: number;
  /** Stop after this many seconds. */
  duration?: number;
  json?: boolean;
  /** Where lines go (stdout; a test passes its own). */
  out?: { write(text: string): unknown };
  /** Stops the tap (a test's); the command itself stops on SIGINT. */
  signal?: AbortSignal;
}

interface Tapped {
  nodeId: string;
  adminPort: number;
}

export async function runTap(service: string, opts: TapOptions): Promise<void> {
  const out = opts.out ?? process.stdout;
  const [namespace, name] = service.includes('/') ? service.split('/', 2) : [undefined, service];
  const nodes = await connectedNodes(opts.api);
  const mine = nodes.filter((n) => n.node.role === 'sidecar' && n.node.service === name && (namespace === undefined || n.node.namespace === namespace));
  if (mine.length === 0) throw new Error(`no sidecar of service ${service} is connected to the control plane`);
  const targets: Tapped[] = [];
  for (const n of mine) {
    const host = n.peer.replace(/^ipv[46]:/, '').replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
    if (!n.node.adminPort) out.write(`# ${n.nodeId}: announces no admin port; skipped\n`);
    else if (!/^(127\.|::1$|::ffff:127\.|localhost$)/.test(host)) out.write(`# ${n.nodeId}: on ${host}; its admin port binds loopback there, run weft tap on that host\n`);
    else targets.push({ nodeId: n.nodeId, adminPort: n.node.adminPort });
  }
  if (targets.length === 0) throw new Error(`no sidecar of service ${service} is reachable from this host`);

  const query = new URLSearchParams();
  for (const key of ['method', 'path', 'status', 'flag', 'direction'] as const) if (opts[key]) query.set(key, String(opts[key]));
  if (opts.since) query.set('since', String(opts.since));
  out.write(`# tapping ${targets.length} sidecar(s) of ${service}: ${targets.map((t) => t.nodeId).join(', ')}\n`);

  const controller = new AbortController();
  const stop = () => controller.abort();
  opts.signal?.addEventListener('abort', stop);
  if (!opts.signal) process.once('SIGINT', stop);
  const timer = opts.duration ? setTimeout(stop, opts.duration * 1000) : undefined;
  const print = (t: Tapped, r: RequestRecord) => out.write(opts.json ? JSON.stringify({ node: t.nodeId, ...r }) + '\n' : formatTapLine(t.nodeId, r) + '\n');
  try {
    await Promise.all(targets.map((t) => tapOne(t, query, controller.signal, (r) => print(t, r), (msg) => out.write(`# ${t.nodeId}: ${msg}\n`))));
  } finally {
    clearTimeout(timer);
    opts.signal?.removeEventListener('abort', stop);
    process.removeListener('SIGINT', stop);
  }
}

/** Streams one sidecar's /tap until it ends or `signal` aborts. */
function tapOne(t: Tapped, query: URLSearchParams, signal: AbortSignal, onRecord: (r: RequestRecord) => void, onError: (msg: string) => void): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const req = http.get({ host: '127.0.0.1', port: t.adminPort, path: `/tap?${query}`, signal }, (res) => {
      if (res.statusCode !== 200) {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => {
          onError(`HTTP ${res.statusCode} ${body.trim()}`);
          resolve();
        });
        return;
      }
      let rest = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        const lines = (rest + chunk).split('\n');
        rest = lines.pop()!;
        for (const line of lines) if (line) onRecord(JSON.parse(line));
      });
      res.on('end', resolve);
      res.on('close', resolve);
    });
    req.on('error', (err) => {
      if (!signal.aborted) onError(err.message);
      resolve();
    });
  });
}

/** One request in a line: time, node, direction, request, outcome, duration, where it went. */
export function formatTapLine(nodeId: string, r: RequestRecord): string {
  const time = new Date(r.time).toISOString().slice(11, 23);
  const what = r.protocol === 'tcp' ? `TCP ${r.cluster}` : `${r.method} ${r.authority}${r.path}`;
  const status = r.protocol === 'tcp' ? 'conn' : String(r.status);
  const grpc = r.grpcStatus !== undefined ? ` grpc=${r.grpcStatus}` : '';
  const flags = r.flags ? ` ${r.flags}` : '';
  const tries = r.attempts > 1 ? ` tries=${r.attempts}` : '';
  return `${time} ${nodeId} ${r.direction.padEnd(8)} ${what} → ${status}${grpc}${flags} ${r.durationMs.toFixed(1)}ms ${r.source}→${r.destination} ${r.upstream || '-'}${tries}${r.traceId ? ` trace=${r.traceId}` : ''}`;
}
