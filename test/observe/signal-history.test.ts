// The ring of topology samples behind the dashboard's charts: bounded in
// samples and in series, gaps where a series was absent, forgotten series
// free their place, the first (windowless) sample skipped.
import { describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { SignalHistory } from '../../src/observe/signal-history';
import type { Topology } from '../../src/observe/topology';

const T0 = Date.parse('2026-12-04T08:00:00Z');

function topo(i: number, services: Record<string, number>, edges: Record<string, number> = {}, windowSeconds = 10): Topology {
  return {
    at: new Date(T0 + i * 2000).toISOString(),
    windowSeconds,
    services: Object.entries(services).map(([name, rps]) => ({ name, namespace: 'default', proxies: 1, rps, requests: rps * 10, ...(rps > 0 ? { successRate: 0.99, p50Ms: 3, p99Ms: 20 } : {}) })),
    edges: Object.entries(edges).map(([k, rps]) => {
      const [source, destination] = k.split('>');
      return { source, destination, rps, requests: rps * 10, successRate: 1, p50Ms: 1, p99Ms: 9 };
    }),
    unreachable: [],
  };
}

describe('SignalHistory', () => {
  test('keeps one point per sample, oldest first, with the signals a sample had', () => {
    const h = new SignalHistory({ capacity: 10, stepSeconds: 2 });
    h.add(topo(0, { 'a.default': 0 }, {}, 0)); // the observer's first scrape: no window, no rates
    h.add(topo(1, { 'a.default': 0 }));
    h.add(topo(2, { 'a.default': 5 }, { 'a.default>b.default': 4 }));
    const s = h.service('a.default');
    assert.equal(s.stepSeconds, 2);
    assert.deepEqual(s.series, [
      { at: T0 + 2000, rps: 0 },
      { at: T0 + 4000, rps: 5, successRate: 0.99, p50Ms: 3, p99Ms: 20 },
    ]);
    assert.deepEqual(h.edge('a.default', 'b.default').series, [{ at: T0 + 4000, rps: 4, successRate: 1, p50Ms: 1, p99Ms: 9 }]);
    assert.deepEqual(h.service('nobody.default').series, []);
  });

  test('the ring holds `capacity` samples: older ones are overwritten', () => {
    const h = new SignalHistory({ capacity: 5 });
    for (let i = 1; i <= 12; i++) h.add(topo(i, { 'a.default': i }));
    assert.deepEqual(h.service('a.default').series.map((p) => p.rps), [8, 9, 10, 11, 12]);
    assert.deepEqual(h.all().at, [8, 9, 10, 11, 12].map((i) => T0 + i * 2000));
  });

  test('`since` cuts the series to the last minutes asked for', () => {
    const h = new SignalHistory({ capacity: 100 });
    for (let i = 1; i <= 60; i++) h.add(topo(i, { 'a.default': i }));
    const last = h.service('a.default', T0 + 51 * 2000).series;
    assert.deepEqual(last.map((p) => p.rps), [51, 52, 53, 54, 55, 56, 57, 58, 59, 60]);
  });

  test('a series absent from a sample has a gap there; all() gives null in its column', () => {
    const h = new SignalHistory({ capacity: 10 });
    h.add(topo(1, { 'a.default': 1, 'b.default': 1 }));
    h.add(topo(2, { 'a.default': 2 }));
    h.add(topo(3, { 'a.default': 3, 'b.default': 3 }));
    assert.deepEqual(h.service('b.default').series.map((p) => p.rps), [1, 3]);
    const all = h.all();
    assert.deepEqual(all.services['b.default'].rps, [1, null, 3]);
    assert.deepEqual(all.services['a.default'].rps, [1, 2, 3]);
    assert.deepEqual(all.services['a.default'].successRate, [0.99, 0.99, 0.99]);
  });

  test('at most maxSeries series: new ones are dropped and counted (services before edges); a forgotten series frees its place', () => {
    const h = new SignalHistory({ capacity: 3, maxSeries: 2 });
    h.add(topo(1, { 'a.default': 1, 'b.default': 1 }, { 'a.default>b.default': 1 }));
    assert.equal(h.size, 2);
    assert.equal(h.droppedSeries, 1, 'the edge did not fit');
    assert.deepEqual(h.edge('a.default', 'b.default').series, []);
    assert.equal(h.all().droppedSeries, 1);
    // b leaves; after `capacity` samples without it, its place goes to the edge.
    for (let i = 2; i <= 4; i++) h.add(topo(i, { 'a.default': i }, { 'a.default>b.default': i }));
    assert.equal(h.size, 2);
    assert.deepEqual(h.service('b.default').series, []);
    assert.deepEqual(h.edge('a.default', 'b.default').series.map((p) => p.rps), [4]);
    assert.equal(h.droppedSeries, 0);
  });

  test('memory is fixed up front per series: capacity × 4 numbers', () => {
    const h = new SignalHistory({ capacity: 450, maxSeries: 500 });
    const many = Object.fromEntries(Array.from({ length: 800 }, (_, i) => [`s${i}.default`, 1]));
    for (let i = 1; i <= 900; i++) h.add(topo(i, many));
    assert.equal(h.size, 500);
    assert.equal(h.droppedSeries, 300);
    assert.equal(h.service('s0.default').series.length, 450);
  });

  test('one sample per step: an observer ticking every second fills the ring half as fast; a tick a little early still counts', () => {
    const h = new SignalHistory({ capacity: 10, stepSeconds: 2 });
    const at = (ms: number, rps: number): Topology => ({ ...topo(0, { 'a.default': rps }), at: new Date(T0 + ms).toISOString() });
    for (const [ms, rps] of [[0, 1], [1000, 2], [2000, 3], [3000, 4], [3900, 5], [4900, 6], [5800, 7]]) h.add(at(ms, rps));
    assert.deepEqual(h.service('a.default').series.map((p) => p.rps), [1, 3, 5, 7]);
  });

  test('refuses a capacity below 1', () => {
    assert.throws(() => new SignalHistory({ capacity: 0 }), /capacity \(0\)/);
  });
});
