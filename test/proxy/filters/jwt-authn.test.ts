// jwt_authn without a proxy: tokens made with jose here (RS256, ES256, and
// the ones that must be refused), the filter decoded from the wire as the
// sidecar gets it, JWKS from inline text, a file that changes, and an HTTP
// server reached through the filter env's cluster endpoint.
import { after, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import type { AddressInfo } from 'node:net';
import { SignJWT, UnsecuredJWT } from 'jose';
import { FieldPath } from '../../../src/proxy/config/nack';
import type { Route } from '../../../src/proxy/config/types';
import type { FilterState } from '../../../src/proxy/filters/catalog';
import { filterEnv } from '../../../src/proxy/filters/filter-env';
import type { FilterRequest, HttpFilter, LocalReplySpec } from '../../../src/proxy/filters/http-filter';
import { decodeJwtAuthn, JWT_AUTHN_TYPE, type JwtAuthnConfig } from '../../../src/proxy/filters/jwt-authn';
import { jwks, signer, type Signer } from '../../helpers/jwt-signer';
import { tempDir, waitFor } from '../../helpers/tmp';
import { nack, TYPE_URL, wire, type Obj } from '../config/helpers';

const ISS = 'https://issuer.test';
const AUD = 'api';
const now = () => Math.floor(Date.now() / 1000);

function sign(s: Signer, claims: Obj = {}, header: Obj = {}): Promise<string> {
  return new SignJWT({ sub: 'alice', ...claims })
    .setProtectedHeader({ alg: s.alg, kid: s.jwk.kid, ...header })
    .setIssuer(claims.iss ?? ISS)
    .setAudience(claims.aud ?? AUD)
    .setIssuedAt()
    .setExpirationTime(claims.exp ?? now() + 300)
    .sign(s.key);
}

function provider(source: Obj, extra: Obj = {}): Obj {
  return { issuer: ISS, audiences: [AUD], ...source, from_headers: [{ name: 'Authorization', value_prefix: 'Bearer ' }], payload_in_metadata: 'payload', clock_skew_seconds: 60, forward: true, ...extra };
}

/** The translator's shape: one rule, requires_any [providers…, allow_missing]. */
function config(providers: Record<string, Obj>, allowMissing = true): Obj {
  const requirements: Obj[] = Object.keys(providers).map((provider_name) => ({ provider_name }));
  if (allowMissing) requirements.push({ allow_missing: {} });
  const requires = requirements.length > 1 ? { requires_any: { requirements } } : requirements[0];
  return { providers, rules: [{ match: { prefix: '/' }, requires }] };
}

function decode(msg: Obj): JwtAuthnConfig {
  return decodeJwtAuthn(new FieldPath('Listener', 'inbound', 'http_filters[0].typed_config'), wire(TYPE_URL.JwtAuthentication, msg));
}

function filterOf(msg: Obj, state: FilterState = new Map()): HttpFilter {
  return JWT_AUTHN_TYPE.create('envoy.filters.http.jwt_authn', decode(msg), state);
}

class Req implements FilterRequest {
  method = 'GET';
  host = 'api.test';
  sourceAddress = '127.0.0.1';
  destinationPort = 8080;
  grpc = false;
  peerPrincipal = undefined;
  filterMetadata: Record<string, Record<string, unknown>> | undefined = undefined;
  removed: string[] = [];
  constructor(
    readonly headers: Record<string, string> = {},
    public path = '/',
  ) {}
  header(n: string): string | undefined {
    return this.headers[n];
  }
  removeRequestHeader(n: string): void {
    this.removed.push(n);
  }
}

const ROUTE = {} as Route;

interface Outcome {
  /** 'now': decided synchronously. */
  when: 'now' | 'later';
  reply: LocalReplySpec | undefined;
}

async function run(f: HttpFilter, req: Req): Promise<Outcome> {
  const v = f.decodeHeaders(req, ROUTE);
  if (v === undefined) return { when: 'now', reply: undefined };
  if (v.kind === 'reply') return { when: 'now', reply: v.reply };
  assert.equal(v.kind, 'wait');
  if (v.kind !== 'wait') throw new Error('unexpected verdict');
  return { when: 'later', reply: await v.until };
}

const bearer = (t: string) => new Req({ authorization: `Bearer ${t}` });

let rs: Signer, es: Signer, other: Signer, rsTwin: Signer;
const ready = (async () => {
  rs = await signer('RS256', 'rs-1');
  es = await signer('ES256', 'es-1');
  other = await signer('RS256', 'other');
  rsTwin = await signer('RS256', 'rs-1'); // same kid, different key: a forged signature
})();

test('verification table: RS256 and ES256 pass; expired, wrong iss/aud, bad signature, none/HS256, garbage and unknown kid get 401 JWT with the reason', async () => {
  await ready;
  const f = filterOf(config({ main: provider({ local_jwks: { inline_string: jwks(rs, es) } }) }));
  const hs = await new SignJWT({ sub: 'x' }).setProtectedHeader({ alg: 'HS256', kid: 'rs-1' }).setIssuer(ISS).setAudience(AUD).sign(new TextEncoder().encode('k'.repeat(32)));
  const none = new UnsecuredJWT({ sub: 'x' }).setIssuer(ISS).setAudience(AUD).encode();
  const cases: [string, string, string | undefined][] = [
    ['RS256', await sign(rs), undefined],
    ['ES256', await sign(es), undefined],
    ['expired within the skew', await sign(rs, { exp: now() - 30 }), undefined],
    ['expired beyond the skew', await sign(rs, { exp: now() - 120 }), 'expired'],
    ['not yet valid beyond the skew', await sign(rs, { nbf: now() + 600 }), 'not yet valid'],
    ['wrong issuer', await sign(rs, { iss: 'https://evil.test' }), 'wrong issuer'],
    ['wrong audience', await sign(rs, { aud: 'other' }), 'wrong audience'],
    ['bad signature', await sign(rsTwin), 'bad signature'],
    ['alg none', none, 'algorithm not allowed'],
    ['HS256', hs, 'algorithm not allowed'],
    ['garbage', 'not-a-jwt', 'malformed token'],
    ['three garbage parts', 'a.b.c', 'malformed token'],
    ['unknown kid', await sign(other), 'unknown kid'],
  ];
  for (const [what, token, reason] of cases) {
    const req = bearer(token);
    const out = await run(f, req);
    if (reason === undefined) {
      assert.equal(out.reply, undefined, `${what}: ${out.reply?.detail}`);
      assert.equal((req.filterMetadata?.['envoy.filters.http.jwt_authn']?.payload as Obj | undefined)?.sub, 'alice', what);
      continue;
    }
    assert.ok(out.reply, `${what}: refused`);
    assert.equal(out.reply.status, 401, what);
    assert.equal(out.reply.flag, 'JWT', what);
    assert.ok(out.reply.detail.includes(reason), `${what}: "${out.reply.detail}" names ${reason}`);
    assert.deepEqual(out.reply.headers, ['www-authenticate', 'Bearer realm="api.test", error="invalid_token"'], what);
    assert.equal(out.reply.grpcStatus, 16, `${what}: UNAUTHENTICATED for gRPC callers`);
    assert.equal(req.filterMetadata, undefined, `${what}: no claims`);
  }
});

test('a request without a token goes on at once with no metadata; without allow_missing it gets 401', async () => {
  await ready;
  const f = filterOf(config({ main: provider({ local_jwks: { inline_string: jwks(rs) } }) }));
  for (const req of [new Req(), new Req({ authorization: 'Basic dXNlcjpwdw==' })]) {
    assert.equal(f.decodeHeaders(req, ROUTE), undefined, 'synchronous continue');
    assert.equal(req.filterMetadata, undefined);
  }
  const strict = filterOf(config({ main: provider({ local_jwks: { inline_string: jwks(rs) } }) }, false));
  const out = await run(strict, new Req());
  assert.equal(out.when, 'now');
  assert.equal(out.reply?.status, 401);
  assert.match(out.reply!.detail, /no token/);
});

test('a verified token is remembered: the next request with it is decided synchronously; metadata merges with what is there', async () => {
  await ready;
  const f = filterOf(config({ main: provider({ local_jwks: { inline_string: jwks(rs) } }) }));
  const token = await sign(rs, { role: 'admin' });
  assert.equal((await run(f, bearer(token))).when, 'later');
  const req = bearer(token);
  req.filterMetadata = { other: { x: 1 } };
  const again = await run(f, req);
  assert.deepEqual(again, { when: 'now', reply: undefined });
  assert.deepEqual(req.filterMetadata.other, { x: 1 });
  assert.equal((req.filterMetadata['envoy.filters.http.jwt_authn'].payload as Obj).role, 'admin');
  // An expired token is never answered from the cache.
  // Within the 60 s skew it is valid while the clock's whole second is below exp + 60 (the
  // verifier compares whole seconds): 1 to 2 s from now.
  const exp = now() - 58;
  const short = await sign(rs, { exp });
  assert.equal((await run(f, bearer(short))).reply, undefined);
  await waitFor(() => now() >= exp + 60, 3000, 'the token expired, skew included');
  assert.match((await run(f, bearer(short))).reply?.detail ?? '', /expired/);
});

test('forward false removes the token header from a verified request; a custom header and prefix are read', async () => {
  await ready;
  const f = filterOf(config({ main: provider({ local_jwks: { inline_string: jwks(rs) } }, { forward: false, from_headers: [{ name: 'X-Jwt', value_prefix: '' }] }) }));
  const req = new Req({ 'x-jwt': await sign(rs) });
  assert.equal((await run(f, req)).reply, undefined);
  assert.deepEqual(req.removed, ['x-jwt']);
  assert.equal(f.decodeHeaders(bearer(await sign(rs)), ROUTE), undefined, 'Authorization is not looked at');
});

test('two providers: the token is checked by the one of its issuer', async () => {
  await ready;
  const f = filterOf(
    config({
      a: provider({ local_jwks: { inline_string: jwks(rs) } }),
      b: provider({ local_jwks: { inline_string: jwks(es) } }, { issuer: 'https://b.test' }),
    }),
  );
  assert.equal((await run(f, bearer(await sign(es, { iss: 'https://b.test' })))).reply, undefined);
  assert.match((await run(f, bearer(await sign(es)))).reply?.detail ?? '', /unknown kid/, 'issuer a has no ES key');
});

const tmp = tempDir(undefined, 'weft-jwt-');
const servers: http.Server[] = [];
after(() => {
  for (const s of servers) s.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

test('a JWKS file is read when tokens come and read again when it changes; a broken file keeps the last keys', async () => {
  await ready;
  const file = path.join(tmp, 'jwks.json');
  fs.writeFileSync(file, jwks(rs));
  const f = filterOf(config({ main: provider({ local_jwks: { filename: file } }) }));
  assert.equal((await run(f, bearer(await sign(rs)))).reply, undefined);
  assert.match((await run(f, bearer(await sign(es)))).reply?.detail ?? '', /unknown kid/);
  fs.writeFileSync(file, jwks(rs, es));
  await new Promise((r) => setTimeout(r, 1100));
  assert.equal((await run(f, bearer(await sign(es)))).reply, undefined, 'the new key is used');
  fs.writeFileSync(file, '{ not json');
  await new Promise((r) => setTimeout(r, 1100));
  assert.equal((await run(f, bearer(await sign(es)))).reply, undefined, 'the last good keys stay');
  const missing = filterOf(config({ main: provider({ local_jwks: { filename: path.join(tmp, 'absent.json') } }) }));
  assert.match((await run(missing, bearer(await sign(rs)))).reply?.detail ?? '', /no keys: JWKS file/);
});

test('remote JWKS: fetched through a cluster endpoint, cached, fetched again for an unknown kid, last keys kept when the server fails', async () => {
  await ready;
  let served = jwks(rs);
  let status = 200;
  const hits: string[] = [];
  const server = http.createServer((req, res) => {
    hits.push(`${req.headers.host}${req.url}`);
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(served);
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  const state: FilterState = new Map();
  filterEnv(state).clusterEndpoint = (cluster) => (cluster === 'outbound|80||auth.default' ? { address: '127.0.0.1', port } : undefined);
  const warnings: string[] = [];
  filterEnv(state).log = (level, msg) => level === 'warn' && warnings.push(msg);
  const remote = { remote_jwks: { http_uri: { uri: 'http://auth.default:80/jwks.json', cluster: 'outbound|80||auth.default', timeout: { seconds: 2 } }, cache_duration: { seconds: 600 } } };
  const f = filterOf(config({ main: provider(remote) }), state);
  assert.equal((await run(f, bearer(await sign(rs)))).reply, undefined);
  assert.equal((await run(f, bearer(await sign(rs, { n: 2 })))).reply, undefined);
  assert.deepEqual(hits, ['auth.default/jwks.json'], 'one fetch, then the cache');
  served = jwks(rs, es);
  assert.match((await run(f, bearer(await sign(es)))).reply?.detail ?? '', /unknown kid/, 'within a second of the last fetch: no refetch');
  await new Promise((r) => setTimeout(r, 1100));
  assert.equal((await run(f, bearer(await sign(es)))).reply, undefined, 'unknown kid: fetched again');
  assert.equal(hits.length, 2);
  // A new filter (config change) with a 1 ms cache shares the keys; the server now fails.
  status = 500;
  const g = filterOf(config({ main: provider({ remote_jwks: { ...remote.remote_jwks, cache_duration: { nanos: 1_000_000 } } }) }), state);
  await new Promise((r) => setTimeout(r, 1100));
  assert.equal((await run(g, bearer(await sign(es, { n: 3 })))).reply, undefined, 'stale keys still verify');
  // The refresh runs in the background: wait until it has failed.
  await waitFor(() => warnings.includes('JWKS load failed; keeping the last keys'), 3000, 'the refresh failed');
  assert.equal(hits.length, 3, 'a refresh was tried');
  assert.equal((await run(g, bearer(await sign(rs, { n: 4 })))).reply, undefined, 'the last keys stay after the failure');
  const nowhere = filterOf(config({ main: provider({ remote_jwks: { ...remote.remote_jwks, http_uri: { ...remote.remote_jwks.http_uri, cluster: 'gone' } } }) }), state);
  assert.match((await run(nowhere, bearer(await sign(rs)))).reply?.detail ?? '', /no endpoint of cluster gone/);
});

const P = 'http_filters[0].typed_config';
for (const [what, msg, code, field] of [
  ['requires_all', { providers: { a: provider({ local_jwks: { inline_string: '{"keys":[]}' } }) }, rules: [{ match: { prefix: '/' }, requires: { requires_all: { requirements: [{ provider_name: 'a' }, { allow_missing: {} }] } } }] }, 'E_CONFIG_UNSUPPORTED', `${P}.rules[0].requires.requires_all`],
  ['from_params', { providers: { a: provider({ local_jwks: { inline_string: '{"keys":[]}' } }, { from_params: ['t'] }) } }, 'E_CONFIG_UNSUPPORTED', `${P}.providers.a.from_params`],
  ['an https JWKS', { providers: { a: provider({ remote_jwks: { http_uri: { uri: 'https://x/j', cluster: 'c', timeout: { seconds: 1 } } } }) } }, 'E_CONFIG_UNSUPPORTED', `${P}.providers.a.remote_jwks.http_uri.uri`],
  ['an inline JWKS that is not one', { providers: { a: provider({ local_jwks: { inline_string: '{"k":1}' } }) } }, 'E_CONFIG_INVALID', `${P}.providers.a.local_jwks.inline_string`],
  ['an unknown provider_name', { providers: { a: provider({ local_jwks: { inline_string: '{"keys":[]}' } }) }, rules: [{ match: { prefix: '/' }, requires: { provider_name: 'b' } }] }, 'E_CONFIG_INVALID', `${P}.rules[0].requires.provider_name`],
  ['bypass_cors_preflight', { bypass_cors_preflight: true }, 'E_CONFIG_UNSUPPORTED', `${P}.bypass_cors_preflight`],
  ['a JWKS from an environment variable', { providers: { a: provider({ local_jwks: { environment_variable: 'J' } }) } }, 'E_CONFIG_UNSUPPORTED', `${P}.providers.a.local_jwks.environment_variable`],
  ['require_expiration', { providers: { a: provider({ local_jwks: { inline_string: '{"keys":[]}' } }, { require_expiration: true }) } }, 'E_CONFIG_UNSUPPORTED', `${P}.providers.a.require_expiration`],
] as const) {
  test(`decoding NACKs ${what}, naming the field`, () => {
    const message = nack(() => decode(msg as Obj), code);
    assert.ok(message.includes(`${field} `), `${message} names ${field}`);
  });
}
