// Header, query-parameter and string matchers of route and filter configs
// (envoy.config.route.v3.HeaderMatcher, QueryParameterMatcher,
// envoy.type.matcher.v3.StringMatcher) → the matchers the router and the
// filters compile. Shared by decode-route.ts and the HTTP filters (fault
// headers), so no filter has to import the route decoder.
import { onlyFields, type FieldPath } from './nack';
import { regexMatcher, type Obj } from './read-proto';
import type { HeaderMatcher, QueryMatcher } from './types';

const T = 'envoy.config.route.v3.';

type ValueMatch = Pick<HeaderMatcher, 'kind' | 'value' | 'regex'>;

export function nonEmpty(at: FieldPath, value: string | undefined): string {
  if (!value) at.invalid('must not be empty');
  return value;
}

/** An envoy.type.matcher.v3.StringMatcher; `kinds` are those the caller supports. */
export function stringMatcher(at: FieldPath, m: Obj, kinds: readonly ValueMatch['kind'][]): ValueMatch {
  onlyFields(at, 'envoy.type.matcher.v3.StringMatcher', m, ['exact', 'prefix', 'suffix', 'contains', 'safe_regex']);
  const pattern: string | undefined = m.match_pattern;
  let out: ValueMatch;
  switch (pattern) {
    case 'exact':
      out = { kind: 'exact', value: m.exact };
      break;
    case 'prefix':
    case 'suffix':
    case 'contains':
      out = { kind: pattern, value: nonEmpty(at.field(pattern), m[pattern]) };
      break;
    case 'safe_regex':
      out = { kind: 'regex', regex: regexMatcher(at.field('safe_regex'), m.safe_regex, 'full') };
      break;
    default:
      return at.invalid('needs a match pattern');
  }
  if (!kinds.includes(out.kind)) at.field(pattern).unsupported();
  return out;
}

export const HTTP_TOKEN = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;

/** A header name a matcher may use: a token, or a pseudo-header such as :method or :authority. */
export function matcherHeaderName(at: FieldPath, name: string | undefined): string {
  const lower = (name ?? '').toLowerCase();
  if (!HTTP_TOKEN.test(lower.startsWith(':') ? lower.slice(1) : lower)) at.invalid(`"${name ?? ''}" is not a valid header name`);
  return lower;
}

export function headerMatcher(at: FieldPath, h: Obj): HeaderMatcher {
  onlyFields(at, `${T}HeaderMatcher`, h, [
    'name',
    'exact_match',
    'safe_regex_match',
    'present_match',
    'prefix_match',
    'suffix_match',
    'contains_match',
    'string_match',
    'invert_match',
  ]);
  const name = matcherHeaderName(at.field('name'), h.name);
  let invert = h.invert_match === true;
  let match: ValueMatch;
  switch (h.header_match_specifier) {
    case 'exact_match':
      match = { kind: 'exact', value: h.exact_match };
      break;
    case 'safe_regex_match':
      match = { kind: 'regex', regex: regexMatcher(at.field('safe_regex_match'), h.safe_regex_match, 'full') };
      break;
    case 'prefix_match':
    case 'suffix_match':
    case 'contains_match':
      match = {
        kind: h.header_match_specifier.replace('_match', '') as 'prefix' | 'suffix' | 'contains',
        value: nonEmpty(at.field(h.header_match_specifier), h[h.header_match_specifier]),
      };
      break;
    case 'string_match':
      match = stringMatcher(at.field('string_match'), h.string_match, ['exact', 'prefix', 'suffix', 'contains', 'regex']);
      break;
    case 'present_match':
      // present_match: false matches when the header is absent.
      if (h.present_match === false) invert = !invert;
      match = { kind: 'present' };
      break;
    default:
      match = { kind: 'present' };
  }
  return { name, ...match, invert };
}

export function queryMatcher(at: FieldPath, q: Obj): QueryMatcher {
  onlyFields(at, `${T}QueryParameterMatcher`, q, ['name', 'string_match', 'present_match']);
  const name = nonEmpty(at.field('name'), q.name);
  if (q.query_parameter_match_specifier === 'string_match') {
    const m = stringMatcher(at.field('string_match'), q.string_match, ['exact', 'regex']);
    return { name, ...(m as Pick<QueryMatcher, 'kind' | 'value' | 'regex'>) };
  }
  if (q.query_parameter_match_specifier === 'present_match' && q.present_match === false) {
    at.field('present_match').unsupported('false (match when absent) is not supported by weft proxy yet');
  }
  return { name, kind: 'present' };
}

