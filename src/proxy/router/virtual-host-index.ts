// Virtual host selection by the request's authority, in Envoy's order:
// exact domain, then the longest suffix wildcard ("*.foo.com", "*-bar.foo.com"),
// then the longest prefix wildcard ("foo.*"), then "*". A wildcard never
// matches the empty string. Exact domains match the host as received, port
// included (as Envoy does): "greeter:9999" must not reach the service's other
// port through the bare "greeter" — the control plane lists every host:port a
// service answers on. Wildcards try the host as received, then without its
// port, so "api.foo.com:8080" finds "*.foo.com" as well as "*.foo.com:8080".

/** What the index holds: anything with Envoy domains (a virtual host, or its compiled form). */
export interface HasDomains {
  readonly domains: readonly string[];
}

/** Wildcard domains of one length, longest length first (Envoy's layout). */
interface WildcardBucket<T> {
  length: number;
  hosts: Map<string, T>;
}

// Results of non-exact lookups are memoized; the bound keeps hostile Host
// headers from growing the memo without limit.
const MEMO_LIMIT = 4096;

export class VirtualHostIndex<T extends HasDomains> {
  private readonly exact = new Map<string, T>();
  private readonly suffixes: WildcardBucket<T>[] = [];
  private readonly prefixes: WildcardBucket<T>[] = [];
  private readonly catchAll: T | undefined;
  private readonly memo = new Map<string, T | null>();

  constructor(virtualHosts: readonly T[]) {
    let catchAll: T | undefined;
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
  find(host: string): T | undefined {
    const hit = this.exact.get(host);
    if (hit !== undefined) return hit;
    const memo = this.memo.get(host);
    if (memo !== undefined) return memo ?? undefined;
    const found = this.search(host);
    if (this.memo.size >= MEMO_LIMIT) this.memo.clear();
    this.memo.set(host, found ?? null);
    return found;
  }

  private search(host: string): T | undefined {
    const bare = stripPort(host);
    const other = bare === host ? undefined : bare;
    return (
      findWildcard(this.suffixes, host, other, suffixOf) ??
      findWildcard(this.prefixes, host, other, prefixOf) ??
      this.catchAll
    );
  }
}

function addWildcard<T>(buckets: WildcardBucket<T>[], key: string, vh: T): void {
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

function findWildcard<T>(
  buckets: readonly WildcardBucket<T>[],
  host: string,
  bare: string | undefined,
  part: (host: string, length: number) => string,
): T | undefined {
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
