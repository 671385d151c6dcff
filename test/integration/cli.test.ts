// The `weft` binary end to end: a control plane process, and the commands a
// user types against it.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { routeYaml, serviceYaml } from '../helpers/resources';
import { waitFor } from '../helpers/tmp';

const ROOT = path.resolve(__dirname, '../../..');
const BIN = path.join(ROOT, 'bin/weft.js');
let work: string;
let control: ChildProcess;
let api: string;
let controlLog = '';

function weft(args: string[], input?: string) {
  const res = spawnSync(process.execPath, [BIN, ...args, ...(['apply', 'get', 'delete', 'status', 'endpoints'].includes(args[0]) ? ['--api', api] : [])], {
    cwd: work,
    input,
    encoding: 'utf8',
    timeout: 15000,
    // The control plane runs outside --dev: the CLI reads the admin token it wrote, as the README says.
    env: { ...process.env, WEFT_TOKEN_FILE: path.join(work, 'data', 'admin.token'), WEFT_CA_FILE: path.join(work, 'data', 'ca', 'trust-bundle.pem') },
  });
  return { code: res.status, out: res.stdout, err: res.stderr };
}

before(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-cli-'));
  fs.mkdirSync(path.join(work, 'config'));
  fs.writeFileSync(path.join(work, 'config/services.yaml'), serviceYaml('shop') + '---\n' + serviceYaml('cart'));
  control = spawn(process.execPath, [BIN, 'control', '--config', 'config', '--data-dir', 'data', '--xds-port', '0', '--api-port', '0'], {
    cwd: work,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  control.stdout!.on('data', (d) => (out += d));
  control.stderr!.on('data', (d) => (controlLog += d));
  await waitFor(() => /API on (https?:\/\/\S+?)\/api/.test(out), 10000, 'control plane started');
  api = /API on (https?:\/\/\S+?)\/api/.exec(out)![1];
});

after(async () => {
  control.kill('SIGTERM');
  await new Promise((r) => control.once('exit', r));
  fs.rmSync(work, { recursive: true, force: true });
});

test('weft validate accepts a good directory and names file, document and field of a bad one', () => {
  const good = weft(['validate', '-f', 'config']);
  assert.equal(good.code, 0, good.err);
  assert.match(good.out, /2 resource\(s\) in 1 file\(s\) are valid/);

  fs.writeFileSync(path.join(work, 'bad.yaml'), serviceYaml('a') + '---\n' + serviceYaml('b', 70000));
  const bad = weft(['validate', '-f', 'bad.yaml']);
  assert.equal(bad.code, 1);
  assert.match(bad.err, /bad\.yaml: document 1 \(Service default\/b\): spec\.ports\[0\]\.port: /);
});

test('weft apply, get and delete through the API; a bad apply changes nothing', () => {
  fs.writeFileSync(path.join(work, 'extra.yaml'), serviceYaml('extra') + '---\n' + routeYaml('split', 'shop', [['cart', 1], ['extra', 3]]));
  const applied = weft(['apply', '-f', 'extra.yaml']);
  assert.equal(applied.code, 0, applied.err);
  assert.match(applied.out, /applied HTTPRoute\/default\/split/);

  const listed = weft(['get', 'services']);
  assert.match(listed.out, /cart\s+config\/services\.yaml#1/);
  assert.match(listed.out, /extra\s+api/);
  const yaml = weft(['get', 'httproute', 'split', '-o', 'yaml']);
  assert.match(yaml.out, /weight: 3/);

  fs.writeFileSync(path.join(work, 'dangling.yaml'), routeYaml('dangling', 'shop', [['ghost', 1]]));
  const refused = weft(['apply', '-f', 'dangling.yaml']);
  assert.equal(refused.code, 1);
  assert.match(refused.err, /dangling\.yaml: document 0 .*ghost/);
  assert.doesNotMatch(weft(['get', 'httproutes']).out, /dangling/);

  const inUse = weft(['delete', 'service', 'extra']);
  assert.equal(inUse.code, 1, 'a service the route uses cannot go');
  assert.equal(weft(['delete', 'httproute', 'split']).code, 0);
  assert.equal(weft(['delete', 'service', 'extra']).code, 0);
});

test('a bad edit of the config directory is reported by weft status while the last good config serves', async () => {
  fs.writeFileSync(path.join(work, 'config/services.yaml'), serviceYaml('shop') + '---\nkind: Nope\n');
  await waitFor(() => /config error\(s\)/.test(weft(['status']).out), 3000, 'error shown by status');
  assert.match(weft(['status']).out, /services\.yaml: document 1.*unknown kind/i);
  assert.match(weft(['get', 'services']).out, /cart/, 'cart still served');
  await waitFor(() => /config rejected/.test(controlLog), 2000, 'rejection logged');
});

test('weft bootstrap --grpc prints a bootstrap for grpc-js-xds', () => {
  const res = weft(['bootstrap', '--grpc', '--service', 'shop', '--xds', '127.0.0.1:15010']);
  assert.equal(res.code, 0, res.err);
  const b = JSON.parse(res.out);
  assert.equal(b.xds_servers[0].server_uri, '127.0.0.1:15010');
  assert.equal(b.node.metadata.WEFT_SERVICE, 'shop');
});

test('a mistyped kind lists the kinds; a missing file says it does not exist; bootstrap without --grpc says what it makes', () => {
  const get = weft(['get', 'foo']);
  assert.equal(get.code, 1);
  assert.match(get.err, /unknown kind "foo": one of services \(svc\), httproutes, grpcroutes, tcproutes, trafficpolicies \(tp\), .*authorizationpolicies \(authz\)/);
  // The API says the same to any client.
  const del = weft(['delete', 'foo', 'x']);
  assert.match(del.err, /unknown kind "foo": one of services/);

  for (const args of [['apply', '-f', 'missing.yaml'], ['validate', '-f', 'missing.yaml']]) {
    const res = weft(args);
    assert.equal(res.code, 1, args.join(' '));
    assert.match(res.err, /missing\.yaml: does not exist/, res.err);
    assert.doesNotMatch(res.err, /ENOENT|stat '/, res.err);
  }

  const boot = weft(['bootstrap', '--service', 'x']);
  assert.equal(boot.code, 1);
  assert.match(boot.err, /add --grpc\. It prints the bootstrap file of a proxyless gRPC client .*a weft sidecar needs no bootstrap file/);
  assert.doesNotMatch(boot.err, /required option/);
});

test('errors in arguments are explained', () => {
  const res = weft(['control', '--xds-port', 'abc']);
  assert.notEqual(res.code, 0);
  assert.match(res.err, /port/);
});
