import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { QueryMatcher, RouteMatch } from '../../../src/proxy/config/types';
import { CompiledRouteTable } from '../../../src/proxy/router/route-table';
import { header, match, request, route } from './fixtures';

/** Whether a table holding only this match routes the request. */
function routes(m: RouteMatch, req = request('/')): boolean {
  const t = new CompiledRouteTable({ name: 'r', virtualHosts: [{ name: 'v', domains: ['*'], routes: [route('only', m)] }] });
  return t.match(req) !== undefined;
}

const prefix = (value: string, caseSensitive = true) => match({ kind: 'prefix', value }, { caseSensitive });
const exact = (value: string, caseSensitive = true) => match({ kind: 'exact', value }, { caseSensitive });
const separated = (value: string, caseSensitive = true) => match({ kind: 'pathSeparatedPrefix', value }, { caseSensitive });
const regex = (re: RegExp, caseSensitive = true) => match({ kind: 'regex', regex: re }, { caseSensitive });

const pathCases: [name: string, m: RouteMatch, path: string, expected: boolean][] = [
  ['prefix', prefix('/api'), '/api/v1', true],
  ['prefix, whole segment not required', prefix('/api'), '/apix', true],
  ['prefix, miss', prefix('/api'), '/ap', false],
  ['prefix compares the target with its query (Envoy)', prefix('/a?x=1'), '/a?x=1&y=2', true],
  ['prefix, case-sensitive by default', prefix('/API'), '/api/v1', false],
  ['prefix, case-insensitive', prefix('/API', false), '/api/v1', true],
  ['prefix, case-insensitive, request in upper case', prefix('/api', false), '/ApI/V1', true],
  ['prefix, case-insensitive, miss', prefix('/api', false), '/apx', false],
  ['exact', exact('/healthz'), '/healthz', true],
  ['exact ignores the query', exact('/healthz'), '/healthz?verbose=1', true],
  ['exact ignores a fragment', exact('/healthz'), '/healthz#top', true],
  ['exact, longer path', exact('/healthz'), '/healthz/x', false],
  ['exact, shorter path', exact('/healthz'), '/health', false],
  ['exact, case-insensitive', exact('/HealthZ', false), '/healthz?x', true],
  ['exact value holding "?" never matches: the path proper has no query', exact('/a?b'), '/a?b', false],
  ['exact, case-sensitive', exact('/HealthZ'), '/healthz', false],
  ['path-separated prefix, equal', separated('/api'), '/api', true],
  ['path-separated prefix, next segment', separated('/api'), '/api/v1', true],
  ['path-separated prefix, with query', separated('/api'), '/api?x=/y', true],
  ['path-separated prefix, partial segment', separated('/api'), '/apix', false],
  ['path-separated prefix, then a fragment', separated('/api'), '/api#top', true],
  ['path-separated prefix, longer path', separated('/api/v2'), '/api/v2x/y', false],
  ['path-separated prefix, case-insensitive', separated('/Api', false), '/aPI/v1', true],
  ['regex over the whole path', regex(/\/users\/\d+/), '/users/42', true],
  ['regex must match entirely', regex(/\/users\/\d+/), '/users/42/posts', false],
  ['regex must match from the start', regex(/\d+/), '/42', false],
  ['regex ignores the query', regex(/\/users\/\d+/), '/users/42?page=2', true],
  ['regex already anchored', regex(/^\/a$/), '/a', true],
  ['regex alternation is anchored as a whole', regex(/\/a|\/b/), '/b/c', false],
  ['regex with a global flag is not stateful', regex(/\/g/g), '/g', true],
  ['regex with the m flag still matches the whole path', regex(/\/a/m), '/a/b', false],
  ['regex with the m flag', regex(/\/a\/b/m), '/a/b', true],
  ['regex ignores caseSensitive (Envoy)', regex(/\/a/, false), '/A', false],
];

for (const [name, m, path, expected] of pathCases) {
  test(`path match: ${name}: ${path} → ${expected}`, () => {
    assert.equal(routes(m, request(path)), expected);
    // Twice: a stateful regex or stale per-request state would flip the second answer.
    assert.equal(routes(m, request(path)), expected);
  });
}

const req = request('/x', { method: 'POST', host: 'shop:8080', headers: { 'x-user': 'alice-42', 'x-empty': '' } });

