// The whole mesh's live state as the API serves it, from any replica: this
// replica's sidecars (their metrics reports and relay streams) plus what the
// other replicas answer for theirs (replica-peers.ts). Each method has a
// `replica` form, what this replica alone knows: that is what a peer asks
// for (the routes' `scope=replica`), so a request is never passed on twice.
import type { NodeStatus } from '../../xds/server/node-status';
import type { RequestRecord } from '../request-record';
import { hostOf } from '../mesh-observer';
import type { AdminRelay } from './admin-relay';
import { RelayError } from './admin-relay';
import type { MetricsIntake } from './metrics-intake';
import type { ReplicaPeers } from './replica-peers';

/** How long a sidecar connected over xDS may take to open its relay stream too. */
const RELAY_WAIT_MS = 2000;

/** An endpoint a sidecar took out of load balancing, with who saw it and where. */
export interface EndpointVerdictRow {
  node: string;
  service: string;
  host: string;
  replica: string;
  cluster: string;
  endpoint: string;
  reason: string;
  detail: string;
}

/** A finished request, with the node that saw it and its host. */
export type NodeRecord = RequestRecord & { node: string; host: string };

export interface MeshTelemetryDeps {
  /** This replica's name (known once the xDS port is bound). */
  replica: () => string;
  nodes(): NodeStatus[];
  intake: MetricsIntake;
  relay: AdminRelay;
  peers?: ReplicaPeers;
}

export class MeshTelemetry {
  constructor(private readonly deps: MeshTelemetryDeps) {}

  /** Replicas that could not be asked, and why (said in answers that may be partial). */
  private async fromPeers<T>(path: string): Promise<{ items: T[]; failed: { replica: string; error: string }[] }> {
    if (!this.deps.peers) return { items: [], failed: [] };
    const { answers, failed } = await this.deps.peers.gather<{ items: T[] }>(path);
    return { items: answers.flatMap((a) => a.body.items ?? []), failed };
  }

  // ---- nodes ----

  replicaNodes(): NodeStatus[] {
    return this.deps.nodes();
  }

  async nodes(): Promise<{ items: NodeStatus[]; unreachableReplicas: { replica: string; error: string }[] }> {
    const remote = await this.fromPeers<NodeStatus>('/api/v1/nodes?scope=replica');
    return { items: [...this.replicaNodes(), ...remote.items], unreachableReplicas: remote.failed };
  }

  // ---- endpoint health ----

  replicaEndpointHealth(): EndpointVerdictRow[] {
    const peers = new Map(this.deps.nodes().map((n) => [n.nodeId, n]));
    return this.deps.intake.all().flatMap((r) =>
      r.unhealthy.map((u) => {
        const n = peers.get(r.node.id);
        return { node: r.node.id, service: r.node.service ? `${r.node.service}.${r.node.namespace}` : '', host: n ? hostOf(n.peer) : '', replica: this.deps.replica(), ...u };
      }),
    );
  }

  async endpointHealth(): Promise<{ items: EndpointVerdictRow[]; unreachableReplicas: { replica: string; error: string }[] }> {
    const remote = await this.fromPeers<EndpointVerdictRow>('/api/v1/endpoint-health?scope=replica');
    return { items: [...this.replicaEndpointHealth(), ...remote.items], unreachableReplicas: remote.failed };
  }

  // ---- admin views ----

  /** A sidecar's admin view over its relay stream to this replica (RelayError E_RELAY_NO_STREAM when it has none here). */
  replicaAdminView(nodeId: string, view: string, query = ''): Promise<unknown> {
    return this.deps.relay.get(nodeId, view, query);
  }

  /** A sidecar's admin view, over its relay stream to this replica or to the replica that has it. */
  async adminView(nodeId: string, view: string, query = ''): Promise<unknown> {
    // Connected here over xDS: its relay stream follows within moments of the ADS stream.
    if (!this.deps.relay.has(nodeId) && this.deps.nodes().some((n) => n.nodeId === nodeId)) await this.deps.relay.waitForSession(nodeId, RELAY_WAIT_MS);
    if (this.deps.relay.has(nodeId) || !this.deps.peers) return this.deps.relay.get(nodeId, view, query);
    const path = `/api/v1/nodes/${encodeURIComponent(nodeId)}/admin${view}?${new URLSearchParams({ ...Object.fromEntries(new URLSearchParams(query)), scope: 'replica' })}`;
    const holders = this.deps.peers.others();
    for (const peer of holders) {
      try {
        return JSON.parse(await this.deps.peers.getText(peer, path)) as unknown;
      } catch {
        // not that replica's node (404), or the replica is away: the next
      }
    }
    throw new RelayError('E_RELAY_NO_STREAM', `node ${nodeId} has no telemetry stream to any control plane replica`);
  }

