// Trace context formats: W3C traceparent and B3 (single and multi header),
// read strictly (malformed means absent) and written back in the same format.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { extract, inject, parseB3Single, parseTraceparent } from '../../src/observe/tracing/propagation';

const T = '4bf92f3577b34da6a3ce929d0e0e4736';
const S = '00f067aa0ba902b7';
const get = (h: Record<string, string>) => (n: string) => h[n];

test('traceparent: version 00 with flags; bad ids, lengths and version ff are absent', () => {
  assert.deepEqual(parseTraceparent(`00-${T}-${S}-01`), { traceId: T, spanId: S, sampled: true, shortTraceId: false });
  assert.equal(parseTraceparent(`00-${T}-${S}-00`)?.sampled, false);
  assert.equal(parseTraceparent(`00-${T.toUpperCase()}-${S}-03`)?.sampled, true, 'case-insensitive; other flag bits ignored');
  assert.equal(parseTraceparent(`00-${'0'.repeat(32)}-${S}-01`), undefined, 'all-zero trace id');
  assert.equal(parseTraceparent(`00-${T}-${'0'.repeat(16)}-01`), undefined, 'all-zero span id');
  assert.equal(parseTraceparent(`ff-${T}-${S}-01`), undefined);
  assert.equal(parseTraceparent(`00-${T}-${S}-01-extra`), undefined, 'version 00 has exactly four fields');
  assert.equal(parseTraceparent(`01-${T}-${S}-01-extra`)?.traceId, T, 'a later version is read by its first four fields');
  assert.equal(parseTraceparent(`00-${T.slice(1)}x-${S}-01`), undefined);
});

test('b3 single: id pairs, sampling states, debug, parent; 64-bit trace ids', () => {
  assert.deepEqual(parseB3Single(`${T}-${S}-1`), { traceId: T, spanId: S, sampled: true, shortTraceId: false });
  assert.equal(parseB3Single(`${T}-${S}-0-${S}`)?.sampled, false);
  assert.equal(parseB3Single(`${T}-${S}-d`)?.sampled, true);
  assert.equal(parseB3Single(`${T}-${S}`)?.sampled, undefined, 'deferred');
  assert.deepEqual(parseB3Single(`a3ce929d0e0e4736-${S}-1`), { traceId: '0000000000000000a3ce929d0e0e4736', spanId: S, sampled: true, shortTraceId: true });
  assert.equal(parseB3Single('0'), undefined, 'a lone sampling state carries no context');
  assert.equal(parseB3Single(`${T}-${S}-x`), undefined);
  assert.equal(parseB3Single(`${T}-${S}-1-zz`), undefined);
});

test('extract picks the format the request came with, W3C first; none means W3C', () => {
  assert.equal(extract(get({ traceparent: `00-${T}-${S}-01`, b3: `${T}-${S}-0` })).format, 'w3c');
  assert.equal(extract(get({ b3: `${T}-${S}-0` })).format, 'b3');
  const multi = extract(get({ 'x-b3-traceid': T, 'x-b3-spanid': S, 'x-b3-sampled': '0' }));
  assert.equal(multi.format, 'b3multi');
  assert.equal(multi.parent?.sampled, false);
  assert.equal(extract(get({ 'x-b3-traceid': T, 'x-b3-spanid': S, 'x-b3-flags': '1' })).parent?.sampled, true, 'debug flag');
  assert.deepEqual(extract(get({})), { format: 'w3c', parent: undefined });
  assert.deepEqual(extract(get({ traceparent: 'garbage' })), { format: 'w3c', parent: undefined });
});

test('inject writes the same format back, the sidecar span as the next parent', () => {
  const P = '1111111111111111';
  assert.deepEqual(inject('w3c', T, S, P, true, false), ['traceparent', `00-${T}-${S}-01`]);
  assert.deepEqual(inject('b3', T, S, P, false, false), ['b3', `${T}-${S}-0-${P}`]);
  assert.deepEqual(inject('b3', '0000000000000000a3ce929d0e0e4736', S, undefined, true, true), ['b3', `a3ce929d0e0e4736-${S}-1`]);
  assert.deepEqual(inject('b3multi', T, S, P, true, false), ['x-b3-traceid', T, 'x-b3-spanid', S, 'x-b3-parentspanid', P, 'x-b3-sampled', '1']);
});
