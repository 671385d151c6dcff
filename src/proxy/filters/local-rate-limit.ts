// envoy.filters.http.local_ratelimit: token buckets in this sidecar.
//
// Supported subset of LocalRateLimit (anything else is a NACK naming it):
//   stat_prefix, status (default 429), token_bucket {max_tokens, tokens_per_fill (default 1),
//   fill_interval >= 50 ms}, filter_enabled / filter_enforced (0% or 100%; absent = 0% as Envoy:
//   not enabled = not run, not enforced = counted but let through), descriptors {entries {key,
//   value}, token_bucket}, stage, always_consume_default_token_bucket (default true),
//   rate_limited_as_resource_exhausted.
// Descriptors come from the route's rate_limits of the same stage (rate-limit-actions.ts). A
// configured entry matches a request's entry with the same key and value; an entry with no value
// matches any value and each distinct value gets its own bucket (Envoy ≥ 1.34's dynamic
// descriptors), at most MAX_BUCKETS per filter, least recently used out first. Every matched
// descriptor's bucket must give a token; the default token_bucket is taken too unless
// always_consume_default_token_bucket is false and a descriptor matched. No token_bucket = the
// filter does nothing (Envoy's "configured per route" shape, which weft does not support yet).
// Not supported: per-route typed_per_filter_config, response_headers_to_add,
// request_headers_to_add_when_not_enforced, local_rate_limit_per_downstream_connection,
// local_cluster_rate_limit, enable_x_ratelimit_headers, vh_rate_limits.
// Buckets live in the FilterState: a config change keeps them (resized, not refilled).
import { onlyFields, type FieldPath } from '../config/nack';
import { durationMs, type Obj } from '../config/read-proto';
import type { Route } from '../config/types';
import type { FilterState, HttpFilterType } from './catalog';
import { filterEnv } from './filter-env';
import type { FilterRequest, FilterVerdict, HttpFilter } from './http-filter';
import { descriptorsFor, type Descriptor } from './rate-limit-actions';
import { allOrNothing, countLimited, httpStatus, rateLimitedReply } from './rate-limit-common';
import { KeyedBuckets, type BucketSpec } from './token-bucket';
import { TYPE_URL } from '../../xds/type-urls';

/** Buckets one filter keeps at most (per distinct descriptor value). */
export const MAX_BUCKETS = 10_000;
const MIN_FILL_INTERVAL_MS = 50;

/**
 * `weft proxy --concurrency N`: each worker process keeps its own buckets, so
 * a worker decodes every bucket as its 1/N share (the fill interval N times
 * longer: the same tokens per fill, so the rate divides exactly; the burst
 * max_tokens/N rounded up). The proxy as a whole then admits at most the
 * configured rate, as Envoy's process-wide bucket does; a client whose
 * connections all land on one worker gets only that worker's share. 1 (the
 * default, and the primary, which decodes only to validate): as configured.
 */
let workerShare = 1;

export function shareLocalRateLimits(workers: number): void {
  workerShare = Math.max(1, Math.floor(workers));
}

export interface LocalRateLimitConfig {
  statPrefix: string;
  status: number;
  bucket?: BucketSpec;
  enabled: boolean;
  enforced: boolean;
  descriptors: { entries: { key: string; value?: string }[]; bucket: BucketSpec }[];
  stage: number;
  alwaysConsumeDefault: boolean;
  asResourceExhausted: boolean;
}

const T = 'envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit';

function tokenBucket(at: FieldPath, b: Obj | undefined): BucketSpec {
  if (!b) at.invalid('is required');
  onlyFields(at, 'envoy.type.v3.TokenBucket', b, ['max_tokens', 'tokens_per_fill', 'fill_interval']);
  const maxTokens = b.max_tokens ?? 0;
  if (maxTokens < 1) at.field('max_tokens').invalid(`must be at least 1 (a zero-capacity bucket refuses everything), got ${maxTokens}`);
  const tokensPerFill = b.tokens_per_fill ? (b.tokens_per_fill.value ?? 0) : 1;
  if (tokensPerFill < 1) at.field('tokens_per_fill').invalid(`must be at least 1, got ${tokensPerFill}`);
  if (!b.fill_interval) at.field('fill_interval').invalid('is required');
  const fillIntervalMs = durationMs(at.field('fill_interval'), b.fill_interval, 0);
  if (fillIntervalMs < MIN_FILL_INTERVAL_MS) at.field('fill_interval').invalid(`must be at least ${MIN_FILL_INTERVAL_MS}ms, got ${fillIntervalMs}ms`);
  if (workerShare > 1) return { maxTokens: Math.ceil(maxTokens / workerShare), tokensPerFill, fillIntervalMs: fillIntervalMs * workerShare };
  return { maxTokens, tokensPerFill, fillIntervalMs };
}

