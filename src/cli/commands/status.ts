// `weft status`: like istioctl proxy-status, one row per connected node, with
// the sync state of each resource type as the xDS server judges it.
import { apiRequest } from '../api-client';
import { table } from '../format';
import type { NodeStatus, TypeStatus } from '../../xds/server/node-status';

const TYPES = ['CDS', 'EDS', 'LDS', 'RDS'] as const;

export async function runStatus(opts: { api: string }): Promise<void> {
  const [nodes, errors] = await Promise.all([apiRequest(opts.api, 'GET', '/api/v1/nodes'), apiRequest(opts.api, 'GET', '/api/v1/errors')]);
  const rows = (nodes.items as NodeStatus[]).map((n) => [
    n.nodeId,
    n.node.service ? `${n.node.service}.${n.node.namespace}` : '-',
    n.node.role,
    n.mode,
    ...TYPES.map((t) => cell(n.types.find((s) => s.type === t))),
  ]);
  process.stdout.write(table(['NODE', 'SERVICE', 'ROLE', 'MODE', ...TYPES], rows));
  const problems: { message?: string }[] = [...errors.config, ...errors.snapshots];
  if (problems.length > 0) {
    process.stdout.write(`\n${problems.length} config error(s); the last good config is serving:\n`);
    for (const e of problems) process.stdout.write(`  ✗ ${e.message ?? JSON.stringify(e)}\n`);
  }
}

function cell(t: TypeStatus | undefined): string {
  if (!t) return '-';
  if (t.state === 'NACKED') return `NACKED ${t.lastNack?.version ?? ''}: ${t.lastNack?.message ?? ''}`;
  if (t.state === 'NOT_SENT') return '-';
  return `${t.state} ${t.ackedVersion ?? t.sentVersion ?? ''}`.trim();
}