const headerCases: [name: string, m: RouteMatch['headers'][number], expected: boolean][] = [
  ['exact', header('x-user', 'exact', 'alice-42'), true],
  ['exact, miss', header('x-user', 'exact', 'alice'), false],
  ['exact, empty value', header('x-empty', 'exact', ''), true],
  ['prefix', header('x-user', 'prefix', 'ali'), true],
  ['suffix', header('x-user', 'suffix', '-42'), true],
  ['suffix, miss', header('x-user', 'suffix', '-43'), false],
  ['contains', header('x-user', 'contains', 'ce-4'), true],
  ['regex, whole value', header('x-user', 'regex', /[a-z]+-\d+/), true],
  ['regex, partial is a miss', header('x-user', 'regex', /\d+/), false],
  ['present', header('x-user', 'present'), true],
  ['present, empty value', header('x-empty', 'present'), true],
  ['present, absent', header('x-none', 'present'), false],
  ['present inverted: absent', header('x-none', 'present', undefined, true), true],
  ['present inverted: present', header('x-user', 'present', undefined, true), false],
  ['exact inverted', header('x-user', 'exact', 'bob', true), true],
  ['exact inverted, equal', header('x-user', 'exact', 'alice-42', true), false],
  ['regex inverted', header('x-user', 'regex', /\d{3}/, true), true],
  ['value matcher on an absent header fails', header('x-none', 'exact', 'a'), false],
  ['value matcher on an absent header fails even inverted (Envoy)', header('x-none', 'exact', 'a', true), false],
  [':method', header(':method', 'exact', 'POST'), true],
  [':method, miss', header(':method', 'exact', 'GET'), false],
  [':method inverted', header(':method', 'exact', 'GET', true), true],
  [':authority', header(':authority', 'exact', 'shop:8080'), true],
  ['host is :authority', header('host', 'prefix', 'shop'), true],
  [':path', header(':path', 'exact', '/x'), true],
];

for (const [name, h, expected] of headerCases) {
  test(`header match: ${name} → ${expected}`, () => {
    assert.equal(routes(match({ kind: 'prefix', value: '/' }, { headers: [h] }), req), expected);
  });
}

test('header match: every matcher must hold', () => {
  const both = [header('x-user', 'prefix', 'alice'), header(':method', 'exact', 'POST')];
  assert.equal(routes(match({ kind: 'prefix', value: '/' }, { headers: both }), req), true);
  both.push(header('x-none', 'present'));
  assert.equal(routes(match({ kind: 'prefix', value: '/' }, { headers: both }), req), false);
});

const q = (name: string, kind: QueryMatcher['kind'], value?: string | RegExp): QueryMatcher =>
  value instanceof RegExp ? { name, kind, regex: value } : { name, kind, value };

const queryCases: [name: string, m: QueryMatcher, path: string, expected: boolean][] = [
  ['exact', q('v', 'exact', '2'), '/p?a=1&v=2', true],
  ['exact, miss', q('v', 'exact', '2'), '/p?v=3', false],
  ['first occurrence wins', q('v', 'exact', '2'), '/p?v=1&v=2', false],
  ['value is percent-decoded', q('name', 'exact', 'a b/c'), '/p?name=a%20b%2Fc', true],
  ['UTF-8 is decoded', q('city', 'exact', 'zürich'), '/p?city=z%C3%BCrich', true],
  ['name is percent-decoded', q('my key', 'exact', '1'), '/p?my%20key=1', true],
  ['"+" stays "+" (no form decoding)', q('s', 'exact', 'a+b'), '/p?s=a+b', true],
  ['invalid escape stays literal', q('s', 'exact', '100%zz'), '/p?s=100%zz', true],
  ['regex on the decoded value', q('id', 'regex', /\d+ \d+/), '/p?id=12%2034', true],
  ['regex must match entirely', q('id', 'regex', /\d+/), '/p?id=12a', false],
  ['present', q('debug', 'present'), '/p?x=1&debug', true],
  ['present with a value', q('debug', 'present'), '/p?debug=0', true],
  ['present, absent', q('debug', 'present'), '/p?debugx=1', false],
  ['no query string', q('debug', 'present'), '/p', false],
  ['flag has the empty value', q('flag', 'exact', ''), '/p?flag', true],
  ['a fragment is not part of the query', q('a', 'exact', '1'), '/p?a=1#b=2', true],
  ['"?" inside a fragment starts no query', q('a', 'present'), '/p#x?a=1', false],
  ['empty pairs are skipped', q('a', 'exact', '1'), '/p?&&a=1&', true],
];

for (const [name, m, path, expected] of queryCases) {
  test(`query match: ${name}: ${path} → ${expected}`, () => {
    assert.equal(routes(match({ kind: 'prefix', value: '/' }, { queryParams: [m] }), request(path)), expected);
  });
}

test('route order: the first matching route wins, and the result object is reused', () => {
  const t = new CompiledRouteTable({
    name: 'r',
    virtualHosts: [
      {
        name: 'v',
        domains: ['*'],
        routes: [
          route('v2-header', match({ kind: 'prefix', value: '/api' }, { headers: [header('x-v', 'exact', '2')] })),
          route('api', match({ kind: 'pathSeparatedPrefix', value: '/api' })),
          route('all', match({ kind: 'prefix', value: '/' })),
        ],
      },
    ],
  });
  assert.equal(t.match(request('/api/x', { headers: { 'x-v': '2' } }))?.route.name, 'v2-header');
  assert.equal(t.match(request('/api/x'))?.route.name, 'api');
  assert.equal(t.match(request('/apix'))?.route.name, 'all');
  assert.equal(t.match(request('/a')), t.match(request('/b')));
});

test('route order: no route matches → undefined', () => {
  const t = new CompiledRouteTable({
    name: 'r',
    virtualHosts: [{ name: 'v', domains: ['*'], routes: [route('api', match({ kind: 'prefix', value: '/api' }))] }],
  });
  assert.equal(t.match(request('/other')), undefined);
});
