// SPIFFE IDs of weft workloads: spiffe://<trust domain>/ns/<namespace>/sa/<service>.
// Apart from pki.ts so the sidecar names its identity without loading the X.509 library.

/** The trust domain when none is configured (Istio's and Kubernetes' default). */
export const DEFAULT_TRUST_DOMAIN = 'cluster.local';

export interface SpiffeIdentity {
  trustDomain: string;
  namespace: string;
  service: string;
}

export function spiffeId(trustDomain: string, namespace: string, service: string): string {
  return `spiffe://${trustDomain}/ns/${namespace}/sa/${service}`;
}

const SPIFFE_RE = /^spiffe:\/\/([a-z0-9._-]+)\/ns\/([^/]+)\/sa\/([^/]+)$/;

/** The parts of a weft SPIFFE ID, or undefined when `uri` is not one. */
export function parseSpiffeId(uri: string): SpiffeIdentity | undefined {
  const m = SPIFFE_RE.exec(uri);
  return m ? { trustDomain: m[1], namespace: m[2], service: m[3] } : undefined;
}
