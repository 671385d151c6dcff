import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeMessage, encodeMessage } from '../../src/xds/protos';
import { TYPE_URL } from '../../src/xds/type-urls';

test('encodeMessage accepts enums by name or number', () => {
  for (const lb_policy of ['RING_HASH', 2]) {
    const bytes = encodeMessage(TYPE_URL.Cluster, { name: 'c', lb_policy });
    assert.equal(decodeMessage(TYPE_URL.Cluster, bytes).lb_policy, 'RING_HASH');
  }
});

test('encodeMessage refuses a field the type lacks, at any depth, instead of dropping it', () => {
  assert.throws(() => encodeMessage(TYPE_URL.Cluster, { name: 'c', lb_polcy: 'RANDOM' }), /no field "lb_polcy"/);
  assert.throws(
    () => encodeMessage(TYPE_URL.Cluster, { name: 'c', circuit_breakers: { thresholds: [{ max_conections: { value: 1 } }] } }),
    /no field "circuit_breakers\.thresholds\[0\]\.max_conections"/,
  );
});

test('encodeMessage refuses a value of the wrong type', () => {
  assert.throws(() => encodeMessage(TYPE_URL.Cluster, { name: 'c', connect_timeout: { seconds: "soon" } }));
});

test('encodeMessage refuses an enum value the enum lacks', () => {
  assert.throws(() => encodeMessage(TYPE_URL.Cluster, { name: 'c', lb_policy: 'FASTEST' }), /lb_policy" must be one of/);
});
