// Prometheus HTTP service discovery on the control plane's API:
//
//   GET /api/v1/prometheus/targets   (viewer)
//
// One target group per connected sidecar that announced a metrics listener
// (`weft proxy --metrics-address`, node metadata WEFT_METRICS_ADDRESS), in
// the JSON Prometheus's `http_sd_configs` reads, so one prometheus.yml
// scrapes the whole mesh. A sidecar bound to 0.0.0.0 / [::] is listed at the
// address its xDS connection comes from: that is the address the control
// plane sees it at, and so the likeliest one a Prometheus can reach.
import type { ApiServer } from '../api/api-server';
import { formatHostPort, isUnspecifiedHost, parseMetricsAddress } from '../xds/metrics-address';
import { peerAddress, type NodeStatus } from '../xds/server/node-status';

export { peerAddress };

export interface TargetGroup {
  targets: string[];
  labels: Record<string, string>;
}

/**
 * The scrape targets of the connected sidecars, sorted by target. Proxyless
 * nodes and sidecars without a metrics address are left out, and so is an
 * unspecified host whose peer address is unknown; a sidecar seen on several
 * streams (a reconnect, or two replicas' views) is listed once, from its
 * newest stream.
 */
export function prometheusTargets(nodes: readonly NodeStatus[]): TargetGroup[] {
  const byTarget = new Map<string, { group: TargetGroup; connectedAt: number }>();
  for (const n of nodes) {
    if (n.node.role !== 'sidecar' || !n.node.metricsAddress) continue;
    let announced: { host: string; port: number };
    try {
      announced = parseMetricsAddress(n.node.metricsAddress);
    } catch {
      continue; // validated when the node connected; a replica of another version may differ
    }
    const host = isUnspecifiedHost(announced.host) ? peerAddress(n.peer) : announced.host;
    if (host === undefined) continue;
    const target = formatHostPort(host, announced.port);
    const labels: Record<string, string> = { __metrics_path__: '/stats/prometheus' };
    if (n.node.service) labels.weft_service = n.node.service;
    labels.weft_namespace = n.node.namespace;
    labels.weft_node = n.nodeId;
    labels.weft_replica = n.replica;
    const connectedAt = new Date(n.connectedAt).getTime();
    const seen = byTarget.get(target);
    if (!seen || connectedAt > seen.connectedAt) byTarget.set(target, { group: { targets: [target], labels }, connectedAt });
  }
  return [...byTarget.keys()].sort().map((t) => byTarget.get(t)!.group);
}

export interface PrometheusSdDeps {
  /** The xDS nodes to list (the lead passes every replica's). */
  nodes(): Promise<NodeStatus[]> | NodeStatus[];
}

export function installPrometheusSd(api: ApiServer, deps: PrometheusSdDeps): void {
  api.route('GET', /^\/api\/v1\/prometheus\/targets$/, 'viewer', async () => prometheusTargets(await deps.nodes()));
}
