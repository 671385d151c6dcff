// The built-in backup plugin under `weft run`, end to end: a real control
// plane serving Plugins [weft, plugin, backup] (general) and
// [weft, plugin, backup, restore] (init), the real CLI, real tar. Archives on
// a schedule, the newest `keep` kept, one more at stop holding the app's
// final state; the demo's order service keeps its orders across a restart
// whose data file was lost; a corrupt archive stops the unit before the app.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startControlPlane, type ControlPlane } from '../../src/control/control-plane';
import { silentLogger } from '../../src/observe/log';
import { freePort } from '../../src/run/free-port';
import { serviceYaml } from '../helpers/resources';
import { spawnWeftRun, waitForUnit } from '../helpers/weft-run';
import { tempDir, waitFor } from '../helpers/tmp';

const ROOT = path.resolve(__dirname, '../../..');
const NODE = process.execPath;
const ORDER_JS = path.join(ROOT, 'examples/apps/order.js');
const ARCHIVE = /^[a-z]+-[0-9]{8}T[0-9]{6}\.[0-9]{3}Z\.tar\.gz$/;

const PROGRAMS: Record<string, string> = {
  // Keeps its state in state.txt; writes FINAL there as it stops.
  'stateful.js': `
const fs = require('node:fs');
fs.writeFileSync('state.txt', 'started');
const srv = require('node:http').createServer((q, s) => { fs.writeFileSync('state.txt', new URL(q.url, 'http://x').searchParams.get('v')); s.end('ok'); })
  .listen(Number(process.env.PORT), '127.0.0.1');
process.on('SIGTERM', () => { fs.writeFileSync('state.txt', 'FINAL'); srv.close(() => process.exit(0)); });`,
  // The payment service the order service charges through the mesh.
  'payment.js': `
let n = 0;
require('node:http').createServer((q, s) => { q.resume(); q.on('end', () => { s.setHeader('content-type', 'application/json'); s.end(JSON.stringify({ id: 'pay-' + ++n })); }); })
  .listen(Number(process.env.PORT), '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));`,
};

let cp: ControlPlane;
let scripts: string;
const started: ChildProcess[] = [];

function pluginYaml(name: string, type: string, command: string, service: string, global: string): string {
  return `apiVersion: weft.dev/v1\nkind: Plugin\nmetadata: { name: ${name} }\nspec:\n  type: ${type}\n  command: ${command}\n  targetRefs: [{ kind: Service, name: ${service} }]\n  config:\n    global: ${global}\n`;
}

before(async () => {
  scripts = tempDir(undefined, 'weft-backup-bin-');
  for (const [file, text] of Object.entries(PROGRAMS)) fs.writeFileSync(path.join(scripts, file), text);
  const config = tempDir();
  fs.writeFileSync(
    path.join(config, 'mesh.yaml'),
    [
      serviceYaml('stateful', 8080),
      serviceYaml('order', 8082, 'http', '  dependsOn: [{ name: payment }]\n'),
      serviceYaml('payment', 8083),
      pluginYaml('snapshots', 'general', '[weft, plugin, backup]', 'stateful', '{ dir: backups, paths: "state.txt, notes", every: 250ms, keep: "3" }'),
      pluginYaml('order-backup', 'general', '[weft, plugin, backup]', 'order', '{ dir: backups, paths: orders.json, every: 1h }'),
      pluginYaml('order-restore', 'init', '[weft, plugin, backup, restore]', 'order', '{ dir: backups, paths: orders.json }'),
    ].join('---\n'),
  );
  cp = await startControlPlane({ configDir: config, dataDir: tempDir(), xdsPort: 0, apiPort: 0, log: silentLogger, dev: true });
});

after(async () => {
  for (const child of started) child.kill('SIGKILL');
  await cp.close();
});

function weftRun(service: string, port: number, cwd: string, command: string[], env: NodeJS.ProcessEnv = {}) {
  const run = spawnWeftRun(cp, ['--service', service, '--port', String(port)], command, { cwd, env });
  started.push(run.child);
  return run;
}

/** The JSON log lines a plugin wrote (weft run tags them "[plugin <name>] "). */
function pluginLogs(stderr: string, plugin: string): Record<string, any>[] {
  const tag = `[plugin ${plugin}] `;
  return stderr.split('\n').flatMap((l) => {
    if (!l.startsWith(tag)) return [];
    try {
      return [JSON.parse(l.slice(tag.length))];
    } catch {
      return [];
    }
  });
}

