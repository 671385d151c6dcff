// `weft validate -f <file>`: a file is validated with the other YAML files of
// its directory, or with a running mesh's resources, or alone; errors are the
// file's own (and, against a mesh, those it causes); the result names the context.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { parseDocuments } from '../../src/config';
import { validateInContext } from '../../src/config/validate-context';
import { routeYaml, serviceYaml } from '../helpers/resources';
import { tempDir } from '../helpers/tmp';

const ROOT = path.resolve(__dirname, '../../..');
const DEMO = path.join(ROOT, 'examples', 'mesh');

function write(dir: string, files: Record<string, string>): void {
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
}

test("the demo's routes.yaml is valid with its directory (alone it names Services of services.yaml)", async () => {
  const file = path.join(DEMO, 'routes.yaml');
  const inDir = await validateInContext(file, { kind: 'directory' });
  assert.deepEqual(inDir.errors.map((e) => e.message), []);
  assert.equal(inDir.context, `validated ${file} with the 4 other files of ${DEMO}/ (plugins.yaml, policies.yaml, security.yaml, services.yaml)`);
  assert.ok(inDir.resources.length > 0);

  const alone = await validateInContext(file, { kind: 'alone' });
  assert.ok(alone.errors.length > 0 && alone.errors.every((e) => e.code === 'E_REFERENCE'), alone.errors.map((e) => e.message).join('\n'));
  assert.match(alone.context, /alone/);
});

test("errors are the file's own: a broken sibling is left out and named, a duplicate of a sibling's is the file's", async () => {
  const dir = tempDir();
  write(dir, {
    'a-services.yaml': serviceYaml('shop') + '---\n' + serviceYaml('cart'),
    'b-broken.yaml': serviceYaml('broken', 70000),
    'c-route.yaml': routeYaml('split', 'shop', [['cart', 1], ['shop', 3]]) + '---\n' + serviceYaml('shop'),
  });
  const r = await validateInContext(path.join(dir, 'c-route.yaml'), { kind: 'directory' });
  assert.deepEqual(
    r.errors.map((e) => [e.code, e.file, e.document]),
    [['E_DUPLICATE', path.join(dir, 'c-route.yaml'), 1]],
    r.errors.map((e) => e.message).join('\n'),
  );
  assert.deepEqual(r.brokenSiblings, [path.join(dir, 'b-broken.yaml')]);
  // The duplicate is reported on the file even though the sibling sorts first.
  const again = await validateInContext(path.join(dir, 'a-services.yaml'), { kind: 'directory' });
  assert.deepEqual(again.errors.map((e) => [e.code, e.file]), [['E_DUPLICATE', path.join(dir, 'a-services.yaml')]]);
});

test('a directory is one set, as before; an unreadable path is an E_IO error', async () => {
  const dir = tempDir();
  write(dir, { 'a.yaml': serviceYaml('shop'), 'b.yaml': routeYaml('r', 'shop', [['ghost', 1]]) });
  const r = await validateInContext(dir, { kind: 'directory' });
  assert.equal(r.context, `validated the 2 files of ${dir} as one set`);
  assert.deepEqual(r.errors.map((e) => e.code), ['E_REFERENCE']);
  const missing = await validateInContext(path.join(dir, 'nope.yaml'), { kind: 'directory' });
  assert.deepEqual(missing.errors.map((e) => e.code), ['E_IO']);
});

test("against a mesh: the file's resources replace the mesh's of the same name; errors it causes elsewhere count, old ones do not", async () => {
  const dir = tempDir();
  const mesh = parseDocuments(
    [serviceYaml('shop'), serviceYaml('cart'), routeYaml('old', 'shop', [['cart', 1]]), routeYaml('stale', 'shop', [['gone', 1]])].join('---\n'),
    'mesh.yaml',
  ).resources;
  assert.equal(mesh.length, 4);
  write(dir, { 'route.yaml': routeYaml('split', 'shop', [['cart', 1]]), 'cart.yaml': serviceYaml('cart', 9090) });
  const ok = await validateInContext(path.join(dir, 'route.yaml'), { kind: 'mesh', resources: mesh, label: 'http://mesh:15000' });
  assert.deepEqual(ok.errors.map((e) => e.message), []);
  assert.equal(ok.context, `validated ${path.join(dir, 'route.yaml')} against the mesh at http://mesh:15000 (4 resources there)`);
  // cart on port 9090 leaves the mesh's route "old" (backendRef port 8080) dangling: the file's doing.
  const moved = await validateInContext(path.join(dir, 'cart.yaml'), { kind: 'mesh', resources: mesh, label: 'http://mesh:15000' });
  assert.deepEqual(moved.errors.map((e) => [e.code, e.resource?.name, e.path]), [['E_REFERENCE', 'old', 'spec.rules[0].backendRefs[0].port']], moved.errors.map((e) => e.message).join('\n'));
  // "stale" names a Service that was never there: the mesh's own error, not the file's.
});
