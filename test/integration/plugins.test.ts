// Plugins under `weft run`, end to end: a real control plane serving the
// Plugin kind, the real CLI as a child process, real plugin and app processes.
// Init plugins run in order before the app (which sees what they wrote); a
// failing one stops the unit before the app; a general plugin gets the app's
// environment and its resolved config, runs beside the app and stops after
// it, or with it when weft run is killed; a crashing one is restarted with
// backoff and counted. Then the API's resolved config and who may read it.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as path from 'node:path';
import { startControlPlane, type ControlPlane } from '../../src/control/control-plane';
import { silentLogger } from '../../src/observe/log';
import { freePort } from '../../src/run/free-port';
import { serviceYaml } from '../helpers/resources';
import { tempDir, waitFor } from '../helpers/tmp';

const ROOT = path.resolve(__dirname, '../../..');
const BIN = path.join(ROOT, 'bin/weft.js');
const NODE = process.execPath;
let cp: ControlPlane;
let scripts: string;
const started: ChildProcess[] = [];

function pluginYaml(name: string, spec: string): string {
  return `apiVersion: weft.dev/v1\nkind: Plugin\nmetadata: { name: ${name} }\nspec:\n${spec}\n`;
}

/** The plugins' and apps' programs, as files (a command in YAML stays readable). */
const PROGRAMS: Record<string, string> = {
  // Appends its argument to init.log in its working directory (the app's).
  'init.js': `require('node:fs').appendFileSync('init.log', process.argv[2] + '\\n'); console.log('INIT', process.argv[2], 'done');`,
  'broken-init.js': `console.log('checking the disk'); console.error('disk not ready'); console.error('giving up'); process.exit(3);`,
  // Reports what it was given, and its pid, then runs until SIGTERM.
  'agent.js': `
const fs = require('node:fs');
fs.writeFileSync('agent.pid', String(process.pid));
console.log('AGENT', process.env.WEFT_PLUGIN_NAME, process.env.WEFT_SERVICE, process.env.AGENT_MODE, process.cwd(), process.env.WEFT_PLUGIN_CONFIG);
process.on('SIGTERM', () => { console.log('AGENT GOT SIGTERM'); process.exit(0); });
setInterval(() => {}, 1000);`,
  'app.js': `
const fs = require('node:fs');
fs.writeFileSync('app.pid', String(process.pid));
fs.writeFileSync('app-started', '');
console.log('APP SAW ' + (fs.existsSync('init.log') ? fs.readFileSync('init.log', 'utf8').trim().split('\\n').join(',') : 'nothing'));
const srv = require('node:http').createServer((q, s) => s.end('app')).listen(Number(process.env.PORT), '127.0.0.1');
process.on('SIGTERM', () => { console.log('APP GOT SIGTERM'); srv.close(() => process.exit(0)); });`,
};

before(async () => {
  scripts = tempDir(undefined, 'weft-plugins-bin-');
  for (const [file, text] of Object.entries(PROGRAMS)) fs.writeFileSync(path.join(scripts, file), text);
  const bin = (file: string) => `[${JSON.stringify(NODE)}, ${JSON.stringify(path.join(scripts, file))}`;
  const config = tempDir();
  fs.writeFileSync(
    path.join(config, 'mesh.yaml'),
    [
      serviceYaml('web', 8080, 'http', '  dependsOn: [{ name: backend }]\n'),
      serviceYaml('backend', 9000),
      serviceYaml('broken', 8080),
      serviceYaml('flaky', 8080),
      // Run by order, not by name: z-first before a-second.
      pluginYaml('a-second', `  type: init\n  order: 2\n  command: ${bin('init.js')}, two]\n  targetRefs: [{ kind: Service, name: web }]`),
      pluginYaml('z-first', `  type: init\n  order: 1\n  command: ${bin('init.js')}, one]\n  targetRefs: [{ kind: Service, name: web }]`),
      pluginYaml(
        'agent',
        `  type: general\n  command: ${bin('agent.js')}]\n  env: { AGENT_MODE: watch }\n  targetRefs: [{ kind: Service, name: web }]\n` +
          `  config:\n    global: { id: "\${namespace}/\${service}" }\n    perPort: { addr: "127.0.0.1:\${port}" }\n    perDependency: { upstream: "\${dependency}" }`,
      ),
      pluginYaml('broken-init', `  type: init\n  command: ${bin('broken-init.js')}]\n  targetRefs: [{ kind: Service, name: broken }]`),
      pluginYaml('crasher', `  type: general\n  command: [sh, -c, "echo CRASH; exit 1"]\n  restartBackoff: { min: 100ms, max: 400ms }\n  targetRefs: [{ kind: Service, name: flaky }]`),
    ].join('---\n'),
  );
  cp = await startControlPlane({ configDir: config, dataDir: tempDir(), xdsPort: 0, apiPort: 0, log: silentLogger, dev: true });
});

