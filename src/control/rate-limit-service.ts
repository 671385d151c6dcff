// The global rate limiter: Envoy's RateLimitService
// (envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit) on the
// control plane's gRPC port, so every sidecar (or Envoy) of a service's
// replicas counts against one limit.
//
// Design: a fixed window per descriptor, in this process's memory. A
// descriptor's first entry names the service (weft.service = <name>.<namespace>),
// whose TrafficPolicy rateLimit.global gives the limit (requests per `per`);
// the rest of the entries (caller address, header value) pick the counter.
// Windows are aligned on the epoch, so one ends for every key at once.
// Consistency: exact within one control plane process (Node is single
// threaded: no lost increments); counters are lost on restart (a new window
// starts). With replicas on etcd the counters are the store's (SharedCounters,
// a compare-and-swap per call), so the limit is one mesh-wide limit whatever
// replica a sidecar asks, and survives a replica's death.
// A descriptor for an unknown service, or a service without a global limit,
// is OK (as Envoy's ratelimit service treats a descriptor it has no rule for).
// At most MAX_COUNTERS counters: expired windows are swept first, then the
// oldest keys go (those keys start a new window: a flood fails open, not out of memory).
import * as grpc from '@grpc/grpc-js';
import { durationToMs } from '../config/duration';
import type { Resource } from '../config/kinds';
import { messageType } from '../xds/protos';
import { RATE_LIMIT_SERVICE_KEY, RLS_PATH } from '../xds/rate-limit-names';

export const MAX_COUNTERS = 100_000;

export interface GlobalLimit {
  requests: number;
  perMs: number;
}

interface Counter {
  windowEnd: number;
  hits: number;
}

type Entry = { key: string; value: string };
type RateLimitRequest = { domain?: string; descriptors?: { entries?: Entry[] }[]; hits_addend?: number };

/** Counters every replica shares (etcd). */
export interface SharedCounters {
  /** Adds `hits` to `key`'s counter of the window that ends at `windowEnd` (epoch ms); resolves to the new total. */
  add(key: string, hits: number, windowEnd: number): Promise<number>;
}

export class GlobalRateLimiter {
  private readonly counters = new Map<string, Counter>();
  private limitsOf = new WeakMap<readonly Resource<'TrafficPolicy'>[], Map<string, GlobalLimit>>();

  constructor(
    /** The TrafficPolicies now in force. */
    private readonly policies: () => readonly Resource<'TrafficPolicy'>[],
    private readonly maxCounters = MAX_COUNTERS,
    private readonly now: () => number = Date.now,
    /** Replicas: counters in the store instead of this process. */
    private readonly shared?: SharedCounters,
  ) {}

  /** The global limit of a service by "<name>.<namespace>", from the current policies (indexed once per list). */
  limitFor(service: string): GlobalLimit | undefined {
    const list = this.policies();
    let limits = this.limitsOf.get(list);
    if (!limits) {
      limits = new Map();
      for (const p of list) {
        const g = p.spec.rateLimit?.global;
        const key = `${p.spec.targetRef.name}.${p.spec.targetRef.namespace ?? p.metadata.namespace}`;
        if (g && !limits.has(key)) limits.set(key, { requests: g.requests, perMs: durationToMs(g.per) });
      }
      this.limitsOf.set(list, limits);
    }
    return limits.get(service);
  }

  /** A RateLimitResponse (plain object) for a RateLimitRequest, counted in this process. */
  shouldRateLimit(req: RateLimitRequest): Record<string, unknown> {
    const now = this.now();
    const hits = req.hits_addend || 1;
    return respond(
      this.descriptors(req).map((d) => {
        if (!d) return undefined;
        const counter = this.counter(d.key, d.limit, now);
        counter.hits += hits;
        return { limit: d.limit, hits: counter.hits, windowEnd: counter.windowEnd };
      }),
      now,
    );
  }

  /** The same, counted in the shared store (replicas): one limit for the whole mesh. */
  async shouldRateLimitShared(req: RateLimitRequest, shared: SharedCounters): Promise<Record<string, unknown>> {
    const now = this.now();
    const hits = req.hits_addend || 1;
    const counted = await Promise.all(
      this.descriptors(req).map(async (d) => {
        if (!d) return undefined;
        const windowEnd = (Math.floor(now / d.limit.perMs) + 1) * d.limit.perMs;
        return { limit: d.limit, hits: await shared.add(d.key, hits, windowEnd), windowEnd };
      }),
    );
    return respond(counted, now);
  }

