// A scripted delta ADS server for protocol tests of the client: it records
// every request and sends exactly the responses a test pushes (the real
// control plane is used by the integration tests).
import * as grpc from '@grpc/grpc-js';
import { adsClientDefinition } from '../../../src/xds/server/ads-service';
import { anyOf } from '../../../src/xds/protos';

export type Obj = Record<string, any>;

export interface Request {
  stream: number;
  msg: Obj;
}

export class FakeAdsServer {
  private readonly server = new grpc.Server();
  private readonly calls: grpc.ServerDuplexStream<Obj, Obj>[] = [];
  private readonly queue: Request[] = [];
  private waiters: { match: (r: Request) => boolean; resolve: (r: Request) => void }[] = [];
  private nonce = 0;
  port = 0;

  static async start(port = 0): Promise<FakeAdsServer> {
    const s = new FakeAdsServer();
    s.server.addService(adsClientDefinition(), {
      StreamAggregatedResources: (call: grpc.ServerDuplexStream<Obj, Obj>) => call.end(),
      DeltaAggregatedResources: (call: grpc.ServerDuplexStream<Obj, Obj>) => s.accept(call),
    });
    s.port = await new Promise<number>((resolve, reject) =>
      s.server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    return s;
  }

  private accept(call: grpc.ServerDuplexStream<Obj, Obj>): void {
    const stream = this.calls.push(call) - 1;
    call.on('data', (msg: Obj) => {
      const req = { stream, msg };
      const i = this.waiters.findIndex((w) => w.match(req));
      if (i >= 0) this.waiters.splice(i, 1)[0].resolve(req);
      else this.queue.push(req);
    });
    call.on('error', () => {});
  }

  /** Streams accepted so far. */
  get streamCount(): number {
    return this.calls.length;
  }

  /** The next request (in arrival order) for which `match` holds; earlier non-matching ones stay queued. */
  next(match: (msg: Obj, stream: number) => boolean = () => true, timeoutMs = 2000): Promise<Obj> {
    const pred = (r: Request) => match(r.msg, r.stream);
    const i = this.queue.findIndex(pred);
    if (i >= 0) return Promise.resolve(this.queue.splice(i, 1)[0].msg);
    return new Promise((resolve, reject) => {
      const waiter = { match: pred, resolve: (r: Request) => (clearTimeout(timer), resolve(r.msg)) };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`no matching request within ${timeoutMs} ms; queued: ${JSON.stringify(this.queue.map((q) => q.msg.type_url))}`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  /** Requests received and not consumed by next(). */
  pending(): Obj[] {
    return this.queue.map((r) => r.msg);
  }

  /** Sends a DeltaDiscoveryResponse on the latest stream; returns its nonce. */
  push(typeUrl: string, resources: Obj[], opts: { removed?: string[]; version?: string } = {}): string {
    const nonce = `n${++this.nonce}`;
    this.calls[this.calls.length - 1].write({
      system_version_info: opts.version ?? `v${this.nonce}`,
      type_url: typeUrl,
      resources,
      removed_resources: opts.removed ?? [],
      nonce,
    });
    return nonce;
  }

  /** Ends the latest stream with a status, as a failing server would. */
  breakStream(): void {
    this.calls[this.calls.length - 1].emit('error', { code: grpc.status.UNAVAILABLE, details: 'broken on purpose' });
  }

  close(): Promise<void> {
    for (const c of this.calls) c.end();
    return new Promise((resolve) => this.server.tryShutdown(() => resolve()));
  }
}

/** A delta Resource entry. */
export function resource(typeUrl: string, name: string, message: Obj, version = '1'): Obj {
  return { name, version, resource: anyOf(typeUrl, message) };
}
