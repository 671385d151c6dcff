import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EmbeddedStore } from '../../src/store/embedded-store';
import { ConfigRejectedError, type WatchEvent } from '../../src/store/store';
import type { Resource } from '../../src/config/kinds';
import { routeYaml, serviceYaml } from '../helpers/resources';
import { tempDir, waitFor } from '../helpers/tmp';

async function openStore(t: import('node:test').TestContext, files: Record<string, string> = {}) {
  const configDir = tempDir(t);
  const dataDir = tempDir(t);
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(configDir, name), text);
  const store = await EmbeddedStore.open({ configDir, dataDir, pollIntervalMs: 200 });
  t.after(() => store.close());
  return { store, configDir, dataDir };
}

function service(name: string, port = 8080): Resource<'Service'> {
  return {
    apiVersion: 'weft.dev/v1',
    kind: 'Service',
    metadata: { name, namespace: 'default' },
    spec: { ports: [{ name: 'p', port, protocol: 'http' }] },
  };
}

test('loads every YAML file of the config directory, naming the file and document of each resource', async (t) => {
  const { store } = await openStore(t, {
    'a.yaml': serviceYaml('shop') + '---\n' + serviceYaml('cart'),
    'b.yml': routeYaml('shop-split', 'shop', [['shop', 1], ['cart', 1]]),
    'notes.txt': 'not config',
  });
  assert.deepEqual(store.list('Service').map((s) => s.resource.metadata.name), ['cart', 'shop']);
  const cart = store.get('Service', 'default', 'cart')!;
  assert.equal(cart.source.type, 'file');
  assert.match((cart.source as { file: string }).file, /a\.yaml$/);
  assert.equal((cart.source as { document: number }).document, 1);
  assert.equal(store.list('HTTPRoute').length, 1);
  assert.deepEqual(store.configErrors(), []);
});

test('an edit in the config directory is applied within a second', async (t) => {
  const { store, configDir } = await openStore(t, { 'a.yaml': serviceYaml('shop') });
  const events: WatchEvent[] = [];
  store.watch('*', (e) => events.push(e));
  fs.writeFileSync(path.join(configDir, 'b.yaml'), serviceYaml('cart'));
  const elapsed = await waitFor(() => store.get('Service', 'default', 'cart') !== undefined, 1000, 'new file applied');
  assert.ok(elapsed < 1000);
  assert.deepEqual(events.map((e) => [e.type, e.key]), [['put', 'Service/default/cart']]);

  fs.rmSync(path.join(configDir, 'b.yaml'));
  await waitFor(() => store.get('Service', 'default', 'cart') === undefined, 1000, 'removed file applied');
  assert.deepEqual(events.at(-1), { type: 'delete', kind: 'Service', key: 'Service/default/cart' });
});

test('an editor-style save (a new file renamed over the old) is seen without polling', async (t) => {
  const configDir = tempDir(t);
  const file = path.join(configDir, 'svc.yaml');
  fs.mkdirSync(path.join(configDir, 'sub'));
  fs.writeFileSync(file, serviceYaml('shop', 8080));
  const store = await EmbeddedStore.open({ configDir, dataDir: tempDir(t), pollIntervalMs: 3_600_000 });
  t.after(() => store.close());
  fs.writeFileSync(file + '.swp', serviceYaml('shop', 9090));
  fs.renameSync(file + '.swp', file);
  await waitFor(() => store.get('Service', 'default', 'shop')!.resource.spec.ports[0].port === 9090, 1000, 'rename seen');
  // A file in a subdirectory, and one in a directory made after start.
  fs.writeFileSync(path.join(configDir, 'sub/cart.yaml'), serviceYaml('cart'));
  await waitFor(() => store.get('Service', 'default', 'cart') !== undefined, 1000, 'subdirectory file seen');
  fs.mkdirSync(path.join(configDir, 'later'));
  fs.writeFileSync(path.join(configDir, 'later/pay.yaml'), serviceYaml('pay'));
  await waitFor(() => store.get('Service', 'default', 'pay') !== undefined, 1000, 'new directory watched');
});

