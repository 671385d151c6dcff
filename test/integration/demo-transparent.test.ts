// `weft demo --transparent` as a user starts it (the real bin/weft.js), on a
// simulated host of its own (test/helpers/hosts.ts): its transparent units add
// addresses, routes and rules to the namespace they run in, which must not be
// the test machine's.
//
// The shop answers and a purchase goes storefront → order → payment, where
// order and payment are transparent units (`--egress mesh-only`): their apps
// run in namespaces of their own, with no proxy setting, and order calls
// http://payment:8083 by name. The API and `weft status` show the instances.
// After SIGINT, nothing of the units is left: no namespace, /etc/netns entry,
// link, rule or process.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { descendants, Hosts, multiHostSkip, type Host, type Proc, withProcessLogs } from '../helpers/hosts';
import { parsePrometheus } from '../helpers/proxy-harness';
import { processAlive, tempDir, waitFor } from '../helpers/tmp';

const ROOT = path.resolve(__dirname, '../../..');
const BIN = path.join(ROOT, 'bin/weft.js');
const API_PORT = 15000;
const XDS_PORT = 15010;
const SHOP_PORT = 8080;
const API = `http://127.0.0.1:${API_PORT}`;
const SHOP = `http://127.0.0.1:${SHOP_PORT}`;
const SKIP = multiHostSkip() || missingTools() || false;
/** The demo's units that run transparent (the storefront is the edge, in HTTP_PROXY mode). */
const TRANSPARENT = ['order', 'payment', 'product', 'product-v2'];

/** iptables (the units' rules) and python3 (the payment app): outside CI a missing one skips, under CI=true it fails. */
function missingTools(): string | false {
  for (const [cmd, pkg] of [
    ['iptables', 'iptables'],
    ['python3', 'python3'],
  ]) {
    const r = spawnSync(cmd, ['--version'], { encoding: 'utf8', timeout: 10_000 });
    if (r.error || r.status !== 0) {
      if (process.env.CI === 'true') throw new Error(`demo-transparent: ${cmd} is missing (Debian package ${pkg})`);
      return `demo-transparent skipped: ${cmd} is missing (Debian package ${pkg})`;
    }
  }
  return false;
}

interface NodeRow {
  node: { id: string; service?: string; appPort?: number; adminPort?: number; appAddress?: string; transparent?: boolean };
}

let hosts: Hosts;
let h: Host;
let demo: Proc;
/** Unit namespaces named in the demo's output ("transparent unit weft-<pid>"): what after() removes if the test fails. */
const units = new Set<string>();

function seenUnits(): string[] {
  for (const m of demo?.output().matchAll(/\[([\w-]+)\] transparent unit (weft-\d+)/g) ?? []) units.add(m[2]);
  return [...units];
}

before(async () => {
  if (SKIP) return;
  hosts = await Hosts.create({ name: 'dtp', hosts: ['h'] });
  h = hosts.get('h');
});

after(async () => {
  seenUnits();
  // SIGKILL of the whole tree takes the units' guards too: what they would have removed, after() does.
  demo?.killTree('SIGKILL');
  await hosts?.destroy();
  for (const name of units) {
    spawnSync('ip', ['netns', 'del', name], { timeout: 10_000 });
    fs.rmSync(`/etc/netns/${name}`, { recursive: true, force: true });
    fs.rmSync(`/run/netns/${name}`, { force: true });
  }
});

/** The pids of `pid`'s descendants whose command line matches `re`. */
function descendantsMatching(pid: number, re: RegExp): number[] {
  return descendants(pid).slice(1).filter((p) => re.test(cmdline(p)));
}

function cmdline(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return '';
  }
}

/** The socket inodes process `pid` holds. */
function socketInodes(pid: number): Set<string> {
  const out = new Set<string>();
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) out.add(m[1]);
    } catch {
      // closed while we looked
    }
  }
  return out;
}

/** Inodes of the TCP sockets listening on `port` in the network namespace of process `pid`. */
function listenInodes(pid: number, port: number): string[] {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  return ['tcp', 'tcp6'].flatMap((f) =>
    fs
      .readFileSync(`/proc/${pid}/net/${f}`, 'utf8')
      .split('\n')
      .slice(1)
      .map((l) => l.trim().split(/\s+/))
      .filter((c) => c.length > 9 && c[1].endsWith(`:${hex}`) && c[3] === '0A')
      .map((c) => c[9]),
  );
}

