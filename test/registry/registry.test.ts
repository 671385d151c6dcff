import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { EmbeddedStore } from '../../src/store/embedded-store';
import { Registry, RegistrationError } from '../../src/registry/registry';
import type { Resource } from '../../src/config/kinds';
import { tempDir } from '../helpers/tmp';

const shop: Resource<'Service'> = {
  apiVersion: 'weft.dev/v1',
  kind: 'Service',
  metadata: { name: 'shop', namespace: 'default' },
  spec: {
    ports: [
      { name: 'http', port: 8080, protocol: 'http' },
      { name: 'grpc', port: 9090, protocol: 'grpc', targetPort: 19090 },
    ],
    endpoints: [{ address: '127.0.0.2', zone: 'a' }],
  },
};

async function setup(t: import('node:test').TestContext) {
  const dataDir = tempDir(t);
  const store = await EmbeddedStore.open({ dataDir });
  await store.apply([shop]);
  let now = 1_000_000;
  const clock = { now: () => now, advance: (ms: number) => (now += ms) };
  const registry = new Registry({ store, dataDir, now: clock.now, sweepIntervalMs: 0 });
  t.after(async () => {
    await registry.close();
    await store.close();
  });
  return { store, registry, clock, dataDir };
}

test('static endpoints take their ports from the service ports', async (t) => {
  const { registry } = await setup(t);
  const [ep] = registry.endpoints().get('default/shop')!;
  assert.deepEqual(ep.ports, { http: 8080, grpc: 19090 });
  assert.equal(ep.origin, 'static');
  assert.equal(ep.zone, 'a');
});

test('a registered instance is an endpoint until its lease runs out; renewing keeps it', async (t) => {
  const { registry, clock } = await setup(t);
  let changes = 0;
  registry.onChange(() => changes++);
  const reg = await registry.register({ service: 'shop', address: '127.0.0.1', port: 3000, ttlSeconds: 10, zone: 'b' });
  assert.equal(changes, 1);
  assert.deepEqual(
    registry.endpoints().get('default/shop')!.map((e) => [e.address, e.ports.http, e.origin]),
    [['127.0.0.2', 8080, 'static'], ['127.0.0.1', 3000, reg.id]],
  );
  clock.advance(9000);
  await registry.renew(reg.id);
  clock.advance(9000);
  registry.sweep();
  assert.equal(registry.endpoints().get('default/shop')!.length, 2, 'renewed lease still valid');
  clock.advance(1001);
  registry.sweep();
  assert.equal(registry.endpoints().get('default/shop')!.length, 1, 'expired instance left');
  assert.equal(changes, 2);
  await assert.rejects(() => registry.renew(reg.id), (err: unknown) => err instanceof RegistrationError && err.code === 'E_UNKNOWN_REGISTRATION');
});

test('renewing with a new health state changes the endpoint; deregister removes it at once', async (t) => {
  const { registry } = await setup(t);
  const reg = await registry.register({ service: 'shop', address: '127.0.0.1', ports: { http: 3000, grpc: 3001 } });
  await registry.renew(reg.id, 'draining');
  assert.equal(registry.endpoints().get('default/shop')![1].health, 'draining');
  assert.equal(await registry.deregister(reg.id), true);
  assert.equal(registry.endpoints().get('default/shop')!.length, 1);
  assert.equal(await registry.deregister(reg.id), false);
});

test('bad registrations are refused with the field at fault', async (t) => {
  const { registry } = await setup(t);
  const cases: [unknown, string, string | undefined][] = [
    [{ service: 'ghost', address: '127.0.0.1' }, 'E_UNKNOWN_SERVICE', 'service'],
    [{ service: 'shop', address: 'not-an-ip' }, 'E_REGISTRATION_INVALID', 'address'],
    [{ service: 'shop', address: '127.0.0.1', port: 0 }, 'E_REGISTRATION_INVALID', 'port'],
    [{ service: 'shop', address: '127.0.0.1', ports: { nope: 1 } }, 'E_REGISTRATION_INVALID', 'ports.nope'],
    [{ service: 'shop', address: '127.0.0.1', ttlSeconds: -1 }, 'E_REGISTRATION_INVALID', 'ttlSeconds'],
    [{ service: 'shop', address: '127.0.0.1', health: 'fine' }, 'E_REGISTRATION_INVALID', 'health'],
    [{ service: 'shop', address: '127.0.0.1', extra: true }, 'E_REGISTRATION_INVALID', undefined],
    ['garbage', 'E_REGISTRATION_INVALID', undefined],
  ];
  for (const [body, code, field] of cases) {
    await assert.rejects(
      () => registry.register(body),
      (err: unknown) => err instanceof RegistrationError && err.code === code && err.field === field,
      JSON.stringify(body),
    );
  }
  assert.equal(registry.list().length, 0);
});

