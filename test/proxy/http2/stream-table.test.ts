// StreamTable (a connection's open streams by id): the same answers as a Map
// under seeded random churn, ids in order, and nothing it let go still
// referenced by its arrays (the reason it is not a Map: stream-table.ts).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { StreamTable } from '../../../src/proxy/http2/codec/stream-table';
import { seeded } from '../../helpers/prng';

interface FakeStream {
  id: number;
}

/** What the table's arrays still point at (its internals, read only for this check). */
function referenced(table: StreamTable<FakeStream>): FakeStream[] {
  return ((table as unknown as { streams: (FakeStream | undefined)[] }).streams).filter((s): s is FakeStream => s !== undefined);
}

describe('StreamTable', () => {
  test('answers as a Map does under random opens and closes, with ids that collide and wrap', () => {
    const random = seeded(15);
    const table = new StreamTable<FakeStream>();
    const reference = new Map<number, FakeStream>();
    let nextId = 1;
    for (let step = 0; step < 20000; step++) {
      const r = random();
      if (r < 0.45 || reference.size === 0) {
        // Mostly consecutive odd ids, sometimes a jump of a multiple of the capacity (same home slot).
        nextId += random() < 0.2 ? 2 * 16 * (1 + Math.floor(random() * 4)) : 2;
        const stream = { id: nextId };
        table.set(stream.id, stream);
        reference.set(stream.id, stream);
      } else if (r < 0.9) {
        const open = [...reference.keys()];
        const id = open[Math.floor(random() * open.length)];
        assert.equal(table.delete(id), true);
        reference.delete(id);
      } else {
        const id = 1 + 2 * Math.floor(random() * (nextId / 2 + 4));
        assert.equal(table.delete(id), reference.delete(id), `delete ${id}`);
      }
      assert.equal(table.size, reference.size);
      if (step % 97 === 0) {
        for (let id = Math.max(1, nextId - 400); id <= nextId + 4; id++) assert.equal(table.get(id), reference.get(id), `get ${id} at step ${step}`);
        assert.deepEqual(table.values(), [...reference.values()], 'values in id order');
      }
    }
  });

  test('set on an id it holds replaces the stream without counting it twice', () => {
    const table = new StreamTable<FakeStream>();
    const a = { id: 5 };
    const b = { id: 5 };
    table.set(5, a);
    table.set(5, b);
    assert.equal(table.size, 1);
    assert.equal(table.get(5), b);
    assert.equal(table.has(7), false);
  });

  test('keeps no reference to a stream it deleted, nor in the arrays it outgrew', () => {
    const table = new StreamTable<FakeStream>();
    const first = Array.from({ length: 6 }, (_, i) => ({ id: 1 + 2 * i }));
    for (const s of first) table.set(s.id, s);
    const outgrown = (table as unknown as { streams: (FakeStream | undefined)[] }).streams;
    // Past half full: the table grows into new arrays.
    const more = Array.from({ length: 40 }, (_, i) => ({ id: 101 + 2 * i }));
    for (const s of more) table.set(s.id, s);
    assert.notEqual((table as unknown as { streams: unknown }).streams, outgrown);
    assert.deepEqual(outgrown.filter((s) => s !== undefined), [], 'the outgrown array is emptied');
    for (const s of [...first, ...more.slice(0, 30)]) table.delete(s.id);
    assert.deepEqual(referenced(table).sort((x, y) => x.id - y.id), more.slice(30));
    table.clear();
    assert.deepEqual(referenced(table), []);
    assert.equal(table.size, 0);
  });
});
