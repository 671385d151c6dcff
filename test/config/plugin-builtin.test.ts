// Plugin fields beyond a command: weft's built-in plugins (command
// [weft, plugin, <name>]) have their config.global checked against the
// plugin's own schema when applied; resources and configReload are checked
// and resolved.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resolvePlugins, type Resource } from '../../src/config';
import { BASE_KEYS, keys, loadYaml, onlyError, withBase } from './support';

function plugin(spec: string): string {
  return `apiVersion: weft.dev/v1\nkind: Plugin\nmetadata: { name: bad }\nspec:\n${spec}`;
}

async function expectBad(spec: string, code: string, path: string, detail?: RegExp): Promise<void> {
  const { file, resources, errors } = await loadYaml(withBase(plugin(spec)));
  const e = onlyError(errors, { code: code as never, file, document: 3, path });
  if (detail) assert.match(e.message, detail);
  assert.deepEqual(keys(resources), BASE_KEYS, 'the bad document yields no resource');
}

const builtin = (name: string, type = 'general') => `  type: ${type}\n  command: [weft, plugin, ${name}]\n  targetRefs: [{ kind: Service, name: web }]\n`;
const monitorOk = builtin('monitor') + '  config: { global: { probe: "tcp:127.0.0.1:80" } }\n';

test("a built-in plugin's config is checked against its schema, each error naming the key", async () => {
  await expectBad(builtin('logs'), 'E_INVALID', 'spec.command[2]', /no built-in plugin "logs".*log, backup, monitor/s);
  await expectBad(builtin('log'), 'E_INVALID', 'spec.config.global.sink', /the log plugin needs sink/);
  await expectBad(builtin('log') + '  config: { global: { sink: "ftp://x" } }', 'E_INVALID', 'spec.config.global.sink', /otlp\+http/);
  await expectBad(builtin('log') + '  config: { global: { sink: "file:/tmp/x", snik: "y" } }', 'E_INVALID', 'spec.config.global.snik', /no setting "snik"/);
  await expectBad(builtin('log') + '  config: { global: { sink: "file:/tmp/x", flushInterval: "soon" } }', 'E_INVALID', 'spec.config.global.flushInterval', /duration/);
  await expectBad(builtin('log', 'init') + '  config: { global: { sink: "file:/tmp/x" } }', 'E_INVALID', 'spec.type', /general/);
  await expectBad(builtin('monitor') + '  config: { global: { probe: "http://127.0.0.1:80/", failureThreshold: "0" } }', 'E_INVALID', 'spec.config.global.failureThreshold', /between 1 and 100/);
  await expectBad(builtin('backup') + '  config: { global: { dir: backups } }', 'E_INVALID', 'spec.config.global', /paths .* or command/);
  await expectBad(builtin('backup', 'init') + '  config: { global: { dir: backups, command: "tar c ." } }', 'E_INVALID', 'spec.config.global', /restoreCommand/);
  // Placeholders are filled before the check: a sink per service is fine.
  const { errors } = await loadYaml(withBase(plugin(builtin('log') + '  config: { global: { sink: "file:/var/log/${namespace}-${service}.ndjson" } }')));
  assert.deepEqual(errors, []);
});

test('resources and configReload: checked, then resolved to numbers and a default by command', async () => {
  await expectBad(monitorOk + '  resources: { memory: 64MB }', 'E_SCHEMA', 'spec.resources.memory');
  await expectBad(monitorOk + '  resources: { memory: "1Mi" }', 'E_INVALID', 'spec.resources.memory', /at least 4Mi/);
  await expectBad(monitorOk + '  resources: { cpu: "1m" }', 'E_INVALID', 'spec.resources.cpu', /at least 10m/);
  await expectBad(monitorOk + '  resources: { pids: 0 }', 'E_SCHEMA', 'spec.resources.pids');
  await expectBad('  type: init\n  command: [x]\n  targetRefs: [{ name: web }]\n  configReload: Signal', 'E_INVALID', 'spec.configReload');
  const { resources, errors } = await loadYaml(
    withBase(
      plugin(builtin('monitor') + '  config: { global: { probe: "tcp:127.0.0.1:80" } }\n  resources: { memory: 64Mi, cpu: "0.25", pids: 50 }') +
        '\n---\n' +
        'apiVersion: weft.dev/v1\nkind: Plugin\nmetadata: { name: custom }\nspec:\n  type: general\n  command: [node, agent.js]\n  targetRefs: [{ name: web }]\n  resources: { cpu: 500m }\n',
    ),
  );
  assert.deepEqual(errors, []);
  const web = resources.find((r) => r.kind === 'Service' && r.metadata.name === 'web') as Resource<'Service'>;
  const [monitor, custom] = resolvePlugins(resources.filter((r) => r.kind === 'Plugin') as Resource<'Plugin'>[], web);
  assert.deepEqual([monitor.resources, monitor.configReload], [{ memoryBytes: 64 * 1024 * 1024, cpuMillis: 250, pids: 50 }, 'Signal'], 'a built-in takes SIGHUP');
  assert.deepEqual([custom.resources, custom.configReload], [{ cpuMillis: 500 }, 'Restart'], 'another program is restarted');
});
