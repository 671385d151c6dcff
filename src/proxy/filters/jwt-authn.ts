// envoy.filters.http.jwt_authn: verifies the JWT a request carries (jose,
// RS256 and ES256 only) and leaves its claims in the dynamic metadata
// `envoy.filters.http.jwt_authn` under payload_in_metadata, where RBAC reads them.
//
// Supported subset of JwtAuthentication (anything else is a NACK naming it):
//   providers        issuer (empty: any), audiences (empty: not checked), local_jwks
//                    {filename | inline_string | inline_bytes}, remote_jwks {http_uri {uri
//                    http://…, cluster, timeout}, cache_duration (default 10m, as Envoy)},
//                    forward, from_headers {name, value_prefix} (none: Authorization "Bearer "
//                    and the access_token query parameter, as Envoy), payload_in_metadata,
//                    clock_skew_seconds (0: 60, as Envoy)
//   rules            match {prefix | path}, requires: provider_name, allow_missing,
//                    allow_missing_or_failed, or requires_any of those; the first matching
//                    rule decides, none: the request is not checked
// Not supported: requires_all, provider_and_audiences, requirement_name, requirement_map,
// filter_state_rules, bypass_cors_preflight, strip_failure_response, from_params,
// from_cookies, forward_payload_header, claim_to_headers, subjects, require_expiration,
// max_lifetime, jwt_cache_config, async_fetch, retry_policy, other RouteMatch fields,
// per-route config.
// A request without a token goes on at once (nothing allocated); one with a token waits
// for the verification unless the token was verified lately (a small LRU honouring exp).
// A token no provider accepts gets 401 flagged JWT with `www-authenticate: Bearer ...
// error="invalid_token"` and the reason in the body; one log line per 10 s says why.
// With forward false the token's header is removed from a verified request.
import type { JWTPayload, JWTVerifyOptions, KeyLike } from 'jose';
import { jose } from './jose-lazy';
import { jwksProblem } from '../../config/jwks';
import { onlyFields, type FieldPath } from '../config/nack';
import { durationMs, type Obj } from '../config/read-proto';
import type { Route } from '../config/types';
import { TYPE_URL } from '../../xds/type-urls';
import type { FilterState, HttpFilterType } from './catalog';
import { filterEnv } from './filter-env';
import type { FilterRequest, FilterVerdict, HttpFilter, LocalReplySpec } from './http-filter';
import { isNoMatchingKey, jwksSource, JwksUnavailableError, type JwksConfig, type JwksSource } from './jwks-source';

export const JWT_AUTHN_METADATA = 'envoy.filters.http.jwt_authn';

export interface JwtHeaderLocation {
  /** Lower-case header name. */
  name: string;
  prefix: string;
}

export interface JwtProviderConfig {
  name: string;
  issuer: string;
  audiences: string[];
  jwks: JwksConfig;
  forward: boolean;
  fromHeaders: JwtHeaderLocation[];
  /** Envoy's default when neither from_headers nor from_params is set: also `?access_token=`. */
  fromAccessTokenParam: boolean;
  /** The key of the claims in the filter's metadata; absent: not written. */
  payloadInMetadata?: string;
  clockSkewSeconds: number;
}

/** A requirement, normalised: one of `providers` must verify the token; or a missing (or any failed) token passes. */
export interface JwtRequirement {
  providers: string[];
  allowMissing: boolean;
  allowFailed: boolean;
}

export interface JwtRule {
  match: { prefix: string } | { path: string };
  requires: JwtRequirement;
}

export interface JwtAuthnConfig {
  providers: JwtProviderConfig[];
  rules: JwtRule[];
}

const T = 'envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication';
const ENVOY_DEFAULT_SKEW_S = 60;
const ENVOY_DEFAULT_CACHE_MS = 10 * 60_000;
const ALGORITHMS = ['RS256', 'ES256'];
const GRPC_UNAUTHENTICATED = 16;
const LOG_EVERY_MS = 10_000;
/** Verified tokens kept, and for at most how long (keys may be rotated away). */
const CACHE_ENTRIES = 1024;
const CACHE_MAX_MS = 60_000;