test('a file written in place is not applied while it is empty or cut short, only once it has settled', async (t) => {
  const { store, configDir } = await openStore(t, { 'a.yaml': serviceYaml('shop', 8080) + '---\n' + serviceYaml('cart') });
  const file = path.join(configDir, 'a.yaml');
  const events: WatchEvent[] = [];
  store.watch('*', (e) => events.push(e));
  // What `cat new.yaml > a.yaml` leaves for a moment: an empty file (valid YAML, no resources).
  fs.truncateSync(file, 0);
  await store.rescan();
  assert.deepEqual(store.list('Service').map((s) => s.resource.metadata.name), ['cart', 'shop'], 'the truncated file removed nothing');
  // The first document written, the second not yet.
  fs.writeFileSync(file, serviceYaml('shop', 9090));
  await store.rescan();
  assert.ok(store.get('Service', 'default', 'cart'), 'the half-written file removed nothing');
  assert.equal(store.get('Service', 'default', 'shop')!.resource.spec.ports[0].port, 8080);
  fs.appendFileSync(file, '---\n' + serviceYaml('cart'));
  await waitFor(() => store.get('Service', 'default', 'shop')!.resource.spec.ports[0].port === 9090, 2000, 'the whole file applied');
  assert.ok(store.get('Service', 'default', 'cart'));
  assert.deepEqual(events.map((e) => [e.type, e.key]), [['put', 'Service/default/shop']], 'one change, no removal on the way');
  assert.deepEqual(store.configErrors(), []);
});

test('a file removed and put back before it settled removes nothing', async (t) => {
  const { store, configDir } = await openStore(t, { 'a.yaml': serviceYaml('shop'), 'b.yaml': serviceYaml('cart') });
  const events: WatchEvent[] = [];
  store.watch('*', (e) => events.push(e));
  const text = fs.readFileSync(path.join(configDir, 'a.yaml'), 'utf8');
  fs.rmSync(path.join(configDir, 'a.yaml'));
  await store.rescan();
  assert.ok(store.get('Service', 'default', 'shop'), 'the removal has not settled');
  fs.writeFileSync(path.join(configDir, 'a.yaml'), text);
  // A later change settles and applies; the removal on the way never did.
  fs.writeFileSync(path.join(configDir, 'b.yaml'), serviceYaml('cart', 9090));
  await waitFor(() => store.get('Service', 'default', 'cart')!.resource.spec.ports[0].port === 9090, 2000, 'the later change applied');
  assert.ok(store.get('Service', 'default', 'shop'));
  assert.deepEqual(events.map((e) => [e.type, e.key]), [['put', 'Service/default/cart']]);
});

test('symlinked files are loaded, as in a Kubernetes ConfigMap mount', async (t) => {
  const configDir = tempDir(t);
  const target = path.join(tempDir(t), 'real.yaml');
  fs.writeFileSync(target, serviceYaml('linked'));
  fs.symlinkSync(target, path.join(configDir, 'linked.yaml'));
  const store = await EmbeddedStore.open({ configDir, dataDir: tempDir(t) });
  t.after(() => store.close());
  assert.ok(store.get('Service', 'default', 'linked'));
});

test('a malformed edit is rejected with its file and the last good content keeps serving', async (t) => {
  const { store, configDir } = await openStore(t, { 'a.yaml': serviceYaml('shop', 8080) });
  const file = path.join(configDir, 'a.yaml');
  fs.writeFileSync(file, serviceYaml('shop', 8080) + '---\nkind: [unclosed\n');
  await waitFor(() => store.configErrors().length > 0, 1500, 'error recorded');
  const [err] = store.configErrors();
  assert.equal(err.code, 'E_YAML');
  assert.match(err.file!, /a\.yaml$/);
  assert.equal(err.document, 1);
  assert.equal(store.get('Service', 'default', 'shop')!.resource.spec.ports[0].port, 8080);

  // A schema error: port out of range. Still rejected whole; still serving the old port.
  fs.writeFileSync(file, serviceYaml('shop', 70000));
  await waitFor(() => store.configErrors()[0]?.code === 'E_SCHEMA', 1500, 'schema error recorded');
  assert.equal(store.configErrors()[0].path, 'spec.ports[0].port');
  assert.equal(store.get('Service', 'default', 'shop')!.resource.spec.ports[0].port, 8080);

  fs.writeFileSync(file, serviceYaml('shop', 9090));
  await waitFor(() => store.get('Service', 'default', 'shop')!.resource.spec.ports[0].port === 9090, 1500, 'fix applied');
  assert.deepEqual(store.configErrors(), []);
});

test('a dangling reference is rejected until the service it names appears in another file', async (t) => {
  const { store, configDir } = await openStore(t, { 'svc.yaml': serviceYaml('shop') });
  fs.writeFileSync(path.join(configDir, 'route.yaml'), routeYaml('split', 'shop', [['shop', 1], ['cart', 1]]));
  await waitFor(() => store.configErrors().length > 0, 1500, 'reference error');
  assert.equal(store.configErrors()[0].code, 'E_REFERENCE');
  assert.equal(store.list('HTTPRoute').length, 0);

  fs.writeFileSync(path.join(configDir, 'svc2.yaml'), serviceYaml('cart'));
  await waitFor(() => store.list('HTTPRoute').length === 1, 1500, 'route accepted once cart exists');
  assert.deepEqual(store.configErrors(), []);
});

