// A real Prometheus (Debian `prometheus`) scrapes a running mesh — two
// sidecars' /stats/prometheus and the control plane's /metrics — every
// second, and a rate() over weft_requests_total, queried through its HTTP
// API, shows the traffic with the right source and destination labels.
// Without the binary the test is skipped, except under CI=true where it fails.
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { docs, exitGuard, freePort, HttpUpstream, Mesh, request, serviceYaml, sleep, type Sidecar } from '../helpers/proxy-harness';
import { tempDir, waitFor } from '../helpers/tmp';

const T = { timeout: 60_000 };
const binary = spawnSync('sh', ['-c', 'command -v prometheus'], { encoding: 'utf8' }).stdout.trim();
const missing = binary === '' ? 'the prometheus binary is not installed (Debian package `prometheus`)' : undefined;
if (missing && process.env.CI === 'true') throw new Error(`${missing}; CI must run this test`);

let mesh: Mesh;
let app: HttpUpstream;
let shop: Sidecar;
let api: Sidecar;
let prom: ChildProcess | undefined;
let promPort = 0;
let promLog = '';

before(async () => {
  if (missing) return;
  app = await HttpUpstream.start('api-app');
  const apiInbound = await freePort();
  mesh = await Mesh.start({ 'services.yaml': docs(serviceYaml({ name: 'api', endpoints: [apiInbound] }), serviceYaml({ name: 'empty' })) });
  shop = await mesh.sidecar({ nodeId: 'shop-1', service: 'shop' });
  api = await mesh.sidecar({ nodeId: 'api-1', service: 'api', inboundPort: apiInbound, appPort: app.port });

  const dir = tempDir(undefined, 'weft-prometheus-');
  promPort = await freePort();
  const config = `global: { scrape_interval: 1s, evaluation_interval: 1s }
scrape_configs:
  - job_name: sidecars
    metrics_path: /stats/prometheus
    static_configs: [{ targets: ['127.0.0.1:${shop.adminPort}', '127.0.0.1:${api.adminPort}'] }]
  - job_name: control
    metrics_path: /metrics
    static_configs: [{ targets: ['127.0.0.1:${mesh.cp!.apiPort}'] }]
`;
  fs.writeFileSync(path.join(dir, 'prometheus.yml'), config);
  prom = spawn(
    binary,
    [`--config.file=${path.join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${promPort}`, '--log.level=warn'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  prom.stderr!.on('data', (c) => (promLog = (promLog + c).slice(-4000)));
  await waitFor(async () => (await request(promPort, { host: '127.0.0.1', path: '/-/ready' }).catch(() => ({ status: 0 }))).status === 200, 20_000, `prometheus ready (${promLog})`);
}, T);

after(async () => {
  exitGuard();
  if (prom && prom.exitCode === null) {
    const exited = new Promise((r) => prom!.once('exit', r));
    prom.kill('SIGTERM');
    await Promise.race([exited, sleep(5000)]);
    if (prom.exitCode === null) prom.kill('SIGKILL');
  }
  await mesh?.close();
  await app?.close();
}, T);

async function query(expr: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]> {
  const res = await request(promPort, { host: '127.0.0.1', path: `/api/v1/query?query=${encodeURIComponent(expr)}` });
  assert.equal(res.status, 200, res.text);
  const body = res.json();
  assert.equal(body.status, 'success', res.text);
  return body.data.result;
}

test('prometheus scrapes the sidecars and the control plane; rate(weft_requests_total[5s]) shows the traffic by source and destination', { ...T, skip: missing }, async () => {
  // Traffic for a few scrapes: 20 requests/s to api, a few to a service with no endpoint.
  let stop = false;
  const load = (async () => {
    for (let i = 0; !stop; i++) {
      await request(shop.outboundPort, { host: i % 10 === 9 ? 'empty' : 'api', path: `/p/${i}` });
      await sleep(50);
    }
  })();
  try {
    const ok = 'sum by (source, destination) (rate(weft_requests_total{direction="outbound",code="200"}[5s]))';
    await waitFor(async () => (await query(ok)).some((r) => Number(r.value[1]) > 0), 30_000, `a positive rate (prometheus: ${promLog})`);
    const rows = await query(ok);
    assert.deepEqual(rows.map((r) => [r.metric.source, r.metric.destination]), [['shop.default', 'api.default']]);
    assert.ok(Number(rows[0].value[1]) > 1, `rate ${rows[0].value[1]}/s`);
    // The server end counts the same requests inbound; the local replies carry their flag.
    await waitFor(async () => (await query('sum(rate(weft_requests_total{direction="inbound",destination="api.default"}[5s]))')).some((r) => Number(r.value[1]) > 0), 10_000, 'an inbound rate');
    await waitFor(async () => (await query('sum(rate(weft_requests_total{destination="empty.default",flags="UH"}[5s]))')).some((r) => Number(r.value[1]) > 0), 10_000, 'a UH rate');
    // A latency quantile from the histogram, in seconds.
    const p99 = await query('histogram_quantile(0.99, sum by (le) (rate(weft_request_duration_seconds_bucket{direction="outbound",destination="api.default"}[5s])))');
    assert.ok(Number(p99[0]?.value[1]) > 0 && Number(p99[0].value[1]) < 10, `p99 ${p99[0]?.value[1]} s`);
    // Every target is up, the control plane's metrics included.
    const up = await query('up');
    assert.deepEqual(up.map((r) => [r.metric.job, r.value[1]]).sort(), [['control', '1'], ['sidecars', '1'], ['sidecars', '1']]);
    const clients = await query('weft_control_xds_clients{role="sidecar"}');
    assert.equal(clients.reduce((n, r) => n + Number(r.value[1]), 0), 2);
  } finally {
    stop = true;
    await load;
  }
});