export function decodeJwtAuthn(at: FieldPath, msg: Obj): JwtAuthnConfig {
  onlyFields(at, T, msg, ['providers', 'rules']);
  const providers = Object.entries((msg.providers ?? {}) as Record<string, Obj>).map(([name, p]) => decodeProvider(at.field('providers').field(name), name, p));
  const names = providers.map((p) => p.name);
  const rules = ((msg.rules ?? []) as Obj[]).map((r, i) => decodeRule(at.field('rules').index(i), r, names));
  return { providers, rules };
}

function decodeProvider(at: FieldPath, name: string, p: Obj): JwtProviderConfig {
  onlyFields(at, 'envoy.extensions.filters.http.jwt_authn.v3.JwtProvider', p, [
    'issuer',
    'audiences',
    'remote_jwks',
    'local_jwks',
    'forward',
    'from_headers',
    'payload_in_metadata',
    'clock_skew_seconds',
  ]);
  let jwks: JwksConfig;
  if (p.local_jwks) {
    const here = at.field('local_jwks');
    onlyFields(here, 'envoy.config.core.v3.DataSource', p.local_jwks, ['filename', 'inline_string', 'inline_bytes']);
    const { filename, inline_string, inline_bytes } = p.local_jwks;
    if (filename) jwks = { kind: 'file', path: filename };
    else {
      const text = inline_string ?? Buffer.from(inline_bytes ?? []).toString('utf8');
      const problem = jwksProblem(text);
      if (problem) here.field(inline_string !== undefined ? 'inline_string' : 'inline_bytes').invalid(`is not a JWKS: ${problem}`);
      jwks = { kind: 'inline', text };
    }
  } else if (p.remote_jwks) {
    jwks = decodeRemoteJwks(at.field('remote_jwks'), p.remote_jwks);
  } else {
    return at.field('jwks_source_specifier').invalid('needs local_jwks or remote_jwks');
  }
  const fromHeaders = ((p.from_headers ?? []) as Obj[]).map((h, i) => {
    const here = at.field('from_headers').index(i);
    onlyFields(here, 'envoy.extensions.filters.http.jwt_authn.v3.JwtHeader', h, ['name', 'value_prefix']);
    if (!h.name) here.field('name').invalid('must not be empty');
    return { name: (h.name as string).toLowerCase(), prefix: (h.value_prefix as string | undefined) ?? '' };
  });
  const byDefault = fromHeaders.length === 0;
  const out: JwtProviderConfig = {
    name,
    issuer: p.issuer ?? '',
    audiences: p.audiences ?? [],
    jwks,
    forward: p.forward === true,
    fromHeaders: byDefault ? [{ name: 'authorization', prefix: 'Bearer ' }] : fromHeaders,
    fromAccessTokenParam: byDefault,
    clockSkewSeconds: p.clock_skew_seconds || ENVOY_DEFAULT_SKEW_S,
  };
  if (p.payload_in_metadata) out.payloadInMetadata = p.payload_in_metadata;
  return out;
}

function decodeRemoteJwks(at: FieldPath, r: Obj): JwksConfig {
  onlyFields(at, 'envoy.extensions.filters.http.jwt_authn.v3.RemoteJwks', r, ['http_uri', 'cache_duration']);
  const u = r.http_uri;
  const here = at.field('http_uri');
  if (!u) here.invalid('is required');
  onlyFields(here, 'envoy.config.core.v3.HttpUri', u, ['uri', 'cluster', 'timeout']);
  if (!u.cluster) here.field('cluster').invalid('is required');
  let url: URL;
  try {
    url = new URL(u.uri ?? '');
  } catch {
    return here.field('uri').invalid(`"${u.uri ?? ''}" is not a URL`);
  }
  if (url.protocol !== 'http:') here.field('uri').unsupported(`"${u.uri}": weft proxy fetches a JWKS over plain http only`);
  const timeoutMs = durationMs(here.field('timeout'), u.timeout, 0);
  if (timeoutMs === 0) here.field('timeout').invalid('must be a positive duration');
  const cacheMs = durationMs(at.field('cache_duration'), r.cache_duration, ENVOY_DEFAULT_CACHE_MS) || ENVOY_DEFAULT_CACHE_MS;
  return { kind: 'remote', cluster: u.cluster, host: url.host, path: `${url.pathname}${url.search}`, timeoutMs, cacheMs };
}

