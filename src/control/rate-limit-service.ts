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
// starts); with several control plane replicas each would count on its own
// (the limit becomes per replica) unless the counters move to the store.
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

export class GlobalRateLimiter {
  private readonly counters = new Map<string, Counter>();
  private limitsOf = new WeakMap<readonly Resource<'TrafficPolicy'>[], Map<string, GlobalLimit>>();

  constructor(
    /** The TrafficPolicies now in force. */
    private readonly policies: () => readonly Resource<'TrafficPolicy'>[],
    private readonly maxCounters = MAX_COUNTERS,
    private readonly now: () => number = Date.now,
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

  /** A RateLimitResponse (plain object) for a RateLimitRequest. */
  shouldRateLimit(req: { domain?: string; descriptors?: { entries?: Entry[] }[]; hits_addend?: number }): Record<string, unknown> {
    const now = this.now();
    const hits = req.hits_addend || 1;
    let over = false;
    const statuses = (req.descriptors ?? []).map((d) => {
      const entries = d.entries ?? [];
      const limit = entries[0]?.key === RATE_LIMIT_SERVICE_KEY ? this.limitFor(entries[0].value) : undefined;
      if (!limit) return { code: 'OK' };
      const key = `${req.domain ?? ''}\u0000${entries.map((e) => `${e.key}\u0001${e.value}`).join('\u0000')}`;
      const counter = this.counter(key, limit, now);
      counter.hits += hits;
      const remaining = Math.max(0, limit.requests - counter.hits);
      const untilReset = counter.windowEnd - now;
      const duration_until_reset = { seconds: Math.floor(untilReset / 1000), nanos: (untilReset % 1000) * 1e6 };
      if (counter.hits > limit.requests) {
        over = true;
        return { code: 'OVER_LIMIT', limit_remaining: 0, duration_until_reset };
      }
      return { code: 'OK', limit_remaining: remaining, duration_until_reset };
    });
    return { overall_code: over ? 'OVER_LIMIT' : 'OK', statuses };
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
