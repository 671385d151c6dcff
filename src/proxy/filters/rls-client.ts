// A client of Envoy's RateLimitService (envoy.service.ratelimit.v3) on the
// control plane: one @grpc/grpc-js channel per replica, shared by every
// config's filters and closed with the proxy. A call goes to the preferred
// replica (the one the ADS stream uses); if that one cannot be reached, the
// next ones are tried within the same timeout (control-plane-addresses.ts).
import * as grpc from '@grpc/grpc-js';
import { ControlPlaneAddresses, grpcUnreachable } from '../../xds/client/control-plane-addresses';
import { messageType } from '../../xds/protos';
import { RLS_PATH } from '../../xds/rate-limit-names';
import type { FilterEnv } from './filter-env';
import type { FilterState } from './catalog';
import type { Descriptor } from './rate-limit-actions';

export interface RlsVerdict {
  overLimit: boolean;
  /** Until the limit admits again, the longest of the over-limit descriptors' duration_until_reset. */
  retryAfterMs?: number;
}

export class RlsClient {
  readonly addresses: ControlPlaneAddresses;
  private readonly clients = new Map<string, grpc.Client>();
  private readonly encode: (req: object) => Buffer;
  private readonly decode: (b: Buffer) => Record<string, any>;

  constructor(
    addresses: string | ControlPlaneAddresses,
    private readonly credentials?: grpc.ChannelCredentials,
  ) {
    this.addresses = addresses instanceof ControlPlaneAddresses ? addresses : ControlPlaneAddresses.xds(addresses);
    // Connect now: the first limited request should not pay for the handshake within its timeout.
    this.client(this.addresses.preferred);
    const req = messageType('envoy.service.ratelimit.v3.RateLimitRequest');
    const res = messageType('envoy.service.ratelimit.v3.RateLimitResponse');
    this.encode = (o) => Buffer.from(req.encode(req.fromObject(o)).finish());
    this.decode = (b) => res.toObject(res.decode(b), { enums: String, longs: Number });
  }

  /** The channel to one replica, made (and connecting) on first use. */
  private client(address: string): grpc.Client {
    let client = this.clients.get(address);
    if (!client) {
      client = new grpc.Client(address, this.credentials ?? grpc.credentials.createInsecure(), { 'grpc.enable_channelz': 0 });
      client.getChannel().getConnectivityState(true);
      this.clients.set(address, client);
    }
    return client;
  }

  /** Asks the service, trying the next replica while one cannot be reached; rejects on an error or after `timeoutMs` in all. */
  shouldRateLimit(domain: string, descriptors: Descriptor[], timeoutMs: number): Promise<RlsVerdict> {
    const request = { domain, descriptors: descriptors.map((entries) => ({ entries })) };
    const deadline = this.addresses.now() + timeoutMs;
    return this.addresses.call((address) => this.ask(address, request, deadline), {
      what: 'ShouldRateLimit',
      unreachable: grpcUnreachable,
      deadline,
      // The next replica's channel starts connecting now, for this call or the next.
      onFailover: (_failed, _error, next) => void this.client(next),
    });
  }

  private ask(address: string, request: object, deadline: number): Promise<RlsVerdict> {
    return new Promise((resolve, reject) => {
      this.client(address).makeUnaryRequest(RLS_PATH, this.encode, this.decode, request, new grpc.Metadata(), { deadline }, (err, res) => {
        if (err || !res) return reject(err ?? new Error('empty response'));
        if (res.overall_code !== 'OVER_LIMIT') return resolve({ overLimit: false });
        let retryAfterMs: number | undefined;
        for (const s of res.statuses ?? []) {
          const d = s.duration_until_reset;
          if (s.code !== 'OVER_LIMIT' || !d) continue;
          const ms = (d.seconds ?? 0) * 1000 + Math.ceil((d.nanos ?? 0) / 1e6);
          retryAfterMs = Math.max(retryAfterMs ?? 0, ms);
        }
        resolve({ overLimit: true, retryAfterMs });
      });
    });
  }

  close(): void {
    for (const client of this.clients.values()) client.close();
    this.clients.clear();
  }
}

/** The proxy's client for the control plane's `addresses`, made on first use. */
export function rlsClient(state: FilterState, env: FilterEnv, addresses: ControlPlaneAddresses): RlsClient {
  const key = `rls-client|${addresses}`;
  let client = state.get(key) as RlsClient | undefined;
  if (!client) {
    const made = new RlsClient(addresses, env.controlPlaneCredentials);
    state.set(key, (client = made));
    env.closers.push(() => {
      made.close();
      state.delete(key);
    });
  }
  return client;
}
