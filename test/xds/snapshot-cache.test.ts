import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { SnapshotCache } from '../../src/xds/cache/snapshot-cache';
import { checkConsistency } from '../../src/xds/cache/consistency';
import { SnapshotInconsistentError } from '../../src/xds/cache/errors';
import { TYPE_URL } from '../../src/xds/type-urls';
import { decodeMessage } from '../../src/xds/protos';
import type { NodeInfo } from '../../src/translate/types';
import { generatorFor, meshState } from './fixtures';

const node: NodeInfo = { id: 'n1', role: 'proxyless', namespace: 'default', service: 'client' };

function cacheFor(state = meshState(), now = () => 0) {
  let generated = 0;
  const gen = generatorFor(state);
  const cache = new SnapshotCache({
    generate: (n) => {
      generated++;
      return gen(n);
    },
    now,
  });
  return { state, cache, generated: () => generated };
}

test('a snapshot is created when the first node of a group watches, and shared by the group', () => {
  const { cache, generated } = cacheFor();
  const w1 = cache.createWatch({ node, typeUrl: TYPE_URL.Cluster, knownVersion: '', namesKey: '*' }, () => {});
  assert.ok(w1.response, 'answered at once');
  cache.createWatch({ node: { ...node, id: 'n2' }, typeUrl: TYPE_URL.Cluster, knownVersion: '', namesKey: '*' }, () => {});
  assert.equal(generated(), 1);
  assert.deepEqual(cache.groupKeys(), ['proxyless|default|client|']);
  cache.close();
});

test('a type version changes only when its content changes; refresh coalesces a burst', async () => {
  const { state, cache, generated } = cacheFor();
  cache.createWatch({ node, typeUrl: TYPE_URL.Cluster, knownVersion: '', namesKey: '*' }, () => {});
  const before = cache.snapshotFor(node)!.versions();
  await Promise.all([cache.refresh(), cache.refresh(), cache.refresh()]);
  assert.equal(generated(), 2, 'three refresh() calls, one regeneration');
  assert.deepEqual(cache.snapshotFor(node)!.versions(), before, 'same content, same versions');

  state.clusters.set('backend', [19001, 19002]);
  await cache.refresh();
  const after = cache.snapshotFor(node)!.versions();
  assert.notEqual(after[TYPE_URL.ClusterLoadAssignment], before[TYPE_URL.ClusterLoadAssignment]);
  assert.equal(after[TYPE_URL.Cluster], before[TYPE_URL.Cluster]);
  assert.equal(after[TYPE_URL.Listener], before[TYPE_URL.Listener]);
  cache.close();
});

test('a pending watch fires when its type changes, in CDS → EDS → LDS → RDS order', async () => {
  const { state, cache } = cacheFor();
  const fired: string[] = [];
  const snap = () => cache.snapshotFor(node)!;
  cache.createWatch({ node, typeUrl: TYPE_URL.Cluster, knownVersion: '', namesKey: '*' }, () => {});
  for (const [typeUrl, label] of [
    [TYPE_URL.RouteConfiguration, 'RDS'],
    [TYPE_URL.Listener, 'LDS'],
    [TYPE_URL.ClusterLoadAssignment, 'EDS'],
    [TYPE_URL.Cluster, 'CDS'],
  ] as const) {
    const w = cache.createWatch(
      { node, typeUrl, knownVersion: snap().type(typeUrl).version, namesKey: '*', knownNamesKey: '*' },
      (r) => fired.push(`${label}:${r.version}`),
    );
    assert.ok(w.cancel, `${label} pending`);
  }
  assert.equal(cache.stats().watches, 4);
  state.clusters.set('third', [19201]);
  state.routeTo = 'third';
  await cache.refresh();
  assert.deepEqual(
    fired.map((f) => f.split(':')[0]),
    ['CDS', 'EDS', 'RDS'],
    'LDS did not change; the others fire in order',
  );
  assert.equal(cache.stats().watches, 1);
  cache.close();
});

test('an inconsistent or failing generation keeps the previous snapshot and exposes the error', async () => {
  const { state, cache } = cacheFor();
  let fired = 0;
  cache.createWatch({ node, typeUrl: TYPE_URL.Cluster, knownVersion: '', namesKey: '*' }, () => {});
  const before = cache.snapshotFor(node)!;
  cache.createWatch(
    { node, typeUrl: TYPE_URL.RouteConfiguration, knownVersion: before.type(TYPE_URL.RouteConfiguration).version, namesKey: '*', knownNamesKey: '*' },
    () => fired++,
  );
  state.routeTo = 'missing';
  await cache.refresh();
  const error = cache.lastError('proxyless|default|client|');
  assert.ok(error instanceof SnapshotInconsistentError);
  assert.equal(error.code, 'E_SNAPSHOT_INCONSISTENT');
  assert.match(error.problems.join(), /RouteConfiguration "greeter-route" references cluster "missing"/);
  assert.equal(cache.snapshotFor(node), before);
  assert.equal(fired, 0);
  assert.deepEqual(
    cache.errors().map((e) => [e.group, e.code, e.serving]),
    [['proxyless|default|client|', 'E_SNAPSHOT_INCONSISTENT', 'previous snapshot']],
  );

  state.routeTo = 'backend';
  state.fail = true;
  await cache.refresh();
  assert.equal(cache.lastError('proxyless|default|client|')!.code, 'E_SNAPSHOT_GENERATE');

  state.fail = false;
  state.routeTo = 'other';
  await cache.refresh();
  assert.equal(cache.lastError('proxyless|default|client|'), undefined);
  assert.deepEqual(cache.errors(), []);
  assert.equal(fired, 1);
  cache.close();
});

