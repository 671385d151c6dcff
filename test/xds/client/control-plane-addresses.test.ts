// The failover policy every client of the control plane follows, on a fake
// clock and a fixed random source: parsing the lists, the random first
// replica, round robin, rounds of immediate failovers with the backoff only
// between rounds, a stream that answers and dies at once counting as a
// failure, and unary calls that move on only when a replica is unreachable.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import {
  AddressListError,
  ControlPlaneAddresses,
  grpcUnreachable,
  parseApiUrls,
  parseXdsAddresses,
  UnreachableError,
} from '../../../src/xds/client/control-plane-addresses';

class FakeClock {
  ms = 1_000_000;
  now = () => this.ms;
  advance(ms: number): void {
    this.ms += ms;
  }
}

const unreachableErr = (code = 'UNREACH') => Object.assign(new Error(`refused (${code})`), { code });
const BACKOFF = { initialMs: 100, maxMs: 1000 };

test('addresses: comma-separated lists parse, trim and drop duplicates; bad entries are named', () => {
  assert.deepEqual(parseXdsAddresses('10.0.0.1:15010'), ['10.0.0.1:15010']);
  assert.deepEqual(parseXdsAddresses(' a:1, b:2 ,[::1]:3,a:1'), ['a:1', 'b:2', '[::1]:3']);
  assert.deepEqual(parseXdsAddresses(['a:1', 'b:2,c:3']), ['a:1', 'b:2', 'c:3']);
  for (const [bad, why] of [
    ['', /at least one/],
    ['a:1,,b:2', /address 2 .* is empty/],
    ['a', /"a" is not host:port/],
    ['a:1,b', /"b" is not host:port/],
    ['a:70000', /"a:70000" is not host:port/],
    ['a:0', /"a:0"/],
    ['::1:15010', /is not host:port/],
  ] as const) {
    assert.throws(() => parseXdsAddresses(bad), (e: unknown) => e instanceof AddressListError && why.test(e.message), bad);
  }
  assert.deepEqual(parseApiUrls('http://a:15000, https://b:15000/'), ['http://a:15000', 'https://b:15000/']);
  assert.throws(() => parseApiUrls('http://a:1,b:2'), /"b:2" is not an http/);
  assert.throws(() => parseApiUrls('http://a:1,not a url'), /"not a url" is not a URL/);
});

test('addresses: xDS starts from a random replica, the API from the first; failures move round robin, an answer sets the preferred', () => {
  const list = ['a:1', 'b:2', 'c:3'];
  assert.equal(ControlPlaneAddresses.xds(list, { random: () => 0 }).preferred, 'a:1');
  assert.equal(ControlPlaneAddresses.xds(list, { random: () => 0.5 }).preferred, 'b:2');
  assert.equal(ControlPlaneAddresses.xds(list, { random: () => 0.9999 }).preferred, 'c:3');
  assert.equal(ControlPlaneAddresses.api('http://x:1,http://y:2', { random: () => 0.99 }).preferred, 'http://x:1');

  const a = ControlPlaneAddresses.xds(list, { random: () => 0.5 });
  assert.deepEqual(a.order(), ['b:2', 'c:3', 'a:1']);
  a.failed('b:2');
  assert.equal(a.preferred, 'c:3');
  a.failed('b:2'); // no longer the preferred one: nothing moves
  assert.equal(a.preferred, 'c:3');
  a.failed('c:3');
  assert.equal(a.preferred, 'a:1', 'wraps around');
  a.succeeded('b:2');
  assert.deepEqual(a.order(), ['b:2', 'c:3', 'a:1']);
});

test('stream: after a failure the next replica at once; the jittered backoff only after a full round', () => {
  const clock = new FakeClock();
  const addresses = ControlPlaneAddresses.xds('a:1,b:2,c:3', { random: () => 1, now: clock.now });
  const s = addresses.stream(BACKOFF);
  const visits: string[] = [];
  const delays: number[] = [];
  for (let i = 0; i < 9; i++) {
    visits.push(s.next());
    delays.push(s.ended());
  }
  // random() = 1 starts at the last one; the backoff (random() = 1: the top of [base/2, base]) doubles per round.
  assert.deepEqual(visits, ['c:3', 'a:1', 'b:2', 'c:3', 'a:1', 'b:2', 'c:3', 'a:1', 'b:2']);
  assert.deepEqual(delays, [0, 0, 100, 0, 0, 200, 0, 0, 400]);
  assert.equal(s.failures, 9);

  // c answers and the stream lasts: the next outage starts a new round from the initial delay.
  assert.equal(s.next(), 'c:3');
  s.answered();
  clock.advance(60_000);
  assert.deepEqual([s.ended(), s.next(), s.ended(), s.next(), s.ended()], [0, 'a:1', 0, 'b:2', 100]);
});

test('stream: a replica that answers and drops the stream at once is a failure of the round, not a reason to start over', () => {
  const clock = new FakeClock();
  const addresses = ControlPlaneAddresses.xds('a:1,b:2', { random: () => 0, now: clock.now });
  const s = addresses.stream(BACKOFF, 1000);
  const delays: number[] = [];
  for (let i = 0; i < 6; i++) {
    s.next();
    s.answered();
    clock.advance(10); // answered, then gone within 10 ms
    delays.push(s.ended());
  }
  // random() = 0: the low end of [base/2, base].
  assert.deepEqual(delays, [0, 50, 0, 100, 0, 200]);
});

