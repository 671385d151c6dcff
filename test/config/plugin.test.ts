// The Plugin kind: what a bad document is told (file, document, field), and
// how its config groups resolve for a service (config/plugin-config.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resolvePlugins, type Resource } from '../../src/config';
import { resolveFilterPlugins } from '../../src/config/plugin-config';
import { BASE_KEYS, keys, loadYaml, onlyError, withBase } from './support';

/** A Plugin document; BASE's Services are web (ports 80, 9901), db and greeter. */
function plugin(name: string, spec: string): string {
  return `apiVersion: weft.dev/v1\nkind: Plugin\nmetadata: { name: ${name} }\nspec:\n${spec}`;
}

async function expectBad(spec: string, code: string, path: string, detail?: RegExp): Promise<void> {
  const { file, resources, errors } = await loadYaml(withBase(plugin('bad', spec)));
  const e = onlyError(errors, { code: code as never, file, document: 3, path });
  if (detail) assert.match(e.message, detail);
  assert.match(e.message, /Plugin default\/bad/, 'the message names the resource');
  assert.deepEqual(keys(resources), BASE_KEYS, 'the bad document yields no resource');
}

const OK = '  type: general\n  command: [node, agent.js]\n  targetRefs: [{ kind: Service, name: web }]\n';

test('a Plugin needs a type, a non-empty command and something to attach to', async () => {
  await expectBad('  type: sidecar\n  command: [x]\n  targetRefs: [{ name: web }]', 'E_SCHEMA', 'spec.type', /init|general/);
  await expectBad('  type: init\n  command: []\n  targetRefs: [{ name: web }]', 'E_SCHEMA', 'spec.command');
  await expectBad('  type: init\n  command: [""]\n  targetRefs: [{ name: web }]', 'E_SCHEMA', 'spec.command', /command\[0\]/);
  await expectBad('  type: init\n  targetRefs: [{ name: web }]', 'E_INVALID', 'spec.command', /required for init plugins/);
  await expectBad('  type: init\n  command: [x]', 'E_INVALID', 'spec', /targetRefs or selector/);
  await expectBad(OK + '  sidecar: true', 'E_SCHEMA', 'spec.sidecar');
  await expectBad(OK.replace('name: web', 'name: nope'), 'E_REFERENCE', 'spec.targetRefs[0].name', /Service default\/nope does not exist/);
  await expectBad(OK + '  env: { "1BAD": x }', 'E_SCHEMA', 'spec.env["1BAD"]');
});

test('a placeholder a config group does not resolve is an error naming the key', async () => {
  await expectBad(OK + '  config:\n    global: { url: "http://x:${port}/" }', 'E_INVALID', 'spec.config.global.url', /unknown placeholder \$\{port\} in config\.global/);
  await expectBad(OK + '  config:\n    perPort: { url: "${prot}" }', 'E_INVALID', 'spec.config.perPort.url', /\$\{prot\}.*\$\{port\}/);
  await expectBad(OK + '  config:\n    perDependency: { to: "${port}" }', 'E_INVALID', 'spec.config.perDependency.to', /\$\{dependency\}/);
});

test('fields of the other plugin type, and a backoff whose max is below its min, are errors', async () => {
  await expectBad(OK + '  order: 2', 'E_INVALID', 'spec.order', /init plugins/);
  await expectBad(OK.replace('general', 'init') + '  restartPolicy: Always', 'E_INVALID', 'spec.restartPolicy');
  await expectBad(OK + '  restartPolicy: Sometimes', 'E_SCHEMA', 'spec.restartPolicy');
  await expectBad(OK + '  restartBackoff: { min: 10s, max: 2s }', 'E_INVALID', 'spec.restartBackoff.max', /shorter than min 10s/);
  await expectBad(OK + '  restartBackoff: { min: 1m }', 'E_INVALID', 'spec.restartBackoff.min', /defaults to 30s/);
  await expectBad(OK + '  restartBackoff: { min: 0s }', 'E_INVALID', 'spec.restartBackoff.min', /longer than 0/);
  await expectBad(OK + '  restartBackoff: { min: soon }', 'E_SCHEMA', 'spec.restartBackoff.min');
});