test('one bad file does not hold back an unrelated good file changed at the same time', async (t) => {
  const { store, configDir } = await openStore(t, { 'svc.yaml': serviceYaml('shop') });
  fs.writeFileSync(path.join(configDir, 'bad.yaml'), routeYaml('split', 'shop', [['ghost', 1]]));
  fs.writeFileSync(path.join(configDir, 'good.yaml'), serviceYaml('cart'));
  await waitFor(() => store.get('Service', 'default', 'cart') !== undefined, 1500, 'good file applied');
  assert.equal(store.list('HTTPRoute').length, 0);
  assert.match(store.configErrors()[0].file!, /bad\.yaml$/);
});

test('removing a service that a route still uses is rejected and the service keeps serving', async (t) => {
  const { store, configDir } = await openStore(t, {
    'svc.yaml': serviceYaml('shop'),
    'cart.yaml': serviceYaml('cart'),
    'route.yaml': routeYaml('split', 'shop', [['cart', 1]]),
  });
  fs.rmSync(path.join(configDir, 'cart.yaml'));
  await waitFor(() => store.configErrors().length > 0, 1500, 'removal rejected');
  assert.ok(store.get('Service', 'default', 'cart'), 'cart still served');
  assert.ok(store.configErrors().length > 0);
});

test('API-applied resources survive a restart; the data file is valid JSON', async (t) => {
  const dataDir = tempDir(t);
  const first = await EmbeddedStore.open({ dataDir });
  await first.apply([service('shop'), service('cart')]);
  await first.close();
  const text = fs.readFileSync(path.join(dataDir, 'resources.json'), 'utf8');
  assert.doesNotThrow(() => JSON.parse(text));
  assert.deepEqual(fs.readdirSync(dataDir).filter((f) => f.endsWith('.tmp')), []);

  const second = await EmbeddedStore.open({ dataDir });
  t.after(() => second.close());
  assert.deepEqual(second.list('Service').map((s) => s.resource.metadata.name), ['cart', 'shop']);
  assert.equal(second.get('Service', 'default', 'shop')!.source.type, 'api');
});

test('apply is all or nothing, and never overrides a resource owned by a file', async (t) => {
  const { store } = await openStore(t, { 'svc.yaml': serviceYaml('shop') });
  const route: Resource<'HTTPRoute'> = {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name: 'r', namespace: 'default' },
    spec: { parentRefs: [{ kind: 'Service', name: 'shop' }], rules: [{ backendRefs: [{ kind: 'Service', name: 'ghost', weight: 1 }] }] },
  };
  await assert.rejects(store.apply([service('cart'), route]), (err: unknown) => {
    assert.ok(err instanceof ConfigRejectedError);
    assert.equal(err.errors[0].code, 'E_REFERENCE');
    return true;
  });
  assert.equal(store.get('Service', 'default', 'cart'), undefined, 'nothing of the batch applied');

  await assert.rejects(store.apply([service('shop', 9999)]), (err: unknown) => {
    assert.ok(err instanceof ConfigRejectedError);
    assert.equal(err.errors[0].code, 'E_CONFLICT');
    assert.match(err.message, /svc\.yaml/);
    return true;
  });
  assert.equal(store.get('Service', 'default', 'shop')!.resource.spec.ports[0].port, 8080);
});

test('deleting a service still referenced is refused; deleting an unused one works', async (t) => {
  const dataDir = tempDir(t);
  const store = await EmbeddedStore.open({ dataDir });
  t.after(() => store.close());
  const route: Resource<'HTTPRoute'> = {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name: 'r', namespace: 'default' },
    spec: { parentRefs: [{ kind: 'Service', name: 'shop' }], rules: [{ backendRefs: [{ kind: 'Service', name: 'cart', weight: 1 }] }] },
  };
  await store.apply([service('shop'), service('cart'), service('spare'), route]);
  await assert.rejects(store.delete('Service', 'default', 'cart'), ConfigRejectedError);
  assert.ok(store.get('Service', 'default', 'cart'));
  assert.equal(await store.delete('Service', 'default', 'spare'), true);
  assert.equal(await store.delete('Service', 'default', 'spare'), false);
});
