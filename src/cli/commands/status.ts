// `weft status`: like istioctl proxy-status, one row per connected node, with
// the sync state of each resource type as the xDS server judges it. Then what
// only the sidecars know (the control plane does not): endpoints their outlier
// detection ejected or their health checks failed, read from each sidecar's
// admin /clusters. A sidecar announces its admin port (node metadata
// WEFT_ADMIN_PORT); the admin port binds loopback, so this works for sidecars
// on the host `weft status` runs on, and says so for the others.
//
// Each control plane replica knows the nodes connected to it: with several
// (`--api a,b`), every one listed is asked and the REPLICA column says which
// one serves each node (see connectedNodes()); when no replica can be
// reached, the error names them all.
import * as http from 'node:http';
import { apiRequest, connectedNodes } from '../api-client';
import { table } from '../format';
import type { NodeStatus, TypeStatus } from '../../xds/server/node-status';

const TYPES = ['CDS', 'EDS', 'LDS', 'RDS'] as const;

/** `out`: where the report goes (stdout; a test passes its own). */
export async function runStatus(opts: { api: string; out?: { write(text: string): unknown } }): Promise<void> {
  const out = opts.out ?? process.stdout;
  // First through the failover list: when no replica answers, this is the error that names them all.
  const errors = await apiRequest(opts.api, 'GET', '/api/v1/errors');
  const items = await connectedNodes(opts.api);
  const rows = items.map((n) => [
    n.nodeId,
    n.replica ?? '-',
    n.node.service ? `${n.node.service}.${n.node.namespace}` : '-',
    n.node.role,
    n.mode,
    ...TYPES.map((t) => cell(n.types.find((s) => s.type === t))),
  ]);
  out.write(table(['NODE', 'REPLICA', 'SERVICE', 'ROLE', 'MODE', ...TYPES], rows));
  const problems: { message?: string }[] = [...errors.config, ...errors.snapshots];
  if (problems.length > 0) {
    out.write(`\n${problems.length} config error(s); the last good config is serving:\n`);
    for (const e of problems) out.write(`  ✗ ${e.message ?? JSON.stringify(e)}\n`);
  }
  const verdicts = await Promise.all(items.map((n) => endpointVerdicts(n)));
  const lines = verdicts.flat();
  if (lines.length > 0) {
    out.write(`\nEndpoints the sidecars took out of load balancing:\n`);
    for (const line of lines) out.write(`  ${line}\n`);
  }
}

/** Lines for a sidecar's ejected or failing endpoints (none when all are fine). */
async function endpointVerdicts(n: NodeStatus): Promise<string[]> {
  if (n.node.role !== 'sidecar' || !n.node.adminPort) return [];
  const host = n.peer.replace(/^ipv[46]:/, '').replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  if (!/^(127\.|::1$|::ffff:127\.|localhost$)/.test(host)) return [`${n.nodeId}: on ${host}; its admin port binds loopback there, run weft status on that host`];
  let clusters: ClusterView[];
  try {
    clusters = JSON.parse(await getText(`http://127.0.0.1:${n.node.adminPort}/clusters?format=json`));
  } catch (err) {
    return [`${n.nodeId}: admin port ${n.node.adminPort} not readable (${(err as Error).message})`];
  }
  const out: string[] = [];
  for (const c of clusters) {
    for (const e of c.endpoints) {
      const why: string[] = [];
      if (e.outlier?.ejected) why.push(`ejected until ${e.outlier.ejectedUntil} (${e.outlier.timesEjected}× ejected)`);
      if (e.healthCheck && e.healthCheck.state !== 'healthy') why.push(`health check ${e.healthCheck.state}${e.healthCheck.lastFailure ? `: ${e.healthCheck.lastFailure}` : ''}`);
      if (why.length) out.push(`${n.nodeId}  ${c.name}  ${e.address}  ${why.join('; ')}`);
    }
  }
  return out;
}

interface ClusterView {
  name: string;
  endpoints: {
    address: string;
    outlier?: { ejected: boolean; ejectedUntil?: string; timesEjected: number };
    healthCheck?: { state: string; lastFailure?: string };
  }[];
}

export function getText(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: 2000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`HTTP ${res.statusCode}`))));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });
}

function cell(t: TypeStatus | undefined): string {
  if (!t) return '-';
  if (t.state === 'NACKED') return `NACKED ${t.lastNack?.version ?? ''}: ${t.lastNack?.message ?? ''}`;
  if (t.state === 'NOT_SENT') return '-';
  return `${t.state} ${t.ackedVersion ?? t.sentVersion ?? ''}`.trim();
}
