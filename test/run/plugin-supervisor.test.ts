// When the plugin supervisor (run/plugins/plugin-supervisor.ts) signals a
// plugin, with the real CLI, a real unit channel and real tar: a built-in
// plugin stopped the moment it was started still does its stop work, since
// weft run holds SIGTERM until the plugin says it handles it; any other
// program is signalled at once.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import type { ResolvedPlugin } from '../../src/config/plugin-config';
import { silentLogger } from '../../src/observe/log';
import { PluginSupervisor } from '../../src/run/plugins/plugin-supervisor';
import { UnitChannel } from '../../src/run/plugins/unit-channel';
import { tempDir } from '../helpers/tmp';

const channels: UnitChannel[] = [];
after(async () => {
  for (const c of channels) await c.close();
});

function generalPlugin(name: string, command: string[], global: Record<string, string> = {}): ResolvedPlugin {
  return {
    name,
    namespace: 'default',
    type: 'general',
    command,
    env: {},
    order: 0,
    restartPolicy: 'Always',
    restartBackoffMs: { min: 100, max: 1000 },
    configReload: 'Restart',
    config: { global, perPort: [], perDependency: [] },
  };
}

async function supervisor(cwd: string, stopGraceMs: number): Promise<{ supervisor: PluginSupervisor; output: () => string }> {
  const channel = await UnitChannel.open({ service: 'order', namespace: 'default', appHost: '127.0.0.1' }, undefined, silentLogger);
  channels.push(channel);
  let text = '';
  const sink = new PassThrough();
  sink.on('data', (c) => (text += c));
  return { supervisor: new PluginSupervisor({ env: process.env, cwd, channel, stopGraceMs, log: silentLogger, stdout: sink, stderr: sink }), output: () => text };
}

test('a built-in plugin stopped right after its start still does its stop work: the backup plugin writes its last backup', { timeout: 60_000 }, async () => {
  const cwd = tempDir();
  fs.writeFileSync(path.join(cwd, 'orders.json'), '{"orders":[1]}');
  const { supervisor: s, output } = await supervisor(cwd, 30_000);
  s.startGeneral([generalPlugin('order-backup', ['weft', 'plugin', 'backup'], { dir: 'backups', paths: 'orders.json', every: '1h' })]);
  // At once: the plugin's node has not loaded weft yet, let alone handled SIGTERM.
  await s.stop();
  const archives = fs.existsSync(path.join(cwd, 'backups')) ? fs.readdirSync(path.join(cwd, 'backups')) : [];
  assert.equal(archives.length, 1, `the backup at stop; the plugin wrote:\n${output()}`);
  assert.equal(execFileSync('tar', ['-xzOf', path.join(cwd, 'backups', archives[0]), 'orders.json'], { encoding: 'utf8' }), '{"orders":[1]}');
  assert.match(output(), /a last backup before stopping/);
});

test('a program that is not a built-in plugin gets SIGTERM at once, without waiting for the grace', { timeout: 60_000 }, async () => {
  const { supervisor: s } = await supervisor(tempDir(), 30_000);
  s.startGeneral([generalPlugin('sleeper', ['sleep', '60'])]);
  const started = Date.now();
  await s.stop();
  assert.ok(Date.now() - started < 10_000, `stopped after ${Date.now() - started} ms`);
});