test('registrations survive a control-plane restart with a fresh lease', async (t) => {
  const { store, registry, clock, dataDir } = await setup(t);
  const reg = await registry.register({ service: 'shop', address: '127.0.0.1', port: 3000, ttlSeconds: 5 });
  await registry.close();
  clock.advance(60_000);
  const restarted = new Registry({ store, dataDir, now: clock.now, sweepIntervalMs: 0 });
  t.after(() => restarted.close());
  restarted.sweep();
  assert.deepEqual(restarted.list().map((r) => r.id), [reg.id]);
  clock.advance(5001);
  restarted.sweep();
  assert.deepEqual(restarted.list(), []);
});

test('registering the same instance again (a replayed request) updates it instead of adding a twin', async (t) => {
  const { registry } = await setup(t);
  const first = await registry.register({ service: 'shop', address: '127.0.0.1', port: 3000, ttlSeconds: 10 });
  const again = await registry.register({ service: 'shop', address: '127.0.0.1', port: 3000, ttlSeconds: 10 });
  assert.equal(again.id, first.id);
  assert.equal(registry.list().length, 1);
  const other = await registry.register({ service: 'shop', address: '127.0.0.1', port: 3001 });
  assert.notEqual(other.id, first.id, 'another port is another instance');
  assert.equal(registry.list().length, 2);
});

test("an instance's health reason and plugins: kept on renewals, written only when they change, bounded", async (t) => {
  const { registry } = await setup(t);
  let writes = 0;
  registry.onChange(() => writes++);
  const plugins = [{ name: 'monitor', type: 'general', state: 'running' as const, restarts: 0 }];
  const reg = await registry.register({ service: 'shop', address: '127.0.0.1', port: 3000, health: 'unhealthy', healthReason: 'HTTP 500', plugins });
  assert.deepEqual([reg.health, reg.healthReason, reg.plugins], ['unhealthy', 'HTTP 500', plugins], 'the first registration carries what the unit already knew');
  assert.equal(writes, 1);

  await registry.renew(reg.id, {});
  await registry.renew(reg.id, { plugins });
  await registry.renew(reg.id, { health: 'unhealthy', healthReason: 'HTTP 500' });
  assert.equal(writes, 1, 'renewals that change nothing are keep-alives, not writes');

  const crashed = [{ name: 'monitor', type: 'general', state: 'restarting' as const, restarts: 3, lastExit: 'exit code 1' }];
  const renewed = await registry.renew(reg.id, { plugins: crashed });
  assert.equal(writes, 2);
  assert.deepEqual(renewed.plugins, crashed);
  assert.equal(renewed.healthReason, 'HTTP 500', 'a renewal without health keeps the reason');
  const well = await registry.renew(reg.id, { health: 'healthy', healthReason: 'HTTP 200' });
  assert.equal(writes, 3);
  assert.equal(well.health, 'healthy');
  assert.equal(well.healthReason, undefined, 'a reason is kept only while unhealthy');
  assert.deepEqual(registry.list()[0].plugins, crashed, 'plugins stay until the next report');
  assert.equal(registry.endpoints().get('default/shop')![1].health, 'healthy');
  await registry.renew(reg.id, 'draining');
  assert.equal(registry.list()[0].health, 'draining', 'the old renew(id, health) still works');

  const bad: [unknown, string][] = [
    [{ plugins: Array.from({ length: 33 }, (_, i) => ({ name: `p${i}`, type: 'general', state: 'running', restarts: 0 })) }, 'plugins'],
    [{ plugins: [{ name: 'x'.repeat(64), type: 'general', state: 'running', restarts: 0 }] }, 'plugins.0.name'],
    [{ plugins: [{ name: 'x', type: 'general', state: 'sleeping', restarts: 0 }] }, 'plugins.0.state'],
    [{ plugins: [{ name: 'x', type: 'general', state: 'running', restarts: -1 }] }, 'plugins.0.restarts'],
    [{ healthReason: 'x'.repeat(501) }, 'healthReason'],
    [{ health: 'fine' }, 'health'],
  ];
  for (const [update, field] of bad) {
    await assert.rejects(
      () => registry.renew(reg.id, update as never),
      (err: unknown) => err instanceof RegistrationError && err.code === 'E_REGISTRATION_INVALID' && err.field === field,
      field,
    );
  }
  await assert.rejects(() => registry.register({ service: 'shop', address: '127.0.0.1', port: 3001, plugins: [{ name: 'x', type: 'general', state: 'running', restarts: 0, extra: 1 }] }), RegistrationError);
});

test('registrations saved before plugins and health reasons were reported still load and renew', async (t) => {
  const { store, registry, clock, dataDir } = await setup(t);
  const reg = await registry.register({ service: 'shop', address: '127.0.0.1', port: 3000 });
  await registry.close();
  // What an older control plane wrote: no plugins, no healthReason.
  const file = `${dataDir}/registrations.json`;
  const saved = JSON.parse(fs.readFileSync(file, 'utf8')) as { registrations: Record<string, unknown>[] };
  assert.ok(saved.registrations.every((r) => !('plugins' in r) && !('healthReason' in r)));
  const restarted = new Registry({ store, dataDir, now: clock.now, sweepIntervalMs: 0 });
  t.after(() => restarted.close());
  const renewed = await restarted.renew(reg.id, {});
  assert.equal(renewed.plugins, undefined);
  assert.equal(renewed.health, 'healthy');
});