function decodeRule(at: FieldPath, r: Obj, providers: string[]): JwtRule {
  onlyFields(at, 'envoy.extensions.filters.http.jwt_authn.v3.RequirementRule', r, ['match', 'requires']);
  const m = r.match;
  if (!m) at.field('match').invalid('is required');
  onlyFields(at.field('match'), 'envoy.config.route.v3.RouteMatch', m, ['prefix', 'path']);
  const match = m.path !== undefined ? { path: m.path as string } : m.prefix !== undefined ? { prefix: m.prefix as string } : at.field('match').unsupported('needs prefix or path (other matches are not supported by weft proxy)');
  if (!r.requires) at.field('requires').invalid('is required (requirement_name is not supported by weft proxy)');
  const requires: JwtRequirement = { providers: [], allowMissing: false, allowFailed: false };
  addRequirement(at.field('requires'), r.requires, requires, providers, true);
  return { match, requires };
}

function addRequirement(at: FieldPath, req: Obj, into: JwtRequirement, providers: string[], top: boolean): void {
  const allowed = top ? ['provider_name', 'requires_any', 'allow_missing', 'allow_missing_or_failed'] : ['provider_name', 'allow_missing', 'allow_missing_or_failed'];
  onlyFields(at, 'envoy.extensions.filters.http.jwt_authn.v3.JwtRequirement', req, allowed);
  if (req.provider_name !== undefined) {
    if (!providers.includes(req.provider_name)) at.field('provider_name').invalid(`"${req.provider_name}" is not one of the providers (${providers.join(', ')})`);
    into.providers.push(req.provider_name);
  } else if (req.allow_missing) into.allowMissing = true;
  else if (req.allow_missing_or_failed) {
    into.allowMissing = true;
    into.allowFailed = true;
  } else if (req.requires_any) {
    onlyFields(at.field('requires_any'), 'envoy.extensions.filters.http.jwt_authn.v3.JwtRequirementOrList', req.requires_any, ['requirements']);
    ((req.requires_any.requirements ?? []) as Obj[]).forEach((r, i) => addRequirement(at.field('requires_any').field('requirements').index(i), r, into, providers, false));
  } else at.invalid('must name a requirement');
  // allow_missing with no provider: the token is looked for where every provider looks.
  if (top && into.providers.length === 0) into.providers.push(...providers);
}

/** Why a token was refused, for the 401's body and the log. */
function reasonOf(err: unknown): string {
  if (err instanceof jose().errors.JWTExpired) return 'expired';
  if (err instanceof jose().errors.JWTClaimValidationFailed) {
    if (err.claim === 'iss') return 'wrong issuer';
    if (err.claim === 'aud') return 'wrong audience';
    if (err.claim === 'nbf') return 'not yet valid';
    return `invalid claim ${err.claim}`;
  }
  if (err instanceof jose().errors.JWSSignatureVerificationFailed) return 'bad signature';
  if (err instanceof jose().errors.JOSEAlgNotAllowed) return 'algorithm not allowed (RS256 and ES256 only)';
  if (err instanceof jose().errors.JWKSNoMatchingKey) return 'unknown kid (no key of the JWKS matches)';
  if (err instanceof JwksUnavailableError) return `no keys: ${err.message}`;
  if (err instanceof jose().errors.JWSInvalid || err instanceof jose().errors.JWTInvalid || err instanceof jose().errors.JOSENotSupported) return 'malformed token';
  return `not verified (${(err as Error)?.message ?? String(err)})`;
}

