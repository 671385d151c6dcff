// OpenSet (a listener's open connections): members come and go in any order,
// and nothing it let go is still referenced by its array (the reason it is
// not a Set: open-set.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { OpenSet } from '../../../src/proxy/listener/open-set';
import { seeded } from '../../helpers/prng';

test('OpenSet: the same members as a Set under random adds and deletes, and no reference to one it let go', () => {
  const random = seeded(7);
  const open = new OpenSet<{ n: number }>();
  const reference = new Set<{ n: number }>();
  const everything: { n: number }[] = [];
  for (let step = 0; step < 5000; step++) {
    if (random() < 0.55 || reference.size === 0) {
      const member = { n: step };
      everything.push(member);
      open.add(member);
      reference.add(member);
      open.add(member); // adding twice changes nothing
    } else {
      const members = [...reference];
      const member = members[Math.floor(random() * members.length)];
      assert.equal(open.delete(member), true);
      assert.equal(open.delete(member), false);
      reference.delete(member);
    }
    assert.equal(open.size, reference.size);
  }
  const byN = (a: { n: number }, b: { n: number }) => a.n - b.n;
  assert.deepEqual(open.values().sort(byN), [...reference].sort(byN));
  const held = (open as unknown as { items: unknown[] }).items;
  assert.equal(held.length, reference.size, 'the array holds the members and nothing else');
  assert.equal(everything.filter((m) => !reference.has(m) && held.includes(m)).length, 0);
});
