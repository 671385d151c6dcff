// Derives the translator's NodeInfo from the xDS Node a client sends on its
// first request, and the key of the node group that shares one snapshot.
import * as net from 'node:net';
import type { NodeInfo, NodeRole } from '../translate/types';
import { formatHostPort, parseMetricsAddress } from './metrics-address';

/** Node metadata keys a weft sidecar, `weft run` or a proxyless bootstrap sets. */
export const NODE_METADATA = {
  service: 'WEFT_SERVICE',
  namespace: 'WEFT_NAMESPACE',
  role: 'WEFT_ROLE',
  outboundPort: 'WEFT_OUTBOUND_PORT',
  inboundPort: 'WEFT_INBOUND_PORT',
  appPort: 'WEFT_APP_PORT',
  /** Where the sidecar reaches its app (default 127.0.0.1): the unit's address under `weft run --transparent`. */
  appAddress: 'WEFT_APP_ADDRESS',
  /** "true" under `weft run --transparent`: the program's calls arrive on per-service VIP sockets, so TCP listeners are not bound. */
  transparent: 'WEFT_TRANSPARENT',
  /** "true" for an Envoy under `weft run --proxy envoy`: its workload certificate comes from a local SDS socket (cluster weft_sds), never from the control plane. */
  localSds: 'WEFT_LOCAL_SDS',
  /** A sidecar's admin port (on its host's loopback), for `weft status` to read its /clusters. */
  adminPort: 'WEFT_ADMIN_PORT',
  /** The name of the host the node runs on (shown beside the address its connection comes from). */
  hostname: 'WEFT_HOSTNAME',
  /** Where a sidecar serves /stats/prometheus to other hosts (`--metrics-address`), host:port; for the control plane's Prometheus service discovery. */
  metricsAddress: 'WEFT_METRICS_ADDRESS',
} as const;

/** Thrown when a Node cannot describe a weft node (no id, an unknown role). */
export class InvalidNodeError extends Error {
  readonly code = 'E_XDS_INVALID_NODE';
}

/**
 * The subset of envoy.config.core.v3.Node weft reads. It accepts both a
 * protobufjs-decoded message and its plain-object form: metadata is a
 * google.protobuf.Struct. protobufjs defines the well-known types itself, in
 * camelCase (`{ fields: { KEY: { stringValue } } }`); snake_case is accepted too.
 */
export interface XdsNodeLike {
  id?: string;
  user_agent_name?: string;
  metadata?: { fields?: Record<string, { stringValue?: string; string_value?: string } | undefined> } | null;
  locality?: { zone?: string } | null;
}

function metadataString(node: XdsNodeLike, key: string): string | undefined {
  const value = node.metadata?.fields?.[key];
  const s = value?.stringValue ?? value?.string_value;
  return typeof s === 'string' && s !== '' ? s : undefined;
}

export function nodeInfoFromXdsNode(node: XdsNodeLike): NodeInfo {
  if (!node.id) throw new InvalidNodeError('node.id is empty');
  const declaredRole = metadataString(node, NODE_METADATA.role);
  let role: NodeRole;
  if (declaredRole === undefined) {
    // gRPC's xDS clients announce themselves as "gRPC Go", "gRPC Java", "gRPC Node"…
    role = node.user_agent_name?.startsWith('gRPC') ? 'proxyless' : 'sidecar';
  } else if (declaredRole === 'sidecar' || declaredRole === 'proxyless') {
    role = declaredRole;
  } else {
    throw new InvalidNodeError(
      `node ${node.id}: metadata ${NODE_METADATA.role} is "${declaredRole}", expected "sidecar" or "proxyless"`,
    );
  }
  const info: NodeInfo = {
    id: node.id,
    role,
    namespace: metadataString(node, NODE_METADATA.namespace) ?? 'default',
  };
  const service = metadataString(node, NODE_METADATA.service);
  if (service !== undefined) info.service = service;
  const hostname = metadataString(node, NODE_METADATA.hostname);
  if (hostname !== undefined) info.hostname = hostname.slice(0, 253);
  const zone = node.locality?.zone;
  if (zone) info.zone = zone;
  for (const key of ['outboundPort', 'inboundPort', 'appPort', 'adminPort'] as const) {
    const text = metadataString(node, NODE_METADATA[key]);
    if (text === undefined) continue;
    const port = Number(text);
    if (!/^\d+$/.test(text) || port < 1 || port > 65535) {
      throw new InvalidNodeError(`node ${node.id}: metadata ${NODE_METADATA[key]} is "${text}", expected a port number 1-65535`);
    }
    info[key] = port;
  }
  const appAddress = metadataString(node, NODE_METADATA.appAddress);
  if (appAddress !== undefined) {
    if (!net.isIPv4(appAddress)) throw new InvalidNodeError(`node ${node.id}: metadata ${NODE_METADATA.appAddress} is "${appAddress}", expected an IPv4 address`);
    info.appAddress = appAddress;
  }
  const transparent = metadataString(node, NODE_METADATA.transparent);
  if (transparent !== undefined && transparent !== 'true' && transparent !== 'false') {
    throw new InvalidNodeError(`node ${node.id}: metadata ${NODE_METADATA.transparent} is "${transparent}", expected "true" or "false"`);
  }
  if (transparent === 'true') info.transparent = true;
  const localSds = metadataString(node, NODE_METADATA.localSds);
  if (localSds !== undefined && localSds !== 'true' && localSds !== 'false') {
    throw new InvalidNodeError(`node ${node.id}: metadata ${NODE_METADATA.localSds} is "${localSds}", expected "true" or "false"`);
  }
  if (localSds === 'true') info.localSds = true;
  const metrics = metadataString(node, NODE_METADATA.metricsAddress);
  if (metrics !== undefined) {
    try {
      const { host, port } = parseMetricsAddress(metrics);
      info.metricsAddress = formatHostPort(host, port);
    } catch (err) {
      throw new InvalidNodeError(`node ${node.id}: metadata ${NODE_METADATA.metricsAddress}: ${(err as Error).message}`);
    }
  }
  return info;
}

/** Nodes with the same role, namespace, service, zone and sidecar ports receive the same resources, so they share one snapshot. */
export function nodeGroupKey(info: NodeInfo): string {
  // Zone is part of the key: the translator orders localities by the node's zone.
  const ports = info.outboundPort || info.inboundPort || info.appPort ? `|${info.outboundPort ?? ''}|${info.inboundPort ?? ''}|${info.appPort ?? ''}` : '';
  const app = info.appAddress || info.transparent ? `|${info.appAddress ?? ''}|${info.transparent ? 'transparent' : ''}` : '';
  // A local-SDS node gets other sds_config sources for the workload certificate.
  const sds = info.localSds ? '|local-sds' : '';
  return `${info.role}|${info.namespace}|${info.service ?? ''}|${info.zone ?? ''}${ports}${app}${sds}`;
}
