// A compiled RouteMatch, with Envoy's path semantics:
//   prefix               the request target starts with it (Envoy compares the whole :path)
//   exact                the path without query and fragment equals it
//   pathSeparatedPrefix  the path starts with it and goes on with "/" or ends there
//   regex                the path without query and fragment matches it entirely
// `caseSensitive: false` folds ASCII case for the first three (Envoy ignores it
// for regex). Then every header matcher and every query matcher must hold.
import type { RouteMatch } from '../config/types';
import { fullMatch } from './full-match';
import { CompiledHeaderMatcher } from './header-matcher';
import type { PathParts } from './path-parts';
import { CompiledQueryMatcher } from './query-matcher';
import type { RequestInfo } from './route-table';

const SLASH = 47;
const QUESTION = 63;
const HASH = 35;

/** "?" and "#" end the path proper. */
function endsPath(c: number): boolean {
  return c === QUESTION || c === HASH;
}

export class RouteMatcher {
  private readonly kind: RouteMatch['path']['kind'];
  /** The path value; ASCII lower case when matching ignores case. */
  private readonly value: string;
  private readonly regex: RegExp | undefined;
  private readonly caseSensitive: boolean;
  /** False when the value holds "?" or "#": no path proper can equal or start with it. */
  private readonly withinPath: boolean;
  private readonly headers: CompiledHeaderMatcher[];
  private readonly query: CompiledQueryMatcher[];

  constructor(match: RouteMatch) {
    const path = match.path;
    this.kind = path.kind;
    this.caseSensitive = match.caseSensitive;
    this.regex = path.kind === 'regex' ? fullMatch(path.regex) : undefined;
    const value = path.kind === 'regex' ? '' : path.value;
    this.value = match.caseSensitive ? value : asciiLower(value);
    this.withinPath = !/[?#]/.test(value);
    this.headers = match.headers.map((h) => new CompiledHeaderMatcher(h));
    this.query = match.queryParams.map((q) => new CompiledQueryMatcher(q));
  }

  matches(req: RequestInfo, parts: PathParts): boolean {
    if (!this.pathMatches(parts)) return false;
    for (let i = 0; i < this.headers.length; i++) {
      if (!this.headers[i].matches(req)) return false;
    }
    if (this.query.length > 0) {
      const start = parts.queryStart();
      if (start < 0) return false;
      const end = parts.queryEnd();
      for (let i = 0; i < this.query.length; i++) {
        if (!this.query[i].matches(parts.target, start, end)) return false;
      }
    }
    return true;
  }

  private pathMatches(parts: PathParts): boolean {
    const target = parts.target;
    const n = this.value.length;
    switch (this.kind) {
      case 'prefix':
        return this.startsWith(target);
      // For these two the path proper must end (or go on with "/") right
      // after the value: one character tells, no scan for "?" is needed.
      case 'exact':
        return this.withinPath && this.startsWith(target) && (target.length === n || endsPath(target.charCodeAt(n)));
      case 'pathSeparatedPrefix': {
        if (!this.withinPath || !this.startsWith(target)) return false;
        if (target.length === n) return true;
        const next = target.charCodeAt(n);
        return next === SLASH || endsPath(next);
      }
      case 'regex':
        return this.regex!.test(parts.path());
    }
  }

  private startsWith(target: string): boolean {
    return this.caseSensitive ? target.startsWith(this.value) : startsWithIgnoreCase(target, this.value);
  }
}

/** `lowerPrefix` is already ASCII lower case; only ASCII letters fold (as Envoy's absl::StartsWithIgnoreCase). */
function startsWithIgnoreCase(text: string, lowerPrefix: string): boolean {
  const n = lowerPrefix.length;
  if (text.length < n) return false;
  for (let i = 0; i < n; i++) {
    let c = text.charCodeAt(i);
    if (c >= 65 && c <= 90) c += 32;
    if (c !== lowerPrefix.charCodeAt(i)) return false;
  }
  return true;
}

function asciiLower(text: string): string {
  return text.replace(/[A-Z]+/g, (s) => s.toLowerCase());
}