test('the backup plugin archives on its schedule, keeps the newest 3, and takes a last backup at stop that holds the app’s final state', { timeout: 60_000 }, async () => {
  const cwd = tempDir();
  fs.mkdirSync(path.join(cwd, 'notes'));
  fs.writeFileSync(path.join(cwd, 'notes/a.txt'), 'a note');
  const run = weftRun('stateful', await freePort(), cwd, [NODE, path.join(scripts, 'stateful.js')]);
  const written = () => pluginLogs(run.stderr(), 'snapshots').filter((l) => l.msg === 'backup written');
  await waitFor(() => written().length >= 5, 30_000, 'five scheduled backups');
  assert.ok(written().every((l) => l.why === 'schedule' && l.bytes > 0 && typeof l.ms === 'number' && ARCHIVE.test(path.basename(l.file))));
  assert.ok(written().some((l) => l.removed > 0), 'older archives were removed');

  run.child.kill('SIGTERM');
  assert.equal(await run.exited, 0, run.stderr());
  assert.doesNotMatch(run.stderr(), /plugin snapshots exited/, 'the plugin ran until it was stopped, never restarted');
  const all = written();
  assert.equal(all.at(-1)!.why, 'stop', 'one more at stop');
  assert.equal(all.filter((l) => l.why === 'stop').length, 1);
  const dir = path.join(cwd, 'backups');
  const left = fs.readdirSync(dir).sort();
  assert.deepEqual(left, all.slice(-3).map((l) => path.basename(l.file)).sort(), 'the newest 3 and nothing else (no temporary file)');
  // The last archive was taken after the app had exited: it holds what the app wrote as it stopped.
  const newest = path.join(dir, left.at(-1)!);
  assert.equal(execFileSync('tar', ['-xzOf', newest, 'state.txt'], { encoding: 'utf8' }), 'FINAL');
  assert.deepEqual(execFileSync('tar', ['-tzf', newest], { encoding: 'utf8' }).trim().split('\n').sort(), ['notes/', 'notes/a.txt', 'state.txt']);
});

test('the order service’s orders survive a restart that lost its data file: backed up at stop, restored before the app starts', { timeout: 90_000 }, async () => {
  const payment = weftRun('payment', await freePort(), tempDir(), [NODE, path.join(scripts, 'payment.js')]);
  const cwd = tempDir();
  const orderPort = await freePort();
  const startOrder = () => weftRun('order', orderPort, cwd, [NODE, ORDER_JS], { ORDERS_FILE: 'orders.json' });
  try {
    let order = startOrder();
    await waitForUnit(order, (u) => /order: 0 order\(s\) in orders\.json/.test(u.stdout()), 20_000, 'the order service started');
    assert.ok(pluginLogs(order.stderr(), 'order-restore').some((l) => /^no backup of order in .* yet: nothing to restore$/.test(l.msg)), order.stderr());
    let placed: any;
    await waitFor(
      async () => {
        const res = await fetch(`http://127.0.0.1:${orderPort}/orders`, { method: 'POST', body: JSON.stringify({ productId: 3, amount: 42 }) });
        placed = await res.json();
        return res.status === 201;
      },
      30_000,
      'an order placed (paid through the mesh)',
    );
    assert.equal(placed.payment, 'pay-1');
    order.child.kill('SIGTERM');
    assert.equal(await order.exited, 0, order.stderr());
    const archives = fs.readdirSync(path.join(cwd, 'backups'));
    assert.equal(archives.length, 1, 'the backup at stop');

    fs.rmSync(path.join(cwd, 'orders.json'));
    order = startOrder();
    await waitForUnit(order, (u) => /order: \d+ order\(s\) in orders\.json/.test(u.stdout()), 20_000, 'the order service started again');
    assert.match(order.stdout(), /order: 1 order\(s\) in orders\.json/, 'the app found the restored file at its start');
    const restored = pluginLogs(order.stderr(), 'order-restore').find((l) => l.msg === 'restored');
    assert.equal(path.basename(restored?.file ?? ''), archives[0], order.stderr());
    let list: { orders: any[]; total: number } | undefined;
    await waitFor(
      async () => {
        list = (await fetch(`http://127.0.0.1:${orderPort}/orders`).then((r) => r.json(), () => undefined)) as typeof list;
        return list !== undefined;
      },
      20_000,
      'the order service listening',
    );
    assert.ok(list);
    assert.equal(list.total, 1);
    assert.deepEqual(list.orders[0], placed);
    order.child.kill('SIGTERM');
    assert.equal(await order.exited, 0);
  } finally {
    payment.child.kill('SIGTERM');
    await payment.exited;
  }
});

test('a corrupt newest archive stops the unit with the restore plugin’s error, and the app never starts', { timeout: 60_000 }, async () => {
  const cwd = tempDir();
  fs.mkdirSync(path.join(cwd, 'backups'));
  fs.writeFileSync(path.join(cwd, 'backups/order-20240101T000000.000Z.tar.gz'), 'not gzip at all, cut short by a full disk');
  const order = weftRun('order', await freePort(), cwd, [NODE, ORDER_JS], { ORDERS_FILE: 'orders.json' });
  assert.equal(await order.exited, 1);
  const error = order.stderr().split('\n').find((l) => l.includes('"level":"error"'));
  assert.ok(error, order.stderr());
  assert.match(
    JSON.parse(error).msg,
    /^init plugin order-restore failed \(exit code 1\): cannot restore the newest backup .*order-20240101T000000\.000Z\.tar\.gz: .* is corrupt or not a tar\.gz archive \(tar failed \(exit code 2\): .*\); move it away .*the app is not started$/s,
  );
  assert.doesNotMatch(order.stdout(), /order: \d+ order/, 'the app never ran');
  assert.ok(!fs.existsSync(path.join(cwd, 'orders.json')));
});