export function decodeLocalRateLimit(at: FieldPath, msg: Obj): LocalRateLimitConfig {
  onlyFields(at, T, msg, [
    'stat_prefix',
    'status',
    'token_bucket',
    'filter_enabled',
    'filter_enforced',
    'descriptors',
    'stage',
    'always_consume_default_token_bucket',
    'rate_limited_as_resource_exhausted',
  ]);
  if (!msg.stat_prefix) at.field('stat_prefix').invalid('must not be empty');
  const descriptors = (msg.descriptors ?? []).map((d: Obj, i: number) => {
    const here = at.field('descriptors').index(i);
    onlyFields(here, 'envoy.extensions.common.ratelimit.v3.LocalRateLimitDescriptor', d, ['entries', 'token_bucket']);
    const entries = (d.entries ?? []).map((e: Obj, j: number) => {
      const entry = here.field('entries').index(j);
      onlyFields(entry, 'envoy.extensions.common.ratelimit.v3.RateLimitDescriptor.Entry', e, ['key', 'value']);
      if (!e.key) entry.field('key').invalid('must not be empty');
      return e.value ? { key: e.key, value: e.value } : { key: e.key };
    });
    if (entries.length === 0) here.field('entries').invalid('needs at least one entry');
    return { entries, bucket: tokenBucket(here.field('token_bucket'), d.token_bucket) };
  });
  const stage = msg.stage ?? 0;
  if (stage > 10) at.field('stage').invalid(`must be at most 10, got ${stage}`);
  const out: LocalRateLimitConfig = {
    statPrefix: msg.stat_prefix,
    status: httpStatus(at.field('status'), msg.status),
    enabled: allOrNothing(at.field('filter_enabled'), msg.filter_enabled),
    enforced: allOrNothing(at.field('filter_enforced'), msg.filter_enforced),
    descriptors,
    stage,
    alwaysConsumeDefault: msg.always_consume_default_token_bucket ? msg.always_consume_default_token_bucket.value === true : true,
    asResourceExhausted: msg.rate_limited_as_resource_exhausted === true,
  };
  if (msg.token_bucket) out.bucket = tokenBucket(at.field('token_bucket'), msg.token_bucket);
  else if (descriptors.length) at.field('token_bucket').invalid('is required with descriptors');
  return out;
}

/** Which configured descriptor a request's descriptor matches, and its bucket key. */
function match(config: LocalRateLimitConfig, d: Descriptor): { index: number; key: string } | undefined {
  outer: for (let i = 0; i < config.descriptors.length; i++) {
    const c = config.descriptors[i].entries;
    if (c.length !== d.length) continue;
    let key = String(i);
    for (let j = 0; j < c.length; j++) {
      if (c[j].key !== d[j].key) continue outer;
      if (c[j].value === undefined) key += `\u0000${d[j].value}`;
      else if (c[j].value !== d[j].value) continue outer;
    }
    return { index: i, key };
  }
  return undefined;
}

class LocalRateLimitFilter implements HttpFilter {
  private readonly buckets: KeyedBuckets;
  /** The default bucket, apart from the keyed ones so a flood of values cannot evict it. */
  private readonly defaultBucket: KeyedBuckets;

  constructor(
    readonly name: string,
    private readonly config: LocalRateLimitConfig,
    private readonly state: FilterState,
  ) {
    // Keyed by filter and stat_prefix (one per inbound port): the next config finds the same buckets.
    const key = `local_ratelimit|${name}|${config.statPrefix}`;
    let buckets = state.get(key) as KeyedBuckets | undefined;
    if (!buckets) state.set(key, (buckets = new KeyedBuckets(MAX_BUCKETS)));
    this.buckets = buckets;
    let defaultBucket = state.get(`${key}|default`) as KeyedBuckets | undefined;
    if (!defaultBucket) state.set(`${key}|default`, (defaultBucket = new KeyedBuckets(1)));
    this.defaultBucket = defaultBucket;
  }

  decodeHeaders(req: FilterRequest, route: Route): FilterVerdict {
    const c = this.config;
    if (!c.enabled || !c.bucket) return undefined;
    const now = Date.now();
    let waitMs = 0;
    let matched = false;
    if (c.descriptors.length && route.action.kind === 'route') {
      for (const d of descriptorsFor(route.action.rateLimits, c.stage, req)) {
        const m = match(c, d);
        if (!m) continue;
        matched = true;
        const spec = c.descriptors[m.index].bucket;
        waitMs = Math.max(waitMs, this.buckets.get(m.key, spec, now).take(spec, now));
      }
    }
    if (!matched || c.alwaysConsumeDefault) waitMs = Math.max(waitMs, this.defaultBucket.get('', c.bucket, now).take(c.bucket, now));
    if (waitMs === 0) return undefined;
    countLimited(filterEnv(this.state), 'local', c.statPrefix, c.enforced);
    if (!c.enforced) return undefined;
    return { kind: 'reply', reply: rateLimitedReply(c.status, waitMs, c.asResourceExhausted, `local rate limit ${c.statPrefix}`) };
  }
}

export const LOCAL_RATE_LIMIT_TYPE: HttpFilterType = {
  typeUrl: TYPE_URL.LocalRateLimit,
  decode: decodeLocalRateLimit,
  create: (name, config, state) => new LocalRateLimitFilter(name, config as LocalRateLimitConfig, state),
};
