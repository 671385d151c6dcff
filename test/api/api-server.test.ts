import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ApiServer } from '../../src/api/api-server';
import { EmbeddedStore } from '../../src/store/embedded-store';
import { Registry } from '../../src/registry/registry';
import { routeYaml, serviceYaml } from '../helpers/resources';
import { tempDir } from '../helpers/tmp';

async function startApi(t: import('node:test').TestContext) {
  const dataDir = tempDir(t);
  const store = await EmbeddedStore.open({ dataDir });
  const registry = new Registry({ store, sweepIntervalMs: 0 });
  const api = new ApiServer({ store, registry, nodes: () => [{ id: 'n1' }], snapshotErrors: () => [] });
  const port = await api.listen(0);
  t.after(async () => {
    await api.close();
    await registry.close();
    await store.close();
  });
  const call = async (method: string, path: string, body?: string, contentType = 'application/yaml') => {
    const res = await fetch(`http://127.0.0.1:${port}${path}`, { method, body, headers: body ? { 'content-type': contentType } : {} });
    return { status: res.status, body: (await res.json()) as any };
  };
  return { call, store, registry };
}

test('apply YAML, list, get and delete resources', async (t) => {
  const { call } = await startApi(t);
  const applied = await call('POST', '/api/v1/resources', serviceYaml('shop') + '---\n' + serviceYaml('cart'));
  assert.equal(applied.status, 200);
  assert.deepEqual(applied.body.applied.map((a: any) => a.key), ['Service/default/shop', 'Service/default/cart']);

  const list = await call('GET', '/api/v1/resources/services');
  assert.deepEqual(list.body.items.map((i: any) => i.metadata.name), ['cart', 'shop']);
  const one = await call('GET', '/api/v1/resources/svc/default/shop');
  assert.equal(one.body.spec.ports[0].port, 8080);
  assert.equal(one.body.status.source.type, 'api');
  assert.equal((await call('GET', '/api/v1/resources/Service/default/ghost')).status, 404);
  assert.equal((await call('GET', '/api/v1/resources/widgets')).status, 404);

  assert.equal((await call('DELETE', '/api/v1/resources/service/default/cart')).status, 200);
  assert.equal((await call('DELETE', '/api/v1/resources/service/default/cart')).status, 404);
  const status = await call('GET', '/api/v1/status');
  assert.equal(status.body.resources.Service, 1);
});

test('a bad document is refused with its document index and field; nothing of the request is applied', async (t) => {
  const { call, store } = await startApi(t);
  const res = await call('POST', '/api/v1/resources', serviceYaml('shop') + '---\n' + serviceYaml('cart', 0));
  assert.equal(res.status, 400);
  assert.equal(res.body.errors[0].code, 'E_SCHEMA');
  assert.equal(res.body.errors[0].document, 1);
  assert.equal(res.body.errors[0].path, 'spec.ports[0].port');
  assert.equal(store.list('Service').length, 0);

  const dangling = await call('POST', '/api/v1/resources', serviceYaml('shop') + '---\n' + routeYaml('r', 'shop', [['ghost', 1]]));
  assert.equal(dangling.status, 400);
  assert.equal(dangling.body.errors[0].code, 'E_REFERENCE');
  assert.equal(store.list('Service').length, 0);

  const json = await call('POST', '/api/v1/resources', '{"kind": "Service"', 'application/json');
  assert.equal(json.status, 400);
  assert.match(json.body.error, /malformed JSON/);
});

test('registrations: register, list endpoints, renew, deregister', async (t) => {
  const { call } = await startApi(t);
  await call('POST', '/api/v1/resources', serviceYaml('shop'));
  const reg = await call('POST', '/api/v1/registrations', JSON.stringify({ service: 'shop', address: '127.0.0.1', port: 3000 }), 'application/json');
  assert.equal(reg.status, 201);
  const endpoints = await call('GET', '/api/v1/endpoints?service=shop');
  assert.deepEqual(endpoints.body.services['default/shop'].map((e: any) => e.ports.p), [3000]);
  const renewed = await call('PUT', `/api/v1/registrations/${reg.body.id}`, JSON.stringify({ health: 'draining' }), 'application/json');
  assert.equal(renewed.body.health, 'draining');
  assert.equal((await call('DELETE', `/api/v1/registrations/${reg.body.id}`)).status, 200);
  assert.equal((await call('PUT', `/api/v1/registrations/${reg.body.id}`, '{}', 'application/json')).status, 404);
  const bad = await call('POST', '/api/v1/registrations', JSON.stringify({ service: 'shop', address: 'x' }), 'application/json');
  assert.equal(bad.status, 400);
  assert.equal(bad.body.field, 'address');
});

test('unknown paths and methods get 404 and 405', async (t) => {
  const { call } = await startApi(t);
  assert.equal((await call('GET', '/api/v1/nope')).status, 404);
  assert.equal((await call('PATCH', '/api/v1/resources')).status, 405);
  assert.deepEqual((await call('GET', '/api/v1/nodes')).body, { items: [{ id: 'n1' }] });
});
