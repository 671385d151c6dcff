// The last-resort guard in a real sidecar process: an 'error' event nobody
// listens to and a promise rejection nobody handles would each end the
// process; with the guard they are logged and counted, and the proxy keeps
// answering. (In-process sidecars of the other tests run with the guard too,
// and the harness fails a file in which it fired.)
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { freePort, T } from '../../helpers/proxy-harness';
import { tempDir, waitFor } from '../../helpers/tmp';

const PROXY_MODULE = path.resolve(__dirname, '../../../src/proxy/proxy.js');

test('an error no handler caught is logged and counted, and the sidecar keeps serving', T, async () => {
  const dir = tempDir(undefined, 'weft-last-resort-');
  const script = path.join(dir, 'sidecar.js');
  // A control plane that is not there: the admin port serves regardless.
  const xdsPort = await freePort();
  fs.writeFileSync(
    script,
    `const { startProxy } = require(${JSON.stringify(PROXY_MODULE)});
const { EventEmitter } = require('node:events');
const log = (level, msg, fields) => process.stderr.write(JSON.stringify({ level, msg, ...fields }) + '\\n');
startProxy({ xds: '127.0.0.1:${xdsPort}', nodeId: 'guarded', namespace: 'default', adminPort: 0, log, sds: false }).then((proxy) => {
  process.stdout.write('admin ' + proxy.adminPort + '\\n');
  process.stdin.on('data', (d) => {
    if (String(d).includes('emit')) new EventEmitter().emit('error', new Error('nobody listens'));
    if (String(d).includes('reject')) Promise.reject(new Error('nobody awaits'));
  });
});
`,
  );
  const child = spawn(process.execPath, [script], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  let exited: number | null | undefined;
  child.on('exit', (code) => (exited = code));
  try {
    await waitFor(() => /admin \d+/.test(stdout), 10_000, 'the sidecar to start');
    const admin = Number(/admin (\d+)/.exec(stdout)![1]);
    const uncaught = async () => Number(/^weft_proxy_uncaught_errors_total (\d+)$/m.exec(await (await fetch(`http://127.0.0.1:${admin}/stats/prometheus`)).text())?.[1]);
    assert.equal(await uncaught(), 0);
    child.stdin.write('emit\n');
    await waitFor(async () => (await uncaught()) === 1, 5000, 'the guard to count the error event');
    child.stdin.write('reject\n');
    await waitFor(async () => (await uncaught()) === 2, 5000, 'the guard to count the rejection');
    assert.equal(exited, undefined, 'the sidecar is still running');
    assert.match(stderr, /uncaught exception caught by the last-resort guard.*nobody listens/);
    assert.match(stderr, /unhandled promise rejection caught by the last-resort guard.*nobody awaits/);
    const ready = await fetch(`http://127.0.0.1:${admin}/ready`);
    assert.equal(ready.status, 503, 'the admin port still answers (not ready: no control plane)');
  } finally {
    child.kill('SIGKILL');
  }
});
