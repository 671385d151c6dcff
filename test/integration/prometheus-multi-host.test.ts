// Prometheus across hosts (issue 13, part 3): one prometheus.yml scrapes the whole mesh.
//
//   cp   `weft control`, NOT in dev mode (API over TLS, admin token), and Debian's real
//        `prometheus` with http_sd_configs pointing at the control plane's
//        GET /api/v1/prometheus/targets (https, verified with the trust bundle, a viewer token)
//   a    `weft run` of alpha, its sidecar's metrics listener on 0.0.0.0:15090 (bearer token)
//   b    `weft run` of beta, the same
//
// Traffic goes from a's sidecar to beta on b; Prometheus on cp discovers both sidecars (at the
// addresses their xDS connections come from, since they bound 0.0.0.0), scrapes them across the
// bridge with the metrics token, and answers weft_requests_total for the alpha → beta edge. A
// scrape without the token gets 401; the admin port stays on each host's loopback.
// Without root/ip or the prometheus binary the test is skipped, except under CI=true where it fails.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Hosts, multiHostSkip, type Host, type Proc, withProcessLogs } from '../helpers/hosts';
import { serviceYaml } from '../helpers/resources';
import { tempDir, waitFor } from '../helpers/tmp';

const ROOT = path.resolve(__dirname, '../../..');
const BIN = path.join(ROOT, 'bin/weft.js');
const binary = spawnSync('sh', ['-c', 'command -v prometheus'], { encoding: 'utf8' }).stdout.trim();
const noPrometheus = binary === '' ? 'the prometheus binary is not installed (Debian package `prometheus`)' : undefined;
if (noPrometheus && process.env.CI === 'true') throw new Error(`${noPrometheus}; CI must run this test`);
const SKIP = multiHostSkip() || (noPrometheus ? `skipped: ${noPrometheus} (with CI=true this fails instead)` : false);
// Every host has a network stack of its own: fixed ports never collide.
const API_PORT = 15000;
const XDS_PORT = 15010;
const APP_PORT = 8080;
const OUTBOUND = 15001;
const ADMIN = 15020;
const METRICS = 15090;
const PROM_PORT = 9090;

let hosts: Hosts;
let cp: Host;
let a: Host;
let b: Host;
let api: string;
let work: string;
let bundle: string;
let viewerToken: string;
let metricsToken: string;
const procs: Proc[] = [];
let prom: Proc;

/** An app under `weft run`: answers with its service's name, on loopback only. */
const APP = `require('node:http').createServer((req, res) => res.end(process.env.WEFT_SERVICE + ' ' + req.url)).listen(Number(process.env.PORT), '127.0.0.1');`;

function weft(host: Host, args: string[]): Proc {
  const proc = host.spawn(process.execPath, [BIN, ...args], { cwd: work, env: { WEFT_DEBUG: '', WEFT_TOKEN: '', WEFT_TOKEN_FILE: '', WEFT_API: '', WEFT_METRICS_TOKEN_FILE: '' } });
  procs.push(proc);
  return proc;
}

/** A CLI command run to its end on cp as the operator (the admin token, the trust bundle). */
async function cli(args: string[], token: string): Promise<{ stdout: string; stderr: string }> {
  const r = await cp.exec(process.execPath, [BIN, ...args, '--api', api], { cwd: work, env: { WEFT_DEBUG: '', WEFT_TOKEN: token, WEFT_TOKEN_FILE: '', WEFT_CA_FILE: bundle }, timeoutMs: 15_000 });
  assert.equal(r.code, 0, `weft ${args.join(' ')}: ${r.stderr}`);
  return r;
}

function weftRun(host: Host, service: string, joinToken: string, tokenFile: string): Proc {
  return weft(host, [
    'run', '--service', service, '--port', String(APP_PORT), '--address', host.address,
    '--xds', `${cp.address}:${XDS_PORT}`, '--api', api, '--ca-file', bundle, '--join-token', joinToken,
    '--outbound-port', String(OUTBOUND), '--admin-port', String(ADMIN),
    '--metrics-address', `0.0.0.0:${METRICS}`, '--metrics-token-file', tokenFile,
    '--', process.execPath, '-e', APP,
  ]);
}