test('config resolves per port and per dependency; targetRefs and selectors attach; init plugins come first by order, then name', async () => {
  const svc = `apiVersion: weft.dev/v1\nkind: Service\nmetadata: { name: shop, labels: { tier: front } }\nspec:\n  ports:\n    - { name: http, port: 8080, protocol: http }\n    - { name: grpc, port: 9090, protocol: grpc }\n  dependsOn: [{ name: db }, { name: greeter }]`;
  const { resources, errors } = await loadYaml(
    withBase(
      svc,
      plugin('mon', '  type: general\n  command: [mon]\n  selector: { matchLabels: { tier: front } }\n  config:\n    global: { id: "${namespace}/${service}" }\n    perPort: { probe: "${portName}=127.0.0.1:${port}" }\n    perDependency: { upstream: "${dependency}.${namespace}" }'),
      plugin('zz-first', '  type: init\n  order: -1\n  command: [a]\n  targetRefs: [{ name: shop }]'),
      plugin('b-second', '  type: init\n  command: [b]\n  targetRefs: [{ name: shop }]'),
      plugin('a-second', '  type: init\n  command: [c]\n  targetRefs: [{ name: shop }]'),
      plugin('other', '  type: general\n  command: [x]\n  selector: { matchLabels: { tier: back } }'),
    ),
  );
  assert.deepEqual(errors.map((e) => e.message), []);
  const shop = resources.find((r) => r.kind === 'Service' && r.metadata.name === 'shop') as Resource<'Service'>;
  const resolved = resolvePlugins(resources.filter((r) => r.kind === 'Plugin') as Resource<'Plugin'>[], shop);
  assert.deepEqual(resolved.map((p) => p.name), ['zz-first', 'a-second', 'b-second', 'mon']);
  const mon = resolved[3];
  assert.deepEqual(mon.config, {
    global: { id: 'default/shop' },
    perPort: [
      { name: 'http', port: 8080, protocol: 'http', values: { probe: 'http=127.0.0.1:8080' } },
      { name: 'grpc', port: 9090, protocol: 'grpc', values: { probe: 'grpc=127.0.0.1:9090' } },
    ],
    perDependency: [
      { service: 'db', namespace: 'default', values: { upstream: 'db.default' } },
      { service: 'greeter', namespace: 'default', values: { upstream: 'greeter.default' } },
    ],
  });
  assert.equal(mon.restartPolicy, 'Always', 'the default for a general plugin');
  assert.deepEqual(mon.restartBackoffMs, { min: 1000, max: 30_000 });
  assert.equal(resolved[0].restartPolicy, 'Never', 'an init plugin runs once');
});

const FILTER = '  type: http-filter\n  module: /opt/filters/tag.js\n  targetRefs: [{ kind: Service, name: web }]\n';

test('an http-filter plugin is a module: module required, process fields refused by name, global config only', async () => {
  await expectBad('  type: http-filter\n  targetRefs: [{ name: web }]', 'E_INVALID', 'spec.module', /required for an http-filter plugin/);
  await expectBad(FILTER.replace('/opt/filters/tag.js', './tag.js'), 'E_INVALID', 'spec.module', /absolute path or an npm package name/);
  await expectBad(FILTER + '  command: [node, x.js]', 'E_INVALID', 'spec.command', /init and general plugins/);
  await expectBad(FILTER + '  env: { A: b }', 'E_INVALID', 'spec.env');
  await expectBad(FILTER + '  restartPolicy: Always', 'E_INVALID', 'spec.restartPolicy');
  await expectBad(FILTER + '  config:\n    perPort: { a: b }', 'E_INVALID', 'spec.config.perPort', /config\.global only/);
  await expectBad(FILTER + '  direction: sideways', 'E_SCHEMA', 'spec.direction');
  await expectBad(OK + '  module: /x.js', 'E_INVALID', 'spec.module', /for http-filter plugins/);
  await expectBad(OK + '  direction: inbound', 'E_INVALID', 'spec.direction', /for http-filter plugins/);
});