  // ---- recent requests ----

  /** Recent requests of this replica's sidecars (of one service, when given), oldest first. */
  async replicaRequests(query: URLSearchParams, service?: { name: string; namespace: string }): Promise<NodeRecord[]> {
    const nodes = this.sidecars(service);
    const q = new URLSearchParams(query);
    q.delete('failed');
    q.delete('service');
    q.delete('scope');
    const failedOnly = query.get('failed') === '1' || query.get('failed') === 'true';
    const lists = await Promise.all(
      nodes.map(async (n) => {
        try {
          const body = (await this.deps.relay.get(n.nodeId, '/requests', q.toString())) as { items?: RequestRecord[] };
          return (body.items ?? []).filter((r) => !failedOnly || isFailure(r)).map((r) => ({ ...r, node: n.nodeId, host: hostOf(n.peer) }));
        } catch {
          return [];
        }
      }),
    );
    return lists.flat().sort((a, b) => a.time - b.time);
  }

  async requests(query: URLSearchParams, service?: { name: string; namespace: string }): Promise<{ items: NodeRecord[]; unreachableReplicas: { replica: string; error: string }[] }> {
    const limit = Math.max(1, Math.min(1000, Number(query.get('limit') ?? 100) || 100));
    const q = new URLSearchParams(query);
    q.set('scope', 'replica');
    const [local, remote] = await Promise.all([this.replicaRequests(query, service), this.fromPeers<NodeRecord>(`/api/v1/requests?${q}`)]);
    const all = [...local, ...remote.items].sort((a, b) => a.time - b.time);
    return { items: all.slice(Math.max(0, all.length - limit)), unreachableReplicas: remote.failed };
  }

  // ---- tap ----

  /** This replica's sidecars of a service: their finished requests matching `query`, until `signal` aborts. */
  replicaTap(service: { name: string; namespace?: string }, query: string, onRecord: (r: NodeRecord) => void, onNote: (note: string) => void, signal: AbortSignal): Promise<void> {
    const all = this.sidecars(service);
    const nodes = all.filter((n) => this.deps.relay.has(n.nodeId));
    for (const n of all) if (!nodes.includes(n)) onNote(`${n.nodeId}: no telemetry stream to replica ${this.deps.replica()} yet; not tapped`);
    if (nodes.length) onNote(`tapping ${nodes.length} sidecar(s) of ${service.namespace ? `${service.namespace}/` : ''}${service.name} on replica ${this.deps.replica()}: ${nodes.map((n) => n.nodeId).join(', ')}`);
    const done = Promise.all(
      nodes.map(
        (n) =>
          new Promise<void>((resolve) => {
            if (signal.aborted) return resolve();
            const host = hostOf(n.peer);
            const stop = this.deps.relay.tap(n.nodeId, query, (records) => records.forEach((r) => onRecord({ ...r, node: n.nodeId, host })), () => resolve());
            signal.addEventListener('abort', () => (stop(), resolve()), { once: true });
          }),
      ),
    ).then(() => {});
    return done;
  }

  /** Every replica's sidecars of a service; `onNote` hears which sidecars are tapped and which replicas failed. */
  async tap(service: { name: string; namespace?: string }, query: string, onRecord: (r: NodeRecord) => void, onNote: (note: string) => void, signal: AbortSignal): Promise<void> {
    const local = this.replicaTap(service, query, onRecord, onNote, signal);
    const peers = this.deps.peers?.others() ?? [];
    const q = new URLSearchParams(query);
    q.set('service', service.namespace ? `${service.namespace}/${service.name}` : service.name);
    q.set('scope', 'replica');
    await Promise.all([
      local,
      ...peers.map((peer) =>
        this.deps.peers!.streamLines(
          peer,
          `/api/v1/tap?${q}`,
          (line) => {
            const msg = JSON.parse(line) as NodeRecord | { note: string };
            if ('note' in msg) onNote(msg.note);
            else onRecord(msg);
          },
          signal,
        ).catch((err: Error) => onNote(`replica ${peer.id}: ${err.message}`)),
      ),
    ]);
  }

  private sidecars(service?: { name: string; namespace?: string }): NodeStatus[] {
    return this.deps.nodes().filter((n) => n.node.role === 'sidecar' && (!service || (n.node.service === service.name && (service.namespace === undefined || n.node.namespace === service.namespace))));
  }
}

/** A request that failed: 5xx, no response (reset, client gone) or a response flag. */
export function isFailure(r: RequestRecord): boolean {
  return r.protocol !== 'tcp' && (r.status >= 500 || r.status === 0 || (r.flags !== '' && r.flags !== '-'));
}
