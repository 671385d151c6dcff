// The request hash that RING_HASH and MAGLEV pick by, from a route's hash
// policies, as Envoy computes it (HashPolicyImpl::generateHash), in 32 bits.
import type { HashPolicy } from '../config/types';
import { murmur3 } from './murmur3';
import { headerSource, readHeader } from './request-header';
import type { RequestInfo } from './route-table';

/**
 * MurmurHash3 x86_32 of the string's UTF-8 bytes: deterministic across
 * processes and machines, so every sidecar maps a key to the same endpoint.
 * `seed` gives independent hashes of one key (Maglev's offset and skip).
 */
export function hash32(text: string, seed = 0): number {
  return murmur3(text, seed);
}

/**
 * Envoy's rule: each policy that yields a value is folded in (the hash so far
 * rotated left by one, xor the new one); after a terminal policy, stop if there
 * is a hash by then. Undefined when no policy yields a value: the balancer then
 * picks at random.
 *
 * Header policies hash the first value (the engine gives one); a cookie policy
 * hashes the cookie's value and yields nothing when the request has no such
 * cookie (setting one when `ttlMs` is given is the engine's job: it can hash
 * the value it sets with hash32); source IP yields nothing for an empty address.
 */
export function requestHash(policies: HashPolicy[], req: RequestInfo, sourceIp: string): number | undefined {
  let hash: number | undefined;
  for (let i = 0; i < policies.length; i++) {
    const policy = policies[i];
    const value = policyValue(policy, req, sourceIp);
    if (value !== undefined) {
      const rotated = hash === undefined ? 0 : (hash << 1) | (hash >>> 31);
      hash = (rotated ^ hash32(value)) >>> 0;
    }
    if (policy.terminal && hash !== undefined) break;
  }
  return hash;
}

function policyValue(policy: HashPolicy, req: RequestInfo, sourceIp: string): string | undefined {
  switch (policy.kind) {
    case 'header':
      return readHeader(req, headerSource(policy.name), policy.name);
    case 'cookie': {
      const header = req.header('cookie');
      return header === undefined ? undefined : cookieValue(header, policy.name);
    }
    case 'sourceIp':
      return sourceIp === '' ? undefined : sourceIp;
  }
}

/**
 * The value of the first cookie called `name` in a Cookie header
 * ("a=1; b=2"), without surrounding double quotes; undefined when absent.
 */
export function cookieValue(header: string, name: string): string | undefined {
  let start = 0;
  while (start < header.length) {
    let end = header.indexOf(';', start);
    if (end < 0) end = header.length;
    while (start < end && (header.charCodeAt(start) === 32 || header.charCodeAt(start) === 9)) start++;
    const eq = header.indexOf('=', start);
    if (eq > start && eq < end && eq - start === name.length && header.startsWith(name, start)) {
      let vStart = eq + 1;
      let vEnd = end;
      while (vEnd > vStart && (header.charCodeAt(vEnd - 1) === 32 || header.charCodeAt(vEnd - 1) === 9)) vEnd--;
      if (vEnd - vStart >= 2 && header.charCodeAt(vStart) === 34 && header.charCodeAt(vEnd - 1) === 34) {
        vStart++;
        vEnd--;
      }
      return header.slice(vStart, vEnd);
    }
    start = end + 1;
  }
  return undefined;
}

/** The client address as hash policies see it: IPv4-mapped IPv6 ("::ffff:10.0.0.1") written as IPv4, so every sidecar hashes the same text. */
export function sourceIp(remoteAddress: string | undefined): string {
  if (!remoteAddress) return '';
  return remoteAddress.startsWith('::ffff:') && remoteAddress.includes('.') ? remoteAddress.slice(7) : remoteAddress;
}
