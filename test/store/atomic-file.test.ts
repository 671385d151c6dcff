import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../../src/store/atomic-file';
import { tempDir } from '../helpers/tmp';

test('writeFileAtomic replaces the content and leaves no temporary file', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'state.json');
  await writeFileAtomic(file, '{"a":1}');
  await writeFileAtomic(file, '{"a":2}');
  assert.equal(fs.readFileSync(file, 'utf8'), '{"a":2}');
  assert.deepEqual(fs.readdirSync(dir), ['state.json']);
});

test('a process killed mid-write never leaves a torn file', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'state.json');
  const modulePath = require.resolve('../../src/store/atomic-file');
  // The child rewrites a large JSON document as fast as it can until killed.
  const script = `
    const { writeFileAtomic } = require(${JSON.stringify(modulePath)});
    let i = 0;
    (async () => { for (;;) { i++; await writeFileAtomic(${JSON.stringify(file)}, JSON.stringify({ i, pad: 'x'.repeat(200000 + (i % 7) * 1000) })); if (i === 3) process.send('ready'); } })();
  `;
  for (let round = 0; round < 5; round++) {
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    await new Promise<void>((resolve) => child.once('message', () => resolve()));
    await new Promise((r) => setTimeout(r, 5 + round * 7));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
    assert.ok(parsed.i >= 3, `a whole document survived round ${round}`);
  }
});
