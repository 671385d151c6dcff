// A client of Envoy's RateLimitService (envoy.service.ratelimit.v3) on the
// control plane: one @grpc/grpc-js channel per address, shared by every
// config's filters and closed with the proxy.
import * as grpc from '@grpc/grpc-js';
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
  private readonly client: grpc.Client;
  private readonly encode: (req: object) => Buffer;
  private readonly decode: (b: Buffer) => Record<string, any>;

  constructor(
    readonly address: string,
    credentials?: grpc.ChannelCredentials,
  ) {
    this.client = new grpc.Client(address, credentials ?? grpc.credentials.createInsecure(), { 'grpc.enable_channelz': 0 });
    // Connect now: the first limited request should not pay for the handshake within its timeout.
    this.client.getChannel().getConnectivityState(true);
    const req = messageType('envoy.service.ratelimit.v3.RateLimitRequest');
    const res = messageType('envoy.service.ratelimit.v3.RateLimitResponse');
    this.encode = (o) => Buffer.from(req.encode(req.fromObject(o)).finish());
    this.decode = (b) => res.toObject(res.decode(b), { enums: String, longs: Number });
  }

  /** Asks the service; rejects on an error or after `timeoutMs`. */
  shouldRateLimit(domain: string, descriptors: Descriptor[], timeoutMs: number): Promise<RlsVerdict> {
    const request = { domain, descriptors: descriptors.map((entries) => ({ entries })) };
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(RLS_PATH, this.encode, this.decode, request, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => {
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
    this.client.close();
  }
}

/** The proxy's client for `address`, made on first use. */
export function rlsClient(state: FilterState, env: FilterEnv, address: string): RlsClient {
  const key = `rls-client|${address}`;
  let client = state.get(key) as RlsClient | undefined;
  if (!client) {
    const made = new RlsClient(address, env.controlPlaneCredentials);
    state.set(key, (client = made));
    env.closers.push(() => {
      made.close();
      state.delete(key);
    });
  }
  return client;
}