function environ(pid: number): string[] {
  return fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
}

async function getJson<T>(url: string): Promise<T> {
  const res = await h.fetch(url, { timeoutMs: 5000 });
  assert.equal(res.status, 200, `${url}: ${res.status} ${res.body}`);
  return JSON.parse(res.body) as T;
}

/** The sum of a sidecar's samples of `name` whose labels include `labels`. */
async function metric(adminPort: number, name: string, labels: Record<string, string>): Promise<number> {
  const samples = parsePrometheus((await h.fetch(`http://127.0.0.1:${adminPort}/stats/prometheus`, { timeoutMs: 5000 })).body);
  return samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((n, s) => n + s.value, 0);
}

test('weft demo --transparent: the shop serves, a purchase goes storefront → order → payment through transparent units, and SIGINT leaves nothing behind', { skip: SKIP, timeout: 240_000 }, async () => {
    const dataDir = tempDir(undefined, 'weft-dtp-');
    demo = h.spawn(process.execPath, [BIN, 'demo', '--transparent', '--load', '0', '--data-dir', dataDir, '--api-port', String(API_PORT), '--xds-port', String(XDS_PORT), '--port', String(SHOP_PORT)], {
      cwd: ROOT,
      env: { WEFT_DEBUG: '' },
    });
    await withProcessLogs([demo], async () => {
      await demo.waitForOutput(/weft demo mesh is starting/, 60_000);

      // The shop's page is assembled from product and order, both behind transparent units.
      let page = '';
      await waitFor(async () => {
        const res = await h.fetch(`${SHOP}/`, { timeoutMs: 5000 }).catch(() => undefined);
        page = res?.status === 200 ? res.body : '';
        return /Catalogue served by product/.test(page);
      }, 90_000, 'the storefront page assembled from product and order');
      assert.match(page, /Loom/);

      // A purchase: the storefront (HTTP_PROXY mode) calls order, whose app calls http://payment:8083 by name.
      let placed = '';
      await waitFor(async () => {
        const buy = await h.fetch(`${SHOP}/buy?id=1&amount=10`, { timeoutMs: 10_000 }).catch(() => undefined);
        placed = decodeURIComponent(String(buy?.headers.location ?? ''));
        return buy?.status === 303 && /order #\d+ placed/.test(placed);
      }, 60_000, `an order paid through order → payment (last: ${placed})`);

      // The API shows every instance; order and payment (and product) as transparent units at their unit's address.
      const nodes = (await getJson<{ items: NodeRow[] }>(`${API}/api/v1/nodes`)).items;
      assert.deepEqual(nodes.map((n) => n.node.service).sort(), ['order', 'payment', 'product', 'product-v2', 'storefront']);
      const byService = new Map(nodes.map((n) => [n.node.service!, n.node]));
      for (const service of TRANSPARENT) {
        const node = byService.get(service)!;
        assert.equal(node.transparent, true, `${service} runs transparent: ${JSON.stringify(node)}`);
        assert.match(node.appAddress ?? '', /^169\.254\.\d+\.\d+$/, `${service}'s app is reached at its unit's address`);
      }
      assert.notEqual(byService.get('storefront')!.transparent, true, 'the storefront stays in HTTP_PROXY mode');
      const { services } = await getJson<{ services: Record<string, { health: string }[]> }>(`${API}/api/v1/endpoints`);
      for (const service of ['order', 'payment']) assert.deepEqual(services[`default/${service}`]?.map((e) => e.health), ['healthy'], `${service}'s instance is registered: ${JSON.stringify(services)}`);

      const status = await h.exec(process.execPath, [BIN, 'status', '--api', API], { cwd: ROOT, timeoutMs: 20_000 });
      assert.equal(status.code, 0, status.stderr);
      for (const service of ['order', 'payment', 'storefront']) assert.match(status.stdout, new RegExp(`\\b${service}\\.default +sidecar .*SYNCED`), status.stdout);

      // Each unit the demo announced is the namespace of a weft run whose node is connected.
      const announced = seenUnits();
      const runPids = nodes.filter((n) => TRANSPARENT.includes(n.node.service!)).map((n) => Number(n.node.id.split('~').pop()));
      assert.deepEqual(runPids.map((p) => `weft-${p}`).sort(), [...announced].sort(), 'the demo names each transparent unit');

      // The apps: order's and payment's in namespaces of their own with no proxy setting; the storefront's beside its sidecar, with one.
      const hostNet = fs.readlinkSync(`/proc/${demo.pid}/ns/net`);
      const app = (re: RegExp) => {
        const pids = descendantsMatching(demo.pid, re);
        assert.equal(pids.length, 1, `one app process matching ${re}: ${pids.map(cmdline).join(' | ')}`);
        return pids[0];
      };
      const orderApp = app(/^\S*node\S* \S*examples\/apps\/order\.js/);
      const paymentApp = app(/^\S*python3\S* \S*examples\/apps\/payment\.py/);
      const storefrontApp = app(/^\S*node\S* \S*examples\/apps\/storefront\.js/);
      for (const [service, pid] of [['order', orderApp], ['payment', paymentApp]] as const) {
        assert.notEqual(fs.readlinkSync(`/proc/${pid}/ns/net`), hostNet, `${service}'s app runs in its unit's namespace`);
        assert.deepEqual(environ(pid).filter((v) => /^(https?|all|no)_proxy=/i.test(v)), [], `${service}'s app has no proxy setting`);
      }
      assert.equal(fs.readlinkSync(`/proc/${storefrontApp}/ns/net`), hostNet);
      assert.ok(environ(storefrontApp).some((v) => v.startsWith('HTTP_PROXY=')), 'the storefront calls through HTTP_PROXY');

      // Only the sidecars reach the transparent apps: order's listening socket is not among the host's.
      // (Its port number is free on the host, and another unit's sidecar may take it: the socket, not the number, says.)
      const orderPort = byService.get('order')!.appPort!;
      const orderSockets = socketInodes(orderApp);
      assert.ok(listenInodes(orderApp, orderPort).some((i) => orderSockets.has(i)), "order's app listens in its unit");
      assert.ok(!listenInodes(storefrontApp, orderPort).some((i) => orderSockets.has(i)), "order's app listens nowhere in the host's namespace");
      assert.equal(await h.canConnect(SHOP_PORT, '127.0.0.1', 2000), true, 'the edge is');

      // order's call to payment went out through order's sidecar and in through payment's, which names order (mTLS) as the caller.
      const paid = { direction: 'outbound', destination: 'payment.default', code: '200' };
      assert.ok((await metric(byService.get('order')!.adminPort!, 'weft_requests_total', paid)) >= 1, "order's sidecar carried the charge");
      assert.ok((await metric(byService.get('payment')!.adminPort!, 'weft_requests_total', { direction: 'inbound', source: 'order.default', destination: 'payment.default', code: '200' })) >= 1, "payment's sidecar took it from order");

      // Ctrl-C: the demo stops each unit, and each unit removes what it made.
      const weftRuns = descendantsMatching(demo.pid, /bin\/weft\.js run /);
      assert.equal(weftRuns.length, 5, weftRuns.map(cmdline).join('\n'));
      const apps = descendantsMatching(demo.pid, /^\S+ \S*examples\/apps\//);
      assert.equal(apps.length, 5, apps.map(cmdline).join('\n'));
      demo.kill('SIGINT');
      const exit = await Promise.race([demo.exited, new Promise<'running'>((r) => setTimeout(r, 60_000, 'running').unref())]);
      assert.deepEqual(exit, { code: 0, signal: null }, 'the demo stopped within 60 s with code 0');
      assert.deepEqual(demo.output().match(/exited .*/g)?.sort(), Array(5).fill('exited with code 0'));

      const left: string[] = [];
      for (const name of announced) {
        if (fs.existsSync(`/run/netns/${name}`)) left.push(`/run/netns/${name}`);
        if (fs.existsSync(`/etc/netns/${name}`)) left.push(`/etc/netns/${name}`);
      }
      const links = await h.exec('ip', ['-o', 'link']);
      left.push(...links.stdout.split('\n').filter((l) => /: wu\d+h[@:]/.test(l)));
      const rules = await h.exec('iptables-save');
      left.push(...rules.stdout.split('\n').filter((l) => l.includes('weft-unit:')));
      for (const pid of [...weftRuns, ...apps]) if (processAlive(pid)) left.push(`pid ${pid} ${cmdline(pid)}`);
      assert.deepEqual(left, [], 'nothing of the demo is left');
    });
  },
);