  /** Per descriptor: the service's limit and the counter key, or undefined when no limit applies. */
  private descriptors(req: RateLimitRequest): ({ limit: GlobalLimit; key: string } | undefined)[] {
    return (req.descriptors ?? []).map((d) => {
      const entries = d.entries ?? [];
      const limit = entries[0]?.key === RATE_LIMIT_SERVICE_KEY ? this.limitFor(entries[0].value) : undefined;
      if (!limit) return undefined;
      return { limit, key: `${req.domain ?? ''}\u0000${entries.map((e) => `${e.key}\u0001${e.value}`).join('\u0000')}` };
    });
  }

  private counter(key: string, limit: GlobalLimit, now: number): Counter {
    let c = this.counters.get(key);
    if (c && c.windowEnd > now) return c;
    if (c) this.counters.delete(key);
    if (this.counters.size >= this.maxCounters) this.evict(now);
    c = { windowEnd: (Math.floor(now / limit.perMs) + 1) * limit.perMs, hits: 0 };
    this.counters.set(key, c);
    return c;
  }

  private evict(now: number): void {
    for (const [k, c] of this.counters) if (c.windowEnd <= now) this.counters.delete(k);
    // Still full: the oldest tenth goes, so the sweep is not paid on every new key.
    let drop = this.counters.size >= this.maxCounters ? Math.ceil(this.maxCounters / 10) : 0;
    for (const k of this.counters.keys()) {
      if (drop-- <= 0) break;
      this.counters.delete(k);
    }
  }

  get counterCount(): number {
    return this.counters.size;
  }

  /** The gRPC service definition and handler to add to a grpc.Server. */
  service(): { definition: grpc.ServiceDefinition; handlers: grpc.UntypedServiceImplementation } {
    const req = messageType('envoy.service.ratelimit.v3.RateLimitRequest');
    const res = messageType('envoy.service.ratelimit.v3.RateLimitResponse');
    const definition = {
      ShouldRateLimit: {
        path: RLS_PATH,
        requestStream: false,
        responseStream: false,
        requestSerialize: (o: object) => Buffer.from(req.encode(req.fromObject(o)).finish()),
        requestDeserialize: (b: Buffer) => req.toObject(req.decode(b), { enums: String, longs: Number }),
        responseSerialize: (o: object) => Buffer.from(res.encode(res.fromObject(o)).finish()),
        responseDeserialize: (b: Buffer) => res.toObject(res.decode(b), { enums: String, longs: Number }),
        originalName: 'shouldRateLimit',
      },
    } as grpc.ServiceDefinition;
    const handlers: grpc.UntypedServiceImplementation = {
      ShouldRateLimit: (call: grpc.ServerUnaryCall<any, any>, callback: grpc.sendUnaryData<any>) => {
        const shared = this.shared;
        if (shared) {
          this.shouldRateLimitShared(call.request, shared).then(
            (res) => callback(null, res),
            // The sidecar's failure_mode_deny decides what an unreachable store means for its requests.
            (err) => callback({ code: grpc.status.UNAVAILABLE, details: (err as Error).message }),
          );
          return;
        }
        try {
          callback(null, this.shouldRateLimit(call.request));
        } catch (err) {
          callback({ code: grpc.status.INTERNAL, details: (err as Error).message });
        }
      },
    };
    return { definition, handlers };
  }
}

/** The response from each descriptor's count (undefined: no limit, OK). */
function respond(counted: ({ limit: GlobalLimit; hits: number; windowEnd: number } | undefined)[], now: number): Record<string, unknown> {
  let over = false;
  const statuses = counted.map((c) => {
    if (!c) return { code: 'OK' };
    const untilReset = Math.max(0, c.windowEnd - now);
    const duration_until_reset = { seconds: Math.floor(untilReset / 1000), nanos: (untilReset % 1000) * 1e6 };
    if (c.hits > c.limit.requests) {
      over = true;
      return { code: 'OVER_LIMIT', limit_remaining: 0, duration_until_reset };
    }
    return { code: 'OK', limit_remaining: Math.max(0, c.limit.requests - c.hits), duration_until_reset };
  });
  return { overall_code: over ? 'OVER_LIMIT' : 'OK', statuses };
}
