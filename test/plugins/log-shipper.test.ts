// The log plugin's shipper on its own: a reload switches the sink without
// losing what is held, and the bound counts the batch on its way.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { silentLogger } from '../../src/observe/log';
import type { LogRecord } from '../../src/plugins/log/log-record';
import { Shipper } from '../../src/plugins/log/shipper';
import type { Sink } from '../../src/plugins/log/sinks';
import { waitFor } from '../helpers/tmp';

const rec = (line: string): LogRecord => ({ time: new Date().toISOString(), service: 's', namespace: 'default', host: 'h', instance: 'h/1', stream: 'stdout', line });
const drop = (n: number): LogRecord => ({ ...rec(`${n} dropped`), dropped: n });

/** A sink that fails while `down`, and keeps what it took. */
function memorySink(name: string) {
  const got: LogRecord[] = [];
  const s = { down: false, attempts: 0, got, sink: { describe: name, send: async (b: readonly LogRecord[]) => { s.attempts++; if (s.down) throw new Error(`${name} is down`); got.push(...b); } } as Sink };
  return s;
}

test('a reload to a new sink delivers the lines held for the old one, in order, none twice', async () => {
  const a = memorySink('a');
  a.down = true;
  const shipper = new Shipper(a.sink, { bufferLines: 100, batchLines: 5, flushIntervalMs: 10 }, drop, silentLogger);
  for (let i = 1; i <= 12; i++) shipper.add({ record: rec(`l${i}`) });
  await waitFor(() => a.attempts >= 1, 5000, 'a failed attempt');
  const b = memorySink('b');
  shipper.reconfigure(b.sink, { bufferLines: 100, batchLines: 5, flushIntervalMs: 10 });
  assert.equal(await shipper.flush(5000), 0);
  shipper.stop();
  assert.deepEqual(b.got.map((r) => r.line), Array.from({ length: 12 }, (_, i) => `l${i + 1}`));
  assert.equal(a.got.length, 0);
});

test('the bound holds with a batch on its way: 10 held of 25, 15 counted as dropped, reported first', async () => {
  const a = memorySink('a');
  a.down = true;
  const shipper = new Shipper(a.sink, { bufferLines: 10, batchLines: 4, flushIntervalMs: 10 }, drop, silentLogger);
  for (let i = 1; i <= 25; i++) shipper.add({ record: rec(`l${i}`) });
  assert.ok(shipper.held <= 10);
  await waitFor(() => a.attempts >= 1, 5000, 'a failed attempt');
  assert.equal(shipper.held, 10);
  a.down = false;
  assert.equal(await shipper.flush(5000), 0);
  shipper.stop();
  assert.equal(a.got[0].dropped, 15);
  assert.equal(a.got.filter((r) => r.dropped === undefined).length, 10);
  assert.equal(a.got.at(-1)!.line, 'l25');
});
