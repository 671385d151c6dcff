// The check run before a snapshot is published: every name a resource refers
// to must exist in the same snapshot, or a client would wait forever for it
// (a listener's RDS route table, a route's cluster, an EDS cluster's endpoints).
import { decodeMessage } from '../protos';
import { TYPE_URL } from '../type-urls';
import type { ResourceSet } from '../../translate/types';

/** Enum value of Cluster.DiscoveryType.EDS. */
const CLUSTER_TYPE_EDS = 3;

type Obj = Record<string, any>;

function anyBytes(value: unknown): Uint8Array | undefined {
  if (value instanceof Uint8Array) return value;
  if (typeof value === 'string') return Buffer.from(value, 'base64');
  return undefined;
}

/** Decodes an Any of the given type URL (nested in a resource as {type_url, value}); undefined for other types. */
function unpack(any: Obj | undefined, typeUrl: string): Obj | undefined {
  if (!any || any.type_url !== typeUrl) return undefined;
  const bytes = anyBytes(any.value);
  return bytes ? decodeMessage(typeUrl, bytes) : undefined;
}

/** Cluster names a RouteConfiguration's actions point at. */
function routeClusters(routeConfig: Obj): string[] {
  const out: string[] = [];
  for (const vhost of routeConfig.virtual_hosts ?? []) {
    for (const route of vhost.routes ?? []) {
      const action = route.route;
      if (!action) continue;
      if (action.cluster) out.push(action.cluster);
      for (const wc of action.weighted_clusters?.clusters ?? []) if (wc.name) out.push(wc.name);
      for (const mirror of action.request_mirror_policies ?? []) if (mirror.cluster) out.push(mirror.cluster);
    }
  }
  return out;
}

interface ListenerRefs {
  routeConfigNames: string[];
  inlineRouteConfigs: Obj[];
  clusters: string[];
}

/** What one listener refers to, through its HTTP connection managers and TCP proxies. */
function listenerRefs(listener: Obj): ListenerRefs {
  const refs: ListenerRefs = { routeConfigNames: [], inlineRouteConfigs: [], clusters: [] };
  const networkFilterConfigs: Obj[] = [];
  if (listener.api_listener?.api_listener) networkFilterConfigs.push(listener.api_listener.api_listener);
  const chains = [...(listener.filter_chains ?? []), ...(listener.default_filter_chain ? [listener.default_filter_chain] : [])];
  for (const chain of chains) {
    for (const filter of chain.filters ?? []) if (filter.typed_config) networkFilterConfigs.push(filter.typed_config);
  }
  for (const any of networkFilterConfigs) {
    const hcm = unpack(any, TYPE_URL.HttpConnectionManager);
    if (hcm) {
      if (hcm.rds?.route_config_name) refs.routeConfigNames.push(hcm.rds.route_config_name);
      if (hcm.route_config) refs.inlineRouteConfigs.push(hcm.route_config);
      continue;
    }
    const tcp = unpack(any, TYPE_URL.TcpProxy);
    if (tcp) {
      if (tcp.cluster) refs.clusters.push(tcp.cluster);
      for (const wc of tcp.weighted_clusters?.clusters ?? []) if (wc.name) refs.clusters.push(wc.name);
    }
  }
  return refs;
}

function isEdsCluster(cluster: Obj): boolean {
  return cluster.type === 'EDS' || cluster.type === CLUSTER_TYPE_EDS;
}

/** Problems found, each naming the resource and the missing reference; empty when consistent. */
export function checkConsistency(set: ResourceSet): string[] {
  const problems: string[] = [];
  const listeners = set.get(TYPE_URL.Listener) ?? new Map();
  const routes = set.get(TYPE_URL.RouteConfiguration) ?? new Map();
  const clusters = set.get(TYPE_URL.Cluster) ?? new Map();
  const assignments = set.get(TYPE_URL.ClusterLoadAssignment) ?? new Map();

  const requireCluster = (name: string, where: string) => {
    if (!clusters.has(name)) problems.push(`${where} references cluster "${name}", which is not in CDS`);
  };

  for (const { name, resource } of listeners.values()) {
    let refs: ListenerRefs;
    try {
      refs = listenerRefs(resource);
    } catch (err) {
      problems.push(`Listener "${name}" has a filter config that does not decode: ${(err as Error).message}`);
      continue;
    }
    for (const rds of refs.routeConfigNames) {
      if (!routes.has(rds)) problems.push(`Listener "${name}" references RouteConfiguration "${rds}", which is not in RDS`);
    }
    for (const rc of refs.inlineRouteConfigs) {
      for (const c of routeClusters(rc)) requireCluster(c, `Listener "${name}" (inline route config)`);
    }
    for (const c of refs.clusters) requireCluster(c, `Listener "${name}" (tcp proxy)`);
  }
  for (const { name, resource } of routes.values()) {
    for (const c of routeClusters(resource)) requireCluster(c, `RouteConfiguration "${name}"`);
  }
  for (const { name, resource } of clusters.values()) {
    if (!isEdsCluster(resource)) continue;
    const serviceName = resource.eds_cluster_config?.service_name || name;
    if (!assignments.has(serviceName)) {
      problems.push(`Cluster "${name}" uses EDS but ClusterLoadAssignment "${serviceName}" is not in EDS`);
    }
  }
  return problems;
}
