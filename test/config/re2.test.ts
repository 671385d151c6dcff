// RE2 patterns as JavaScript RegExps: same meaning, same rejections.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { compileRe2, re2Substitution, Re2SyntaxError } from '../../src/config/re2';

test('re2: full-match patterns match the whole input, with RE2 syntax rewritten', () => {
  const cases: [pattern: string, matches: string[], misses: string[]][] = [
    ['/api/v[0-9]+', ['/api/v1', '/api/v42'], ['/api/v1/x', 'x/api/v1', '/api/v']],
    ['a|b', ['a', 'b'], ['ab', 'xa']],
    ['(?P<svc>[^/]+)/(?P<m>[^/]+)', ['shop.Payment/Charge'], ['a/b/c']],
    ['(?<svc>[a-z]+)', ['abc'], ['ABC']],
    ['(?i)hello', ['HeLLo', 'hello'], ['hell']],
    ['(?s)a.b', ['a\nb'], ['ab']],
    ['\\Aab\\z', ['ab'], ['abc']],
    ['\\Qa.b*c\\E', ['a.b*c'], ['aXbbc']],
    ['\\Qa.b', ['a.b'], ['axb']],
    ['[[:digit:]]+', ['123'], ['12a']],
    ['[[:alpha:][:digit:]_]+', ['ab_9'], ['a-b']],
    ['[]a]+', [']a]'], ['b']],
    ['x{2}', ['xx'], ['x', 'xxx']],
    ['x{2,3}', ['xx', 'xxx'], ['xxxx']],
    ['a{', ['a{'], ['a']],
    ['a}', ['a}'], ['a']],
    ['\\x41\\x{42}', ['AB'], ['ab']],
    ['\\101', ['A'], ['\\101']],
    ['\\pL+', ['héllo'], ['h3']],
    ['\\p{Greek}+', ['αβγ'], ['abc']],
    ['\\PN', ['a'], ['1']],
    ['\\s', [' ', '\t'], ['\v', '\u00a0']],
    ['\\S', ['\v', 'a'], [' ']],
    ['[\\s]', [' '], ['a']],
    ['\\@\\#\\-\\.', ['@#-.'], ['@#-x']],
    ['[\\-a]+', ['-a-'], ['b']],
    ['\\d+\\.\\w+', ['10.abc'], ['10x']],
    ['/[^/]+/Charge', ['/shop.Payment/Charge'], ['/a/b/Charge']],
  ];
  for (const [pattern, matches, misses] of cases) {
    const re = compileRe2(pattern, 'full');
    for (const s of matches) assert.ok(re.test(s), `${pattern} should match ${JSON.stringify(s)} (${re})`);
    for (const s of misses) assert.ok(!re.test(s), `${pattern} should not match ${JSON.stringify(s)} (${re})`);
  }
});

test('re2: (?m) keeps whole-input anchoring', () => {
  const re = compileRe2('(?m)^b$', 'full');
  assert.ok(re.test('b'));
  assert.ok(!re.test('a\nb'), 'a full match spans the whole input even in multi-line mode');
});

test('re2: what RE2 rejects (or JavaScript cannot say) throws Re2SyntaxError naming the problem', () => {
  const cases: [pattern: string, problem: RegExp][] = [
    ['foo(?=bar)', /lookaround/],
    ['foo(?!bar)', /lookaround/],
    ['(?<=a)b', /lookaround/],
    ['(?<!a)b', /lookaround/],
    ['(a)\\1', /backreference/],
    ['(?P<x>a)(?P=x)', /backreference/],
    ['(?<x>a)\\k<x>', /backreference/],
    ['(?>a+)', /atomic/],
    ['a\\Z', /\\Z/],
    ['\\C', /any byte/],
    ['x{1001}', /exceeds 1000/],
    ['x{3,2}', /bad repetition/],
    ['a(?i)b', /inline flags/],
    ['(?i:a)b', /inline flags/],
    ['(?U)a*', /flag "U"/],
    ['[[:^alpha:]]', /negated POSIX/],
    ['[[:nope:]]', /invalid POSIX/],
    ['\\q', /invalid escape/],
    ['\\8', /backreference/],
    ['a**', /Nothing to repeat|nothing to repeat/i],
    ['(a', /Unterminated group|unterminated/i],
    ['[a', /missing closing/],
    ['\\p{NoSuchScript}', /Invalid property name|property/i],
    ['a\\', /trailing backslash/],
  ];
  for (const [pattern, problem] of cases) {
    assert.throws(
      () => compileRe2(pattern, 'full'),
      (err: unknown) => err instanceof Re2SyntaxError && err.code === 'E_RE2_SYNTAX' && problem.test(err.message),
      `${pattern} should be rejected with ${problem}`,
    );
  }
});

test('re2: global mode and substitutions (\\1 → $01, \\0 → $&, \\\\ → \\, $ literal)', () => {
  const re = compileRe2('^/v1/([^/]+)/(.*)$', 'global');
  assert.equal('/v1/users/42'.replace(re, re2Substitution('/\\2/\\1', re)), '/42/users');
  const all = compileRe2('a', 'global');
  assert.equal('banana'.replace(all, re2Substitution('[\\0]', all)), 'b[a]n[a]n[a]');
  const dollar = compileRe2('x', 'global');
  assert.equal('x'.replace(dollar, re2Substitution('$1\\\\', dollar)), '$1\\');
  // \12 is group 1 followed by "2", never group 12.
  const one = compileRe2('(a)', 'global');
  assert.equal('a'.replace(one, re2Substitution('\\12', one)), 'a2');
  assert.throws(() => re2Substitution('\\2', one), /refers to group \\2, but the pattern has 1/);
  assert.throws(() => re2Substitution('\\x', one), /invalid escape/);
});
