// One finished request (or TCP connection) as the access log, `weft tap`,
// the admin /requests ring and `weft explain` see it. The exchanges build a
// record only when RequestObservers.active says someone listens: with no
// access log, no tap client and no ring, the hot path allocates nothing.
//
// Record fields are part of the contract with the access log format, the
// admin /tap and /requests endpoints and the dashboard: add, never rename.

export type RecordProtocol = 'http1' | 'http2' | 'grpc' | 'tcp';

export interface RequestRecord {
  /** Start of the request (first byte of its head), epoch milliseconds. */
  time: number;
  /** Until the last response byte (or the local reply, or the connection's close for TCP), ms. */
  durationMs: number;
  direction: 'inbound' | 'outbound' | string;
  protocol: RecordProtocol;
  /** '' for TCP. */
  method: string;
  authority: string;
  path: string;
  /** The route entry's name ('' when no route matched, and for TCP). */
  route: string;
  cluster: string;
  /** address:port of the endpoint that answered last ('' when none was picked). */
  upstream: string;
  /** HTTP status sent downstream; 0 when the client left first (DC) or for TCP. */
  status: number;
  /** grpc-status, when the request was gRPC and one was seen. */
  grpcStatus?: number;
  /** Envoy response flags, comma-separated ('' when none). */
  flags: string;
  /** Bytes received from downstream / sent back (HTTP/1: heads and framing included; HTTP/2: DATA payloads). */
  requestBytes: number;
  responseBytes: number;
  /** The downstream peer, address:port. */
  sourceAddress: string;
  /** Calling and called service ('unknown' when not known: inbound callers before mTLS). */
  source: string;
  destination: string;
  /** Tries made (1 without retries). */
  attempts: number;
  /** W3C trace id (32 hex digits), when tracing is on. */
  traceId?: string;
}

export type RecordObserver = (record: RequestRecord) => void;

/** The service a cluster name points at: `outbound|<port>||<svc>.<ns>` → `<svc>.<ns>`; '' when it has none. */
export function clusterService(cluster: string): string {
  if (!cluster.startsWith('outbound|')) return '';
  const i = cluster.indexOf('||');
  return i < 0 ? '' : cluster.slice(i + 2);
}

/** A bounded ring of the latest records, oldest first when read. */
export class RecordRing {
  private readonly items: (RequestRecord | undefined)[];
  private next = 0;
  private count = 0;

  constructor(readonly capacity: number) {
    this.items = new Array(capacity);
  }

  push(record: RequestRecord): void {
    this.items[this.next] = record;
    this.next = (this.next + 1) % this.capacity;
    if (this.count < this.capacity) this.count++;
  }

  /** The last `limit` records (all by default), oldest first. */
  latest(limit = this.count): RequestRecord[] {
    const n = Math.min(limit, this.count);
    const out: RequestRecord[] = [];
    for (let i = n; i > 0; i--) out.push(this.items[(this.next - i + this.capacity) % this.capacity]!);
    return out;
  }
}

/**
 * Who wants records: the access log, tap clients, the ring. `active` is read
 * on the hot path; it changes only when an observer comes or goes.
 */
export class RequestObservers {
  active = false;
  readonly ring: RecordRing | undefined;
  private readonly observers = new Set<RecordObserver>();

  /** `ringSize` 0: no ring of recent requests. */
  constructor(ringSize = 0) {
    if (ringSize > 0) this.ring = new RecordRing(ringSize);
    this.active = this.ring !== undefined;
  }

  /** Registers an observer; the returned function removes it. */
  add(observer: RecordObserver): () => void {
    this.observers.add(observer);
    this.active = true;
    this.onObservers?.(this.observers.size);
    return () => {
      if (!this.observers.delete(observer)) return;
      this.active = this.observers.size > 0 || this.ring !== undefined;
      this.onObservers?.(this.observers.size);
    };
  }

  /** Told how many observers there are whenever that changes (a --concurrency primary asks its workers for records only while someone observes). */
  onObservers: ((count: number) => void) | undefined;

  emit(record: RequestRecord): void {
    this.ring?.push(record);
    for (const o of this.observers) {
      try {
        o(record);
      } catch {
        // An observer's bug must not break the request that is finishing.
      }
    }
  }
}
