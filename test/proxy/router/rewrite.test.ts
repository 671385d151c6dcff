import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { RouteAction, RouteMatch } from '../../../src/proxy/config/types';
import { rewritePath } from '../../../src/proxy/router/rewrite';
import { action, match } from './fixtures';

const prefix = (value: string, caseSensitive = true) => match({ kind: 'prefix', value }, { caseSensitive });
const separated = (value: string) => match({ kind: 'pathSeparatedPrefix', value });
const exact = (value: string) => match({ kind: 'exact', value });
const regexMatch = (re: RegExp) => match({ kind: 'regex', regex: re });
const prefixRewrite = (p: string) => action({ prefixRewrite: p });
const regexRewrite = (regex: RegExp, substitution: string) => action({ regexRewrite: { regex, substitution } });

const cases: [name: string, path: string, a: RouteAction, m: RouteMatch, expected: string][] = [
  ['no rewrite', '/a/b?x=1', action(), prefix('/a'), '/a/b?x=1'],
  ['prefix rewrite', '/api/v1/users', prefixRewrite('/v1'), prefix('/api'), '/v1/v1/users'],
  ['prefix rewrite keeps the query', '/api/users?id=1', prefixRewrite('/internal'), prefix('/api'), '/internal/users?id=1'],
  ['prefix rewrite to root', '/api/users', prefixRewrite('/'), prefix('/api/'), '/users'],
  ['prefix rewrite of a case-insensitive match', '/API/users', prefixRewrite('/x'), prefix('/api', false), '/x/users'],
  ['path-separated prefix rewrite', '/api/users', prefixRewrite('/svc'), separated('/api'), '/svc/users'],
  ['path-separated prefix rewrite, whole path', '/api?q', prefixRewrite('/svc'), separated('/api'), '/svc?q'],
  ['exact match: the whole path is replaced', '/old?x=1', prefixRewrite('/new'), exact('/old'), '/new?x=1'],
  ['regex match: the whole path is replaced', '/u/42?x', prefixRewrite('/user'), regexMatch(/\/u\/\d+/), '/user?x'],
  ['regex rewrite with a group', '/service/foo/v1/api', regexRewrite(/^\/service\/([^/]+)(\/.*)$/, '$2/instance/$1'), prefix('/'), '/v1/api/instance/foo'],
  ['regex rewrite replaces every match', '/aaa/ba', regexRewrite(/a/, 'x'), prefix('/'), '/xxx/bx'],
  ['regex rewrite leaves the query alone', '/a/b?a=a', regexRewrite(/a/, 'z'), prefix('/'), '/z/b?a=a'],
  ['regex rewrite: $& is the whole match', '/v1', regexRewrite(/v\d/, '[$&]'), prefix('/'), '/[v1]'],
  ['regex rewrite: "$$" is a literal "$"', '/a', regexRewrite(/a/, '$$1'), prefix('/'), '/$1'],
  ['regex rewrite: a backslash is literal', '/a', regexRewrite(/a/, 'x\\1'), prefix('/'), '/x\\1'],
  ['regex rewrite: an unmatched group is empty', '/a', regexRewrite(/(a)|(b)/, '<$2>'), prefix('/'), '/<>'],
  ['regex rewrite: named groups count as groups', '/ab', regexRewrite(/(?<first>a)(b)/, '$2$1'), prefix('/'), '/ba'],
  ['regex rewrite: the decoder\'s two-digit group form', '/ab', regexRewrite(/(a)(b)/, '$02$01'), prefix('/'), '/ba'],
  ['regex rewrite with a decoder-made global regex', '/a/a', regexRewrite(/a/gu, 'b'), prefix('/'), '/b/b'],
  ['regex rewrite without a match', '/a', regexRewrite(/zzz/, 'y'), prefix('/'), '/a'],
];

for (const [name, path, a, m, expected] of cases) {
  test(`rewritePath: ${name}`, () => {
    assert.equal(rewritePath(path, a, m), expected);
    // Compiled rewrites are cached: the second call must give the same answer.
    assert.equal(rewritePath(path, a, m), expected);
  });
}