test('stream: one address backs off on every failure (the single-replica behaviour)', () => {
  const clock = new FakeClock();
  const s = ControlPlaneAddresses.xds('a:1', { random: () => 1, now: clock.now }).stream(BACKOFF);
  assert.deepEqual(
    Array.from({ length: 6 }, () => (s.next(), s.ended())),
    [100, 200, 400, 800, 1000, 1000],
  );
});

test('stream: the replica the stream answers on becomes the one unary clients use first', async () => {
  const clock = new FakeClock();
  const addresses = ControlPlaneAddresses.xds('a:1,b:2', { random: () => 0, now: clock.now });
  const s = addresses.stream(BACKOFF);
  assert.equal(s.next(), 'a:1');
  s.ended();
  assert.equal(s.next(), 'b:2');
  s.answered();
  const tried: string[] = [];
  await addresses.call(async (address) => tried.push(address), { what: 'x', unreachable: () => true });
  assert.deepEqual(tried, ['b:2']);
});

test('call: the next replica only when one is unreachable; an answer, even an error, ends the call', async () => {
  const addresses = ControlPlaneAddresses.xds('a:1,b:2,c:3', { random: () => 0 });
  const failovers: string[] = [];
  const tried: string[] = [];
  const result = await addresses.call(
    async (address) => {
      tried.push(address);
      if (address !== 'b:2') throw unreachableErr();
      return `answer from ${address}`;
    },
    { what: 'FetchSecrets', unreachable: (e) => (e as { code?: string }).code === 'UNREACH', onFailover: (f, err, next) => failovers.push(`${f} (${err}) → ${next}`) },
  );
  assert.equal(result, 'answer from b:2');
  assert.deepEqual(tried, ['a:1', 'b:2']);
  assert.deepEqual(failovers, ['a:1 (refused (UNREACH)) → b:2']);
  assert.equal(addresses.preferred, 'b:2', 'the next call starts where this one succeeded');

  // b answers PERMISSION_DENIED: that is its answer; c is not asked, and b stays preferred.
  tried.length = 0;
  const denied = Object.assign(new Error('PERMISSION_DENIED'), { code: 7 });
  await assert.rejects(
    addresses.call(
      async (address) => {
        tried.push(address);
        throw denied;
      },
      { what: 'FetchSecrets', unreachable: grpcUnreachable },
    ),
    (e: unknown) => e === denied,
  );
  assert.deepEqual(tried, ['b:2']);
  assert.equal(addresses.preferred, 'b:2');
});

test('call: when every replica is unreachable the error names each, in the order tried', async () => {
  const addresses = ControlPlaneAddresses.xds('a:1,b:2,c:3', { random: () => 0.4 });
  const err = await addresses
    .call(
      async (address) => {
        throw Object.assign(new Error(`${address} said UNAVAILABLE`), { code: 14 });
      },
      { what: 'FetchSecrets', unreachable: grpcUnreachable },
    )
    .catch((e: unknown) => e);
  assert.ok(err instanceof UnreachableError);
  assert.deepEqual(
    err.attempts.map((a) => a.address),
    ['b:2', 'c:3', 'a:1'],
  );
  assert.equal(err.message, 'FetchSecrets: no control plane address answered: b:2 (b:2 said UNAVAILABLE), c:3 (c:3 said UNAVAILABLE), a:1 (a:1 said UNAVAILABLE)');
  assert.equal(addresses.preferred, 'b:2', 'a full failed round comes back to where it started');
});

test('call: past the deadline no further replica is tried, and the error says which were left', async () => {
  const clock = new FakeClock();
  const addresses = ControlPlaneAddresses.xds('a:1,b:2,c:3', { random: () => 0, now: clock.now });
  const deadline = clock.now() + 20;
  const tried: string[] = [];
  const err = await addresses
    .call(
      async (address) => {
        tried.push(address);
        clock.advance(15);
        throw Object.assign(new Error('DEADLINE_EXCEEDED'), { code: 4 });
      },
      { what: 'ShouldRateLimit', unreachable: grpcUnreachable, deadline },
    )
    .catch((e: unknown) => e);
  assert.deepEqual(tried, ['a:1', 'b:2']);
  assert.ok(err instanceof UnreachableError);
  assert.deepEqual(err.attempts.at(-1), { address: 'c:3', error: 'not tried: out of time' });
  assert.equal(addresses.preferred, 'c:3', 'the next call starts with the one not tried');
});

test('grpcUnreachable: UNAVAILABLE and DEADLINE_EXCEEDED move on; other statuses are answers', () => {
  assert.equal(grpcUnreachable({ code: 14 }), true);
  assert.equal(grpcUnreachable({ code: 4 }), true);
  for (const code of [0, 3, 7, 13, 16, 'ECONNREFUSED', undefined]) assert.equal(grpcUnreachable({ code }), false, String(code));
  assert.equal(grpcUnreachable(undefined), false);
});
