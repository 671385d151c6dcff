// weft run's first registration (src/run/registration-client.ts) against a
// real control plane that is not there yet, one that refuses, and a unit
// told to stop while it is still trying.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { RegistrationClient } from '../../src/run/registration-client';
import { exitGuard, Mesh, serviceYaml, waitFor } from '../helpers/proxy-harness';
import { freePort } from '../helpers/ports';

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  exitGuard();
  for (const c of cleanups.reverse()) await c().catch(() => {});
});

const FILES = { 'mesh.yaml': serviceYaml({ name: 'web' }) };
const INSTANCE = { service: 'web', namespace: 'default', address: '127.0.0.1', port: 18080 };

function client(api: string): { client: RegistrationClient; logs: string[] } {
  const logs: string[] = [];
  return { client: new RegistrationClient(api, (level, msg, fields) => logs.push(`${level} ${msg} ${JSON.stringify(fields)}`)), logs };
}

test('the first registration keeps trying a control plane that is not up yet, and registers once it is', { timeout: 30_000 }, async () => {
  const apiPort = await freePort();
  const api = `http://127.0.0.1:${apiPort}`;
  const { client: c, logs } = client(api);
  cleanups.push(() => c.deregister());
  const registered = c.register(INSTANCE, { retryForMs: 25_000 });
  await waitFor(() => logs.some((l) => l.includes('could not register the instance; retrying')), 10_000, 'a failed attempt');
  const mesh = await Mesh.start(FILES, { apiPort });
  cleanups.push(() => mesh.close());
  await registered;
  const items = ((await fetch(`${api}/api/v1/registrations`).then((r) => r.json())) as { items: { service: string; address: string }[] }).items;
  assert.deepEqual(items.map((i) => [i.service, i.address]), [['web', '127.0.0.1']], 'one registration, however many attempts');
});

test('a refusal (an unknown service) fails at once, without retrying', { timeout: 15_000 }, async () => {
  const mesh = await Mesh.start(FILES);
  cleanups.push(() => mesh.close());
  const { client: c, logs } = client(`http://127.0.0.1:${mesh.cp!.apiPort}`);
  await assert.rejects(c.register({ ...INSTANCE, service: 'ghost' }, { retryForMs: 60_000 }), (err: { status?: number }) => err.status === 404 || err.status === 400);
  assert.ok(!logs.some((l) => l.includes('retrying')), logs.join('\n'));
});

test('draining while the first registration is still trying stops it at once', { timeout: 15_000 }, async () => {
  const { client: c, logs } = client(`http://127.0.0.1:${await freePort()}`);
  const registered = c.register(INSTANCE, { retryForMs: 600_000 });
  const settled = registered.then(() => 'registered', () => 'stopped');
  await waitFor(() => logs.some((l) => l.includes('retrying')), 10_000, 'a failed attempt');
  await c.markDraining();
  assert.equal(await settled, 'stopped');
});

test('with no time to retry (retryForMs 0), one attempt', { timeout: 15_000 }, async () => {
  const { client: c, logs } = client(`http://127.0.0.1:${await freePort()}`);
  await assert.rejects(c.register(INSTANCE), /cannot reach the control plane/);
  assert.ok(!logs.some((l) => l.includes('retrying')), logs.join('\n'));
});
