// RE2 patterns (Envoy's `safe_regex`) as JavaScript RegExps with the same
// meaning. What RE2 rejects is rejected here too, so a regex Envoy would NACK
// is NACKed by weft: lookahead and lookbehind, backreferences, atomic groups,
// \Z, \C, repeat counts above 1000, unknown escapes. RE2 syntax JavaScript
// spells differently is rewritten: (?P<name>…), \A, \z, \Q…\E, \x{…}, \pN,
// POSIX classes ([[:alpha:]]), a literal `{`/`]`, \s (RE2's is ASCII only).
// Inline flags are supported as a leading (?i), (?s), (?m) (or a mix of
// them) for the whole pattern; anywhere else they are rejected, since
// JavaScript has no scoped flags.
//
// RegExps are compiled with the `u` flag (RE2 matches code points). Matching
// uses V8's backtracking engine, so RE2's linear-time guarantee does not carry
// over: the control plane is trusted not to send catastrophic patterns.

/** A pattern RE2 would reject, or one JavaScript cannot express. */
export class Re2SyntaxError extends Error {
  readonly code = 'E_RE2_SYNTAX';
}

/** Envoy and RE2 refuse repeat counts above this. */
const MAX_REPEAT = 1000;

const JS_SYNTAX_CHARS = new Set('^$\\.*+?()[]{}|/');

const POSIX_CLASSES: Record<string, string> = {
  alnum: '0-9A-Za-z',
  alpha: 'A-Za-z',
  ascii: '\\x00-\\x7F',
  blank: '\\t ',
  cntrl: '\\x00-\\x1F\\x7F',
  digit: '0-9',
  graph: '!-~',
  lower: 'a-z',
  print: ' -~',
  punct: '!-\\/:-@\\[-`{-~',
  space: '\\t\\n\\v\\f\\r ',
  upper: 'A-Z',
  word: '0-9A-Za-z_',
  xdigit: '0-9A-Fa-f',
};

const GENERAL_CATEGORIES = new Set(
  'C Cc Cf Co Cs L Ll Lm Lo Lt Lu M Mc Me Mn N Nd Nl No P Pc Pd Pe Pf Pi Po Ps S Sc Sk Sm So Z Zl Zp Zs'.split(' '),
);

/** RE2's \s: ASCII whitespace without \v (JavaScript's \s adds \v and Unicode spaces). */
const RE2_SPACE = '\\t\\n\\f\\r ';

class Translator {
  private i = 0;
  private out = '';
  flags = '';

  constructor(private readonly src: string) {}

  private fail(what: string): never {
    throw new Re2SyntaxError(what);
  }

  run(): string {
    this.leadingFlags();
    while (this.i < this.src.length) this.atom();
    return this.out;
  }

  /** A leading (?ims) applies to the whole pattern. */
  private leadingFlags(): void {
    const m = /^\(\?([a-zA-Z-]+)\)/.exec(this.src);
    if (!m) return;
    for (const f of m[1]) {
      if (f === 'i' || f === 'm' || f === 's') {
        if (!this.flags.includes(f)) this.flags += f;
      } else if (f === 'U' || f === '-') {
        this.fail(`flag "${f}" in "${m[0]}" is not supported`);
      } else {
        this.fail(`invalid flag "${f}" in "${m[0]}"`);
      }
    }
    this.i = m[0].length;
  }

  private atom(): void {
    const c = this.src[this.i];
    switch (c) {
      case '\\':
        this.i++;
        this.out += this.escape(false);
        return;
      case '(':
        this.group();
        return;
      case '[':
        this.charClass();
        return;
      case '{':
        this.repetition();
        return;
      case '}':
      case ']':
        // Literal in RE2 when not closing anything; the `u` flag wants them escaped.
        this.out += `\\${c}`;
        this.i++;
        return;
      default:
        this.out += c;
        this.i++;
    }
  }

