// What SotW and delta streams share: the node handshake on the first request,
// request validation, nonces, ACK/NACK bookkeeping, failing one stream with a
// status, and cleanup when the client goes away.
import { status as GrpcStatus, type ServerDuplexStream } from '@grpc/grpc-js';
import type { SnapshotCache } from '../cache/snapshot-cache';
import type { Logger } from '../../observe/log';
import { InvalidNodeError, nodeInfoFromXdsNode, nodeGroupKey, type XdsNodeLike } from '../node-info';
import { TYPE_SHORT_NAME, XDS_RESOURCE_TYPES, type XdsTypeUrl } from '../type-urls';
import type { NodeInfo } from '../../translate/types';
import { MalformedMessage, type RpcStatusLike } from './ads-service';
import { XdsProtocolError } from './errors';
import type { NackEvent, NackRecord, NodeStatus, StatusChange, SyncState, TypeStatus } from './node-status';

export interface StreamContext {
  cache: SnapshotCache;
  log: Logger;
  onNack?: (event: NackEvent) => void;
  onStatusChange?: (status: NodeStatus, change: StatusChange) => void;
  onClosed(stream: AdsStream<any, any>): void;
  /** This control plane replica's identity, reported with each stream. */
  replica(): string;
  /** Outside --dev: throws XdsAccessError unless the call's credential may receive this node's config. */
  authorize?(metadata: import('@grpc/grpc-js').Metadata, node: NodeInfo): void;
}

/** The fields both request messages share. */
export interface AdsRequest {
  node?: XdsNodeLike | null;
  type_url: string;
  response_nonce: string;
  error_detail?: RpcStatusLike | null;
}

const KNOWN_TYPES: ReadonlySet<string> = new Set(XDS_RESOURCE_TYPES);

/** Per-type protocol state of one stream. */
export class TypeState {
  /** Nonce of the latest response sent; a request carrying another one is stale. */
  latestNonce: string | undefined;
  sentVersion: string | undefined;
  ackedVersion: string | undefined;
  lastNack: NackRecord | undefined;
  /** Cancels the pending watch, if one is open. */
  cancelWatch: (() => void) | undefined;

  constructor(readonly typeUrl: XdsTypeUrl) {}

  closeWatch(): void {
    this.cancelWatch?.();
    this.cancelWatch = undefined;
  }
}

export abstract class AdsStream<Req extends AdsRequest, State extends TypeState> {
  abstract readonly mode: 'sotw' | 'delta';
  readonly connectedAt = new Date();
  readonly peer: string;
  protected node: NodeInfo | undefined;
  protected readonly types = new Map<XdsTypeUrl, State>();
  private closed = false;

  constructor(
    readonly id: number,
    protected readonly call: ServerDuplexStream<Req | MalformedMessage, Buffer>,
    protected readonly ctx: StreamContext,
  ) {
    this.peer = call.getPeer();
    call.on('data', (msg: Req | MalformedMessage) => this.receive(msg));
    // The client half-closed: nothing more to ask for, so finish the call.
    call.on('end', () => {
      this.dispose();
      call.end();
    });
    call.on('cancelled', () => this.dispose());
    call.on('error', () => this.dispose());
    call.on('close', () => this.dispose());
  }

  get nodeInfo(): NodeInfo | undefined {
    return this.node;
  }

  /** Handles a valid request of a known type from an identified node. */
  protected abstract handle(typeUrl: XdsTypeUrl, req: Req, state: State): void;
  protected abstract newState(typeUrl: XdsTypeUrl): State;
  protected abstract typeStatus(state: State, snapshotVersion: string | undefined): Pick<TypeStatus, 'subscription' | 'state'>;

  private receive(msg: Req | MalformedMessage): void {
    if (this.closed) return;
    try {
      if (msg instanceof MalformedMessage) throw new XdsProtocolError('E_XDS_MALFORMED_REQUEST', msg.reason);
      if (!this.node) this.identify(msg);
      const typeUrl = msg.type_url;
      if (!KNOWN_TYPES.has(typeUrl)) {
        throw new XdsProtocolError('E_XDS_UNKNOWN_TYPE', `unknown resource type URL "${typeUrl}"`);
      }
      let state = this.types.get(typeUrl as XdsTypeUrl);
      if (!state) {
        state = this.newState(typeUrl as XdsTypeUrl);
        this.types.set(typeUrl as XdsTypeUrl, state);
      }
      this.handle(typeUrl as XdsTypeUrl, msg, state);
    } catch (err) {
      this.fail(err);
    }
  }

