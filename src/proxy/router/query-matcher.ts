// Compiled QueryMatcher: exact and regex compare the decoded value of the
// first parameter of that name; present holds for any value, even "".
import type { QueryMatcher } from '../config/types';
import { fullMatch } from './full-match';
import { queryParam } from './query';

export class CompiledQueryMatcher {
  private readonly name: string;
  private readonly kind: QueryMatcher['kind'];
  private readonly value: string;
  private readonly regex: RegExp | undefined;

  constructor(m: QueryMatcher) {
    this.name = m.name;
    this.kind = m.kind;
    this.value = m.value ?? '';
    this.regex = m.regex ? fullMatch(m.regex) : undefined;
  }

  /** `path.slice(start, end)` is the query string, without "?" and fragment. */
  matches(path: string, start: number, end: number): boolean {
    const actual = queryParam(path, start, end, this.name);
    if (actual === undefined) return false;
    switch (this.kind) {
      case 'present':
        return true;
      case 'exact':
        return actual === this.value;
      case 'regex':
        return this.regex !== undefined && this.regex.test(actual);
    }
  }
}
