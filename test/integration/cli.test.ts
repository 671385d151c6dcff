// The `weft` binary end to end: a control plane process, and the commands a
// user types against it.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
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

function httpsGetJson(url: string, token: string, ca: string): Promise<any> {
  const get = url.startsWith('https:') ? https.get : http.get;
  return new Promise((resolve, reject) => {
    const req = get(url, { headers: { authorization: `Bearer ${token}` }, ca, timeout: 10000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(text)) : reject(new Error(`${url}: ${res.statusCode} ${text}`))));
    });
    req.on('timeout', () => req.destroy(new Error(`${url}: timed out`)));
    req.on('error', reject);
  });
}

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

test("weft validate -f <file> validates it with its directory's other files, and says so (the demo's routes.yaml)", () => {
  const file = path.join(ROOT, 'examples', 'mesh', 'routes.yaml');
  const res = weft(['validate', '-f', file]);
  assert.equal(res.code, 0, res.out + res.err);
  assert.equal(res.out.split('\n')[0], `validated ${file} with the 4 other files of ${path.dirname(file)}/ (plugins.yaml, policies.yaml, security.yaml, services.yaml)`);
  assert.match(res.out, /✓ \d+ resource\(s\) in 1 file\(s\) are valid/);
  const alone = weft(['validate', '-f', file, '--alone']);
  assert.equal(alone.code, 1);
  assert.match(alone.out, /alone: references to resources of other files are errors/);
  assert.match(alone.err, /Service default\/product does not exist/);
});

test('weft validate --api validates a file against the running mesh', () => {
  fs.mkdirSync(path.join(work, 'lone'));
  // shop and cart are the mesh's (config/services.yaml); nothing beside the file declares them.
  fs.writeFileSync(path.join(work, 'lone/route.yaml'), routeYaml('split', 'shop', [['cart', 1]]));
  const res = weft(['validate', '-f', 'lone/route.yaml', '--api', api]);
  assert.equal(res.code, 0, res.out + res.err);
  assert.match(res.out.split('\n')[0], new RegExp(`^validated lone/route\\.yaml against the mesh at ${api.replace(/[.]/g, '\\.')} \\(\\d+ resources there\\)$`));
  assert.equal(weft(['validate', '-f', 'lone/route.yaml']).code, 1, 'with its (empty) directory it names Services that are not there');
});

test('a backend policy a route cannot apply is a warning: in weft validate (exit 0), /api/v1/errors and weft status', async () => {
  fs.mkdirSync(path.join(work, 'canary'));
  fs.writeFileSync(path.join(work, 'canary/services.yaml'), serviceYaml('hello') + '---\n' + serviceYaml('hello-v2'));
  fs.writeFileSync(
    path.join(work, 'canary/routes.yaml'),
    routeYaml('hello', 'hello', [['hello', 90], ['hello-v2', 10]]) +
      '---\napiVersion: weft.dev/v1\nkind: TrafficPolicy\nmetadata: { name: hello-v2 }\nspec:\n  targetRef: { kind: Service, name: hello-v2 }\n  retries: { attempts: 3 }\n',
  );
  const warning = /warning: canary\/routes\.yaml: document 1: TrafficPolicy default\/hello-v2: spec\.retries: not applied to the requests rule 0 of HTTPRoute default\/hello sends to hello-v2: hello has no retries/;
  const validated = weft(['validate', '-f', 'canary/routes.yaml']);
  assert.equal(validated.code, 0, validated.out + validated.err);
  assert.match(validated.err, warning);
  assert.match(validated.out, /valid, with 1 warning\(s\)/);

  assert.equal(weft(['apply', '-f', 'canary']).code, 0);
  try {
    const status = weft(['status']);
    assert.match(status.out, /1 warning\(s\): config accepted but not in effect:\n  warning: TrafficPolicy default\/hello-v2: spec\.retries: not applied .* rule 0 of HTTPRoute default\/hello/);
    const token = fs.readFileSync(path.join(work, 'data', 'admin.token'), 'utf8').trim();
    const ca = fs.readFileSync(path.join(work, 'data', 'ca', 'trust-bundle.pem'), 'utf8');
    const body = await httpsGetJson(`${api}/api/v1/errors`, token, ca);
    assert.deepEqual(
      body.warnings.map((w: any) => [w.code, w.resource.name, w.path, w.route.name, w.route.rule]),
      [['W_POLICY_NOT_APPLIED', 'hello-v2', 'spec.retries', 'hello', 0]],
    );
  } finally {
    for (const [kind, name] of [['trafficpolicy', 'hello-v2'], ['httproute', 'hello'], ['service', 'hello'], ['service', 'hello-v2']]) weft(['delete', kind, name]);
  }
  assert.doesNotMatch(weft(['status']).out, /warning/);
});

test('a bad edit of the config directory is reported by weft status while the last good config serves', async () => {
  // Saved as editors save, under another name then renamed over it: writeFileSync truncates first,
  // and a control plane that scans in between finds an empty file, which is a valid config.
  const draft = path.join(work, 'services.yaml.draft');
  fs.writeFileSync(draft, serviceYaml('shop') + '---\nkind: Nope\n');
  fs.renameSync(draft, path.join(work, 'config/services.yaml'));
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

test('weft bootstrap --envoy prints an Envoy bootstrap: the node, delta ADS with the join token from a file, TLS with the CA file', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-envoy-boot-'));
  try {
    fs.writeFileSync(path.join(dir, 'token'), 'wjt_secret\n');
    const res = weft(['bootstrap', '--envoy', '--service', 'shop', '-n', 'prod', '--xds', '10.0.0.5:15010,10.0.0.6:15010', '--ca-file', path.join(dir, 'bundle.pem'), '--join-token-file', path.join(dir, 'token'), '--node-id', 'shop-1', '--admin-port', '19000']);
    assert.equal(res.code, 0, res.err);
    const b = JSON.parse(res.out);
    assert.deepEqual(b.node.metadata, { WEFT_SERVICE: 'shop', WEFT_NAMESPACE: 'prod', WEFT_ROLE: 'sidecar' });
    assert.equal(b.node.id, 'shop-1');
    assert.equal(b.dynamic_resources.ads_config.api_type, 'DELTA_GRPC');
    assert.deepEqual(b.dynamic_resources.ads_config.grpc_services[0].initial_metadata, [{ key: 'authorization', value: 'Bearer wjt_secret' }]);
    assert.equal(b.static_resources.clusters[0].type, 'STATIC');
    assert.equal(b.static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints.length, 2);
    assert.equal(b.static_resources.clusters[0].transport_socket.typed_config.common_tls_context.validation_context.trusted_ca.filename, path.join(dir, 'bundle.pem'));
    assert.equal(b.admin.address.socket_address.port_value, 19000);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
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
  assert.match(boot.err, /add --grpc or --envoy\. --grpc prints the bootstrap file of a proxyless gRPC client .*--envoy --service <name> prints an Envoy sidecar's .*a weft sidecar needs no bootstrap file/);
  assert.doesNotMatch(boot.err, /required option/);
  const both = weft(['bootstrap', '--grpc', '--envoy', '--service', 'x']);
  assert.equal(both.code, 1);
  assert.match(both.err, /choose one of --grpc and --envoy/);
  const noService = weft(['bootstrap', '--envoy']);
  assert.equal(noService.code, 1);
  assert.match(noService.err, /bootstrap --envoy: add --service <name>/);
});

test('errors in arguments are explained', () => {
  const res = weft(['control', '--xds-port', 'abc']);
  assert.notEqual(res.code, 0);
  assert.match(res.err, /port/);
});
