import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import type { Route } from '../../../src/proxy/config/types';
import { runRequestFilters, type FilterRequest, type FilterVerdict, type HttpFilter } from '../../../src/proxy/filters/http-filter';

const route = { name: 'r' } as Route;
const req: FilterRequest = { method: 'GET', host: 'a', path: '/', header: () => undefined, sourceAddress: '127.0.0.1', grpc: false, peerPrincipal: undefined, destinationPort: undefined, filterMetadata: undefined };

function filter(name: string, verdict: FilterVerdict, seen: string[]): HttpFilter {
  return { name, decodeHeaders: () => (seen.push(name), verdict) };
}

test('filters run in order; the first local reply stops the chain, synchronously', () => {
  const seen: string[] = [];
  let answer: unknown = 'not called';
  runRequestFilters([filter('a', undefined, seen), filter('b', { kind: 'reply', reply: { status: 429, flag: 'RL', detail: 'x' } }, seen), filter('c', undefined, seen)], req, route, {
    filtersDone: (reply) => (answer = reply),
  });
  assert.deepEqual(seen, ['a', 'b']);
  assert.deepEqual(answer, { status: 429, flag: 'RL', detail: 'x' });
});

test('a delay holds the request, notes its flag, then the next filters run', async () => {
  const seen: string[] = [];
  const t0 = performance.now();
  const flags = await new Promise<string>((resolve) => {
    runRequestFilters([filter('delay', { kind: 'delay', ms: 30, flag: 'DI' }, seen), filter('after', undefined, seen)], req, route, {
      filtersDone(reply, run) {
        assert.equal(reply, undefined);
        resolve(run.flags);
      },
    });
  });
  assert.ok(performance.now() - t0 >= 29);
  assert.deepEqual(seen, ['delay', 'after']);
  assert.equal(flags, 'DI');
});

test('cancel during a delay: the chain never continues', async () => {
  const seen: string[] = [];
  let called = false;
  const run = runRequestFilters([filter('delay', { kind: 'delay', ms: 10, flag: 'DI' }, seen), filter('after', undefined, seen)], req, route, {
    filtersDone: () => (called = true),
  });
  run.cancel();
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(called, false);
  assert.deepEqual(seen, ['delay']);
});
