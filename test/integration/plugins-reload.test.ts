// A running unit follows the mesh's changes to its plugins without a
// restart of the unit: the API's answer is a watch (version + wait), so a
// change arrives in moments. A config-only change reaches a plugin that
// takes configReload: Signal as SIGHUP with a new WEFT_PLUGIN_CONFIG_FILE
// (same process); any other change restarts it; a new Plugin starts; a
// deleted one stops. The app runs on throughout.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseDocuments } from '../../src/config';
import { startControlPlane, type ControlPlane } from '../../src/control/control-plane';
import { silentLogger } from '../../src/observe/log';
import { freePort } from '../../src/run/free-port';
import { serviceYaml } from '../helpers/resources';
import { killWeftRuns, spawnWeftRun } from '../helpers/weft-run';
import { processAlive, tempDir, waitFor } from '../helpers/tmp';

const NODE = process.execPath;
let cp: ControlPlane;
let scripts: string;

// Prints its config at start and on every SIGHUP (re-read from the file weft run rewrites).
const WATCHER = `
const fs = require('node:fs');
const show = (why) => console.log('CONFIG', why, process.pid, JSON.parse(fs.readFileSync(process.env.WEFT_PLUGIN_CONFIG_FILE, 'utf8')).global.level);
show('start');
process.on('SIGHUP', () => show('hup'));
process.on('SIGTERM', () => { console.log('STOPPED', process.pid); process.exit(0); });
setInterval(() => {}, 1000);`;
const APP = `require('node:http').createServer((q, s) => s.end('ok')).listen(Number(process.env.PORT), '127.0.0.1'); console.log('APP', process.pid);
process.on('SIGTERM', () => process.exit(0));`;

function plugin(name: string, level: string, extra = ''): string {
  const cmd = `[${JSON.stringify(NODE)}, ${JSON.stringify(path.join(scripts, 'watcher.js'))}]`;
  return `apiVersion: weft.dev/v1\nkind: Plugin\nmetadata: { name: ${name} }\nspec:\n  type: general\n  command: ${cmd}\n  targetRefs: [{ kind: Service, name: web }]\n  config: { global: { level: "${level}" } }\n${extra}`;
}

async function apply(yaml: string): Promise<void> {
  const { resources, errors } = parseDocuments(yaml, 'test.yaml');
  assert.deepEqual(errors, []);
  await cp.store.apply(resources);
}

before(async () => {
  scripts = tempDir(undefined, 'weft-reload-bin-');
  fs.writeFileSync(path.join(scripts, 'watcher.js'), WATCHER);
  fs.writeFileSync(path.join(scripts, 'app.js'), APP);
  const config = tempDir();
  fs.writeFileSync(path.join(config, 'mesh.yaml'), serviceYaml('web', 8080));
  cp = await startControlPlane({ configDir: config, dataDir: tempDir(), xdsPort: 0, apiPort: 0, log: silentLogger, dev: true });
});

after(async () => {
  killWeftRuns();
  await cp.close();
});

test('a unit follows plugin changes: SIGHUP for a config change, a restart for a command change, start and stop for added and deleted Plugins', async () => {
  await apply(plugin('signalled', 'info', '  configReload: Signal\n') + '---\n' + plugin('restarted', 'info'));
  const run = spawnWeftRun(cp, ['--service', 'web', '--port', String(await freePort())], [NODE, path.join(scripts, 'app.js')], { cwd: tempDir(), drainSeconds: 0.2 });
  const { child, exited } = run;
  const line = (name: string, why: string, level: string) => new RegExp(`\\[plugin ${name}\\] CONFIG ${why} (\\d+) ${level}\\n`);
  await waitFor(() => line('signalled', 'start', 'info').test(run.out()) && line('restarted', 'start', 'info').test(run.out()) && /APP \d+/.test(run.out()), 20_000, 'the app and both plugins started');
  const signalledPid = Number(line('signalled', 'start', 'info').exec(run.out())![1]);
  const restartedPid = Number(line('restarted', 'start', 'info').exec(run.out())![1]);
  const appPid = Number(/APP (\d+)/.exec(run.out())![1]);

  // A config change: the signalled plugin re-reads it in the same process; the other is replaced.
  await apply(plugin('signalled', 'debug', '  configReload: Signal\n') + '---\n' + plugin('restarted', 'debug'));
  await waitFor(() => line('signalled', 'hup', 'debug').test(run.out()) && line('restarted', 'start', 'debug').test(run.out()), 15_000, 'both plugins took the new config');
  assert.equal(Number(line('signalled', 'hup', 'debug').exec(run.out())![1]), signalledPid, 'SIGHUP: the same process');
  const newRestartedPid = Number(line('restarted', 'start', 'debug').exec(run.out())![1]);
  assert.notEqual(newRestartedPid, restartedPid, 'Restart (the default for a program): a new process');
  assert.match(run.out(), new RegExp(`\\[plugin restarted\\] STOPPED ${restartedPid}\\n`), 'the old one was stopped with SIGTERM');
  assert.ok(!processAlive(restartedPid));

  // A new Plugin starts; a deleted one stops; the app runs on.
  await apply(plugin('added', 'warn'));
  await waitFor(() => line('added', 'start', 'warn').test(run.out()), 15_000, 'the added plugin started');
  await cp.store.delete('Plugin', 'default', 'restarted');
  await waitFor(() => new RegExp(`\\[plugin restarted\\] STOPPED ${newRestartedPid}\\n`).test(run.out()), 15_000, 'the deleted plugin stopped');
  assert.ok(processAlive(appPid), 'the app ran on through every change');
  assert.ok(processAlive(signalledPid));
  assert.doesNotMatch(run.out(), /restart \d+ in/, 'no change counted as a crash');

  child.kill('SIGTERM');
  assert.equal(await exited, 0);
  assert.ok(!processAlive(signalledPid));
});
