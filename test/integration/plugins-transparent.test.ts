// Plugins of a transparent unit (`weft run --transparent`) run inside it: the
// init and the general plugin share the app's network namespace, not the host's.
// On a simulated host (test/helpers/hosts.ts), with a `weft control --dev` there.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Hosts, multiHostSkip, type Host, type Proc } from '../helpers/hosts';
import { serviceYaml } from '../helpers/resources';
import { tempDir } from '../helpers/tmp';

const ROOT = path.resolve(__dirname, '../../..');
const BIN = path.join(ROOT, 'bin/weft.js');
const SKIP = multiHostSkip() || missingIptables() || false;

/** The units' host rules need iptables: outside CI a missing one skips, under CI=true it fails. */
function missingIptables(): string | false {
  const r = spawnSync('iptables', ['--version'], { encoding: 'utf8', timeout: 10_000 });
  if (!r.error && r.status === 0) return false;
  if (process.env.CI === 'true') throw new Error('plugins-transparent: iptables is missing (Debian package iptables)');
  return 'plugins-transparent skipped: iptables is missing (Debian package iptables)';
}

let hosts: Hosts;
let h: Host;
const procs: Proc[] = [];
const units = new Set<string>();

before(async () => {
  if (SKIP) return;
  hosts = await Hosts.create({ name: 'plg', hosts: ['h'] });
  h = hosts.get('h');
});

after(async () => {
  for (const p of procs) p.killTree('SIGKILL');
  await hosts?.destroy();
  // What the units' guards would have removed, had the test failed before weft run ended.
  for (const name of units) {
    spawnSync('ip', ['netns', 'del', name], { timeout: 10_000 });
    fs.rmSync(`/etc/netns/${name}`, { recursive: true, force: true });
    fs.rmSync(`/run/netns/${name}`, { force: true });
  }
});

const NS = '$(readlink /proc/self/ns/net)';

test('the plugins of a transparent unit run in its network namespace, as its app does', { skip: SKIP, timeout: 90_000 }, async () => {
  const config = tempDir();
  fs.writeFileSync(
    path.join(config, 'mesh.yaml'),
    [
      serviceYaml('tp', 8080),
      `apiVersion: weft.dev/v1\nkind: Plugin\nmetadata: { name: prep }\nspec:\n  type: init\n  command: [sh, -c, "echo INIT ${NS}"]\n  targetRefs: [{ name: tp }]\n`,
      `apiVersion: weft.dev/v1\nkind: Plugin\nmetadata: { name: side }\nspec:\n  type: general\n  command: [sh, -c, "echo GENERAL ${NS}; exec sleep 1000"]\n  targetRefs: [{ name: tp }]\n`,
    ].join('---\n'),
  );
  const control = h.spawn(process.execPath, [BIN, 'control', '--dev', '--config', config, '--data-dir', tempDir(), '--xds-port', '15010', '--api-port', '15000']);
  procs.push(control);
  await h.waitForPort(15000, '127.0.0.1', 30_000);
  const run = h.spawn(process.execPath, [BIN, 'run', '--transparent', '--service', 'tp', '--xds', '127.0.0.1:15010', '--api', 'http://127.0.0.1:15000', '--drain-seconds', '0.2', '--', 'sh', '-c', `echo APP ${NS}; exec sleep 1000`]);
  procs.push(run);
  const unit = await run.waitForOutput(/"unit":"(weft-\d+)"/, 30_000);
  units.add(unit[1]);
  const app = await run.waitForOutput(/\nAPP (net:\[\d+\])/, 30_000);
  const init = await run.waitForOutput(/\[plugin prep\] INIT (net:\[\d+\])/, 5000);
  const general = await run.waitForOutput(/\[plugin side\] GENERAL (net:\[\d+\])/, 30_000);
  const host = fs.readlinkSync(`/proc/${run.pid}/ns/net`);
  assert.notEqual(app[1], host, "the app is in the unit's namespace");
  assert.equal(init[1], app[1], 'the init plugin ran in the unit');
  assert.equal(general[1], app[1], 'the general plugin runs in the unit');
  run.kill('SIGTERM');
  await run.exited;
  assert.match(run.output(), /plugin stopping/);
});
