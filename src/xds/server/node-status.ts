// What the server reports per connected stream: for each resource type the
// version in the snapshot, the one sent and the one acknowledged, and the
// last rejection, so `weft status` can show SYNCED / STALE / NACKED per type.
import * as net from 'node:net';
import type { NodeInfo } from '../../translate/types';
import type { XdsTypeUrl } from '../type-urls';

export interface NackRecord {
  /** The version the client rejected. */
  version: string;
  message: string;
  at: Date;
}

/**
 * SYNCED: the client acknowledged the snapshot's current version.
 * NACKED: the client rejected the last version sent (the watch waits for a new one).
 * STALE: the snapshot has a version the client has not acknowledged yet.
 * NOT_SENT: nothing sent or acknowledged yet (no snapshot, or a subscription just opened).
 */
export type SyncState = 'SYNCED' | 'STALE' | 'NACKED' | 'NOT_SENT';

export interface TypeStatus {
  typeUrl: XdsTypeUrl;
  /** CDS, EDS, LDS, RDS, SDS */
  type: string;
  /** '*' for a wildcard subscription, else the names subscribed. */
  subscription: '*' | string[];
  snapshotVersion?: string;
  sentVersion?: string;
  ackedVersion?: string;
  lastNack?: NackRecord;
  state: SyncState;
}

export interface NodeStatus {
  streamId: number;
  nodeId: string;
  node: NodeInfo;
  peer: string;
  /** The control plane replica that serves this stream (XdsServerOptions.replicaId). */
  replica: string;
  connectedAt: Date;
  mode: 'sotw' | 'delta';
  types: TypeStatus[];
  /** Why the node group's latest snapshot was not published, if it was not. */
  snapshotError?: string;
}

export interface NackEvent {
  streamId: number;
  nodeId: string;
  node: NodeInfo;
  typeUrl: XdsTypeUrl;
  type: string;
  version: string;
  message: string;
  at: Date;
}

export type StatusChange = 'connected' | 'sent' | 'acked' | 'nacked' | 'disconnected';

/**
 * The IP of an xDS stream's peer, which always carries its port: grpc-js's
 * "198.18.3.2:51234", "::ffff:198.18.3.2:51234", "fd00::5:51234" (IPv6
 * unbracketed), or grpc-core's "ipv4:198.18.3.2:51234" / "ipv6:[fd00::5]:51234".
 */
export function peerAddress(peer: string): string | undefined {
  const text = peer.replace(/^ipv[46]:/, '');
  const m = /^\[([^\]]+)\]:\d+$/.exec(text) ?? /^(.+):\d+$/.exec(text);
  let ip = (m?.[1] ?? '').replace(/%.*$/, ''); // an IPv6 zone is not part of a scrape target
  if (/^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(ip)) ip = ip.slice(7);
  return net.isIP(ip) ? ip : undefined;
}
