// The control plane's addresses, and the failover policy every client of it
// follows. The control plane may run as several replicas that all serve the
// same things (xDS, SDS, the rate limit service, the admin API); a client is
// given them as one comma-separated list (`weft proxy --xds a:15010,b:15010`,
// `--api http://a:15000,http://b:15000`) and needs any one that answers.
//
// - One list and one preferred address, shared by every client in the
//   process that uses it (the sidecar: its ADS stream, its certificate
//   agent, its global rate limit calls). An address that fails stops being
//   preferred and the next one in the list becomes so (round robin); one that
//   answers becomes preferred, so the unary clients follow the replica the
//   ADS stream found working.
// - The first preferred address: drawn at random for xDS (a fleet of
//   sidecars spreads over the replicas), the first one given for the admin
//   API (the user's order).
// - A stream (FailoverStream): after a failure the next address is tried at
//   once; only when every address failed in a row (a full round) does the
//   jittered exponential backoff wait before the next round. A stream counts
//   as having worked when the server answered on it and it lasted
//   `stableMs`: replicas that answer and then drop every stream at once are
//   a failing round, not a busy loop.
// - A unary call (call()): one attempt per address, preferred first, until
//   one answers. Only "could not reach it" moves on (the caller says which
//   errors mean that: a refused connection, a timeout, an unreachable host);
//   any other answer, an error status included, is the replica's answer and
//   is returned as is. When every address failed, the error names each one
//   and why.
import { Backoff, type BackoffOptions } from './backoff';

export class AddressListError extends Error {
  readonly code = 'E_ADDRESS_LIST';
}

/** Every address of a call failed to answer. */
export class UnreachableError extends Error {
  readonly code = 'E_CONTROL_PLANE_UNREACHABLE';
  constructor(
    what: string,
    /** Each address tried, in order, with why it failed. */
    readonly attempts: readonly { address: string; error: string }[],
  ) {
    super(`${what}: no control plane address answered: ${attempts.map((a) => `${a.address} (${a.error})`).join(', ')}`);
  }
}

/** google.rpc.Code UNAVAILABLE and DEADLINE_EXCEEDED (what @grpc/grpc-js reports for a replica it cannot reach or that did not answer in time). */
const GRPC_UNAVAILABLE = 14;
const GRPC_DEADLINE_EXCEEDED = 4;

/** Whether a gRPC error means the replica could not be reached (the next one is tried); any other status is the replica's answer. */
export function grpcUnreachable(err: unknown): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  return code === GRPC_UNAVAILABLE || code === GRPC_DEADLINE_EXCEEDED;
}

const HOST_PORT = /^(\[[0-9a-fA-F:.]+\]|[^:\s,[\]]+):(\d{1,5})$/;

function split(spec: string | readonly string[]): string[] {
  const parts = (typeof spec === 'string' ? spec.split(',') : [...spec].flatMap((s) => s.split(','))).map((s) => s.trim());
  if (parts.length === 0 || parts.every((p) => p === '')) throw new AddressListError('expected at least one address');
  const empty = parts.findIndex((p) => p === '');
  if (empty >= 0) throw new AddressListError(`address ${empty + 1} of "${[spec].flat().join(',')}" is empty`);
  return parts;
}

function dedupe(list: string[]): string[] {
  return [...new Set(list)];
}

/** "a:15010,b:15010" → ["a:15010", "b:15010"]: each host:port (IPv6 in brackets), duplicates dropped. */
export function parseXdsAddresses(spec: string | readonly string[]): string[] {
  return dedupe(
    split(spec).map((a) => {
      const m = HOST_PORT.exec(a);
      if (!m || Number(m[2]) > 65535 || Number(m[2]) === 0) throw new AddressListError(`"${a}" is not host:port (e.g. 10.0.0.5:15010 or [::1]:15010)`);
      return a;
    }),
  );
}

/** "http://a:15000,http://b:15000" → the base URLs (http or https), duplicates dropped. */
export function parseApiUrls(spec: string | readonly string[]): string[] {
  return dedupe(
    split(spec).map((u) => {
      let url: URL;
      try {
        url = new URL(u);
      } catch {
        throw new AddressListError(`"${u}" is not a URL (e.g. http://127.0.0.1:15000)`);
      }
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new AddressListError(`"${u}" is not an http:// or https:// URL`);
      return u;
    }),
  );
}

export interface ControlPlaneAddressesOptions {
  /** Where the first preferred address comes from: 'random' (xDS: spreads a fleet) or 'first' (the order given). Default 'random'. */
  start?: 'random' | 'first';
  random?: () => number;
  /** The clock FailoverStream and call() deadlines read (tests pass a fake one). */
  now?: () => number;
}

export interface CallOptions {
  /** Whether an error means the address could not be reached (then the next one is tried). */
  unreachable: (err: unknown) => boolean;
  /** What the call is, for the error when none answers ("FetchSecrets", "GET /api/v1/nodes"). */
  what: string;
  /** No further address is tried after this time (the clock's ms); the error says which were left. */
  deadline?: number;
  /** Called when an address failed and another is tried next (a debug log's hook). */
  onFailover?: (failed: string, error: string, next: string) => void;
}

export class ControlPlaneAddresses {
  readonly list: readonly string[];
  readonly now: () => number;
  readonly random: () => number;
  private preferredIndex: number;