  private group(): void {
    const rest = this.src.slice(this.i);
    if (!rest.startsWith('(?')) {
      this.out += '(';
      this.i++;
      return;
    }
    if (rest.startsWith('(?:')) {
      this.out += '(?:';
      this.i += 3;
      return;
    }
    const named = /^\(\?P?<([A-Za-z_][A-Za-z0-9_]*)>/.exec(rest);
    if (named) {
      this.out += `(?<${named[1]}>`;
      this.i += named[0].length;
      return;
    }
    if (/^\(\?<?[=!]/.test(rest)) this.fail('lookaround assertions ((?=, (?!, (?<=, (?<!) are not supported by RE2');
    if (/^\(\?P[=>]/.test(rest)) this.fail('backreferences are not supported by RE2');
    if (rest.startsWith('(?>')) this.fail('atomic groups are not supported by RE2');
    if (/^\(\?[a-zA-Z-]+[:)]/.test(rest)) this.fail('inline flags are supported only as a leading (?i), (?s) or (?m)');
    this.fail(`invalid group "${rest.slice(0, 4)}"`);
  }

  private repetition(): void {
    const m = /^\{(\d+)(,(\d*))?\}/.exec(this.src.slice(this.i));
    if (!m) {
      // Not a repetition: RE2 takes the brace literally.
      this.out += '\\{';
      this.i++;
      return;
    }
    const min = Number(m[1]);
    const max = m[3] ? Number(m[3]) : min;
    if (min > MAX_REPEAT || max > MAX_REPEAT) this.fail(`repeat count in "${m[0]}" exceeds ${MAX_REPEAT}`);
    if (m[3] && max < min) this.fail(`bad repetition "${m[0]}"`);
    this.out += m[0];
    this.i += m[0].length;
  }

  private charClass(): void {
    this.i++; // [
    let out = '[';
    if (this.src[this.i] === '^') {
      out += '^';
      this.i++;
    }
    // A leading ] is a literal in RE2 (JavaScript would read an empty class).
    if (this.src[this.i] === ']') {
      out += '\\]';
      this.i++;
    }
    for (;;) {
      if (this.i >= this.src.length) this.fail('missing closing ]');
      const c = this.src[this.i];
      if (c === ']') {
        out += ']';
        this.i++;
        break;
      }
      if (c === '[') {
        const posix = /^\[:(\^?)([a-z]+):\]/.exec(this.src.slice(this.i));
        if (posix) {
          if (posix[1]) this.fail(`negated POSIX class "${posix[0]}" is not supported`);
          const set = POSIX_CLASSES[posix[2]];
          if (!set) this.fail(`invalid POSIX class "${posix[0]}"`);
          out += set;
          this.i += posix[0].length;
          continue;
        }
        out += '\\[';
        this.i++;
        continue;
      }
      if (c === '\\') {
        this.i++;
        out += this.escape(true);
        continue;
      }
      out += c;
      this.i++;
    }
    this.out += out;
  }

  /** The escape after a backslash (this.i is past it). */
  private escape(inClass: boolean): string {
    const c = this.src[this.i];
    if (c === undefined) this.fail('trailing backslash');
    this.i++;
    if (c >= '0' && c <= '9') return this.octalOrBackreference(c);
    switch (c) {
      case 'd':
      case 'D':
      case 'w':
      case 'W':
      case 'n':
      case 'r':
      case 't':
      case 'f':
      case 'v':
        return `\\${c}`;
      case 'a':
        return '\\x07';
      case 's':
        return inClass ? RE2_SPACE : `[${RE2_SPACE}]`;
      case 'S':
        return inClass ? '\\S' : `[^${RE2_SPACE}]`;
      case 'b':
      case 'B':
        if (inClass) this.fail(`\\${c} inside a character class is not supported by RE2`);
        return `\\${c}`;
      case 'A':
        if (inClass) this.fail('\\A inside a character class is not supported by RE2');
        return '(?<![\\s\\S])';
      case 'z':
        if (inClass) this.fail('\\z inside a character class is not supported by RE2');
        return '(?![\\s\\S])';
      case 'Z':
        return this.fail('\\Z is not supported by RE2 (use \\z or $)');
      case 'C':
        return this.fail('\\C (any byte) is not supported');
      case 'k':
        return this.fail('backreferences are not supported by RE2');
      case 'x':
        return this.hex();
      case 'p':
      case 'P':
        return this.unicodeClass(c === 'P');
      case 'Q':
        if (inClass) this.fail('\\Q inside a character class is not supported');
        return this.quoted();
      default:
        if (/[A-Za-z]/.test(c) || c.charCodeAt(0) > 0x7f) this.fail(`invalid escape "\\${c}"`);
        // Any escaped ASCII punctuation is that character.
        if (JS_SYNTAX_CHARS.has(c) || (c === '-' && inClass)) return `\\${c}`;
        return c === ' ' ? ' ' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`;
    }
  }

  private octalOrBackreference(first: string): string {
    const next = this.src[this.i];
    // RE2: \0 and \1-\7 followed by another octal digit are octal; a lone \1-\9 is a backreference.
    if (first === '0' || (first <= '7' && next !== undefined && next >= '0' && next <= '7')) {
      let digits = first;
      while (digits.length < 3 && this.src[this.i] >= '0' && this.src[this.i] <= '7') digits += this.src[this.i++];
      return `\\u{${parseInt(digits, 8).toString(16)}}`;
    }
    return this.fail(`backreference "\\${first}" is not supported by RE2`);
  }

  private hex(): string {
    const rest = this.src.slice(this.i);
    const braced = /^\{([0-9A-Fa-f]{1,6})\}/.exec(rest);
    if (braced) {
      this.i += braced[0].length;
      if (parseInt(braced[1], 16) > 0x10ffff) this.fail(`code point "\\x${braced[0]}" is out of range`);
      return `\\u{${braced[1]}}`;
    }
    const two = /^[0-9A-Fa-f]{2}/.exec(rest);
    if (!two) this.fail('invalid \\x escape');
    this.i += 2;
    return `\\x${two[0]}`;
  }

  private unicodeClass(negated: boolean): string {
    const rest = this.src.slice(this.i);
    const m = /^(?:\{(\^?)([A-Za-z_]+)\}|([A-Za-z]))/.exec(rest);
    if (!m) this.fail('invalid Unicode class escape');
    this.i += m[0].length;
    const name = m[2] ?? m[3];
    const negate = negated !== (m[1] === '^');
    const property = name === 'Any' || GENERAL_CATEGORIES.has(name) ? name : `Script=${name}`;
    return `\\${negate ? 'P' : 'p'}{${property}}`;
  }

  private quoted(): string {
    const end = this.src.indexOf('\\E', this.i);
    const text = this.src.slice(this.i, end === -1 ? undefined : end);
    this.i = end === -1 ? this.src.length : end + 2;
    return escapeLiteral(text);
  }
}

/** A literal string as a JavaScript `u` pattern. */
function escapeLiteral(text: string): string {
  return text.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&');
}

export type Re2Mode =
  /** The whole input must match (Envoy's matchers: path, header, query). */
  | 'full'
  /** Every match is replaced (regex_rewrite: RE2::GlobalReplace). */
  | 'global';

/** Compiles an RE2 pattern; throws Re2SyntaxError when RE2 would reject it or JavaScript cannot express it. */
export function compileRe2(pattern: string, mode: Re2Mode): RegExp {
  const t = new Translator(pattern);
  const body = t.run();
  let source: string;
  if (mode === 'full') {
    // With (?m), ^ and $ would match at line ends: anchor on the input's ends instead.
    source = t.flags.includes('m') ? `(?<![\\s\\S])(?:${body})(?![\\s\\S])` : `^(?:${body})$`;
  } else {
    source = body;
  }
  try {
    return new RegExp(source, `${t.flags}u${mode === 'global' ? 'g' : ''}`);
  } catch (err) {
    throw new Re2SyntaxError((err as Error).message.replace(/^Invalid regular expression: /, ''));
  }
}

/**
 * An RE2 rewrite string (`\0`–`\9` name groups, `\\` a backslash) as a
 * String.prototype.replace replacement (`$&`, `$1`, `$$`). A group the
 * pattern does not have is an error, as in RE2.
 */
export function re2Substitution(substitution: string, regex: RegExp): string {
  const groups = new RegExp(`${regex.source}|`, regex.flags.replace('g', '')).exec('')!.length - 1;
  let out = '';
  for (let i = 0; i < substitution.length; i++) {
    const c = substitution[i];
    if (c === '$') {
      out += '$$';
    } else if (c !== '\\') {
      out += c;
    } else {
      const next = substitution[++i];
      if (next === '\\') out += '\\';
      else if (next !== undefined && next >= '0' && next <= '9') {
        const n = Number(next);
        if (n > groups) throw new Re2SyntaxError(`refers to group \\${n}, but the pattern has ${groups}`);
        // Two digits: "\\12" is group 1 then "2", never group 12.
        out += n === 0 ? '$&' : `$0${n}`;
      } else throw new Re2SyntaxError(`has an invalid escape "\\${next ?? ''}"`);
    }
  }
  return out;
}
