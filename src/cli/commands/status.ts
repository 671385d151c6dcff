// `weft status`: like istioctl proxy-status, one row per connected node, with
// the sync state of each resource type as the xDS server judges it. Then what
// only the sidecars know: endpoints their outlier detection ejected or their
// health checks failed, which every sidecar reports to the control plane
// replica it is connected to (/api/v1/endpoint-health), so this shows the
// sidecars of every host.
//
// Then the registered instances whose health or plugins say something: an
// instance its monitor marked unhealthy (and why), and each instance's
// plugins with their restarts ("monitor(0↻) crasher(7↻ restarting)").
//
// Any replica answers for the whole mesh (it asks the others): the REPLICA
// column says which one serves each node. With several URLs (`--api a,b`),
// every one listed is asked too, so a replica that lost its peers still
// shows its own (see connectedNodes()); when none can be reached, the error
// names them all.
import { apiRequest, connectedNodes } from '../api-client';
import { table } from '../format';
import type { TypeStatus } from '../../xds/server/node-status';
import type { EndpointVerdictRow } from '../../observe/telemetry/mesh-telemetry';
import type { Registration } from '../../registry/registry';

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
  // Accepted and serving, but not doing all it says (a control plane before warnings sends none).
  const warnings: { message?: string }[] = errors.warnings ?? [];
  if (warnings.length > 0) {
    out.write(`\n${warnings.length} warning(s): config accepted but not in effect:\n`);
    for (const w of warnings) out.write(`  warning: ${w.message ?? JSON.stringify(w)}\n`);
  }
  const regs = ((await apiRequest(opts.api, 'GET', '/api/v1/registrations')) as { items: Registration[] }).items;
  const notable = regs.filter((r) => r.health !== 'healthy' || (r.plugins?.length ?? 0) > 0);
  if (notable.length > 0) {
    out.write(`\nInstances:\n`);
    const rows = notable.map((r) => [`${r.service}.${r.namespace}`, `${r.address}:${Object.values(r.ports).join(',')}`, r.health + (r.healthReason ? `: ${r.healthReason}` : ''), pluginsCell(r)]);
    out.write(table(['SERVICE', 'ADDRESS', 'HEALTH', 'PLUGINS'], rows));
  }
  const health = (await apiRequest(opts.api, 'GET', '/api/v1/endpoint-health')) as { items: EndpointVerdictRow[]; unreachableReplicas?: { replica: string; error: string }[] };
  if (health.items.length > 0) {
    out.write(`\nEndpoints the sidecars took out of load balancing:\n`);
    for (const v of health.items) out.write(`  ${v.node} (${v.host || '?'})  ${v.cluster}  ${v.endpoint}  ${v.detail}\n`);
  }
  const away = [...(health.unreachableReplicas ?? [])];
  if (away.length) out.write(`\nReplicas that did not answer (their sidecars are missing above): ${away.map((r) => `${r.replica} (${r.error})`).join(', ')}\n`);
}

/** "monitor(0↻) crasher(7↻ restarting, exit code 1)": each plugin, its restarts, and its state unless running. */
export function pluginsCell(r: Pick<Registration, 'plugins'>): string {
  if (!r.plugins?.length) return '-';
  return r.plugins.map((p) => `${p.name}(${p.restarts}↻${p.state === 'running' ? '' : ` ${p.state}${p.lastExit ? `, ${p.lastExit}` : ''}`})`).join(' ');
}

function cell(t: TypeStatus | undefined): string {
  if (!t) return '-';
  if (t.state === 'NACKED') return `NACKED ${t.lastNack?.version ?? ''}: ${t.lastNack?.message ?? ''}`;
  if (t.state === 'NOT_SENT') return '-';
  return `${t.state} ${t.ackedVersion ?? t.sentVersion ?? ''}`.trim();
}
