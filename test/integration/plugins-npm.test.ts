// A plugin obtained from npm (spec.npm): weft run installs the package once
// into its cache (a tarball here, so no registry is needed) and runs the
// command's program from the package's bins; a program the package does
// not have stops the unit with an error naming the programs it has.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { startControlPlane, type ControlPlane } from '../../src/control/control-plane';
import { silentLogger } from '../../src/observe/log';
import { freePort } from '../../src/run/free-port';
import { serviceYaml } from '../helpers/resources';
import { killWeftRuns, spawnWeftRun } from '../helpers/weft-run';
import { tempDir, waitFor } from '../helpers/tmp';

const NODE = process.execPath;
let cp: ControlPlane;
let tarball: string;
let cache: string;

before(async () => {
  const pkg = tempDir(undefined, 'weft-npm-plugin-');
  fs.writeFileSync(path.join(pkg, 'package.json'), JSON.stringify({ name: 'weft-hello-plugin', version: '1.0.0', bin: { 'hello-plugin': 'hello.js' } }));
  fs.writeFileSync(path.join(pkg, 'hello.js'), `#!/usr/bin/env node\nconsole.log('HELLO', process.argv[2], process.env.WEFT_PLUGIN_NAME);\nprocess.on('SIGTERM', () => process.exit(0));\nsetInterval(() => {}, 1000);\n`);
  const packed = spawnSync('npm', ['pack', '--silent', '--pack-destination', pkg], { cwd: pkg, encoding: 'utf8' });
  assert.equal(packed.status, 0, packed.stderr);
  tarball = path.join(pkg, packed.stdout.trim().split('\n').pop()!);
  cache = tempDir(undefined, 'weft-plugin-cache-');
  const plugin = (name: string, service: string, program: string) =>
    `apiVersion: weft.dev/v1\nkind: Plugin\nmetadata: { name: ${name} }\nspec:\n  type: general\n  npm: ${JSON.stringify(tarball)}\n  command: [${program}, from-npm]\n  targetRefs: [{ kind: Service, name: ${service} }]\n`;
  const config = tempDir();
  fs.writeFileSync(path.join(config, 'mesh.yaml'), [serviceYaml('web', 8080), serviceYaml('typo', 8080), plugin('hello', 'web', 'hello-plugin'), plugin('nope', 'typo', 'helo-plugin')].join('---\n'));
  cp = await startControlPlane({ configDir: config, dataDir: tempDir(), xdsPort: 0, apiPort: 0, log: silentLogger, dev: true });
});

after(async () => {
  killWeftRuns();
  await cp.close();
});

async function weftRun(service: string) {
  const app = `process.on('SIGTERM', () => process.exit(0)); require('node:http').createServer((q, s) => s.end()).listen(Number(process.env.PORT), '127.0.0.1');`;
  const port = await freePort();
  const run = spawnWeftRun(cp, ['--service', service, '--port', String(port)], [NODE, '-e', app], { cwd: tempDir(), env: { WEFT_PLUGIN_CACHE: cache, npm_config_update_notifier: 'false' }, drainSeconds: 0.2 });
  return Object.assign(run, { port });
}

/**
 * The app listens, so it handles SIGTERM (it sets its handler first): a SIGTERM before that,
 * while a loaded machine was still starting its node, ended it by the signal (143), not with 0.
 */
function appListening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

test('a plugin from an npm package is installed once into the cache and runs its bin', async () => {
  const run = await weftRun('web');
  await waitFor(() => /\[plugin hello\] HELLO from-npm hello\n/.test(run.out()), 120_000, 'the packaged plugin ran');
  await waitFor(() => appListening(run.port), 30_000, 'the app listens');
  const installed = fs.readdirSync(cache).filter((d) => !d.startsWith('.'));
  assert.equal(installed.length, 1, 'one install in the cache');
  assert.ok(fs.existsSync(path.join(cache, installed[0], 'node_modules', '.bin', 'hello-plugin')));
  run.child.kill('SIGTERM');
  assert.equal(await run.exited, 0);

  // Again: from the cache, no second install.
  const again = await weftRun('web');
  await waitFor(() => /\[plugin hello\] HELLO from-npm/.test(again.out()), 30_000, 'the plugin ran again');
  await waitFor(() => appListening(again.port), 30_000, 'the app listens');
  assert.doesNotMatch(again.out(), /installing plugin package/);
  again.child.kill('SIGTERM');
  assert.equal(await again.exited, 0);
});

test('a command the package does not provide stops the unit, naming the programs it has', async () => {
  const run = await weftRun('typo');
  assert.equal(await run.exited, 1);
  assert.match(run.out(), /the package .*weft-hello-plugin-1\.0\.0\.tgz has no program \\"helo-plugin\\" \(its programs: hello-plugin\); the app is not started/);
});
