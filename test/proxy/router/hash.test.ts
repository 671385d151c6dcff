import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { HashPolicy } from '../../../src/proxy/config/types';
import { cookieValue, hash32, requestHash } from '../../../src/proxy/router/hash';
import { seeded } from '../lb/fixtures';
import { request } from './fixtures';

/** Reference MurmurHash3 x86_32 over a byte buffer (the textbook loop). */
function murmurReference(bytes: Buffer, seed: number): number {
  let h = seed >>> 0;
  const blocks = bytes.length & ~3;
  const mix = (k: number) => {
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    return Math.imul(k, 0x1b873593);
  };
  for (let i = 0; i < blocks; i += 4) {
    h ^= mix(bytes.readUInt32LE(i));
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  let k = 0;
  for (let i = bytes.length - 1; i >= blocks; i--) k = (k << 8) | bytes[i];
  if (bytes.length > blocks) h ^= mix(k);
  h ^= bytes.length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

test('hash32: published MurmurHash3 x86_32 vectors', () => {
  assert.equal(hash32(''), 0);
  assert.equal(hash32('', 1), 0x514e28b7);
  assert.equal(hash32('hello'), 0x248bfa47);
  assert.equal(hash32('The quick brown fox jumps over the lazy dog'), 0x2e4ff723);
});

test('hash32: equals the reference over UTF-8 bytes, ASCII or not, any length', () => {
  const rand = seeded(7);
  const alphabet = ['a', 'Z', '0', '/', 'é', 'ж', '中', '😀', '\ud800', ' '];
  for (let n = 0; n < 500; n++) {
    let s = '';
    const len = Math.floor(rand() * 24);
    const ascii = rand() < 0.5;
    for (let i = 0; i < len; i++) s += alphabet[Math.floor(rand() * (ascii ? 4 : alphabet.length))];
    for (const seed of [0, 1, 0x9747b28c]) {
      assert.equal(hash32(s, seed), murmurReference(Buffer.from(s, 'utf8'), seed), JSON.stringify(s));
    }
  }
});

test('hash32: well distributed (low bits of sequential keys fill 64 buckets evenly)', () => {
  const buckets = new Array<number>(64).fill(0);
  for (let i = 0; i < 64_000; i++) buckets[hash32(`user-${i}`) & 63]++;
  for (const b of buckets) assert.ok(Math.abs(b - 1000) < 150, `bucket ${b}`);
});

const h = (name: string, terminal = false): HashPolicy => ({ kind: 'header', name, terminal });
const cookie = (name: string, terminal = false): HashPolicy => ({ kind: 'cookie', name, terminal });
const ip = (terminal = false): HashPolicy => ({ kind: 'sourceIp', terminal });
const rot = (x: number) => ((x << 1) | (x >>> 31)) >>> 0;

const req = request('/p?q=1', {
  method: 'GET',
  host: 'shop',
  headers: { 'x-user': 'alice', 'x-tenant': 't1', cookie: 'theme=dark; session="s-123"; other=1' },
});

const cases: [name: string, policies: HashPolicy[], expected: number | undefined][] = [
  ['no policy', [], undefined],
  ['one header', [h('x-user')], hash32('alice')],
  ['header missing', [h('x-none')], undefined],
  ['header missing, next policy applies', [h('x-none'), h('x-user')], hash32('alice')],
  ['two headers combine: rotate then xor', [h('x-user'), h('x-tenant')], (rot(hash32('alice')) ^ hash32('t1')) >>> 0],
  ['terminal stops after a value', [h('x-user', true), h('x-tenant')], hash32('alice')],
  ['terminal without a value does not stop', [h('x-none', true), h('x-tenant')], hash32('t1')],
  [
    'terminal without a value stops when an earlier one had a value (Envoy)',
    [h('x-user'), h('x-none', true), h('x-tenant')],
    hash32('alice'),
  ],
  ['cookie', [cookie('theme')], hash32('dark')],
  ['quoted cookie value', [cookie('session')], hash32('s-123')],
  ['cookie missing', [cookie('nope')], undefined],
  ['source IP', [ip()], hash32('10.1.2.3')],
  ['cookie missing falls through to source IP', [cookie('nope', true), ip(true)], hash32('10.1.2.3')],
  ['pseudo-header :authority', [h(':authority')], hash32('shop')],
  ['pseudo-header :path', [h(':path')], hash32('/p?q=1')],
];

for (const [name, policies, expected] of cases) {
  test(`requestHash: ${name}`, () => {
    assert.equal(requestHash(policies, req, '10.1.2.3'), expected);
  });
}

test('requestHash: an empty source address yields nothing; no cookie header yields nothing', () => {
  assert.equal(requestHash([ip()], req, ''), undefined);
  assert.equal(requestHash([cookie('theme')], request('/'), '1.2.3.4'), undefined);
});

test('requestHash: the same request hashes the same, different users differently', () => {
  const a = requestHash([h('x-user')], request('/', { headers: { 'x-user': 'a' } }), '');
  const b = requestHash([h('x-user')], request('/', { headers: { 'x-user': 'b' } }), '');
  assert.equal(a, requestHash([h('x-user')], request('/', { headers: { 'x-user': 'a' } }), ''));
  assert.notEqual(a, b);
});

const cookieCases: [header: string, name: string, expected: string | undefined][] = [
  ['a=1', 'a', '1'],
  ['a=1; b=2', 'b', '2'],
  ['a=1;b=2', 'b', '2'],
  ['ab=1; b=2', 'b', '2'],
  ['a=1; a=2', 'a', '1'],
  ['a=', 'a', ''],
  ['a="x y"', 'a', 'x y'],
  ['a="', 'a', '"'],
  ['a=1 ; b=2', 'a', '1'],
  ['b', 'b', undefined],
  ['xa=1', 'a', undefined],
  ['', 'a', undefined],
];

for (const [header, name, expected] of cookieCases) {
  test(`cookieValue(${JSON.stringify(header)}, ${name}) → ${String(expected)}`, () => {
    assert.equal(cookieValue(header, name), expected);
  });
}