interface Verified {
  claims: JWTPayload;
  provider: JwtProviderConfig;
  /** Epoch ms after which the entry is no longer used. */
  until: number;
}

interface Provider {
  config: JwtProviderConfig;
  keys: JwksSource;
}

class JwtAuthnFilter implements HttpFilter {
  private readonly providers = new Map<string, Provider>();
  /** Verified tokens, oldest first (a Map's insertion order makes it an LRU). */
  private readonly verified = new Map<string, Verified>();

  constructor(
    readonly name: string,
    private readonly config: JwtAuthnConfig,
    private readonly state: FilterState,
  ) {
    for (const p of config.providers) this.providers.set(p.name, { config: p, keys: jwksSource(state, p.jwks) });
  }

  decodeHeaders(req: FilterRequest, _route: Route): FilterVerdict {
    const rule = this.ruleFor(req.path);
    if (!rule) return undefined;
    const found = this.findToken(req, rule.requires.providers);
    if (found === undefined) return rule.requires.allowMissing ? undefined : { kind: 'reply', reply: this.refusal(req, 'no token') };
    const { token, location } = found;
    const hit = this.verified.get(token);
    if (hit) {
      if (hit.until > Date.now()) {
        this.verified.delete(token);
        this.verified.set(token, hit);
        this.accept(req, hit.provider, hit.claims, location);
        return undefined;
      }
      this.verified.delete(token);
    }
    return { kind: 'wait', until: this.verify(req, token, rule.requires, location) };
  }

  private ruleFor(path: string): JwtRule | undefined {
    for (const rule of this.config.rules) {
      const m = rule.match;
      if ('prefix' in m ? path.startsWith(m.prefix) : pathOnly(path) === m.path) return rule;
    }
    return undefined;
  }

  /** The first token in the places the providers look; undefined (and nothing allocated) when there is none. */
  private findToken(req: FilterRequest, providerNames: string[]): { token: string; location: JwtHeaderLocation | undefined } | undefined {
    for (const name of providerNames) {
      const p = this.providers.get(name)!.config;
      for (const h of p.fromHeaders) {
        const value = req.header(h.name);
        if (value === undefined) continue;
        const prefix = h.prefix;
        if (value.length <= prefix.length || value.slice(0, prefix.length).toLowerCase() !== prefix.toLowerCase()) continue;
        return { token: value.slice(prefix.length).trim(), location: h };
      }
      if (p.fromAccessTokenParam && req.path.includes('access_token=')) {
        const token = new URLSearchParams(req.path.slice(req.path.indexOf('?') + 1)).get('access_token');
        if (token) return { token, location: undefined };
      }
    }
    return undefined;
  }

  private async verify(req: FilterRequest, token: string, requires: JwtRequirement, location: JwtHeaderLocation | undefined): Promise<LocalReplySpec | undefined> {
    let reason = 'malformed token';
    try {
      let iss: string | undefined;
      try {
        const claims = jose().decodeJwt(token);
        iss = typeof claims.iss === 'string' ? claims.iss : undefined;
      } catch {
        return this.failed(req, requires, reason);
      }
      const candidates = requires.providers.map((n) => this.providers.get(n)!).filter((p) => !p.config.issuer || p.config.issuer === iss);
      if (candidates.length === 0) return this.failed(req, requires, 'wrong issuer');
      reason = '';
      for (const p of candidates) {
        try {
          const claims = await this.verifyWith(p, token);
          this.remember(token, p.config, claims);
          this.accept(req, p.config, claims, location);
          return undefined;
        } catch (err) {
          reason ||= reasonOf(err);
        }
      }
      return this.failed(req, requires, reason);
    } catch (err) {
      // Nothing here should throw; if it does, the request is refused, never the proxy disturbed.
      return this.failed(req, requires, reasonOf(err));
    }
  }

