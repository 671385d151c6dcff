// Path rewrites of a route action, as Envoy applies them before forwarding.
// The query string (and any fragment) is never rewritten: it is carried over.
import type { RouteAction, RouteMatch } from '../config/types';

/**
 * prefix_rewrite replaces what the route matched: the prefix for prefix and
 * path-separated-prefix routes, the whole path for exact and regex routes
 * (Envoy's rule). regex_rewrite replaces every match of its regex in the path
 * (RE2::GlobalReplace); the decoder has already turned the RE2 substitution
 * ("\\1") into String.prototype.replace syntax ("$1"). The decoder allows only
 * one of the two; if both came, prefix_rewrite wins. No rewrite: the path is
 * returned as is.
 */
export function rewritePath(path: string, action: RouteAction, match: RouteMatch): string {
  if (action.prefixRewrite !== undefined) return rewritePrefix(path, action.prefixRewrite, match);
  if (action.regexRewrite !== undefined) return rewriteRegex(path, action.regexRewrite);
  return path;
}

function pathEnd(path: string): number {
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c === 63 /* ? */ || c === 35 /* # */) return i;
  }
  return path.length;
}

function rewritePrefix(path: string, rewrite: string, match: RouteMatch): string {
  const kind = match.path.kind;
  const matched = kind === 'prefix' || kind === 'pathSeparatedPrefix' ? match.path.value.length : pathEnd(path);
  return rewrite + path.slice(Math.min(matched, path.length));
}

// A global, non-sticky copy of a regex that lacks the g flag, made once per
// config object (the RouteAction lives as long as its RDS version).
const globalCopies = new WeakMap<RegExp, RegExp>();

function globalRegex(regex: RegExp): RegExp {
  if (regex.global && !regex.sticky) return regex;
  let copy = globalCopies.get(regex);
  if (copy === undefined) {
    copy = new RegExp(regex.source, regex.flags.replace(/[gy]/g, '') + 'g');
    globalCopies.set(regex, copy);
  }
  return copy;
}

function rewriteRegex(path: string, spec: NonNullable<RouteAction['regexRewrite']>): string {
  const end = pathEnd(path);
  // replace() with a global regex resets lastIndex itself: no state leaks between requests.
  const rewritten = path.slice(0, end).replace(globalRegex(spec.regex), spec.substitution);
  return end === path.length ? rewritten : rewritten + path.slice(end);
}
