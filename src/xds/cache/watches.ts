// The watch contract between the xDS server and the snapshot cache, after
// go-control-plane's ConfigWatcher: a watch either answers at once (the
// snapshot already differs from what the stream holds) or stays pending
// until a published snapshot differs, and can be cancelled.
import type { NodeInfo } from '../../translate/types';
import type { XdsTypeUrl } from '../type-urls';
import type { EncodedResource, TypeSnapshot } from './snapshot';

export interface SotwWatchRequest {
  node: NodeInfo;
  typeUrl: XdsTypeUrl;
  /** The stream asking, so the cache can tell when it has caught up (for deferred removals). */
  streamId?: number;
  /** The version the stream last sent for this type, or before that the client's version_info. */
  knownVersion: string;
  /** The requested names; undefined for a wildcard subscription. */
  names?: ReadonlySet<string>;
  /** A stable key of the subscription ('*' for wildcard, sorted names otherwise). */
  namesKey: string;
  /** The namesKey of the last response the stream sent, or undefined if none: a subscription change is answered. */
  knownNamesKey?: string;
}

export interface SotwResponse {
  typeUrl: XdsTypeUrl;
  version: string;
  namesKey: string;
  /** The complete DiscoveryResponse, shared with other streams. */
  message: Buffer;
  nonce: string;
}

/** The version a delta stream records for a subscribed name it was told does not exist. */
export const ABSENT = '';

export interface DeltaWatchRequest {
  node: NodeInfo;
  typeUrl: XdsTypeUrl;
  /** The stream asking, so the cache can tell when it has caught up (for deferred removals). */
  streamId?: number;
  wildcard: boolean;
  /** Names subscribed explicitly. */
  subscribed: ReadonlySet<string>;
  /** name → the resource version the client holds (ABSENT: told it does not exist). */
  known: ReadonlyMap<string, string>;
  /** Nothing was sent for this type on the stream yet: even an empty answer tells a wildcard client the state. */
  initial?: boolean;
}

export interface DeltaResponse {
  typeUrl: XdsTypeUrl;
  systemVersion: string;
  resources: EncodedResource[];
  removed: string[];
}

/** A watch answered at once, or pending with a way to cancel it. */
export type WatchResult<R> = { response: R; cancel?: undefined } | { response?: undefined; cancel: () => void };

/** The SotW answer for a stream, or undefined when it already holds this version and subscription. */
export function sotwAnswer(snap: TypeSnapshot, req: SotwWatchRequest): SotwResponse | undefined {
  if (snap.version === req.knownVersion && req.namesKey === req.knownNamesKey) return undefined;
  const { bytes, nonce } = snap.sotwMessage(req.names, req.namesKey);
  return { typeUrl: req.typeUrl, version: snap.version, namesKey: req.namesKey, message: bytes, nonce };
}

/** The delta answer: resources whose version differs from the client's, and names it holds that are gone. */
export function deltaAnswer(snap: TypeSnapshot, req: DeltaWatchRequest): DeltaResponse | undefined {
  const resources: EncodedResource[] = [];
  const removed: string[] = [];
  const consider = (name: string) => {
    const r = snap.resources.get(name);
    const held = req.known.get(name);
    if (r) {
      if (held !== r.hash) resources.push(r);
    } else if (held !== undefined ? held !== ABSENT : req.subscribed.has(name)) {
      // Gone, or explicitly asked for and never existed: say so, so the client need not wait for a timeout.
      removed.push(name);
    }
  };
  if (req.wildcard) {
    for (const name of snap.resources.keys()) consider(name);
    for (const name of req.known.keys()) if (!snap.resources.has(name)) consider(name);
    for (const name of req.subscribed) if (!snap.resources.has(name) && !req.known.has(name)) consider(name);
  } else {
    for (const name of req.subscribed) consider(name);
  }
  // A wildcard subscriber with nothing to receive still gets one answer, or it would wait for warming to time out.
  if (resources.length === 0 && removed.length === 0 && !(req.wildcard && req.initial)) return undefined;
  return { typeUrl: req.typeUrl, systemVersion: snap.version, resources, removed };
}
