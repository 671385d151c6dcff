// The control plane's end of the admin relay: each sidecar connected to this
// replica keeps one stream open here (it says who it is first), and the API
// asks it for admin views (`get`) or taps its requests while someone
// watches, over that stream: the sidecar needs no inbound port and its
// admin port stays on its own loopback. Outside --dev the stream must carry
// the node's join token, as ADS does.
//
// Bounded: at most MAX_PENDING unanswered gets per sidecar (then "busy"),
// each answered within its timeout or failed; taps end with the stream.
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../log';
import type { RequestRecord } from '../request-record';
import type { NodeInfo } from '../../translate/types';
import { nodeInfoFromXdsNode } from '../../xds/node-info';
import { XdsProtocolError } from '../../xds/server/errors';
import { adminRelayDefinition, type RelayDown, type RelayUp } from './telemetry-protocol';
import type { StreamAuthorizer } from './metrics-intake';

const MAX_PENDING = 64;
const DEFAULT_TIMEOUT_MS = 3000;

export class RelayError extends Error {
  constructor(
    readonly code: 'E_RELAY_NO_STREAM' | 'E_RELAY_TIMEOUT' | 'E_RELAY_BUSY' | 'E_RELAY_CLOSED' | 'E_RELAY_VIEW',
    message: string,
  ) {
    super(message);
  }
}

interface Tap {
  onRecords: (records: RequestRecord[]) => void;
  onEnd: (reason?: string) => void;
}

class Session {
  private nextId = 1;
  readonly pending = new Map<number, { resolve: (body: unknown) => void; reject: (err: Error) => void; timer: NodeJS.Timeout }>();
  readonly taps = new Map<number, Tap>();

  constructor(
    readonly node: NodeInfo,
    readonly call: grpc.ServerDuplexStream<RelayUp, RelayDown>,
  ) {}

  id(): number {
    return this.nextId++;
  }

  onMessage(msg: RelayUp): void {
    if (!('id' in msg)) return;
    if ('records' in msg) return void this.taps.get(msg.id)?.onRecords(msg.records);
    const tap = this.taps.get(msg.id);
    if (tap && msg.error !== undefined) {
      this.taps.delete(msg.id);
      return tap.onEnd(msg.error);
    }
    const p = this.pending.get(msg.id);
    if (!p) return;
    this.pending.delete(msg.id);
    clearTimeout(p.timer);
    if (msg.error !== undefined) p.reject(new RelayError('E_RELAY_VIEW', msg.error));
    else p.resolve(msg.body);
  }

  end(reason: string): void {
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new RelayError('E_RELAY_CLOSED', reason));
    }
    this.pending.clear();
    for (const t of this.taps.values()) t.onEnd(reason);
    this.taps.clear();
  }
}

export class AdminRelay {
  private readonly sessions = new Map<string, Session>();
  private readonly waiting = new Set<() => void>();

  constructor(private readonly opts: { authorize?: StreamAuthorizer; log: Logger }) {}

  /** Whether the node has a relay stream open to this replica. */
  has(nodeId: string): boolean {
    return this.sessions.has(nodeId);
  }

  nodeIds(): string[] {
    return [...this.sessions.keys()];
  }

  /** Resolves once the node has a relay stream here, or after `timeoutMs` (check has() after). */
  waitForSession(nodeId: string, timeoutMs: number): Promise<void> {
    if (this.sessions.has(nodeId)) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        if (!this.sessions.has(nodeId)) return; // another node's stream
        clearTimeout(timer);
        this.waiting.delete(done);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiting.delete(done);
        resolve();
      }, timeoutMs);
      this.waiting.add(done);
    });
  }

  /** An admin view of the node's sidecar (`/clusters`, `/requests` with `limit=…`). */
  get(nodeId: string, path: string, query = '', timeoutMs = DEFAULT_TIMEOUT_MS): Promise<unknown> {
    const s = this.sessions.get(nodeId);
    if (!s) return Promise.reject(new RelayError('E_RELAY_NO_STREAM', `node ${nodeId} has no telemetry stream to this control plane replica`));
    if (s.pending.size >= MAX_PENDING) return Promise.reject(new RelayError('E_RELAY_BUSY', `node ${nodeId} has ${MAX_PENDING} relayed requests in flight`));
    const id = s.id();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        s.pending.delete(id);
        reject(new RelayError('E_RELAY_TIMEOUT', `node ${nodeId} did not answer ${path} within ${timeoutMs} ms`));
      }, timeoutMs);
      s.pending.set(id, { resolve, reject, timer });
      s.call.write({ id, get: path, query });
    });
  }

  /** Streams the node's finished requests matching `query` until the returned function is called or the stream ends (onEnd). */
  tap(nodeId: string, query: string, onRecords: (records: RequestRecord[]) => void, onEnd: (reason?: string) => void): () => void {
    const s = this.sessions.get(nodeId);
    if (!s) {
      onEnd(`node ${nodeId} has no telemetry stream to this control plane replica`);
      return () => {};
    }
    const id = s.id();
    s.taps.set(id, { onRecords, onEnd });
    s.call.write({ id, tap: query });
    return () => {
      if (!s.taps.delete(id)) return;
      if (this.sessions.get(nodeId) === s) s.call.write({ id, cancel: true });
    };
  }

  /** Ends every relay stream (the control plane is stopping). */
  close(): void {
    for (const s of [...this.sessions.values()]) {
      s.end('the control plane is stopping');
      s.call.end();
    }
    this.sessions.clear();
  }

  service(): { definition: grpc.ServiceDefinition; handlers: grpc.UntypedServiceImplementation } {
    return { definition: adminRelayDefinition(), handlers: { Connect: (call: grpc.ServerDuplexStream<RelayUp, RelayDown>) => this.connect(call) } };
  }

  private connect(call: grpc.ServerDuplexStream<RelayUp, RelayDown>): void {
    let session: Session | undefined;
    const close = (reason: string) => {
      if (!session) return;
      session.end(reason);
      if (this.sessions.get(session.node.id) === session) this.sessions.delete(session.node.id);
      session = undefined;
    };
    call.on('data', (msg: RelayUp) => {
      if (session) return session.onMessage(msg);
      try {
        if (!('hello' in msg) || !msg.hello?.node) throw new XdsProtocolError('E_XDS_MISSING_NODE', 'the first relay message must be {hello: {node}}');
        const node = nodeInfoFromXdsNode(msg.hello.node);
        this.opts.authorize?.(call.metadata, node);
        session = new Session(node, call);
        // A reconnecting sidecar: its new stream replaces the old one.
        this.sessions.get(node.id)?.end('replaced by a new stream of the node');
        this.sessions.set(node.id, session);
        for (const wake of [...this.waiting]) wake();
      } catch (err) {
        const code = err instanceof XdsProtocolError ? err.grpcCode : grpc.status.INVALID_ARGUMENT;
        call.emit('error', { code, details: (err as Error).message });
      }
    });
    call.on('end', () => {
      close('the sidecar closed its relay stream');
      call.end();
    });
    call.on('error', () => close('the relay stream failed'));
    call.on('cancelled', () => close('the relay stream was cancelled'));
  }
}
