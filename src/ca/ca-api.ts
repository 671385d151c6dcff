// The CA's routes on the control plane's admin API:
//   GET    /api/v1/certs                 trust domain, trust bundle roots, latest certificate per node
//   GET    /api/v1/certs/issued          every issuance recorded
//   POST   /api/v1/ca/rotate-root        new root + intermediate; the old root stays trusted
//   POST   /api/v1/ca/retire-roots       drop the previous roots from the bundle
//   GET    /api/v1/tokens                join tokens (never the secrets)
//   POST   /api/v1/tokens                {service, namespace?, ttlSeconds?} → the token, shown once
//   DELETE /api/v1/tokens/:id
import { HttpError, type ApiServer } from '../api/api-server';
import { CaError, type CertificateAuthority } from './certificate-authority';
import { JoinTokenError, type JoinTokenStore } from './join-tokens';

export function installCaApi(api: ApiServer, deps: { ca: CertificateAuthority; tokens: JoinTokenStore; dev: boolean }): void {
  const { ca, tokens } = deps;
  api.route('GET', /^\/api\/v1\/certs$/, () => {
    return {
      trustDomain: ca.trustDomain,
      leafTtlSeconds: ca.leafTtlMs / 1000,
      dev: deps.dev,
      roots: ca.roots(),
      issued: ca.latestIssuances(),
    };
  });
  api.route('GET', /^\/api\/v1\/certs\/issued$/, () => ({ items: ca.issuances() }));
  api.route('POST', /^\/api\/v1\/ca\/rotate-root$/, async () => ({ roots: await guard(() => ca.rotateRoot()) }));
  api.route('POST', /^\/api\/v1\/ca\/retire-roots$/, async () => ({ roots: await ca.retireRoots() }));
  api.route('GET', /^\/api\/v1\/tokens$/, () => ({ items: tokens.list() }));
  api.route('POST', /^\/api\/v1\/tokens$/, async (req) => {
    const body = JSON.parse((await readAll(req)) || '{}') as { service?: string; namespace?: string; ttlSeconds?: number };
    return guard(() => tokens.create({ service: body.service ?? '', namespace: body.namespace, ttlMs: body.ttlSeconds === undefined ? undefined : body.ttlSeconds * 1000 }));
  });
  api.route('DELETE', /^\/api\/v1\/tokens\/([^/]+)$/, async (_req, [id]) => {
    if (!(await tokens.revoke(id))) throw new HttpError(404, `no join token ${id}`);
    return { revoked: id };
  });
}

async function guard<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof JoinTokenError) throw new HttpError(400, err.message, { code: err.code });
    if (err instanceof CaError) throw new HttpError(409, err.message, { code: err.code });
    throw err;
  }
}

function readAll(req: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => {
      body += c;
      if (body.length > 64 * 1024) reject(new HttpError(413, 'body too large'));
    });
    req.on('end', () => resolve(body));
    req.on('error', reject);
  });
}
