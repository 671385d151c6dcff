// Request authentication through real sidecars: a RequestAuthentication on
// Service `api` makes its inbound sidecar verify JWTs (RS256/ES256) with keys
// from a JWKS file, or from a JWKS server registered as a mesh service and
// fetched through its cluster. A missing token passes, an invalid one gets
// 401 flagged JWT before the app sees anything.
import { after, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { SignJWT } from 'jose';
import { jwks, signer, type Signer } from '../../helpers/jwt-signer';
import { docs, exitGuard, HttpUpstream, Mesh, request, serviceYaml, sleep, T, type Sidecar } from '../../helpers/proxy-harness';
import { tempDir } from '../../helpers/tmp';

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  exitGuard();
  for (const c of cleanups.reverse()) await c();
});

const ISS = 'https://issuer.test';

function sign(s: Signer, exp = Math.floor(Date.now() / 1000) + 300, claims: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT({ sub: 'alice', ...claims }).setProtectedHeader({ alg: s.alg, kid: s.jwk.kid }).setIssuer(ISS).setAudience('api').setExpirationTime(exp).sign(s.key);
}

function raYaml(jwksSource: string, extra = ''): string {
  return `apiVersion: weft.dev/v1
kind: RequestAuthentication
metadata: { name: api-jwt }
spec:
  targetRef: { name: api }
  jwtRules:
    - issuer: ${ISS}
      audiences: [api]
      jwks: ${jwksSource}
${extra}`;
}

/** GET /hello through the sidecar on `port` (Host: api). */
const call = (port: number, headers: http.OutgoingHttpHeaders = {}, agent: http.Agent | false = false) => request(port, { host: 'api', path: '/hello', headers, agent });

async function meshWith(files: Record<string, string>): Promise<{ mesh: Mesh; sidecar: Sidecar; app: HttpUpstream }> {
  const mesh = await Mesh.start(files);
  const app = await HttpUpstream.start('api');
  cleanups.push(async () => {
    await mesh.close();
    await app.close();
  });
  const sidecar = await mesh.sidecar({ nodeId: 'api-1', service: 'api', appPort: app.port });
  return { mesh, sidecar, app };
}

test('JWKS file: no token passes, a valid token reaches the app, an expired or garbage one gets 401 JWT and the connection goes on', T, async () => {
  const rs = await signer('RS256', 'k1');
  const dir = tempDir(undefined, 'weft-jwt-it-');
  const file = path.join(dir, 'jwks.json');
  fs.writeFileSync(file, jwks(rs));
  const { sidecar, app } = await meshWith({ 'mesh.yaml': docs(serviceYaml({ name: 'api' }), raYaml(`{ file: ${file} }`)) });
  const port = sidecar.inboundPort;

  assert.equal((await call(port)).status, 200, 'no token: the AuthorizationPolicy decides, not jwt_authn');
  const token = await sign(rs);
  const ok = await call(port, { authorization: `Bearer ${token}` });
  assert.equal(ok.status, 200);
  assert.equal(app.seen.at(-1)!.headers.authorization, `Bearer ${token}`, 'forwardOriginalToken: the app gets the token');

  const seen = app.requests;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  cleanups.push(async () => agent.destroy());
  for (const [what, value, reason] of [
    ['expired', `Bearer ${await sign(rs, Math.floor(Date.now() / 1000) - 600)}`, /expired/],
    ['garbage', 'Bearer %%%.not-a.jwt', /malformed/],
    ['signed by an unknown key', `Bearer ${await sign(await signer('ES256', 'k9'))}`, /unknown kid/],
  ] as const) {
    const r = await call(port, { authorization: value }, agent);
    assert.equal(r.status, 401, what);
    assert.equal(r.headers['x-weft-response-flags'], 'JWT', what);
    assert.equal(r.headers['www-authenticate'], 'Bearer realm="api", error="invalid_token"', what);
    assert.match(r.text, reason, what);
  }
  assert.equal(app.requests, seen, 'no refused request reached the app');
  assert.equal((await call(port, { authorization: `Bearer ${token}` }, agent)).status, 200, 'the same connection serves the next request');
  fs.rmSync(dir, { recursive: true, force: true });
});

test('JWKS from a mesh service: fetched through its cluster, fetched again for a new kid; forwardOriginalToken false strips the token', T, async () => {
  const rs = await signer('RS256', 'k1');
  const es = await signer('ES256', 'k2');
  let served = jwks(rs);
  let fetches = 0;
  const keys = await HttpUpstream.start('auth');
  keys.handler = (_req, res) => {
    fetches++;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(served);
  };
  cleanups.push(() => keys.close());
  const mesh = docs(
    serviceYaml({ name: 'api', dependsOn: ['api'] }),
    serviceYaml({ name: 'auth', endpoints: [keys.port] }),
    raYaml('{ service: auth, port: 80, path: /.well-known/jwks.json }', '      forwardOriginalToken: false\n'),
  );
  const { sidecar, app } = await meshWith({ 'mesh.yaml': mesh });
  const port = sidecar.inboundPort;

  const ok = await call(port, { authorization: `Bearer ${await sign(rs)}` });
  assert.equal(ok.status, 200, ok.text);
  assert.equal(app.seen.at(-1)!.headers.authorization, undefined, 'the token is not forwarded');
  assert.equal(keys.seen[0].url, '/.well-known/jwks.json');
  assert.equal(keys.seen[0].headers.host, 'auth.default');
  assert.equal((await call(port, { authorization: `Bearer ${await sign(rs, undefined, { n: 2 })}` })).status, 200);
  assert.equal(fetches, 1, 'the keys are cached');

  served = jwks(rs, es);
  await sleep(1100); // an unknown kid fetches again at most every second
  const rotated = await call(port, { authorization: `Bearer ${await sign(es)}` });
  assert.equal(rotated.status, 200, rotated.text);
  assert.equal(fetches, 2);
  const bad = await call(port, { authorization: `Bearer ${await sign(rs, Math.floor(Date.now() / 1000) - 600)}` });
  assert.equal(bad.status, 401);
  assert.equal(bad.headers['x-weft-response-flags'], 'JWT');
});