test('consistency check: missing RDS name, missing cluster, EDS cluster without assignment', () => {
  const state = meshState();
  const set = generatorFor(state)(node);
  assert.deepEqual(checkConsistency(set), []);
  set.get(TYPE_URL.RouteConfiguration)!.clear();
  set.get(TYPE_URL.ClusterLoadAssignment)!.delete('other');
  const problems = checkConsistency(set);
  assert.equal(problems.length, 2);
  assert.match(problems[0], /Listener "greeter:50051" references RouteConfiguration "greeter-route"/);
  assert.match(problems[1], /Cluster "other" uses EDS but ClusterLoadAssignment "other"/);
});

test('groups with no watch are dropped after the idle TTL', () => {
  let now = 0;
  const { cache } = cacheFor(meshState(), () => now);
  const w = cache.createWatch({ node, typeUrl: TYPE_URL.Cluster, knownVersion: 'x', namesKey: '*', knownNamesKey: '*' }, () => {});
  assert.ok(!w.cancel || true);
  const pending = cache.createWatch(
    { node, typeUrl: TYPE_URL.Listener, knownVersion: cache.snapshotFor(node)!.type(TYPE_URL.Listener).version, namesKey: '*', knownNamesKey: '*' },
    () => {},
  );
  now = 120_000;
  cache.dropIdleGroups();
  assert.equal(cache.groupKeys().length, 1, 'kept while watched');
  pending.cancel!();
  now = 150_000;
  cache.dropIdleGroups();
  assert.equal(cache.groupKeys().length, 1, 'idle for less than the TTL');
  now = 210_000;
  cache.dropIdleGroups();
  assert.equal(cache.groupKeys().length, 0);
  cache.close();
});

test('SotW responses are encoded once per version and subscription, each with its own nonce', () => {
  const { cache } = cacheFor();
  cache.createWatch({ node, typeUrl: TYPE_URL.Cluster, knownVersion: '', namesKey: '*' }, () => {});
  const type = cache.snapshotFor(node)!.type(TYPE_URL.ClusterLoadAssignment);
  assert.equal(type.sotwMessage(), type.sotwMessage());
  const names = new Set(['backend']);
  const named = type.sotwMessage(names, 'backend');
  assert.equal(named, type.sotwMessage(names, 'backend'));
  assert.ok(named.bytes.length < type.sotwMessage().bytes.length);
  assert.notEqual(named.nonce, type.sotwMessage().nonce);
  const decoded = decodeMessage('envoy.service.discovery.v3.DiscoveryResponse', named.bytes);
  assert.equal(decoded.nonce, named.nonce);
  assert.equal(decoded.version_info, type.version);
  assert.equal(decoded.resources.length, 1);
  cache.close();
});

test('a refresh pass yields to the event loop between slices; a refresh during a pass runs one more', async () => {
  const state = meshState();
  const gen = generatorFor(state);
  let slow = false;
  let generated = 0;
  let turns = 0;
  const turnsAtGenerate: number[] = [];
  const cache = new SnapshotCache({
    generate: (n) => {
      generated++;
      turnsAtGenerate.push(turns);
      if (slow) {
        const until = performance.now() + 6;
        while (performance.now() < until); // a generator slower than a slice
      }
      return gen(n);
    },
  });
  for (let i = 0; i < 6; i++) {
    cache.createWatch({ node: { ...node, service: `s${i}` }, typeUrl: TYPE_URL.Cluster, knownVersion: '', namesKey: '*' }, () => {});
  }
  slow = true;
  generated = 0;
  turnsAtGenerate.length = 0;
  const ticker = setInterval(() => turns++, 0);
  const first = cache.refresh();
  await new Promise((r) => setImmediate(r));
  await new Promise((r) => setImmediate(r));
  const second = cache.refresh(); // arrives while the first pass runs
  await first;
  const afterFirst = generated;
  await second;
  clearInterval(ticker);
  assert.ok(afterFirst >= 6, 'the first pass regenerated every group');
  assert.equal(generated, 12, 'the refresh during the pass ran exactly one more pass');
  assert.ok(turnsAtGenerate[5] > turnsAtGenerate[0], 'timers ran between groups of the first pass');
  assert.equal(cache.stats().refreshes, 2);
  cache.close();
});
