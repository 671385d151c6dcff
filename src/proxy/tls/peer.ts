// Who is on the other end of an mTLS connection: the SPIFFE ID in its
// certificate's URI SAN, and the "<service>.<namespace>" metrics and records
// call it by. Kept per connection (socket or h2 session) in a WeakMap, so
// plaintext connections carry nothing.
import type { PeerCertificate } from 'node:tls';
import { parseSpiffeId } from '../../ca/spiffe-id';
import type { SanMatcher } from '../config/types';

export interface PeerIdentity {
  /** The SPIFFE ID (first URI SAN). */
  principal: string;
  /** "<service>.<namespace>", or 'unknown' when the URI is not a weft identity. */
  source: string;
}

const peers = new WeakMap<object, PeerIdentity>();

export function setPeer(conn: object, peer: PeerIdentity): void {
  peers.set(conn, peer);
}

export function peerOf(conn: object | undefined): PeerIdentity | undefined {
  return conn ? peers.get(conn) : undefined;
}

/** The URI SANs of a certificate, from node's `subjectaltname` text ("URI:a, DNS:b"). */
export function uriSans(cert: Pick<PeerCertificate, 'subjectaltname'> | undefined): string[] {
  const text = cert?.subjectaltname;
  if (!text) return [];
  const out: string[] = [];
  for (const part of text.split(', ')) if (part.startsWith('URI:')) out.push(part.slice(4));
  return out;
}

export function peerIdentity(principal: string): PeerIdentity {
  const id = parseSpiffeId(principal);
  return { principal, source: id ? `${id.service}.${id.namespace}` : 'unknown' };
}

/** Whether one of `uris` satisfies the matchers (none: any). */
export function sansMatch(uris: readonly string[], matchers: readonly SanMatcher[]): boolean {
  if (matchers.length === 0) return true;
  return uris.some((u) => matchers.some((m) => (m.kind === 'exact' ? u === m.value : u.startsWith(m.value))));
}
