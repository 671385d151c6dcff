// A plugin's spec.resources as a real cgroup: a plugin over its memory limit
// is killed by the kernel and the restart line says so; one over its pids
// limit cannot fork past it; one with a tenth of a core gets about that;
// each runs inside its cgroup from its first instruction, and the cgroups
// are gone when the unit stops. Needs a writable cgroup filesystem (root):
// skipped without one, a failure under CI=true.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startControlPlane, type ControlPlane } from '../../src/control/control-plane';
import { silentLogger } from '../../src/observe/log';
import { freePort } from '../../src/run/free-port';
import { cgroupLayout } from '../../src/run/plugins/plugin-cgroup';
import { serviceYaml } from '../helpers/resources';
import { killWeftRuns, spawnWeftRun } from '../helpers/weft-run';
import { tempDir, waitFor } from '../helpers/tmp';

const NODE = process.execPath;
const layout = cgroupLayout();
const skip = 'unavailable' in layout ? `no plugin cgroups here: ${layout.unavailable}` : false;
if (skip && process.env.CI === 'true') throw new Error(`CI=true: ${skip}`);

let cp: ControlPlane;
let child: ChildProcess | undefined;

const PROGRAMS: Record<string, string> = {
  // Reports its cgroups, then allocates (and touches) 10 MiB at a time up to 300 MiB.
  'hog.js': `console.log('CGROUP', require('node:fs').readFileSync('/proc/self/cgroup', 'utf8').replace(/\\n/g, ' '));
const held = []; for (let i = 0; i < 30; i++) held.push(Buffer.alloc(10 * 1024 * 1024, 1));
console.log('SURVIVED'); setInterval(() => {}, 1000);`,
  // Tries to start 20 sleeping children and says how many it got.
  'forker.js': `const { spawn } = require('node:child_process'); let ok = 0, failed = 0;
const kids = [];
for (let i = 0; i < 20; i++) { try { const c = spawn('sleep', ['30']); c.on('error', () => failed++); if (c.pid) { ok++; kids.push(c); } } catch { failed++; } }
setTimeout(() => { console.log('FORKED', ok); kids.forEach((k) => k.kill()); }, 500);
setInterval(() => {}, 1000);`,
  // Spins for 1.5 s of wall time and reports the CPU time it got.
  'spinner.js': `const start = Date.now(); while (Date.now() - start < 1500) {}
const u = process.cpuUsage(); console.log('SPUN', Math.round((u.user + u.system) / 1000)); setInterval(() => {}, 1000);`,
  'app.js': `require('node:http').createServer((q, s) => s.end('ok')).listen(Number(process.env.PORT), '127.0.0.1'); process.on('SIGTERM', () => process.exit(0));`,
};

before(async () => {
  if (skip) return;
  const bin = tempDir(undefined, 'weft-limits-bin-');
  for (const [file, text] of Object.entries(PROGRAMS)) fs.writeFileSync(path.join(bin, file), text);
  const plugin = (name: string, file: string, resources: string, extra = '') =>
    `apiVersion: weft.dev/v1\nkind: Plugin\nmetadata: { name: ${name} }\nspec:\n  type: general\n  command: [${JSON.stringify(NODE)}, ${JSON.stringify(path.join(bin, file))}]\n  targetRefs: [{ kind: Service, name: web }]\n  resources: ${resources}\n${extra}`;
  const config = tempDir();
  fs.writeFileSync(
    path.join(config, 'mesh.yaml'),
    [
      serviceYaml('web', 8080),
      plugin('hog', 'hog.js', '{ memory: 64Mi }', '  restartBackoff: { min: 5s, max: 5s }\n'),
      plugin('forker', 'forker.js', '{ pids: 12 }'),
      plugin('spinner', 'spinner.js', '{ cpu: 100m }'),
    ].join('---\n'),
  );
  fs.writeFileSync(path.join(bin, 'app.js'), PROGRAMS['app.js']);
  cp = await startControlPlane({ configDir: config, dataDir: tempDir(), xdsPort: 0, apiPort: 0, log: silentLogger, dev: true });
  const run = spawnWeftRun(cp, ['--service', 'web', '--port', String(await freePort())], [NODE, path.join(bin, 'app.js')], { cwd: tempDir(), drainSeconds: 0.2 });
  child = run.child;
  output = run.out;
});

let output = () => '';

after(async () => {
  killWeftRuns();
  await cp?.close();
});

test('memory: over its limit the plugin is killed by the kernel, and the restart line says why; it ran in its cgroup from the start', { skip }, async () => {
  await waitFor(() => /plugin hog exited \(killed by SIGKILL: out of memory at its resources.memory limit\); restart 1/.test(output()), 30_000, 'the hog killed at its limit');
  assert.doesNotMatch(output(), /\[plugin hog\] SURVIVED/);
  const groups = /\[plugin hog\] CGROUP (.*)\n/.exec(output())![1];
  assert.match(groups, new RegExp(`memory:\\S*/?weft[-/]?${child!.pid}-hog|0::/weft/${child!.pid}-hog`), groups);
});

test('pids: the plugin cannot start more processes than its limit allows', { skip }, async () => {
  await waitFor(() => /\[plugin forker\] FORKED \d+/.test(output()), 20_000, 'the forker reported');
  const forked = Number(/\[plugin forker\] FORKED (\d+)/.exec(output())![1]);
  assert.ok(forked < 12, `${forked} children of 20 under pids 12 (node's own threads count too)`);
});

test('cpu: a tenth of a core gives a spinning plugin about a tenth of its wall time', { skip }, async () => {
  await waitFor(() => /\[plugin spinner\] SPUN \d+/.test(output()), 20_000, 'the spinner reported');
  const cpuMs = Number(/\[plugin spinner\] SPUN (\d+)/.exec(output())![1]);
  // Unlimited it would be ~1500 ms (plus start-up); 100m allows ~150 ms of the 1.5 s and the start-up's share.
  assert.ok(cpuMs < 700, `${cpuMs} ms of CPU in 1.5 s of wall time under cpu: 100m`);
});

test('the cgroups are removed when the unit stops', { skip }, async () => {
  const pid = child!.pid!;
  const exists = () => {
    if ('unavailable' in layout) return false;
    const parents = layout.version === 2 ? [layout.parent] : Object.values(layout.parents);
    return parents.some((p) => fs.readdirSync(p).some((e) => e.includes(`${pid}-`)));
  };
  assert.ok(exists(), 'the unit has cgroups while it runs');
  const exited = new Promise((r) => child!.once('exit', r));
  child!.kill('SIGTERM');
  await exited;
  assert.ok(!exists(), 'none left after it stopped');
});
