// The CA's routes on the control plane's admin API:
//   GET    /api/v1/certs                 trust domain, trust bundle roots, latest certificate per node
//   GET    /api/v1/certs/issued          every issuance recorded
//   POST   /api/v1/ca/rotate-root        new root + intermediate; the old root stays trusted
//   POST   /api/v1/ca/retire-roots       drop the previous roots from the bundle; 409 with the nodes
//                                         whose live certificates chain to them, unless {"force": true}
//   GET    /api/v1/tokens                join tokens (never the secrets)       (admin)
//   POST   /api/v1/tokens                {service, namespace?, ttlSeconds?} → the token, shown once
//   DELETE /api/v1/tokens/:id
import { HttpError, type ApiServer } from '../api/api-server';
import { readBody } from '../api/read-body';
import { CaError, RootInUseError, type CertificateAuthority } from './certificate-authority';
import { shortFingerprint } from './cert-info';
import { JoinTokenError, type JoinTokenStore } from './join-tokens';

export function installCaApi(api: ApiServer, deps: { ca: CertificateAuthority; tokens: JoinTokenStore; dev: boolean }): void {
  const { ca, tokens } = deps;
  api.route('GET', /^\/api\/v1\/certs$/, 'viewer', () => {
    return {
      trustDomain: ca.trustDomain,
      leafTtlSeconds: ca.leafTtlMs / 1000,
      dev: deps.dev,
      roots: ca.roots(),
      issued: ca.latestIssuances(),
    };
  });
  api.route('GET', /^\/api\/v1\/certs\/issued$/, 'viewer', () => ({ items: ca.issuances() }));
  api.route('POST', /^\/api\/v1\/ca\/rotate-root$/, 'admin', async (_req, _p, _u, caller) => {
    caller.note('rotated the root');
    return { roots: await guard(() => ca.rotateRoot()) };
  });
  api.route('POST', /^\/api\/v1\/ca\/retire-roots$/, 'admin', async (req, _p, _u, caller) => {
    const body = (JSON.parse((await readBody(req, 64 * 1024)) || '{}') ?? {}) as { force?: unknown };
    if (body.force !== undefined && typeof body.force !== 'boolean') throw new HttpError(400, `force must be true or false, got ${JSON.stringify(body.force)}`);
    const force = body.force === true;
    // What a forced retirement cuts off, named in the answer and the audit log.
    const cutOff = force ? ca.certificatesOffActiveRoot().map((r) => ({ nodeId: r.nodeId, spiffeId: r.spiffeId, root: r.rootFingerprint256 ? shortFingerprint(r.rootFingerprint256) : 'unknown' })) : [];
    const roots = await guard(() => ca.retireRoots({ force }));
    caller.note(cutOff.length > 0 ? `retired the previous roots by force, cutting off ${cutOff.map((n) => n.nodeId).join(', ')}` : 'retired the previous roots');
    return { roots, ...(force ? { cutOff } : {}) };
  });
  api.route('GET', /^\/api\/v1\/tokens$/, 'admin', () => ({ items: tokens.list() }));
  api.route('POST', /^\/api\/v1\/tokens$/, 'admin', async (req, _p, _u, caller) => {
    const body = JSON.parse((await readBody(req, 64 * 1024)) || '{}') as { service?: string; namespace?: string; ttlSeconds?: number };
    const made = await guard(() => tokens.create({ service: body.service ?? '', namespace: body.namespace, ttlMs: body.ttlSeconds === undefined ? undefined : body.ttlSeconds * 1000 }));
    caller.note(`created join token ${made.id} for ${made.namespace}/${made.service}`);
    return made;
  });
  api.route('DELETE', /^\/api\/v1\/tokens\/([^/]+)$/, 'admin', async (_req, [id], _u, caller) => {
    if (!(await tokens.revoke(id))) throw new HttpError(404, `no join token ${id}`);
    caller.note(`revoked join token ${id}`);
    return { revoked: id };
  });
}

async function guard<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof JoinTokenError) throw new HttpError(400, err.message, { code: err.code });
    if (err instanceof RootInUseError) throw new HttpError(409, err.message, { code: err.code, nodes: err.nodes });
    if (err instanceof CaError) throw new HttpError(409, err.message, { code: err.code });
    throw err;
  }
}
