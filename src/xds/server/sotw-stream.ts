// StreamAggregatedResources: the state-of-the-world variant. Each response of
// a type carries every resource the client subscribed to. After a response
// the next one waits for the client's ACK or NACK (go-control-plane style),
// and is sent against the version last sent, so a NACKed version is never
// resent: the watch stays open until the snapshot changes.
import type { XdsTypeUrl } from '../type-urls';
import { TYPE_URL } from '../type-urls';
import type { SotwResponse } from '../cache/watches';
import type { DiscoveryRequestMessage } from './ads-service';
import { AdsStream, TypeState, nackedState } from './ads-stream';
import type { SyncState, TypeStatus } from './node-status';

/** Types where an empty name list on a stream's first request means "everything" (legacy wildcard). */
const LEGACY_WILDCARD_TYPES: ReadonlySet<string> = new Set([TYPE_URL.Listener, TYPE_URL.Cluster]);

class SotwTypeState extends TypeState {
  wildcard = false;
  /** Whether the client ever named resources: then an empty list means none, not wildcard. */
  everNamed = false;
  names = new Set<string>();
  namesKey = '';
  /** The resource_names bytes of the previous request: unchanged bytes, unchanged subscription. */
  namesBytes: Buffer | undefined;
  /** namesKey of the last response sent. */
  sentNamesKey: string | undefined;
}

export class SotwStream extends AdsStream<DiscoveryRequestMessage, SotwTypeState> {
  readonly mode = 'sotw' as const;

  protected newState(typeUrl: XdsTypeUrl): SotwTypeState {
    return new SotwTypeState(typeUrl);
  }

  protected handle(typeUrl: XdsTypeUrl, req: DiscoveryRequestMessage, state: SotwTypeState): void {
    const kind = this.nonceKind(state, req);
    if (kind === 'stale') {
      this.ctx.log('debug', 'stale nonce ignored', { stream: this.id, type: typeUrl, nonce: req.response_nonce });
      return;
    }
    if (kind === 'latest') {
      this.acknowledge(state, req, req.version_info);
    } else {
      // A new subscription (or a re-request without nonce): the client says what it holds.
      state.sentVersion = undefined;
      state.sentNamesKey = undefined;
      if (req.version_info) state.ackedVersion = req.version_info;
    }
    this.updateSubscription(typeUrl, req, state);

    state.closeWatch();
    const known = state.sentVersion ?? req.version_info;
    // A wildcard client that reconnects holding the current version needs nothing; a named one is always answered.
    const knownNamesKey = state.sentNamesKey ?? (kind === 'initial' && state.wildcard ? '*' : undefined);
    const result = this.ctx.cache.createWatch(
      {
        node: this.node!,
        typeUrl,
        streamId: this.id,
        knownVersion: known,
        names: state.wildcard ? undefined : state.names,
        namesKey: state.namesKey,
        knownNamesKey,
      },
      (response) => this.respond(state, response),
    );
    if (result.response) this.respond(state, result.response);
    else state.cancelWatch = result.cancel;
  }

  private updateSubscription(typeUrl: XdsTypeUrl, req: DiscoveryRequestMessage, state: SotwTypeState): void {
    if (state.namesBytes?.equals(req.namesBytes)) return;
    // A copy: the request's bytes are a view into gRPC's message buffer.
    state.namesBytes = Buffer.from(req.namesBytes);
    const names = req.resource_names;
    if (names.length > 0) state.everNamed = true;
    state.wildcard = names.includes('*') || (names.length === 0 && !state.everNamed && LEGACY_WILDCARD_TYPES.has(typeUrl));
    state.names = new Set(names.filter((n) => n !== '*'));
    state.namesKey = state.wildcard ? '*' : [...state.names].sort().join('\n');
  }

  private respond(state: SotwTypeState, response: SotwResponse): void {
    state.cancelWatch = undefined;
    if (this.isClosed) return;
    state.sentNamesKey = response.namesKey;
    this.send(state, response.message, response.nonce, response.version);
  }

  protected typeStatus(state: SotwTypeState, snapshotVersion: string | undefined): Pick<TypeStatus, 'subscription' | 'state'> {
    let sync: SyncState;
    if (nackedState(state)) sync = 'NACKED';
    else if (snapshotVersion !== undefined && state.ackedVersion === snapshotVersion) sync = 'SYNCED';
    else if (state.sentVersion === undefined && state.ackedVersion === undefined) sync = 'NOT_SENT';
    else sync = 'STALE';
    return { subscription: state.wildcard ? '*' : [...state.names].sort(), state: sync };
  }
}
