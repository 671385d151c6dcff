// Whether a call between two services travels over mutual TLS, told from the
// config the translator turns into the callers' clusters (translate/mtls.ts):
//
//   the caller's sidecar      auto mTLS: TLS with its workload certificate to every
//                             endpoint registered with a sidecar (`weft run`), plaintext
//                             to the others (static endpoints have no sidecar to answer TLS)
//   the destination's MeshTLS strict: its sidecar closes plaintext; permissive: both
//
//   all endpoints have a sidecar      → mtls (strict or permissive alike: the caller starts TLS)
//   some or none have one             → plaintext (to those; strict cannot guard an endpoint
//                                       with no sidecar in front of it)
//   no endpoints, undeclared service  → unknown (no field)
//
// The edges of the topology come from sidecars' metrics, so the caller is a
// sidecar; proxyless gRPC clients (plaintext) do not appear as callers there.
import { meshTlsOf } from '../translate/mtls';
import type { MeshView } from '../translate/types';
import type { EdgeSignals, Topology } from './topology';

export interface EdgeSecurity {
  security: 'mtls' | 'plaintext';
  tlsMode: 'strict' | 'permissive';
  securityReason: string;
}

/** "<name>.<namespace>" → its parts (a name has no dot: the rest is the namespace). */
export function splitService(key: string): { name: string; namespace: string } {
  const i = key.indexOf('.');
  return i < 0 ? { name: key, namespace: 'default' } : { name: key.slice(0, i), namespace: key.slice(i + 1) };
}

/** How `source`'s sidecar reaches `destination` ("<name>.<ns>" both); undefined when config cannot tell. */
export function edgeSecurity(view: MeshView, source: string, destination: string): EdgeSecurity | undefined {
  if (!source || source === '-') return undefined;
  const { name, namespace } = splitService(destination);
  if (!view.services.some((s) => s.metadata.name === name && s.metadata.namespace === namespace)) return undefined;
  const tlsMode = meshTlsOf(view, name, namespace)?.spec.mode ?? 'permissive';
  const endpoints = (view.endpoints.get(`${namespace}/${name}`) ?? []).filter((e) => e.health !== 'draining');
  if (endpoints.length === 0) return undefined;
  const withSidecar = endpoints.filter((e) => e.sidecar).length;
  if (withSidecar === endpoints.length) {
    const n = endpoints.length === 1 ? 'its endpoint has' : `all ${endpoints.length} endpoints have`;
    return { security: 'mtls', tlsMode, securityReason: `${n} a sidecar: the caller's sidecar speaks mTLS to it; MeshTLS ${tlsMode}${tlsMode === 'strict' ? ' (plaintext refused)' : ''}` };
  }
  const bare = endpoints.length - withSidecar;
  const which = bare === endpoints.length ? (bare === 1 ? 'its endpoint has' : `its ${bare} endpoints have`) : `${bare} of ${endpoints.length} endpoints have`;
  return {
    security: 'plaintext',
    tlsMode,
    securityReason: `${which} no sidecar: calls to ${bare === endpoints.length ? 'it' : 'them'} are plaintext${tlsMode === 'strict' ? ' (MeshTLS strict is enforced only by a sidecar)' : ''}`,
  };
}

/** The edges with their security; the topology itself is left as it is (the observer shares it). */
export function withEdgeSecurity(view: MeshView, t: Topology): Topology {
  const edges: EdgeSignals[] = t.edges.map((e) => {
    const s = edgeSecurity(view, e.source, e.destination);
    return s ? { ...e, ...s } : e;
  });
  return { ...t, edges };
}
