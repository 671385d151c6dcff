// The unit channel (run/plugins/unit-channel.ts) on a real Unix socket: the
// app's output lines from a sequence number on, then live, then the end;
// health reports validated and passed on; a plugin's ready announcement;
// and who can reach it: only weft run's user (the socket's directory is
// 0700, the socket 0600) — another user is refused by the kernel, tried for
// real as `nobody` when root.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import { PassThrough } from 'node:stream';
import { silentLogger } from '../../src/observe/log';
import { AppOutput } from '../../src/run/plugins/app-output';
import { UnitChannel } from '../../src/run/plugins/unit-channel';

const open: UnitChannel[] = [];
after(async () => {
  for (const c of open) await c.close();
});

function call(socketPath: string, method: string, path: string, body?: unknown, onFirstData?: () => void): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, method, path }, (res) => {
      let text = '';
      res.once('data', () => onFirstData?.());
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, text }));
    });
    req.on('error', reject);
    req.end(body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body));
  });
}

test('app output: kept lines after a sequence number, then live lines, then the end', async () => {
  const output = new AppOutput();
  const channel = await UnitChannel.open({ service: 'web', namespace: 'default', appPort: 8080, appHost: '127.0.0.1' }, output, silentLogger);
  open.push(channel);
  const stdout = new PassThrough();
  const sink = new PassThrough();
  sink.resume();
  output.tee(stdout, 'stdout', sink);
  stdout.write('one\ntwo\nthr');
  stdout.write('ee\n');
  // The last line is written once the reader has its kept lines: it must arrive live.
  const reading = call(channel.socketPath, 'GET', '/v1/app-output?after=1', undefined, () => stdout.end('four\n'));
  const lines = (await reading).text.trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(lines.map((l) => l.line ?? (l.end ? 'END' : '?')), ['two', 'three', 'four', 'END']);
  assert.deepEqual(lines.slice(0, 3).map((l) => l.seq), [2, 3, 4]);
  assert.equal((await call(channel.socketPath, 'GET', '/v1/app-output?after=x')).status, 400);
  assert.deepEqual(JSON.parse((await call(channel.socketPath, 'GET', '/v1/unit')).text), { service: 'web', namespace: 'default', appPort: 8080, appHost: '127.0.0.1', health: 'healthy' });
});

test('health: a valid report is passed on once per change; anything else is a 400', async () => {
  const channel = await UnitChannel.open({ namespace: 'default', appHost: '127.0.0.1' }, undefined, silentLogger);
  open.push(channel);
  const seen: string[] = [];
  channel.onHealth((h, reason) => seen.push(`${h}${reason ? `:${reason}` : ''}`));
  assert.equal((await call(channel.socketPath, 'PUT', '/v1/health', { health: 'unhealthy', reason: 'probe: 503' })).status, 204);
  assert.equal((await call(channel.socketPath, 'PUT', '/v1/health', { health: 'unhealthy', reason: 'probe: 503' })).status, 204);
  assert.equal((await call(channel.socketPath, 'PUT', '/v1/health', { health: 'sick' })).status, 400);
  assert.equal((await call(channel.socketPath, 'PUT', '/v1/health', '{not json')).status, 400);
  assert.equal((await call(channel.socketPath, 'PUT', '/v1/health', { health: 'healthy' })).status, 204);
  assert.deepEqual(seen, ['healthy', 'unhealthy:probe: 503', 'healthy']);
  assert.equal((await call(channel.socketPath, 'GET', '/v1/app-output')).status, 404, 'no output captured in this unit');
});

const root = process.getuid?.() === 0;
test('ready: the plugin process weft run waits for is let through once; an unknown instance is a 404, a bad body a 400', async () => {
  const channel = await UnitChannel.open({ namespace: 'default', appHost: '127.0.0.1' }, undefined, silentLogger);
  open.push(channel);
  let heard = false;
  const { ready } = channel.whenReady('instance-1');
  void ready.then(() => (heard = true));
  const forgotten = channel.whenReady('instance-2');
  forgotten.forget();
  assert.equal((await call(channel.socketPath, 'PUT', '/v1/plugins/ready', { instance: 'someone-else' })).status, 404);
  assert.equal((await call(channel.socketPath, 'PUT', '/v1/plugins/ready', { instance: 'instance-2' })).status, 404, 'a forgotten wait');
  assert.equal((await call(channel.socketPath, 'PUT', '/v1/plugins/ready', 'not json')).status, 400);
  assert.equal(heard, false);
  assert.equal((await call(channel.socketPath, 'PUT', '/v1/plugins/ready', { instance: 'instance-1' })).status, 204);
  await ready;
  assert.equal((await call(channel.socketPath, 'PUT', '/v1/plugins/ready', { instance: 'instance-1' })).status, 404, 'only once');
});

test('only weft run’s user reaches the channel: the directory is 0700, the socket 0600, and another user is refused', { skip: root ? false : 'needs root to try as another user' }, async () => {
  const channel = await UnitChannel.open({ namespace: 'default', appHost: '127.0.0.1' }, undefined, silentLogger);
  open.push(channel);
  assert.equal(fs.statSync(channel.dir).mode & 0o777, 0o700);
  assert.equal(fs.statSync(channel.socketPath).mode & 0o777, 0o600);
  const script = `require('node:http').request({ socketPath: ${JSON.stringify(channel.socketPath)}, path: '/v1/unit' }, () => console.log('REACHED')).on('error', (e) => console.log(e.code)).end();`;
  const asNobody = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e', script], { encoding: 'utf8', timeout: 10_000 });
  assert.equal(asNobody.stdout.trim(), 'EACCES', asNobody.stderr);
});
