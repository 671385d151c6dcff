// The control plane's own metrics, served on the API port at /metrics in
// Prometheus text format: xDS clients connected, responses pushed and NACKs
// received by type, snapshot (translate) time, config errors, store revision.
import type { Store } from '../store/store';
import type { SnapshotCache } from '../xds/cache/snapshot-cache';
import type { NackEvent, NodeStatus, StatusChange } from '../xds/server/node-status';
import { Histogram, LE_SECONDS, escapeLabel } from '../proxy/stats';

export class ControlMetrics {
  /** xDS responses carrying a new version, by type. */
  private readonly pushes = new Map<string, number>();
  private readonly acks = new Map<string, number>();
  private readonly nacks = new Map<string, number>();
  connects = 0;
  disconnects = 0;
  /** Time to translate the mesh for one node group (translate + consistency check). */
  readonly translate = new Histogram();
  translateErrors = 0;

  /** Per stream, the versions last seen sent and acknowledged by type: a change is what moved. */
  private readonly seen = new Map<number, Map<string, { sent?: string; acked?: string }>>();

  /** XdsServer's onStatusChange. */
  readonly statusChanged = (status: NodeStatus, change: StatusChange): void => {
    if (change === 'connected') this.connects++;
    if (change === 'disconnected') {
      this.disconnects++;
      this.seen.delete(status.streamId);
      return;
    }
    let types = this.seen.get(status.streamId);
    if (!types) this.seen.set(status.streamId, (types = new Map()));
    for (const t of status.types) {
      let prev = types.get(t.type);
      if (!prev) types.set(t.type, (prev = {}));
      if (t.sentVersion !== undefined && t.sentVersion !== prev.sent) this.pushes.set(t.type, (this.pushes.get(t.type) ?? 0) + 1);
      if (t.ackedVersion !== undefined && t.ackedVersion !== prev.acked) this.acks.set(t.type, (this.acks.get(t.type) ?? 0) + 1);
      prev.sent = t.sentVersion;
      prev.acked = t.ackedVersion;
    }
  };

  /** XdsServer's onNack. */
  readonly nacked = (event: NackEvent): void => {
    this.nacks.set(event.type, (this.nacks.get(event.type) ?? 0) + 1);
  };

  /** Wraps a snapshot generator so its time is observed. */
  timed<A, R>(fn: (a: A) => R): (a: A) => R {
    return (a) => {
      const started = performance.now();
      try {
        return fn(a);
      } catch (err) {
        this.translateErrors++;
        throw err;
      } finally {
        this.translate.observe(performance.now() - started);
      }
    };
  }

  render(deps: { nodes: NodeStatus[]; store: Store; cache: SnapshotCache }): string {
    const out: string[] = [];
    const family = (name: string, type: string, help: string) => out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    family('weft_control_xds_clients', 'gauge', 'Connected xDS clients by role and protocol mode.');
    const clients = new Map<string, number>();
    for (const n of deps.nodes) {
      const key = `role="${escapeLabel(n.node.role)}",mode="${n.mode}"`;
      clients.set(key, (clients.get(key) ?? 0) + 1);
    }
    for (const [labels, n] of clients) out.push(`weft_control_xds_clients{${labels}} ${n}`);
    family('weft_control_xds_connections_total', 'counter', 'xDS streams opened.');
    out.push(`weft_control_xds_connections_total ${this.connects}`);
    family('weft_control_xds_disconnections_total', 'counter', 'xDS streams closed.');
    out.push(`weft_control_xds_disconnections_total ${this.disconnects}`);
    family('weft_control_xds_pushes_total', 'counter', 'xDS responses carrying a new version, by type.');
    for (const [type, n] of this.pushes) out.push(`weft_control_xds_pushes_total{type="${type}"} ${n}`);
    family('weft_control_xds_acks_total', 'counter', 'New versions acknowledged, by type.');
    for (const [type, n] of this.acks) out.push(`weft_control_xds_acks_total{type="${type}"} ${n}`);
    family('weft_control_xds_nacks_total', 'counter', 'xDS responses rejected by a client (NACK), by type.');
    for (const [type, n] of this.nacks) out.push(`weft_control_xds_nacks_total{type="${type}"} ${n}`);
    family('weft_control_translate_duration_seconds', 'histogram', 'Time to translate the mesh for one node group.');
    let cumulative = 0;
    this.translate.counts.forEach((n, i) => {
      cumulative += n;
      out.push(`weft_control_translate_duration_seconds_bucket{le="${LE_SECONDS[i]}"} ${cumulative}`);
    });
    out.push(`weft_control_translate_duration_seconds_sum ${this.translate.sum / 1000}`, `weft_control_translate_duration_seconds_count ${this.translate.count}`);
    family('weft_control_translate_errors_total', 'counter', 'Snapshots that could not be generated.');
    out.push(`weft_control_translate_errors_total ${this.translateErrors}`);
    family('weft_control_config_errors', 'gauge', 'Config sources rejected now (the last good config keeps serving).');
    out.push(`weft_control_config_errors ${deps.store.configErrors().length}`);
    family('weft_control_snapshot_errors', 'gauge', 'Node groups whose latest snapshot was not published.');
    out.push(`weft_control_snapshot_errors ${deps.cache.errors().length}`);
    family('weft_control_store_revision', 'gauge', 'Revision of the latest config store change.');
    out.push(`weft_control_store_revision ${deps.store.revision()}`);
    const cache = deps.cache.stats();
    family('weft_control_node_groups', 'gauge', 'Node groups with a snapshot (nodes of one group share it).');
    out.push(`weft_control_node_groups ${cache.groups}`);
    family('weft_control_snapshot_refreshes_total', 'counter', 'Passes that regenerated every node group after a change.');
    out.push(`weft_control_snapshot_refreshes_total ${cache.refreshes}`);
    return out.join('\n') + '\n';
  }
}
