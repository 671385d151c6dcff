// DeltaAggregatedResources: the incremental variant. The stream tracks which
// names the client subscribed to and which version of each it holds, and
// sends only what differs plus the names that went away. Subscription changes
// apply whatever nonce they carry; only ACK/NACK bookkeeping needs the latest.
import { deltaResponseBody, nextNonce } from '../cache/response-bodies';
import { ABSENT, type DeltaResponse } from '../cache/watches';
import { TYPE_URL, type XdsTypeUrl } from '../type-urls';
import type { DeltaDiscoveryRequestMessage } from './ads-service';
import { AdsStream, TypeState, nackedState } from './ads-stream';
import type { SyncState, TypeStatus } from './node-status';

/** Types where an empty first subscription means "everything" (legacy wildcard). */
const LEGACY_WILDCARD_TYPES: ReadonlySet<string> = new Set([TYPE_URL.Listener, TYPE_URL.Cluster]);

class DeltaTypeState extends TypeState {
  initialized = false;
  wildcard = false;
  readonly subscribed = new Set<string>();
  /** name → version the client holds (ABSENT: told it does not exist). */
  readonly known = new Map<string, string>();
  /** Whether the client answered the latest response (or none was sent). */
  answered = true;
  /** A write buffer was full: the next watch opens on 'drain'. */
  waitingForDrain = false;
}

export class DeltaStream extends AdsStream<DeltaDiscoveryRequestMessage, DeltaTypeState> {
  readonly mode = 'delta' as const;

  protected newState(typeUrl: XdsTypeUrl): DeltaTypeState {
    return new DeltaTypeState(typeUrl);
  }

  protected handle(typeUrl: XdsTypeUrl, req: DeltaDiscoveryRequestMessage, state: DeltaTypeState): void {
    const first = !state.initialized;
    if (first) {
      state.initialized = true;
      for (const [name, version] of Object.entries(req.initial_resource_versions ?? {})) state.known.set(name, version);
      if (req.resource_names_subscribe.length === 0 && LEGACY_WILDCARD_TYPES.has(typeUrl)) state.wildcard = true;
    }
    const kind = this.nonceKind(state, req);
    if (kind === 'latest') {
      state.answered = true;
      this.acknowledge(state, req, state.sentVersion ?? '');
    } else if (kind === 'stale') {
      this.ctx.log('debug', 'stale nonce ignored', { stream: this.id, type: typeUrl, nonce: req.response_nonce });
    }

    let subscriptionChanged = false;
    for (const name of req.resource_names_subscribe) {
      subscriptionChanged = true;
      if (name === '*') state.wildcard = true;
      else state.subscribed.add(name);
    }
    for (const name of req.resource_names_unsubscribe) {
      subscriptionChanged = true;
      if (name === '*') {
        state.wildcard = false;
      } else {
        state.subscribed.delete(name);
        // The client drops it; if still covered by a wildcard it will be sent again.
        state.known.delete(name);
      }
    }
    if (first || subscriptionChanged || (!state.cancelWatch && !state.waitingForDrain)) this.watch(state);
  }

  private watch(state: DeltaTypeState): void {
    state.closeWatch();
    if (this.isClosed) return;
    const result = this.ctx.cache.createDeltaWatch(
      {
        node: this.node!,
        typeUrl: state.typeUrl,
        streamId: this.id,
        wildcard: state.wildcard,
        subscribed: state.subscribed,
        known: state.known,
        initial: state.sentVersion === undefined,
      },
      (response) => this.respond(state, response),
    );
    if (result.response) this.respond(state, result.response);
    else state.cancelWatch = result.cancel;
  }

  private respond(state: DeltaTypeState, response: DeltaResponse): void {
    state.cancelWatch = undefined;
    if (this.isClosed) return;
    // Recorded as held once sent: a NACKed resource is not resent until it changes.
    for (const r of response.resources) state.known.set(r.name, r.hash);
    for (const name of response.removed) {
      if (state.subscribed.has(name)) state.known.set(name, ABSENT);
      else state.known.delete(name);
    }
    state.answered = false;
    const nonce = nextNonce();
    const entries = response.resources.map((r) => r.deltaEntry);
    const message = deltaResponseBody(state.typeUrl, response.systemVersion, entries, response.removed, nonce);
    const writable = this.send(state, message, nonce, response.systemVersion);
    // Delta needs no ACK before the next push; watch again at once unless the client is not reading.
    if (writable) {
      this.watch(state);
    } else {
      state.waitingForDrain = true;
      this.call.once('drain', () => {
        state.waitingForDrain = false;
        this.watch(state);
      });
    }
  }

  protected typeStatus(state: DeltaTypeState, snapshotVersion: string | undefined): Pick<TypeStatus, 'subscription' | 'state'> {
    let sync: SyncState;
    if (nackedState(state)) sync = 'NACKED';
    // An open watch means the client holds everything of the current snapshot it subscribed to.
    else if (snapshotVersion !== undefined && state.cancelWatch && state.answered) sync = 'SYNCED';
    else if (state.sentVersion === undefined) sync = 'NOT_SENT';
    else sync = 'STALE';
    const subscription: '*' | string[] = state.wildcard ? '*' : [...state.subscribed].sort();
    return { subscription, state: sync };
  }
}
