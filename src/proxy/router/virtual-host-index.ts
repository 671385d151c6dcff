// Virtual host selection by the request's authority, in Envoy's order:
// exact domain, then the longest suffix wildcard ("*.foo.com", "*-bar.foo.com"),
// then the longest prefix wildcard ("foo.*"), then "*". A wildcard never
// matches the empty string. Each step tries the host as received, then the host
// without its port, so "api.foo.com:8080" finds "*.foo.com" as well as
// "*.foo.com:8080".
import type { VirtualHost } from '../config/types';

/** Wildcard domains of one length, longest length first (Envoy's layout). */
interface WildcardBucket {
  length: number;
  hosts: Map<string, VirtualHost>;
}

// Results of non-exact lookups are memoized; the bound keeps hostile Host
// headers from growing the memo without limit.
const MEMO_LIMIT = 4096;

export class VirtualHostIndex {
  private readonly exact = new Map<string, VirtualHost>();
  private readonly suffixes: WildcardBucket[] = [];
  private readonly prefixes: WildcardBucket[] = [];
  private readonly catchAll: VirtualHost | undefined;
  private readonly memo = new Map<string, VirtualHost | null>();

  constructor(virtualHosts: readonly VirtualHost[]) {
    let catchAll: VirtualHost | undefined;
    // The first virtual host to claim a domain keeps it (the decoder rejects duplicates).
    for (const vh of virtualHosts) {
      for (const raw of vh.domains) {
        const domain = raw.toLowerCase();
        if (domain === '*') {
          catchAll ??= vh;
        } else if (domain.startsWith('*')) {
          addWildcard(this.suffixes, domain.slice(1), vh);
        } else if (domain.endsWith('*')) {
          addWildcard(this.prefixes, domain.slice(0, -1), vh);
        } else if (!this.exact.has(domain)) {
          this.exact.set(domain, vh);
        }
      }
    }
    this.catchAll = catchAll;
    this.suffixes.sort((a, b) => b.length - a.length);
    this.prefixes.sort((a, b) => b.length - a.length);
  }

  /** `host` is lower case, as received, maybe with ":port". */
  find(host: string): VirtualHost | undefined {
    const hit = this.exact.get(host);
    if (hit !== undefined) return hit;
    const memo = this.memo.get(host);
    if (memo !== undefined) return memo ?? undefined;
    const found = this.search(host);
    if (this.memo.size >= MEMO_LIMIT) this.memo.clear();
    this.memo.set(host, found ?? null);
    return found;
  }

  private search(host: string): VirtualHost | undefined {
    const bare = stripPort(host);
    const other = bare === host ? undefined : bare;
    return (
      (other !== undefined ? this.exact.get(other) : undefined) ??
      findWildcard(this.suffixes, host, other, suffixOf) ??
      findWildcard(this.prefixes, host, other, prefixOf) ??
      this.catchAll
    );
  }
}

function addWildcard(buckets: WildcardBucket[], key: string, vh: VirtualHost): void {
  let bucket = buckets.find((b) => b.length === key.length);
  if (!bucket) {
    bucket = { length: key.length, hosts: new Map() };
    buckets.push(bucket);
  }
  if (!bucket.hosts.has(key)) bucket.hosts.set(key, vh);
}

function suffixOf(host: string, length: number): string {
  return host.slice(host.length - length);
}

function prefixOf(host: string, length: number): string {
  return host.slice(0, length);
}

function findWildcard(
  buckets: readonly WildcardBucket[],
  host: string,
  bare: string | undefined,
  part: (host: string, length: number) => string,
): VirtualHost | undefined {
  for (const name of bare === undefined ? [host] : [host, bare]) {
    for (const bucket of buckets) {
      // Strictly longer: the "*" must stand for at least one character.
      if (name.length <= bucket.length) continue;
      const vh = bucket.hosts.get(part(name, bucket.length));
      if (vh !== undefined) return vh;
    }
  }
  return undefined;
}

/** The host without ":port"; an IPv6 literal keeps its brackets ("[::1]:80" → "[::1]"). */
export function stripPort(host: string): string {
  const colon = host.lastIndexOf(':');
  if (colon < 0 || host.lastIndexOf(']') > colon) return host;
  return host.slice(0, colon);
}
