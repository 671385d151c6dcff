// A log output that fails (the reader of a sidecar's stderr is gone: EPIPE)
// is dropped: no uncaught error, and no log line about it that would fail the
// same way in a loop (a `weft run` orphaned by its supervisor spun a core so).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { jsonLogger } from '../../src/observe/log';

test('a log output that fails is dropped, without an uncaught error', async () => {
  let writes = 0;
  const out = new Writable({
    write(_chunk, _enc, cb) {
      writes++;
      cb(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
    },
  });
  const log = jsonLogger('info', out);
  log('info', 'first');
  await new Promise((r) => setImmediate(r));
  log('error', 'second');
  log('error', 'third');
  assert.equal(writes, 1, 'nothing written after the failure');
});