  private identify(msg: Req): void {
    if (!msg.node) throw new XdsProtocolError('E_XDS_MISSING_NODE', 'the first request of a stream must carry node');
    try {
      this.node = nodeInfoFromXdsNode(msg.node);
    } catch (err) {
      if (err instanceof InvalidNodeError) throw new XdsProtocolError('E_XDS_INVALID_NODE', err.message);
      throw err;
    }
    this.ctx.authorize?.(this.call.metadata, this.node);
    this.ctx.log('info', 'xds stream opened', { stream: this.id, node: this.node.id, mode: this.mode, peer: this.peer });
    this.changed('connected');
  }

  /** Classifies the request's nonce: the first of a type (or a fresh one), an answer to the latest response, or stale. */
  protected nonceKind(state: State, req: Req): 'initial' | 'latest' | 'stale' {
    const nonce = req.response_nonce;
    if (nonce === '' || state.latestNonce === undefined) return 'initial';
    return nonce === state.latestNonce ? 'latest' : 'stale';
  }

  /** Records an ACK or NACK of the latest response. */
  protected acknowledge(state: State, req: Req, ackedVersion: string): void {
    if (req.error_detail) {
      const nack: NackRecord = {
        version: state.sentVersion ?? '',
        message: req.error_detail.message ?? '',
        at: new Date(),
      };
      state.lastNack = nack;
      const type = TYPE_SHORT_NAME[state.typeUrl];
      this.ctx.log('warn', 'xds update rejected (NACK)', {
        node: this.node!.id,
        type,
        version: nack.version,
        error: nack.message,
      });
      this.ctx.onNack?.({ streamId: this.id, nodeId: this.node!.id, node: this.node!, typeUrl: state.typeUrl, type, ...nack });
      this.changed('nacked');
    } else {
      state.ackedVersion = ackedVersion;
      this.changed('acked');
    }
  }

  /** Writes an encoded response carrying `nonce`. Returns false when the write buffer is full. */
  protected send(state: State, message: Buffer, nonce: string, version: string): boolean {
    state.latestNonce = nonce;
    state.sentVersion = version;
    const ok = this.call.write(message);
    this.changed('sent');
    return ok;
  }

  protected changed(change: StatusChange): void {
    if (this.ctx.onStatusChange && this.node) this.ctx.onStatusChange(this.status()!, change);
  }

  protected get isClosed(): boolean {
    return this.closed;
  }

  /** Ends this stream with a status: INVALID_ARGUMENT for protocol errors, INTERNAL for our own bugs. */
  private fail(err: unknown): void {
    const protocol = err instanceof XdsProtocolError;
    const code = protocol ? err.grpcCode : GrpcStatus.INTERNAL;
    const details = (err as Error).message;
    this.ctx.log(protocol ? 'warn' : 'error', 'xds stream failed', {
      stream: this.id,
      node: this.node?.id,
      peer: this.peer,
      code: protocol ? err.code : 'E_XDS_INTERNAL',
      error: details,
    });
    this.dispose();
    this.call.emit('error', { code, details });
  }

  /** Cancels every watch and forgets the stream; safe to call more than once. */
  dispose(): void {
    if (this.closed) return;
    this.closed = true;
    for (const state of this.types.values()) state.closeWatch();
    if (this.node) this.ctx.cache.streamClosed(this.node, this.id);
    this.ctx.onClosed(this);
    if (this.node) {
      this.ctx.log('info', 'xds stream closed', { stream: this.id, node: this.node.id });
      this.changed('disconnected');
    }
  }

  /** Ends the call from the server side (server shutdown). */
  end(): void {
    this.dispose();
    this.call.end();
  }

  status(): NodeStatus | undefined {
    if (!this.node) return undefined;
    const snapshot = this.ctx.cache.snapshotFor(this.node);
    const error = this.ctx.cache.lastError(nodeGroupKey(this.node));
    const types: TypeStatus[] = [];
    for (const typeUrl of XDS_RESOURCE_TYPES) {
      const state = this.types.get(typeUrl);
      if (!state) continue;
      const snapshotVersion = snapshot?.type(typeUrl).version;
      types.push({
        typeUrl,
        type: TYPE_SHORT_NAME[typeUrl],
        snapshotVersion,
        sentVersion: state.sentVersion,
        ackedVersion: state.ackedVersion,
        lastNack: state.lastNack,
        ...this.typeStatus(state, snapshotVersion),
      });
    }
    return {
      streamId: this.id,
      nodeId: this.node.id,
      node: this.node,
      peer: this.peer,
      replica: this.ctx.replica(),
      connectedAt: this.connectedAt,
      mode: this.mode,
      types,
      ...(error ? { snapshotError: error.message } : {}),
    };
  }
}

/** The state of a type whose latest response was NACKed, or undefined. */
export function nackedState(state: TypeState): SyncState | undefined {
  return state.lastNack && state.sentVersion !== undefined && state.lastNack.version === state.sentVersion &&
    state.ackedVersion !== state.sentVersion
    ? 'NACKED'
    : undefined;
}