test('http-filter plugins are the sidecar\'s: weft run\'s list leaves them out', async () => {
  const { resources, errors } = await loadYaml(
    withBase(
      plugin('tagger', FILTER + '  order: 3\n  direction: outbound\n  config:\n    global: { tag: "${service}" }'),
      plugin('scoped', '  type: http-filter\n  module: "@acme/weft-filter/deny"\n  targetRefs: [{ name: web }]'),
      plugin('mon', OK),
    ),
  );
  assert.deepEqual(errors.map((e) => e.message), []);
  const web = resources.find((r) => r.kind === 'Service' && r.metadata.name === 'web') as Resource<'Service'>;
  const plugins = resources.filter((r) => r.kind === 'Plugin') as Resource<'Plugin'>[];
  assert.deepEqual(resolvePlugins(plugins, web).map((p) => p.name), ['mon']);
  assert.deepEqual(resolveFilterPlugins(plugins, web, 'outbound'), [
    { name: 'tagger', namespace: 'default', module: '/opt/filters/tag.js', direction: 'outbound', order: 3, config: { tag: 'web' } },
  ]);
  assert.deepEqual(resolveFilterPlugins(plugins, web, 'inbound').map((p) => p.module), ['@acme/weft-filter/deny']);
});

test('the built-in log and backup plugins’ settings are checked at apply: a bad sink, an unknown setting, a malformed number or duration, nothing to back up', async () => {
  const log = (global: string, type = 'general') => `  type: ${type}\n  command: [weft, plugin, log]\n  targetRefs: [{ name: web }]\n  config:\n    global: ${global}`;
  const backup = (global: string, type = 'general') => `  type: ${type}\n  command: [weft, plugin, backup${type === 'init' ? ', restore' : ''}]\n  targetRefs: [{ name: web }]\n  config:\n    global: ${global}`;
  const good = async (spec: string) => assert.deepEqual((await loadYaml(withBase(plugin('good', spec)))).errors, []);
  await good(log('{ sink: "file:logs/${service}.ndjson", files: "a.log, b.log", bufferLines: "100", batchLines: "10", flushInterval: 250ms }'));
  await good(log('{ sink: "otlp+https://collector:4318/v1/logs", token: t0k }'));
  await good(backup('{ dir: backups, paths: "data, state.json", every: 10m, keep: "7" }'));
  await good(backup('{ dir: backups, restoreCommand: "pg_restore $WEFT_BACKUP_FILE" }', 'init'));

  await expectBad(log('{ sink: "syslog://x" }'), 'E_INVALID', 'spec.config.global.sink', /file:<path>, http\(s\):\/\/<url>.*otlp\+http/);
  await expectBad(log('{}'), 'E_INVALID', 'spec.config.global.sink');
  await expectBad(log('{ sink: "file:x", buffer: "5" }'), 'E_INVALID', 'spec.config.global.buffer', /the log plugin has no setting "buffer"/);
  await expectBad(log('{ sink: "file:x", bufferLines: "lots" }'), 'E_INVALID', 'spec.config.global.bufferLines', /a whole number/);
  await expectBad(log('{ sink: "file:x", bufferLines: "0" }'), 'E_INVALID', 'spec.config.global.bufferLines', /between 1 and/);
  await expectBad(log('{ sink: "file:x", flushInterval: 0s }'), 'E_INVALID', 'spec.config.global.flushInterval', /longer than 0/);
  await expectBad(log('{ sink: "file:x" }', 'init'), 'E_INVALID', 'spec.type', /runs as general, not init/);
  await expectBad(backup('{ dir: backups }'), 'E_INVALID', 'spec.config.global', /needs paths \(archived with tar\) or command/);
  await expectBad(backup('{ dir: backups, command: "pg_dump > $WEFT_BACKUP_FILE" }', 'init'), 'E_INVALID', 'spec.config.global', /or restoreCommand/);
  await expectBad(backup('{ dir: backups, paths: data, every: daily }'), 'E_INVALID', 'spec.config.global.every', /a duration/);
  await expectBad(backup('{ paths: data }'), 'E_INVALID', 'spec.config.global.dir');
});
