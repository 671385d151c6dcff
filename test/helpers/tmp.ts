// Temporary directories for tests, removed when the test ends.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { TestContext } from 'node:test';

const created: string[] = [];
// Removed when the test file's process exits: `after` hooks run in the order
// they were added, so a component closed by a later hook may still be writing
// here when an earlier hook would remove it.
process.on('exit', () => {
  for (const dir of created) fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
});

export function tempDir(_t?: TestContext, prefix = 'weft-test-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  created.push(dir);
  return dir;
}

/** Resolves when `check` returns true, polling; rejects after `timeoutMs`. */
export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs: number, what = 'condition'): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await check()) return Date.now() - start;
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** True while `pid` runs; a zombie (exited, not yet reaped by whoever adopted it) counts as gone. */
export function processAlive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}