after(async () => {
  for (const child of started) child.kill('SIGKILL');
  await cp.close();
});

/** Starts `weft run` in `cwd`; resolves its exit code and collects its stdout and stderr. */
function weftRun(cwd: string, args: string[], command: string[]) {
  const child = spawn(NODE, [BIN, 'run', '--xds', `127.0.0.1:${cp.xdsPort}`, '--api', `http://127.0.0.1:${cp.apiPort}`, '--drain-seconds', '0.2', ...args, '--', ...command], {
    cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  started.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, exited, stdout: () => stdout, stderr: () => stderr, logs: () => jsonLines(stderr) };
}

function jsonLines(text: string): Record<string, any>[] {
  return text.split('\n').flatMap((l) => {
    try {
      return [JSON.parse(l)];
    } catch {
      return [];
    }
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const pidIn = (dir: string, file: string) => Number(fs.readFileSync(path.join(dir, file), 'utf8'));

test('init plugins run in order before the app, which sees what they wrote; a general plugin runs beside it with its environment and config, and stops after it', async () => {
  const cwd = tempDir();
  const run = weftRun(cwd, ['--service', 'web', '--port', String(await freePort())], [NODE, path.join(scripts, 'app.js')]);
  await waitFor(() => /APP SAW/.test(run.stdout()) && /AGENT /.test(run.stdout()), 20_000, 'the app and the agent started');
  const out = run.stdout();
  assert.match(out, /APP SAW one,two\n/, 'both init plugins ran, in order, before the app');
  assert.match(out, /\[plugin z-first\] INIT one done\n/, 'plugin output is tagged');
  assert.ok(out.indexOf('[plugin z-first] INIT one') < out.indexOf('[plugin a-second] INIT two'));
  assert.ok(out.indexOf('[plugin a-second] INIT two') < out.indexOf('APP SAW'));

  const agent = /\[plugin agent\] AGENT (\S+) (\S+) (\S+) (\S+) (.*)\n/.exec(out);
  assert.ok(agent, out);
  const [, name, service, mode, agentCwd, config] = agent;
  assert.deepEqual([name, service, mode, fs.realpathSync(agentCwd)], ['agent', 'web', 'watch', fs.realpathSync(cwd)], "its name, the app's environment, its own, the app's directory");
  assert.deepEqual(JSON.parse(config), {
    global: { id: 'default/web' },
    perPort: [{ name: 'p', port: 8080, protocol: 'http', values: { addr: '127.0.0.1:8080' } }],
    perDependency: [{ service: 'backend', namespace: 'default', values: { upstream: 'backend' } }],
  });
  const agentPid = pidIn(cwd, 'agent.pid');
  assert.ok(alive(agentPid));

  // SIGTERM: the app drains and exits first, then the plugin is stopped.
  run.child.kill('SIGTERM');
  assert.equal(await run.exited, 0);
  const end = run.stdout();
  assert.ok(end.indexOf('APP GOT SIGTERM') >= 0 && end.indexOf('APP GOT SIGTERM') < end.indexOf('[plugin agent] AGENT GOT SIGTERM'), end);
  assert.ok(!alive(agentPid), 'the plugin is gone with the unit');
});

test('a plugin dies with its unit when weft run is killed', async () => {
  const cwd = tempDir();
  const run = weftRun(cwd, ['--service', 'web', '--port', String(await freePort())], [NODE, path.join(scripts, 'app.js')]);
  await waitFor(() => /\[plugin agent\] AGENT /.test(run.stdout()) && /APP SAW/.test(run.stdout()), 20_000, 'the app and the agent started');
  const [agentPid, appPid] = [pidIn(cwd, 'agent.pid'), pidIn(cwd, 'app.pid')];
  run.child.kill('SIGKILL');
  await run.exited;
  await waitFor(() => !alive(agentPid) && !alive(appPid), 10_000, 'the guards stopped the plugin and the app');
});

test('a failing init plugin stops the unit with its error, and the app never starts', async () => {
  const cwd = tempDir();
  const run = weftRun(cwd, ['--service', 'broken', '--port', String(await freePort())], [NODE, path.join(scripts, 'app.js')]);
  assert.equal(await run.exited, 1);
  const error = run.logs().find((l) => l.level === 'error');
  assert.ok(error, run.stderr());
  assert.match(error.msg, /init plugin broken-init failed \(exit code 3\): disk not ready\ngiving up; the app is not started/);
  assert.match(run.stdout(), /\[plugin broken-init\] checking the disk/);
  assert.match(run.stderr(), /\[plugin broken-init\] disk not ready/);
  assert.ok(!fs.existsSync(path.join(cwd, 'app-started')), 'the app never ran');
});

test('a crashing general plugin is restarted with exponential backoff, each restart counted', async () => {
  const cwd = tempDir();
  const run = weftRun(cwd, ['--service', 'flaky'], [NODE, '-e', 'setInterval(() => {}, 1000); process.on("SIGTERM", () => process.exit(0))']);
  const restarts = () => run.logs().filter((l) => l.plugin === 'crasher' && l.restarts !== undefined);
  await waitFor(() => restarts().length >= 5, 20_000, 'five restarts');
  const seen = restarts().slice(0, 5);
  assert.deepEqual(seen.map((l) => l.restarts), [1, 2, 3, 4, 5]);
  assert.deepEqual(seen.map((l) => l.delayMs), [100, 200, 400, 400, 400], 'doubling from min, capped at max');
  assert.match(seen[0].msg, /plugin crasher exited \(exit code 1\); restart 1 in 100 ms/);
  assert.ok((run.stdout().match(/\[plugin crasher\] CRASH\n/g) ?? []).length >= 5);
  run.child.kill('SIGTERM');
  assert.equal(await run.exited, 0);
});

test('outside --dev: the resolved plugins go to a viewer and to the service’s own join token only', async () => {
  const config = tempDir();
  fs.writeFileSync(
    path.join(config, 'mesh.yaml'),
    [serviceYaml('alpha', 80, 'http', '  dependsOn: [{ name: beta }]\n'), serviceYaml('beta', 80), pluginYaml('tail', '  type: general\n  command: [tail, -f, app.log]\n  targetRefs: [{ name: alpha }]\n  config:\n    perDependency: { to: "${dependency}" }')].join(
      '---\n',
    ),
  );
  const dataDir = tempDir();
  const secure = await startControlPlane({ configDir: config, dataDir, xdsPort: 0, apiPort: 0, log: silentLogger, dev: false });
  try {
    const get = (route: string, token?: string) =>
      new Promise<{ status: number; json: any }>((resolve, reject) => {
        https
          .get({ host: '127.0.0.1', port: secure.apiPort, path: route, ca: secure.ca.bundlePem(), agent: false, headers: token ? { authorization: `Bearer ${token}` } : {} }, (res) => {
            let text = '';
            res.on('data', (c) => (text += c));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) }));
          })
          .on('error', reject);
      });
    const post = async (route: string, body: unknown, token: string) => {
      const res = await fetchJson(secure, route, body, token);
      return res.token as string;
    };
    const admin = fs.readFileSync(path.join(dataDir, 'admin.token'), 'utf8').trim();
    const viewer = await post('/api/v1/credentials', { name: 'v', role: 'viewer' }, admin);
    const alpha = await post('/api/v1/tokens', { service: 'alpha' }, admin);
    const beta = await post('/api/v1/tokens', { service: 'beta' }, admin);
    const route = '/api/v1/plugins?service=alpha&namespace=default';

    assert.equal((await get(route)).status, 401, 'no credential');
    const wrong = await get(route, beta);
    assert.equal(wrong.status, 403, 'another service’s join token');
    assert.match(wrong.json.error, /may only read plugins for default\/beta, not default\/alpha/);
    for (const token of [alpha, viewer, admin]) {
      const ok = await get(route, token);
      assert.equal(ok.status, 200);
      assert.deepEqual(ok.json.items.map((p: any) => [p.name, p.config.perDependency]), [['tail', [{ service: 'beta', namespace: 'default', values: { to: 'beta' } }]]]);
    }
    assert.deepEqual((await get('/api/v1/plugins?service=beta', beta)).json.items, [], 'a service without plugins has none');
  } finally {
    await secure.close();
  }
});

/** POST JSON over HTTPS with the mesh's trust bundle. */
function fetchJson(secure: ControlPlane, route: string, body: unknown, token: string): Promise<any> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port: secure.apiPort, path: route, method: 'POST', ca: secure.ca.bundlePem(), agent: false, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } },
      (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve(JSON.parse(text)));
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}