/** Prometheus's HTTP API, asked on cp's loopback. */
async function promApi(p: string): Promise<any> {
  const res = await cp.fetch(`http://127.0.0.1:${PROM_PORT}${p}`, { timeoutMs: 5000 });
  assert.equal(res.status, 200, res.body);
  const body = JSON.parse(res.body);
  assert.equal(body.status, 'success', res.body);
  return body.data;
}

async function query(expr: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]> {
  return (await promApi(`/api/v1/query?query=${encodeURIComponent(expr)}`)).result;
}

interface ActiveTarget {
  health: string;
  scrapeUrl: string;
  lastError: string;
  labels: Record<string, string>;
}

/** On failure, the tails of every process's output (Prometheus's included). */
const explained = (fn: () => Promise<void>) => withProcessLogs(procs, fn);

before(async () => {
  if (SKIP) return;
  hosts = await Hosts.create({ name: 'promhosts', hosts: ['cp', 'a', 'b'] });
  [cp, a, b] = ['cp', 'a', 'b'].map((h) => hosts.get(h));
  api = `https://${cp.address}:${API_PORT}`;
  work = tempDir(undefined, 'weft-prom-hosts-');
  const config = path.join(work, 'config');
  const dataDir = path.join(work, 'data');
  fs.mkdirSync(config);
  fs.writeFileSync(path.join(config, 'mesh.yaml'), serviceYaml('alpha', 80) + '---\n' + serviceYaml('beta', 80));
  const control = weft(cp, ['control', '--host', cp.address, '--config', config, '--data-dir', dataDir, '--xds-port', String(XDS_PORT), '--api-port', String(API_PORT)]);
  await explained(async () => {
    await control.waitForOutput(/API on https?:\/\//, 15_000);
    assert.match(control.output(), /API on https:\/\//, 'not in dev mode: the API over TLS');
    const adminToken = fs.readFileSync(path.join(dataDir, 'admin.token'), 'utf8').trim();
    bundle = path.join(dataDir, 'ca', 'trust-bundle.pem');
    const [alphaJoin, betaJoin, viewer] = await Promise.all([
      cli(['token', 'create', '--service', 'alpha'], adminToken),
      cli(['token', 'create', '--service', 'beta'], adminToken),
      cli(['admin-token', 'create', '--name', 'prometheus', '--role', 'viewer'], adminToken),
    ]);
    viewerToken = viewer.stdout.trim();
    assert.match(viewerToken, /^weftapi\./);

    // The secrets Prometheus reads: files, never in its config or argv.
    metricsToken = crypto.randomBytes(24).toString('base64url');
    const metricsTokenFile = path.join(work, 'metrics.token');
    const viewerTokenFile = path.join(work, 'viewer.token');
    fs.writeFileSync(metricsTokenFile, metricsToken + '\n', { mode: 0o600 });
    fs.writeFileSync(viewerTokenFile, viewerToken + '\n', { mode: 0o600 });

    const alpha = weftRun(a, 'alpha', alphaJoin.stdout.trim(), metricsTokenFile);
    const beta = weftRun(b, 'beta', betaJoin.stdout.trim(), metricsTokenFile);
    await Promise.all([alpha.waitForOutput(/instance registered/, 20_000), beta.waitForOutput(/instance registered/, 20_000)]);

    // One prometheus.yml for the whole mesh: the sidecars come from the control plane's service discovery.
    // `type: Bearer` spelled out: Prometheus 2.42 sends an http_sd_configs credential without its
    // scheme when the type is left to its default.
    const promYml = `global: { scrape_interval: 1s, evaluation_interval: 1s }
scrape_configs:
  - job_name: weft-sidecars
    authorization: { type: Bearer, credentials_file: ${metricsTokenFile} }
    http_sd_configs:
      - url: ${api}/api/v1/prometheus/targets
        refresh_interval: 1s
        authorization: { type: Bearer, credentials_file: ${viewerTokenFile} }
        tls_config: { ca_file: ${bundle} }
`;
    fs.writeFileSync(path.join(work, 'prometheus.yml'), promYml);
    prom = cp.spawn(binary, [
      `--config.file=${path.join(work, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(work, 'prom-data')}`,
      `--web.listen-address=127.0.0.1:${PROM_PORT}`, '--log.level=warn',
    ]);
    procs.push(prom);
    await waitFor(async () => (await cp.fetch(`http://127.0.0.1:${PROM_PORT}/-/ready`, { timeoutMs: 2000 }).catch(() => ({ status: 0 }))).status === 200, 30_000, 'prometheus ready');
  });
});

after(async () => {
  await hosts?.destroy();
});

test('the control plane lists both sidecars for Prometheus at their hosts\' addresses; viewers only', { skip: SKIP, timeout: 30_000 }, (t) =>
  explained(async () => {
    const url = `${api}/api/v1/prometheus/targets`;
    const anonymous = await b.fetch(url, { ca: bundle });
    assert.equal(anonymous.status, 401, anonymous.body);
    let groups: { targets: string[]; labels: Record<string, string> }[] = [];
    const listedMs = await waitFor(
      async () => {
        const res = await b.fetch(url, { ca: bundle, headers: { authorization: `Bearer ${viewerToken}` } });
        assert.equal(res.status, 200, res.body);
        groups = JSON.parse(res.body);
        return groups.length === 2;
      },
      10_000,
      'both sidecars in the service discovery',
    );
    t.diagnostic(`both listed after ${listedMs} ms of asking from b (its first requests start b's request agent)`);
    assert.deepEqual(
      groups.map((g) => [g.targets, g.labels.__metrics_path__, g.labels.weft_service, g.labels.weft_namespace]).sort(),
      [
        [[`${a.address}:${METRICS}`], '/stats/prometheus', 'alpha', 'default'],
        [[`${b.address}:${METRICS}`], '/stats/prometheus', 'beta', 'default'],
      ].sort(),
    );
    for (const g of groups) {
      assert.match(g.labels.weft_node, new RegExp(`^${g.labels.weft_service}~`));
      assert.ok(g.labels.weft_replica, 'the replica the sidecar is connected to');
    }
  }),
);

test('Prometheus on cp discovers and scrapes both sidecars across hosts, and sees the alpha → beta edge', { skip: SKIP, timeout: 60_000 }, (t) =>
  explained(async () => {
    // Traffic from a's sidecar to beta on b, paced, until Prometheus has it.
    let stop = false;
    let attempts = 0;
    let sent = 0;
    let failed = '';
    const load = (async () => {
      while (!stop) {
        attempts++;
        const res = await a.fetch(`http://beta/edge-${sent}`, { proxy: `http://127.0.0.1:${OUTBOUND}`, timeoutMs: 5000 }).catch((e: Error) => ({ status: 0, body: e.message }));
        if (res.status === 200) sent++;
        else failed = `${res.status} ${res.body}`;
        await new Promise((r) => setTimeout(r, 100)); // pacing: about 10 requests/s
      }
    })();
    try {
      let targets: ActiveTarget[] = [];
      const upMs = await waitFor(
        async () => {
          targets = ((await promApi('/api/v1/targets?state=active')).activeTargets as ActiveTarget[]).filter((x) => x.labels.job === 'weft-sidecars');
          return targets.length === 2 && targets.every((x) => x.health === 'up');
        },
        30_000,
        'both sidecar targets up in Prometheus',
      ).catch((err: Error) => {
        throw new Error(`${err.message}: ${JSON.stringify(targets)}`);
      });
      t.diagnostic(`both targets up ${upMs} ms after the load started`);
      assert.deepEqual(targets.map((x) => x.scrapeUrl).sort(), [`http://${a.address}:${METRICS}/stats/prometheus`, `http://${b.address}:${METRICS}/stats/prometheus`].sort());
      assert.deepEqual(targets.map((x) => [x.labels.instance, x.labels.weft_service]).sort(), [[`${a.address}:${METRICS}`, 'alpha'], [`${b.address}:${METRICS}`, 'beta']].sort());

      // The edge, from both ends: alpha's sidecar on a counts it outbound, beta's on b inbound.
      const outbound = `sum by (source, destination, instance, weft_service) (weft_requests_total{direction="outbound",destination="beta.default",code="200"})`;
      let rows: Awaited<ReturnType<typeof query>> = [];
      const edgeMs = await waitFor(async () => (rows = await query(outbound)).some((r) => Number(r.value[1]) > 0), 30_000, `the alpha → beta edge in Prometheus (sent ${sent}, last failure ${failed})`);
      t.diagnostic(`edge visible ${edgeMs} ms after both targets were up; ${sent} requests sent so far`);
      assert.deepEqual(rows.map((r) => [r.metric.source, r.metric.destination, r.metric.instance, r.metric.weft_service]), [['alpha.default', 'beta.default', `${a.address}:${METRICS}`, 'alpha']]);
      const inbound = `sum by (destination, instance) (weft_requests_total{direction="inbound",destination="beta.default",code="200"})`;
      await waitFor(async () => (rows = await query(inbound)).some((r) => Number(r.value[1]) > 0), 15_000, 'the inbound count on b');
      assert.deepEqual(rows.map((r) => r.metric.instance), [`${b.address}:${METRICS}`]);
      // Counted by the sidecars, not made up: no more than the requests the load made.
      const [counted] = await query(`sum(weft_requests_total{direction="outbound",destination="beta.default"})`);
      assert.ok(Number(counted.value[1]) <= attempts, `a's sidecar counted ${counted.value[1]}, the load made ${attempts} requests`);
    } finally {
      stop = true;
      await load;
    }
  }),
);

test('the metrics listener: 401 without the token, only /stats/prometheus with it; the admin port stays on loopback', { skip: SKIP, timeout: 30_000 }, () =>
  explained(async () => {
    for (const host of [a, b]) {
      const url = `http://${host.address}:${METRICS}/stats/prometheus`;
      const none = await cp.fetch(url);
      assert.equal(none.status, 401, none.body);
      assert.doesNotMatch(none.body, /weft_/);
      const wrong = await cp.fetch(url, { headers: { authorization: 'Bearer not-the-token' } });
      assert.equal(wrong.status, 401);
      const ok = await cp.fetch(url, { headers: { authorization: `Bearer ${metricsToken}` } });
      assert.equal(ok.status, 200);
      assert.match(ok.body, /^weft_xds_connected 1$/m);
      const other = await cp.fetch(`http://${host.address}:${METRICS}/config_dump`, { headers: { authorization: `Bearer ${metricsToken}` } });
      assert.equal(other.status, 404);
      // The admin port (config dumps, tap, recent requests) answers on the host's loopback only.
      assert.equal(await cp.canConnect(ADMIN, host.address), false, `${host.name}'s admin port from cp`);
      assert.equal(await host.canConnect(ADMIN, host.address), false, `${host.name}'s admin port on its own LAN address`);
      assert.equal((await host.fetch(`http://127.0.0.1:${ADMIN}/ready`)).status, 200);
    }
  }),
);

test('a metrics listener beyond loopback without a token is refused at start, saying what to pass', { skip: SKIP, timeout: 30_000 }, () =>
  explained(async () => {
    const r = await b.exec(process.execPath, [BIN, 'proxy', '--service', 'beta', '--xds', `${cp.address}:${XDS_PORT}`, '--ca-file', bundle, '--admin-port', '0', '--metrics-address', `0.0.0.0:${METRICS + 1}`], {
      cwd: work,
      env: { WEFT_METRICS_TOKEN_FILE: '', WEFT_JOIN_TOKEN: '' },
      timeoutMs: 15_000,
    });
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /--metrics-address 0\.0\.0\.0:15091 is reachable from other hosts.*pass --metrics-token-file <file> \(or set WEFT_METRICS_TOKEN_FILE\)/);
    assert.equal(await b.canConnect(METRICS + 1), false, 'nothing was left listening');
  }),
);
