// From the held resources to the proxy's config: which RDS and EDS names the
// listeners and clusters need, what is still missing (warming), and the
// immutable ProxyConfig snapshot handed to the data plane.
import type { DecodedCluster } from '../../proxy/config/decode-cluster';
import type { ClusterConfig, EndpointSet, ListenerConfig, ProxyConfig, RouteTable } from '../../proxy/config/types';
import type { TypeState } from './resource-state';

export interface ClientStates {
  LDS: TypeState<ListenerConfig>;
  RDS: TypeState<RouteTable>;
  CDS: TypeState<DecodedCluster>;
  EDS: TypeState<EndpointSet>;
}

/** RDS names the held listeners use. */
export function referencedRouteTables(lds: TypeState<ListenerConfig>): Set<string> {
  const names = new Set<string>();
  for (const { value } of lds.resources.values()) {
    for (const chain of [...value.chains, ...(value.defaultChain ? [value.defaultChain] : [])]) {
      if (chain.network.kind === 'http' && chain.network.routeTableName) names.add(chain.network.routeTableName);
    }
  }
  return names;
}

/** EDS names of the held EDS clusters. */
export function referencedAssignments(cds: TypeState<DecodedCluster>): Set<string> {
  const names = new Set<string>();
  for (const { value } of cds.resources.values()) {
    if (value.cluster.discovery === 'EDS') names.add(value.cluster.edsName);
  }
  return names;
}

/**
 * What a config still waits for, as "LDS (first response)", "RDS outbound"…:
 * the first LDS and CDS responses, then every subscribed RDS and EDS name
 * until the server sends it or says it does not exist.
 */
export function missingResources(states: ClientStates): string[] {
  const missing: string[] = [];
  for (const state of [states.CDS, states.LDS]) {
    if (state.awaitingFirst()) missing.push(`${state.kind} (first response)`);
  }
  for (const state of [states.RDS, states.EDS]) {
    for (const name of state.subscribed) if (state.awaiting(name)) missing.push(`${state.kind} ${name}`);
  }
  return missing;
}

/** After the warming timeout: stop waiting for what is missing now (each name until it arrives). */
export function giveUp(states: ClientStates): void {
  for (const state of [states.RDS, states.EDS]) {
    for (const name of state.subscribed) if (state.awaiting(name)) state.givenUp.add(name);
  }
  for (const state of [states.CDS, states.LDS]) if (!state.received) state.firstWaitedOut = true;
}

/**
 * A new snapshot of everything held. Decoded values are shared between
 * snapshots and never mutated, so building one costs only the maps.
 */
export function assembleConfig(states: ClientStates): ProxyConfig {
  const clusters = new Map<string, ClusterConfig>();
  const endpoints = new Map<string, EndpointSet>();
  for (const [name, r] of states.EDS.resources) endpoints.set(name, r.value);
  for (const [name, r] of states.CDS.resources) {
    clusters.set(name, r.value.cluster);
    // A STATIC cluster's own endpoints, under its name (its edsName).
    if (r.value.endpoints) endpoints.set(r.value.cluster.edsName, r.value.endpoints);
  }
  return {
    listeners: new Map([...states.LDS.resources].map(([name, r]) => [name, r.value])),
    routeTables: new Map([...states.RDS.resources].map(([name, r]) => [name, r.value])),
    clusters,
    endpoints,
    versions: {
      LDS: states.LDS.version ?? '',
      RDS: states.RDS.version ?? '',
      CDS: states.CDS.version ?? '',
      EDS: states.EDS.version ?? '',
    },
  };
}

/** A held resource as the server sent it. */
export interface RawResource {
  name: string;
  version: string;
  bytes: Uint8Array;
}

/** Everything held, raw, with each type's version: what `weft proxy --concurrency` relays to its workers. */
export interface RawResourceSet {
  versions: ProxyConfig['versions'];
  resources: Record<keyof ClientStates, RawResource[]>;
}

export function rawResources(states: ClientStates): RawResourceSet {
  const raw = (s: TypeState<unknown>) => [...s.resources.values()].map((r) => ({ name: r.name, version: r.version, bytes: r.bytes }));
  return {
    versions: { LDS: states.LDS.version ?? '', RDS: states.RDS.version ?? '', CDS: states.CDS.version ?? '', EDS: states.EDS.version ?? '' },
    resources: { LDS: raw(states.LDS), RDS: raw(states.RDS), CDS: raw(states.CDS), EDS: raw(states.EDS) },
  };
}
