// Two demos on one machine: the second (the real `weft demo` command, with
// its own --api-port, --xds-port, --port and --data-dir) must not collide with
// the first on the apps' ports; a demo whose units have all exited says so and
// exits non-zero; a user-facing port already taken fails at once, naming it
// and the process that holds it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as net from 'node:net';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { startDemo } from '../../src/demo/run-demo';
import { silentLogger } from '../../src/observe/log';
import { freePort } from '../../src/run/free-port';
import { tempDir, waitFor } from '../helpers/tmp';

const ROOT = path.resolve(__dirname, '../../..');
const BIN = path.join(ROOT, 'bin/weft.js');

/** `weft demo` as a user starts it; resolves its exit code and collects its output. */
function weftDemo(args: string[]) {
  const child = spawn(process.execPath, [BIN, 'demo', '--load', '0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, exited, output: () => output };
}

/** Whether something accepts connections on 127.0.0.1:`port`. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}

async function storefrontServes(url: string): Promise<boolean> {
  const page = await fetch(url).then((r) => (r.status === 200 ? r.text() : ''), () => '');
  return /Catalogue served by product/.test(page);
}

test('a second demo beside a first one comes up on ports of its own; when all its units exit, it says so and exits non-zero', { timeout: 180_000 }, async (t) => {
  // The first demo, as `npm start` would run it, in this process; its units' output is kept to explain a failure.
  const firstOut = new PassThrough();
  let firstOutput = '';
  firstOut.on('data', (d) => (firstOutput += d));
  const first = await startDemo({ root: ROOT, dataDir: tempDir(), apiPort: 0, xdsPort: 0, storefrontPort: await freePort(), loadRate: 0, log: silentLogger, out: firstOut });
  t.after(() => first.stop());
  await waitFor(() => storefrontServes(first.storefrontUrl), 60_000, 'the first demo serves its shop').catch((err) => {
    throw new Error(`${(err as Error).message}\n${firstOutput.slice(-3000)}`);
  });
  // The demo chose every unit's ports in one process (so no unit's sidecar takes another's app port before its app binds
  // it), and each unit's sidecar listens on the two the demo chose for it.
  const ports = first.units.flatMap((u) => [u.appPort, u.outboundPort, u.inboundPort]);
  assert.equal(new Set(ports).size, ports.length, JSON.stringify(first.units));
  for (const unit of first.units) {
    for (const port of [unit.outboundPort, unit.inboundPort]) {
      await waitFor(() => accepts(port), 15_000, `${unit.service}'s sidecar listens on ${port}`);
    }
  }

  const [apiPort, xdsPort, port] = [await freePort(), await freePort(), await freePort()];
  const second = weftDemo(['--api-port', String(apiPort), '--xds-port', String(xdsPort), '--port', String(port), '--data-dir', tempDir()]);
  t.after(() => second.child.kill('SIGKILL'));
  await waitFor(() => storefrontServes(`http://127.0.0.1:${port}/`), 60_000, 'the second demo serves its shop').catch((err) => {
    throw new Error(`${(err as Error).message}\n${second.output().slice(-3000)}`);
  });
  // One page may miss the demo's 2 s route timeout on a loaded machine; a port collision would not clear up.
  await waitFor(() => storefrontServes(first.storefrontUrl), 15_000, 'the first demo still serves');
  assert.doesNotMatch(second.output(), /EADDRINUSE|Traceback/);

  // Every unit of the second demo goes away (each weft run asked to stop, as a crash or an operator would):
  // the demo has nothing left to run and must not keep running as if it had.
  const nodes = (await fetch(`http://127.0.0.1:${apiPort}/api/v1/nodes`).then((r) => r.json())) as { items: { node: { id: string } }[] };
  const pids = nodes.items.map((n) => Number(n.node.id.split('~').pop()));
  assert.equal(pids.length, 5, JSON.stringify(nodes.items.map((n) => n.node.id)));
  for (const pid of pids) process.kill(pid, 'SIGTERM');
  const code = await Promise.race([second.exited, new Promise((r) => setTimeout(r, 30_000, 'still running'))]);
  assert.equal(code, 1, second.output().slice(-2000));
  assert.match(second.output(), /every unit of the demo has exited/);
  await waitFor(() => storefrontServes(first.storefrontUrl), 15_000, 'the first demo was not disturbed');
});

test("a demo whose --port is taken fails at once, naming the port and the process holding it", { timeout: 30_000 }, async (t) => {
  const holder = net.createServer();
  await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
  t.after(() => holder.close());
  const taken = (holder.address() as net.AddressInfo).port;
  const demo = weftDemo(['--api-port', String(await freePort()), '--xds-port', String(await freePort()), '--port', String(taken), '--data-dir', tempDir()]);
  t.after(() => demo.child.kill('SIGKILL'));
  assert.equal(await demo.exited, 1, demo.output());
  assert.match(demo.output(), new RegExp(`port ${taken} \\(the shop, --port\\) is already in use by pid ${process.pid} \\(.*node`));
  assert.doesNotMatch(demo.output(), /\n\s+at /, 'no stack trace');
});
