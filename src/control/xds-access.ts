// Who may open an xDS stream outside --dev. A node's config names its
// routes, peers and policies: a workload receives only its own, proving its
// identity with its join token (the one it already presents for its
// certificate): `authorization: Bearer <join token>` on the ADS call, for a
// node whose WEFT_SERVICE / WEFT_NAMESPACE are the token's. An operator's API
// credential (admin) may watch any node (tools, gateways without a service).
import type { Metadata } from '@grpc/grpc-js';
import type { JoinTokenStore } from '../ca/join-tokens';
import type { CredentialStore } from '../api/credentials';
import { looksLikeApiToken } from '../api/credentials';
import type { NodeInfo } from '../translate/types';
import { XdsAccessError } from '../xds/server/errors';

export function xdsAccess(tokens: JoinTokenStore, credentials: CredentialStore): (metadata: Metadata, node: NodeInfo) => void {
  return (metadata, node) => {
    const header = metadata.get('authorization')[0];
    if (header === undefined) throw new XdsAccessError(false, `node ${node.id}: this control plane needs a credential on xDS: the service's join token (--join-token or WEFT_JOIN_TOKEN; \`weft token create --service ${node.service ?? '<name>'}\`)`);
    const m = typeof header === 'string' && header.length <= 512 ? /^Bearer ([!-~]+)$/.exec(header) : null;
    if (!m) throw new XdsAccessError(false, 'authorization metadata must be "Bearer <token>"');
    let identity;
    try {
      if (looksLikeApiToken(m[1])) {
        const c = credentials.verify(m[1]);
        if (c.role === 'admin') return;
        throw new XdsAccessError(true, `credential ${c.name} (${c.role}) may not receive node config (needs the admin role or the service's join token)`);
      }
      identity = tokens.verify(m[1]);
    } catch (err) {
      if (err instanceof XdsAccessError) throw err;
      throw new XdsAccessError(false, (err as Error).message);
    }
    if (identity.service !== node.service || identity.namespace !== node.namespace) {
      throw new XdsAccessError(true, `node ${node.id} declares ${node.namespace}/${node.service ?? '(no service)'}, but its join token is for ${identity.namespace}/${identity.service}`);
    }
  };
}
