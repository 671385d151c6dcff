// Compiled HeaderMatcher (Envoy semantics). A missing header: a `present`
// matcher fails, or holds when inverted ("absent"); every value matcher
// fails, inverted or not (Envoy without treat_missing_header_as_empty).
// The engine gives the first value of a repeated header.
import type { HeaderMatcher } from '../config/types';
import { fullMatch } from './full-match';
import { type HeaderSource, headerSource, readHeader } from './request-header';
import type { RequestInfo } from './route-table';

export class CompiledHeaderMatcher {
  private readonly source: HeaderSource;
  private readonly name: string;
  private readonly kind: HeaderMatcher['kind'];
  private readonly value: string;
  private readonly regex: RegExp | undefined;
  private readonly invert: boolean;

  constructor(m: HeaderMatcher) {
    this.name = m.name.toLowerCase();
    this.source = headerSource(this.name);
    this.kind = m.kind;
    this.value = m.value ?? '';
    this.regex = m.regex ? fullMatch(m.regex) : undefined;
    this.invert = m.invert;
  }

  matches(req: RequestInfo): boolean {
    const actual = readHeader(req, this.source, this.name);
    if (actual === undefined) return this.kind === 'present' && this.invert;
    return this.test(actual) !== this.invert;
  }

  private test(actual: string): boolean {
    switch (this.kind) {
      case 'present':
        return true;
      case 'exact':
        return actual === this.value;
      case 'prefix':
        return actual.startsWith(this.value);
      case 'suffix':
        return actual.endsWith(this.value);
      case 'contains':
        return actual.includes(this.value);
      case 'regex':
        return this.regex !== undefined && this.regex.test(actual);
    }
  }
}
