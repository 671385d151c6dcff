// The built-in log plugin under `weft run`, end to end: a real control plane
// serving Plugins whose command is [weft, plugin, log], the real CLI, a real
// app. Its output and a followed file arrive at a file sink (with rotation and
// truncation), at an HTTP sink (a node http server here) that goes down and
// up again (lines held and delivered; beyond the bound dropped and counted)
// and at an OTLP/HTTP collector stand-in that decodes the JSON with
// OpenTelemetry's own definitions. The app's last lines, written as it stops,
// arrive every time.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { startControlPlane, type ControlPlane } from '../../src/control/control-plane';
import { silentLogger } from '../../src/observe/log';
import { freePort } from '../../src/run/free-port';
import { serviceYaml } from '../helpers/resources';
import { spawnWeftRun } from '../helpers/weft-run';
import { tempDir, waitFor } from '../helpers/tmp';

const NODE = process.execPath;
const HOST = os.hostname();
// OpenTelemetry's generated protobufjs root (see test/helpers/otlp-collector.ts).
const otlpRoot = require('otlp-proto-definitions/build/src/generated/root');
const ExportLogsServiceRequest = otlpRoot.opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest;

// Prints `n` lines "<text> <i>" on stdout (or stderr) per request; says goodbye as it stops.
const APP = `
const http = require('node:http');
console.log('APP READY');
const srv = http.createServer((q, s) => {
  const u = new URL(q.url, 'http://app');
  const say = u.searchParams.get('stream') === 'stderr' ? console.error : console.log;
  for (let i = 1; i <= Number(u.searchParams.get('n') || 1); i++) say(u.searchParams.get('text') + ' ' + i);
  s.end('ok');
}).listen(Number(process.env.PORT), '127.0.0.1');
process.on('SIGTERM', () => {
  for (let i = 1; i <= 3; i++) console.log('GOODBYE ' + i);
  console.error('LAST ON STDERR');
  srv.close(() => process.exit(0));
});`;

