// Who may call which API route. Every route declares one rule:
//   public    anyone (liveness only)
//   viewer    a viewer or admin credential (reads)
//   admin     an admin credential (changes, tokens, the CA)
//   workload  an admin credential, or a join token whose identity the handler
//             checks against what is asked (a workload may only register,
//             renew and deregister instances of its own service)
//   reader    a viewer or admin credential, or a join token whose identity the
//             handler checks (a workload reads only its own service's, e.g. its plugins)
// Outside --dev, a request without a credential gets 401 and one with too
// little 403, both with a JSON reason. In --dev everything is open, as the
// trust model says (one machine only).
import type * as http from 'node:http';
import type { JoinTokenStore } from '../ca/join-tokens';
import { CredentialError, looksLikeApiToken, type CredentialStore, type Role } from './credentials';
import { HttpError } from './http-error';

export type Access = 'public' | 'viewer' | 'admin' | 'workload' | 'reader';

export type Principal =
  | { kind: 'dev' }
  | { kind: 'credential'; id: string; name: string; role: Role }
  | { kind: 'workload'; tokenId: string; namespace: string; service: string };

export interface Authenticator {
  /** --dev: no credential needed. */
  dev: boolean;
  credentials: CredentialStore;
  tokens: JoinTokenStore;
}

/** Longer than any token weft makes, by far: a bigger header is refused before it is parsed. */
const MAX_AUTHORIZATION = 512;

const NO_CREDENTIAL =
  'this control plane needs a credential: set WEFT_TOKEN (or pass --token) to an API token — the first admin token is in <data-dir>/admin.token on the control plane host; `weft admin-token create` makes more';

/** The caller, from `Authorization: Bearer <token>`; undefined without one. Throws 401 for a bad one. */
export function authenticate(req: http.IncomingMessage, auth: Authenticator): Principal | undefined {
  const header = req.headers.authorization;
  if (header === undefined) return auth.dev ? { kind: 'dev' } : undefined;
  if (header.length > MAX_AUTHORIZATION) throw new HttpError(401, `the Authorization header is longer than ${MAX_AUTHORIZATION} bytes`, { code: 'E_AUTH_MALFORMED' });
  const m = /^Bearer ([!-~]+)$/.exec(header);
  if (!m) throw new HttpError(401, 'the Authorization header must be "Bearer <token>"', { code: 'E_AUTH_MALFORMED' });
  const token = m[1];
  try {
    if (looksLikeApiToken(token)) {
      const c = auth.credentials.verify(token);
      return { kind: 'credential', id: c.id, name: c.name, role: c.role };
    }
    const identity = auth.tokens.verify(token);
    return { kind: 'workload', tokenId: token.split('.')[1], ...identity };
  } catch (err) {
    const code = (err as { code?: string }).code ?? 'E_AUTH_INVALID';
    if (err instanceof CredentialError || /TOKEN/.test(code)) throw new HttpError(401, (err as Error).message, { code });
    throw err;
  }
}

/** Throws 401/403 unless `principal` may use a route with `access`. */
export function authorize(access: Access, principal: Principal | undefined, what: string): void {
  if (access === 'public' || principal?.kind === 'dev') return;
  if (!principal) throw new HttpError(401, NO_CREDENTIAL, { code: 'E_AUTH_REQUIRED' });
  const role = principal.kind === 'credential' ? principal.role : 'workload';
  const allowed = access === 'viewer' ? role === 'viewer' || role === 'admin' : access === 'admin' ? role === 'admin' : access === 'reader' ? true : role === 'admin' || role === 'workload';
  if (!allowed) throw new HttpError(403, `${describe(principal)} may not ${what} (needs ${access === 'workload' ? 'an admin credential or the join token of the service' : `the ${access} role`})`, { code: 'E_AUTH_FORBIDDEN' });
}

/** For a workload: the service it may act for must be this one (403 otherwise). Admins and dev pass. */
export function requireOwnService(principal: Principal | undefined, namespace: string, service: string, what: string): void {
  if (principal?.kind !== 'workload') return;
  if (principal.namespace === namespace && principal.service === service) return;
  throw new HttpError(403, `${describe(principal)} may only ${what} for ${principal.namespace}/${principal.service}, not ${namespace}/${service}`, { code: 'E_AUTH_FORBIDDEN' });
}

export function describe(p: Principal): string {
  if (p.kind === 'dev') return 'dev mode';
  if (p.kind === 'credential') return `credential ${p.name} (${p.id}, ${p.role})`;
  return `the join token ${p.tokenId} of ${p.namespace}/${p.service}`;
}