  constructor(list: readonly string[], opts: ControlPlaneAddressesOptions = {}) {
    if (list.length === 0) throw new AddressListError('expected at least one address');
    this.list = [...list];
    this.random = opts.random ?? Math.random;
    this.now = opts.now ?? Date.now;
    this.preferredIndex = (opts.start ?? 'random') === 'random' ? Math.min(list.length - 1, Math.floor(this.random() * list.length)) : 0;
  }

  /** xDS addresses ("host:port,host:port"), starting from a random one. */
  static xds(spec: string | readonly string[], opts: Omit<ControlPlaneAddressesOptions, 'start'> = {}): ControlPlaneAddresses {
    return new ControlPlaneAddresses(parseXdsAddresses(spec), { ...opts, start: 'random' });
  }

  /** Admin API base URLs ("http://a:15000,http://b:15000"), in the order given. */
  static api(spec: string | readonly string[], opts: Omit<ControlPlaneAddressesOptions, 'start'> = {}): ControlPlaneAddresses {
    return new ControlPlaneAddresses(parseApiUrls(spec), { ...opts, start: 'first' });
  }

  get size(): number {
    return this.list.length;
  }

  /** The address to use now. */
  get preferred(): string {
    return this.list[this.preferredIndex];
  }

  /** Every address in the order to try them now: the preferred, then the ones after it, wrapping around. */
  order(): string[] {
    return this.list.map((_, i) => this.list[(this.preferredIndex + i) % this.list.length]);
  }

  /** `address` answered: it becomes the preferred one. */
  succeeded(address: string): void {
    const i = this.list.indexOf(address);
    if (i >= 0) this.preferredIndex = i;
  }

  /** `address` failed: if it was the preferred one, the next in the list is now. */
  failed(address: string): void {
    if (this.list[this.preferredIndex] === address) this.preferredIndex = (this.preferredIndex + 1) % this.list.length;
  }

  /** The reconnection policy of one stream (the ADS client's). */
  stream(backoff: BackoffOptions, stableMs = 1000): FailoverStream {
    return new FailoverStream(this, new Backoff(backoff, this.random), stableMs);
  }

  /**
   * Calls `attempt` with one address after another, preferred first, until
   * one answers (resolves, or rejects with an error that is not
   * `unreachable`). Rejects with an UnreachableError naming every address
   * tried when none answered.
   */
  async call<T>(attempt: (address: string) => Promise<T>, opts: CallOptions): Promise<T> {
    const failures: { address: string; error: string }[] = [];
    const order = this.order();
    for (let i = 0; i < order.length; i++) {
      const address = order[i];
      if (i > 0 && opts.deadline !== undefined && this.now() >= opts.deadline) {
        for (const left of order.slice(i)) failures.push({ address: left, error: 'not tried: out of time' });
        break;
      }
      try {
        const result = await attempt(address);
        this.succeeded(address);
        return result;
      } catch (err) {
        if (!opts.unreachable(err)) {
          // The replica answered (with an error): that is the answer.
          this.succeeded(address);
          throw err;
        }
        this.failed(address);
        const error = err instanceof Error ? err.message : String(err);
        failures.push({ address, error });
        if (i + 1 < order.length) opts.onFailover?.(address, error, order[i + 1]);
      }
    }
    throw new UnreachableError(opts.what, failures);
  }

  toString(): string {
    return this.list.join(',');
  }
}

/**
 * Where a stream connects next and how long it waits first. Use: next()
 * for the address, opened() when the stream starts, answered() on each
 * response, ended() when it ends (or never opened) for the delay.
 */
export class FailoverStream {
  private current: string | undefined;
  private openedAt = 0;
  private answeredOnStream = false;
  /** Failed attempts in a row within the current round. */
  private failuresInRound = 0;
  /** Failed attempts since a stream last worked (for logs). */
  private failuresInRow = 0;

  constructor(
    readonly addresses: ControlPlaneAddresses,
    private readonly backoff: Backoff,
    private readonly stableMs: number,
  ) {}

  /** The address the next stream goes to (it becomes current()). */
  next(): string {
    this.current = this.addresses.preferred;
    this.openedAt = this.addresses.now();
    this.answeredOnStream = false;
    return this.current;
  }

  /** The address of the stream in use or being opened. */
  get address(): string | undefined {
    return this.current;
  }

  /** Failed attempts since a stream last worked. */
  get failures(): number {
    return this.failuresInRow;
  }

  /** The server answered on the current stream: its address is the preferred one. */
  answered(): void {
    this.answeredOnStream = true;
    if (this.current !== undefined) this.addresses.succeeded(this.current);
  }

  /** The current stream ended, or could not open: the delay before the next attempt (0: the next address at once). */
  ended(): number {
    if (this.answeredOnStream && this.addresses.now() - this.openedAt >= this.stableMs) {
      // It worked: this outage starts a new round from the initial delay.
      this.failuresInRound = 0;
      this.failuresInRow = 0;
      this.backoff.reset();
    }
    if (this.current !== undefined) this.addresses.failed(this.current);
    this.answeredOnStream = false;
    this.failuresInRow++;
    this.failuresInRound++;
    if (this.failuresInRound < this.addresses.size) return 0;
    this.failuresInRound = 0;
    return this.backoff.next();
  }
}