  private async verifyWith(p: Provider, token: string): Promise<JWTPayload> {
    const c = p.config;
    const options: JWTVerifyOptions = { algorithms: ALGORITHMS, clockTolerance: c.clockSkewSeconds };
    if (c.issuer) options.issuer = c.issuer;
    if (c.audiences.length) options.audience = c.audiences;
    const keyFor = async (header: Parameters<Awaited<ReturnType<JwksSource['keys']>>>[0]): Promise<KeyLike> => {
      const set = await p.keys.keys();
      try {
        return (await set(header)) as KeyLike;
      } catch (err) {
        // A kid the keys lack may be a key the issuer just added.
        if (isNoMatchingKey(err) && (await p.keys.refreshForUnknownKid())) return (await (await p.keys.keys())(header)) as KeyLike;
        throw err;
      }
    };
    try {
      return (await jose().jwtVerify(token, keyFor, options)).payload;
    } catch (err) {
      // No kid and several keys fit: try each.
      if (!(err instanceof jose().errors.JWKSMultipleMatchingKeys)) throw err;
      for await (const key of err as unknown as AsyncIterable<KeyLike>) {
        try {
          return (await jose().jwtVerify(token, key, options)).payload;
        } catch (inner) {
          if (!(inner instanceof jose().errors.JWSSignatureVerificationFailed)) throw inner;
        }
      }
      throw new (jose().errors.JWSSignatureVerificationFailed)();
    }
  }

  private remember(token: string, provider: JwtProviderConfig, claims: JWTPayload): void {
    const now = Date.now();
    let until = now + CACHE_MAX_MS;
    if (typeof claims.exp === 'number') until = Math.min(until, (claims.exp + provider.clockSkewSeconds) * 1000);
    if (until <= now) return;
    if (this.verified.size >= CACHE_ENTRIES) this.verified.delete(this.verified.keys().next().value!);
    this.verified.set(token, { claims, provider, until });
  }

  private accept(req: FilterRequest, provider: JwtProviderConfig, claims: JWTPayload, location: JwtHeaderLocation | undefined): void {
    if (provider.payloadInMetadata) {
      req.filterMetadata = { ...(req.filterMetadata ?? {}), [JWT_AUTHN_METADATA]: { [provider.payloadInMetadata]: claims } };
    }
    if (!provider.forward && location && req.removeRequestHeader) req.removeRequestHeader(location.name);
  }

  private failed(req: FilterRequest, requires: JwtRequirement, reason: string): LocalReplySpec | undefined {
    if (requires.allowFailed) return undefined;
    return this.refusal(req, reason);
  }

  private refusal(req: FilterRequest, reason: string): LocalReplySpec {
    const env = filterEnv(this.state);
    const now = Date.now();
    const key = `jwt_authn|last-log|${this.name}`;
    if (now - ((this.state.get(key) as number | undefined) ?? 0) >= LOG_EVERY_MS) {
      this.state.set(key, now);
      env.log?.('info', 'JWT rejected', { reason, host: req.host, path: pathOnly(req.path) });
    }
    const realm = req.host.replace(/["\\\r\n]/g, '');
    return {
      status: 401,
      flag: 'JWT',
      detail: `Jwt verification fails: ${reason}`,
      headers: ['www-authenticate', `Bearer realm="${realm}", error="invalid_token"`],
      grpcStatus: GRPC_UNAUTHENTICATED,
    };
  }
}

function pathOnly(path: string): string {
  const q = path.indexOf('?');
  return q < 0 ? path : path.slice(0, q);
}

export const JWT_AUTHN_TYPE: HttpFilterType = {
  typeUrl: TYPE_URL.JwtAuthentication,
  decode: decodeJwtAuthn,
  create: (name, config, state) => new JwtAuthnFilter(name, config as JwtAuthnConfig, state),
};
