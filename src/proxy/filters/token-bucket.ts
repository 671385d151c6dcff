// Envoy's token bucket (envoy.type.v3.TokenBucket): starts full with
// max_tokens; every fill_interval adds tokens_per_fill, capped at max_tokens.
// Refilled lazily on use, in whole intervals, as Envoy's timer does.

export interface BucketSpec {
  maxTokens: number;
  tokensPerFill: number;
  fillIntervalMs: number;
}

export class TokenBucket {
  private tokens: number;
  private lastFill: number;

  constructor(spec: BucketSpec, now: number) {
    this.tokens = spec.maxTokens;
    this.lastFill = now;
  }

  /**
   * Takes a token: 0 when taken, else the ms until the next fill. `spec` is
   * read at each call, so a config change resizes a bucket without refilling it.
   */
  take(spec: BucketSpec, now: number): number {
    const intervals = Math.floor((now - this.lastFill) / spec.fillIntervalMs);
    if (intervals > 0) {
      this.tokens = Math.min(spec.maxTokens, this.tokens + intervals * spec.tokensPerFill);
      this.lastFill += intervals * spec.fillIntervalMs;
    } else if (this.tokens > spec.maxTokens) {
      this.tokens = spec.maxTokens;
    }
    if (this.tokens >= 1) {
      this.tokens--;
      return 0;
    }
    return Math.max(1, this.lastFill + spec.fillIntervalMs - now);
  }
}

/**
 * Buckets by key, least recently used first out once `max` are held: a
 * flood of distinct values (a header anyone can set) costs bounded memory.
 * An evicted key starts again with a full bucket.
 */
export class KeyedBuckets {
  private readonly buckets = new Map<string, TokenBucket>();

  constructor(readonly max: number) {}

  get(key: string, spec: BucketSpec, now: number): TokenBucket {
    let b = this.buckets.get(key);
    if (b) {
      this.buckets.delete(key);
    } else {
      b = new TokenBucket(spec, now);
      if (this.buckets.size >= this.max) this.buckets.delete(this.buckets.keys().next().value!);
    }
    this.buckets.set(key, b);
    return b;
  }

  get size(): number {
    return this.buckets.size;
  }
}
