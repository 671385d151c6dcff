// Path rewrites of a route action, as Envoy applies them before forwarding.
// The query string (and any fragment) is never rewritten: it is carried over.
import type { RouteAction, RouteMatch } from '../config/types';

/**
 * prefix_rewrite replaces what the route matched: the prefix for prefix and
 * path-separated-prefix routes, the whole path for exact and regex routes
 * (Envoy's rule). regex_rewrite replaces every match of its regex in the path
 * with the substitution, where "\1" … "\9" are capture groups and "\0" the
 * whole match (RE2 syntax). The decoder allows only one of the two; if both
 * came, prefix_rewrite wins. No rewrite: the path is returned as is.
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

type Substitution = (whole: string, groups: readonly (string | undefined)[]) => string;

interface CompiledRegexRewrite {
  regex: RegExp;
  substitute: Substitution;
}

// Compiled once per config object: the RouteAction lives as long as its RDS version.
const compiled = new WeakMap<object, CompiledRegexRewrite>();

function rewriteRegex(path: string, spec: NonNullable<RouteAction['regexRewrite']>): string {
  let c = compiled.get(spec);
  if (c === undefined) {
    const flags = spec.regex.flags.includes('g') ? spec.regex.flags : spec.regex.flags + 'g';
    c = { regex: new RegExp(spec.regex.source, flags.replace('y', '')), substitute: compileSubstitution(spec.substitution) };
    compiled.set(spec, c);
  }
  const end = pathEnd(path);
  const substitute = c.substitute;
  const rewritten = path.slice(0, end).replace(c.regex, (whole: string, ...rest: unknown[]) => {
    // rest: the groups, then offset, the input and (with named groups) the groups object.
    const groupCount = rest.length - (typeof rest[rest.length - 1] === 'object' ? 3 : 2);
    return substitute(whole, rest.slice(0, groupCount) as (string | undefined)[]);
  });
  return rewritten + path.slice(end);
}

/** RE2's rewrite string: "\N" is group N (0 the whole match), "\\" a backslash; all else literal. */
export function compileSubstitution(text: string): Substitution {
  const literals: string[] = [];
  const groups: number[] = [];
  let literal = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '\\' && i + 1 < text.length) {
      const next = text[i + 1];
      if (next >= '0' && next <= '9') {
        literals.push(literal);
        groups.push(Number(next));
        literal = '';
        i++;
        continue;
      }
      if (next === '\\') {
        literal += '\\';
        i++;
        continue;
      }
    }
    literal += c;
  }
  literals.push(literal);
  return (whole, found) => {
    let out = literals[0];
    for (let i = 0; i < groups.length; i++) {
      const g = groups[i];
      out += (g === 0 ? whole : found[g - 1]) ?? '';
      out += literals[i + 1];
    }
    return out;
  };
}
