// `weft status`: like istioctl proxy-status, one row per connected node.
import { apiRequest } from '../api-client';
import { table } from '../format';

const TYPES = ['CDS', 'EDS', 'LDS', 'RDS'] as const;

export async function runStatus(opts: { api: string }): Promise<void> {
  const [nodes, errors] = await Promise.all([apiRequest(opts.api, 'GET', '/api/v1/nodes'), apiRequest(opts.api, 'GET', '/api/v1/errors')]);
  const rows = nodes.items.map((n: any) => [
    n.id,
    n.info?.service ? `${n.info.service}.${n.info.namespace}` : '-',
    n.info?.role ?? '-',
    n.mode ?? '-',
    ...TYPES.map((t) => syncState(n.types?.[t])),
  ]);
  process.stdout.write(table(['NODE', 'SERVICE', 'ROLE', 'MODE', ...TYPES], rows));
  const problems = [...errors.config, ...errors.snapshots];
  if (problems.length > 0) {
    process.stdout.write(`\n${problems.length} config error(s); the last good config is serving:\n`);
    for (const e of problems) process.stdout.write(`  ✗ ${e.message ?? JSON.stringify(e)}\n`);
  }
}

/** SYNCED: the node ACKed the latest version; STALE: not yet; NACKED: it rejected the latest. */
function syncState(t: any): string {
  if (!t || !t.latestVersion) return '-';
  if (t.lastNack && t.lastNack.version === t.latestVersion) return `NACKED (${t.lastNack.message})`;
  if (t.ackedVersion === t.latestVersion) return 'SYNCED';
  return t.sentVersion === t.latestVersion ? 'STALE (sent)' : 'STALE';
}