interface Attempt {
  status: number;
  path: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A sink that answers 200 while `up`, else 503, and remembers every attempt. */
async function sinkServer() {
  const state = { up: true, attempts: [] as Attempt[] };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const status = req.headers.authorization !== 'Bearer s3cret' ? 401 : state.up ? 200 : 503;
      state.attempts.push({ status, path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(status, { 'content-type': 'application/json' }).end(status === 200 ? '{}' : '{"error":"down"}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { state, server, port: (server.address() as AddressInfo).port };
}

let cp: ControlPlane;
let httpSink: Awaited<ReturnType<typeof sinkServer>>;
let otlpSink: Awaited<ReturnType<typeof sinkServer>>;
let appJs: string;
const started: ChildProcess[] = [];

function logPlugin(name: string, service: string, global: string): string {
  return `apiVersion: weft.dev/v1\nkind: Plugin\nmetadata: { name: ${name} }\nspec:\n  type: general\n  command: [weft, plugin, log]\n  targetRefs: [{ kind: Service, name: ${service} }]\n  config:\n    global: ${global}\n`;
}

before(async () => {
  httpSink = await sinkServer();
  otlpSink = await sinkServer();
  appJs = path.join(tempDir(), 'app.js');
  fs.writeFileSync(appJs, APP);
  const config = tempDir();
  fs.writeFileSync(
    path.join(config, 'mesh.yaml'),
    [
      serviceYaml('log-file', 8080),
      serviceYaml('log-http', 8080),
      serviceYaml('log-otlp', 8080),
      logPlugin('ship-file', 'log-file', '{ sink: "file:shipped/${service}.ndjson", files: "app.log", flushInterval: 100ms }'),
      logPlugin('ship-http', 'log-http', `{ sink: "http://127.0.0.1:${httpSink.port}/ingest", token: s3cret, bufferLines: "50", batchLines: "10", flushInterval: 100ms }`),
      logPlugin('ship-otlp', 'log-otlp', `{ sink: "otlp+http://127.0.0.1:${otlpSink.port}/v1/logs", token: s3cret, flushInterval: 100ms }`),
    ].join('---\n'),
  );
  cp = await startControlPlane({ configDir: config, dataDir: tempDir(), xdsPort: 0, apiPort: 0, log: silentLogger, dev: true });
});

after(async () => {
  for (const child of started) child.kill('SIGKILL');
  httpSink.server.close();
  otlpSink.server.close();
  await cp.close();
});

async function weftRun(service: string, cwd: string) {
  const port = await freePort();
  const run = spawnWeftRun(cp, ['--service', service, '--port', String(port)], [NODE, appJs], { cwd });
  started.push(run.child);
  const say = async (text: string, n = 1, stream = 'stdout') => {
    const res = await fetch(`http://127.0.0.1:${port}/?text=${encodeURIComponent(text)}&n=${n}&stream=${stream}`);
    assert.equal(await res.text(), 'ok');
  };
  return { ...run, say };
}

const ndjson = (text: string): Record<string, any>[] => text.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));

test('the log plugin ships the app’s output and a followed file to a file sink, through rotation and truncation, and the app’s last lines at stop', { timeout: 60_000 }, async () => {
  const cwd = tempDir();
  fs.writeFileSync(path.join(cwd, 'app.log'), 'OLD LINE\n');
  const run = await weftRun('log-file', cwd);
  const sink = path.join(cwd, 'shipped/log-file.ndjson');
  const records = () => (fs.existsSync(sink) ? ndjson(fs.readFileSync(sink, 'utf8')) : []);
  const has = (line: string) => records().some((r) => r.line === line);
  await waitFor(() => has('APP READY'), 20_000, 'the app’s first line in the sink');
  const ready = records().find((r) => r.line === 'APP READY')!;
  assert.deepEqual(Object.keys(ready), ['time', 'service', 'namespace', 'host', 'instance', 'stream', 'line']);
  assert.deepEqual({ ...ready, time: undefined }, { time: undefined, service: 'log-file', namespace: 'default', host: HOST, instance: `${HOST}/${run.child.pid}`, stream: 'stdout', line: 'APP READY' });
  assert.ok(Math.abs(Date.parse(ready.time) - Date.now()) < 60_000);

  await run.say('hello', 3);
  await run.say('oops', 1, 'stderr');
  await waitFor(() => has('hello 3') && has('oops 1'), 10_000, 'the app’s lines');
  assert.deepEqual(records().filter((r) => r.stream).map((r) => [r.stream, r.line]), [['stdout', 'APP READY'], ['stdout', 'hello 1'], ['stdout', 'hello 2'], ['stdout', 'hello 3'], ['stderr', 'oops 1']]);

  // The followed file: new lines only (not what it held when the plugin started), …
  const appLog = path.join(cwd, 'app.log');
  fs.appendFileSync(appLog, 'NEW 1\nNEW 2\n');
  await waitFor(() => has('NEW 2'), 10_000, 'the new lines of app.log');
  // … on through a rotation (what the old file got before it was renamed arrives too), …
  fs.appendFileSync(appLog, 'BEFORE ROTATE\n');
  fs.renameSync(appLog, appLog + '.1');
  fs.writeFileSync(appLog, 'AFTER ROTATE, a longer line than the next\n');
  await waitFor(() => has('AFTER ROTATE, a longer line than the next'), 10_000, 'the rotated file’s first line');
  // … and a truncation.
  fs.writeFileSync(appLog, 'TRUNCATED\n');
  await waitFor(() => has('TRUNCATED'), 10_000, 'the truncated file’s line');
  const fileLines = records().filter((r) => r.file);
  assert.deepEqual(fileLines.map((r) => r.line), ['NEW 1', 'NEW 2', 'BEFORE ROTATE', 'AFTER ROTATE, a longer line than the next', 'TRUNCATED']);
  assert.ok(fileLines.every((r) => r.file === 'app.log' && r.service === 'log-file' && r.stream === undefined));

  // Stopping the unit: the app's goodbye, written after weft run was told to stop, still arrives.
  run.child.kill('SIGTERM');
  assert.equal(await run.exited, 0, run.stderr());
  assert.doesNotMatch(run.stderr(), /plugin ship-\w+ exited/, 'the plugin ran until it was stopped, never restarted');
  // (stdout and stderr are two pipes: their order against each other is not kept, each one's is.)
  const stdout = records().filter((r) => r.stream === 'stdout').map((r) => r.line);
  assert.deepEqual(stdout.slice(-3), ['GOODBYE 1', 'GOODBYE 2', 'GOODBYE 3'], run.stderr());
  assert.equal(records().filter((r) => r.stream === 'stderr').at(-1)?.line, 'LAST ON STDERR');
  assert.equal(new Set(records().map((r) => `${r.stream ?? r.file}:${r.line}`)).size, records().length, 'no line twice');
});

test('the log plugin POSTs NDJSON with its token; while the sink is down it holds lines and delivers them later, and beyond its bound drops the oldest and says how many', { timeout: 90_000 }, async () => {
  const { state } = httpSink;
  state.up = true;
  state.attempts = [];
  const run = await weftRun('log-http', tempDir());
  const delivered = () => state.attempts.filter((a) => a.status === 200).flatMap((a) => ndjson(a.body));
  const failed = () => state.attempts.filter((a) => a.status !== 200);
  await waitFor(() => delivered().some((r) => r.line === 'APP READY'), 20_000, 'the first line at the HTTP sink');
  const first = state.attempts.find((a) => a.status === 200)!;
  assert.equal(first.path, '/ingest');
  assert.equal(first.headers['content-type'], 'application/x-ndjson');
  assert.ok(state.attempts.every((a) => a.status !== 401), 'every POST carried the bearer token');

  // Down: 20 lines are held (the bound is 50), retried, then delivered in order once it is up.
  state.up = false;
  await run.say('held', 20);
  await waitFor(() => failed().length >= 2, 20_000, 'two failed attempts');
  state.up = true;
  await waitFor(() => delivered().some((r) => r.line === 'held 20'), 20_000, 'the held lines delivered');
  const held = delivered().filter((r) => /^held /.test(r.line));
  assert.deepEqual(held.map((r) => r.line), Array.from({ length: 20 }, (_, i) => `held ${i + 1}`));
  assert.ok(!delivered().some((r) => r.dropped !== undefined), 'nothing was dropped');

  // Down again, 120 lines: 50 are held, 70 dropped. Every attempt starts with the count so far,
  // so an attempt saying 70 shows the plugin has all it will get.
  state.up = false;
  const before = state.attempts.length;
  await run.say('burst', 120);
  const dropCount = (a: Attempt) => ndjson(a.body)[0]?.dropped;
  await waitFor(() => state.attempts.slice(before).some((a) => dropCount(a) === 70), 30_000, 'an attempt reporting 70 dropped lines');
  state.up = true;
  await waitFor(() => delivered().some((r) => r.line === 'burst 120'), 30_000, 'the held burst lines delivered');
  const report = delivered().filter((r) => r.dropped !== undefined);
  assert.equal(report.length, 1, 'one record says lines were dropped');
  assert.equal(report[0].dropped, 70);
  assert.match(report[0].line, /70 lines dropped/);
  assert.equal(report[0].service, 'log-http');
  const burst = delivered().filter((r) => /^burst /.test(r.line)).map((r) => Number(r.line.split(' ')[1]));
  assert.equal(burst.length, 50, 'the bound: 50 lines held');
  assert.deepEqual([...burst].sort((a, b) => a - b), burst, 'in order');
  await waitFor(() => /70 lines were dropped while http:\/\/127\.0\.0\.1:\d+\/ingest was down/.test(run.stderr()), 10_000, 'the plugin’s log line with the count');

  run.child.kill('SIGTERM');
  assert.equal(await run.exited, 0, run.stderr());
  assert.doesNotMatch(run.stderr(), /plugin ship-\w+ exited/, 'the plugin ran until it was stopped, never restarted');
  assert.ok(['GOODBYE 3', 'LAST ON STDERR'].every((l) => delivered().some((r) => r.line === l)), 'the last lines arrived before the plugin exited');
});

test('the log plugin sends OTLP/HTTP JSON logs a collector decodes: the unit as the resource, each line a log record', { timeout: 60_000 }, async () => {
  const { state } = otlpSink;
  state.attempts = [];
  const run = await weftRun('log-otlp', tempDir());
  const decoded = () =>
    state.attempts.map((a) => {
      const json = JSON.parse(a.body);
      // The stand-in decodes with OpenTelemetry's definitions; a misnamed field would not survive the trip.
      const message = ExportLogsServiceRequest.decode(ExportLogsServiceRequest.encode(ExportLogsServiceRequest.fromObject(json)).finish());
      assert.deepEqual(ExportLogsServiceRequest.toObject(message, { longs: String, enums: Number, defaults: false }), json);
      return json;
    });
  const records = () =>
    decoded().flatMap((req: any) =>
      req.resourceLogs.flatMap((rl: any) =>
        rl.scopeLogs.flatMap((sl: any) => sl.logRecords.map((lr: any) => ({ resource: Object.fromEntries(rl.resource.attributes.map((a: any) => [a.key, a.value.stringValue])), scope: sl.scope.name, lr }))),
      ),
    );
  await waitFor(() => records().some((r) => r.lr.body.stringValue === 'APP READY'), 20_000, 'the first line at the collector');
  await run.say('to otlp', 2, 'stderr');
  await waitFor(() => records().some((r) => r.lr.body.stringValue === 'to otlp 2'), 10_000, 'stderr lines at the collector');
  const attempt = state.attempts[0];
  assert.equal(attempt.path, '/v1/logs');
  assert.equal(attempt.headers['content-type'], 'application/json');
  const ready = records().find((r) => r.lr.body.stringValue === 'APP READY')!;
  assert.deepEqual(ready.resource, { 'service.name': 'log-otlp', 'service.namespace': 'default', 'service.instance.id': `${HOST}/${run.child.pid}`, 'host.name': HOST });
  assert.equal(ready.scope, 'weft.plugin.log');
  assert.deepEqual(ready.lr.attributes, [{ key: 'log.iostream', value: { stringValue: 'stdout' } }]);
  const ns = BigInt(ready.lr.timeUnixNano);
  assert.ok(ns > BigInt(Date.now() - 60_000) * 1_000_000n && ns <= BigInt(Date.now()) * 1_000_000n, 'time in Unix nanoseconds');
  const err = records().find((r) => r.lr.body.stringValue === 'to otlp 1')!;
  assert.deepEqual(err.lr.attributes, [{ key: 'log.iostream', value: { stringValue: 'stderr' } }]);
  run.child.kill('SIGTERM');
  assert.equal(await run.exited, 0, run.stderr());
  assert.doesNotMatch(run.stderr(), /plugin ship-\w+ exited/, 'the plugin ran until it was stopped, never restarted');
  assert.ok(records().some((r) => r.lr.body.stringValue === 'LAST ON STDERR'));
});
