// `weft tap <service>`: the live requests passing the sidecars of a service,
// on every host. Each sidecar keeps a relay stream open to the control plane
// replica it is connected to; the control plane asks the service's sidecars
// (and the other replicas, for theirs) to stream their finished requests,
// filtered in the sidecar, and merges them into one NDJSON stream
// (/api/v1/tap), printed here one line per request.
import { apiStream, connectedNodes } from '../api-client';
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

export async function runTap(service: string, opts: TapOptions): Promise<void> {
  const out = opts.out ?? process.stdout;
  const [namespace, name] = service.includes('/') ? service.split('/', 2) : [undefined, service];
  const nodes = await connectedNodes(opts.api);
  const mine = nodes.filter((n) => n.node.role === 'sidecar' && n.node.service === name && (namespace === undefined || n.node.namespace === namespace));
  if (mine.length === 0) throw new Error(`no sidecar of service ${service} is connected to the control plane`);
  const query = new URLSearchParams({ service: `${namespace ?? mine[0].node.namespace}/${name}` });
  for (const key of ['method', 'path', 'status', 'flag', 'direction'] as const) if (opts[key]) query.set(key, String(opts[key]));
  if (opts.since) query.set('since', String(opts.since));

  const controller = new AbortController();
  const stop = () => controller.abort();
  opts.signal?.addEventListener('abort', stop);
  if (!opts.signal) process.once('SIGINT', stop);
  const timer = opts.duration ? setTimeout(stop, opts.duration * 1000) : undefined;
  const onLine = (line: string) => {
    const msg = JSON.parse(line) as (RequestRecord & { node: string; host?: string }) | { note: string };
    if ('note' in msg) {
      if (msg.note !== 'ping') out.write(`# ${msg.note}\n`);
      return;
    }
    out.write(opts.json ? JSON.stringify(msg) + '\n' : formatTapLine(msg.node, msg) + '\n');
  };
  try {
    await apiStream(opts.api, `/api/v1/tap?${query}`, onLine, controller.signal);
  } finally {
    clearTimeout(timer);
    opts.signal?.removeEventListener('abort', stop);
    process.removeListener('SIGINT', stop);
  }
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
