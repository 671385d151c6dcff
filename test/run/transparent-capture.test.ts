// Transparent mode's parts that need no namespace: which service ports a
// unit captures, the VIP sockets handing connections to sidecar listeners
// (real sockets on loopback addresses standing in for VIPs), the unit guard
// after a SIGKILL of its owner, and the error a user without privileges gets.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { silentLogger } from '../../src/observe/log';
import type { ListenerConfig, ProxyConfig, RouteTable } from '../../src/proxy/config/types';
import { capturedPorts, VipListeners, type CapturedPort } from '../../src/run/transparent/vip-listeners';
import { guardScript } from '../../src/run/unit-guard';
import { processAlive, tempDir, waitFor } from '../helpers/tmp';

const ROOT = path.resolve(__dirname, '../../..');

function config(domains: string[], tcpListeners: string[]): ProxyConfig {
  const outbound: RouteTable = { name: 'outbound', virtualHosts: [{ name: 'vh', domains, routes: [] }] };
  const listeners = new Map<string, ListenerConfig>(tcpListeners.map((name) => [name, { name, address: '127.0.0.1', port: 0, direction: 'outbound', chains: [] }]));
  return { listeners, routeTables: new Map([['outbound', outbound]]), clusters: new Map(), endpoints: new Map(), versions: { LDS: '', RDS: '', CDS: '', EDS: '' } };
}

test('captured ports: HTTP ports from "<name>.<ns>:<port>" domains (to the outbound listener), TCP ports from their listeners', () => {
  const ports = capturedPorts(
    config(['web', 'web:80', 'web.default', 'web.default:80', 'web.default.svc:80', 'api.shop:8080', 'shop.example.com', '*'], ['outbound|5432|db.default', 'outbound|5432|db-replica.default', 'inbound']),
  );
  assert.deepEqual(
    ports.map((p) => `${p.name}.${p.namespace}:${p.port}→${p.listener}`).sort(),
    ['api.shop:8080→outbound', 'db-replica.default:5432→outbound|5432|db-replica.default', 'db.default:5432→outbound|5432|db.default', 'web.default:80→outbound'],
  );
});

test('VIP sockets: one per service port, each connection handed to its listener; a service keeps its VIP; gone ports close', async () => {
  const handed: { listener: string; local: string }[] = [];
  // Loopback addresses stand in for a VIP block: 127.0.0.0/8 is local as a unit's block is on its host side.
  const vips = new VipListeners({
    vip: (i) => `127.77.0.${i}`,
    handOver: (listener, socket) => {
      handed.push({ listener, local: `${socket.localAddress}:${socket.localPort}` });
      socket.end('served by ' + listener);
      return true;
    },
    log: silentLogger,
  });
  const port = (p: number) => 20_000 + (process.pid % 5000) + p;
  const web: CapturedPort = { name: 'web', namespace: 'default', port: port(1), listener: 'outbound' };
  const db: CapturedPort = { name: 'db', namespace: 'default', port: port(2), listener: `outbound|${port(2)}|db.default` };
  try {
    await vips.apply([web, db]);
    assert.deepEqual(vips.services(), [
      { name: 'web', namespace: 'default', vip: '127.77.0.1' },
      { name: 'db', namespace: 'default', vip: '127.77.0.2' },
    ]);
    const read = (host: string, p: number) =>
      new Promise<string>((resolve, reject) => {
        let out = '';
        net.connect(p, host).on('data', (d) => (out += d)).on('end', () => resolve(out)).on('error', reject);
      });
    assert.equal(await read('127.77.0.1', port(1)), 'served by outbound');
    assert.equal(await read('127.77.0.2', port(2)), `served by outbound|${port(2)}|db.default`);
    // The db port is not web's: nothing listens there.
    await assert.rejects(read('127.77.0.1', port(2)), /ECONNREFUSED/);
    // db goes away; web stays on its VIP; a new service gets the next one.
    await vips.apply([web, { name: 'cache', namespace: 'default', port: port(3), listener: 'outbound' }]);
    await assert.rejects(read('127.77.0.2', port(2)), /ECONNREFUSED/);
    assert.equal(await read('127.77.0.1', port(1)), 'served by outbound');
    assert.equal(await read('127.77.0.3', port(3)), 'served by outbound');
    assert.deepEqual(handed.map((h) => h.local), [`127.77.0.1:${port(1)}`, `127.77.0.2:${port(2)}`, `127.77.0.1:${port(1)}`, `127.77.0.3:${port(3)}`]);
  } finally {
    await vips.close();
  }
});

test('unit guard: when its owner is SIGKILLed, the app\'s process group is stopped, then the clean-up commands run', { timeout: 20_000 }, async () => {
  const dir = tempDir(undefined, 'weft-guard-');
  const marker = path.join(dir, "cleaned 'up'");
  // The owner: starts an app (a process group with a child) and its guard, says the pids, waits to be killed.
  const owner = spawn(process.execPath, [
    '-e',
    `
const { spawn } = require('node:child_process');
const { UnitGuard } = require(${JSON.stringify(path.join(ROOT, 'dist/src/run/unit-guard.js'))});
const app = spawn('sh', ['-c', 'sleep 600 & exec sleep 601'], { detached: true, stdio: 'ignore' });
UnitGuard.start({ processGroup: app.pid, graceMs: 2000, commands: [['touch', ${JSON.stringify(marker)}]], paths: [${JSON.stringify(path.join(dir, 'gone'))}] });
setTimeout(() => console.log('APP ' + app.pid), 200);
setInterval(() => {}, 1 << 30);
`,
  ]);
  fs.mkdirSync(path.join(dir, 'gone'));
  let out = '';
  owner.stdout.on('data', (d) => (out += d));
  try {
    await waitFor(() => /APP \d+/.test(out), 10_000, 'the owner started its app');
    const pgid = Number(/APP (\d+)/.exec(out)![1]);
    const members = () => spawnSync('pgrep', ['-g', String(pgid)], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean).map(Number).filter(processAlive);
    assert.equal(members().length, 2, 'the app and its child run');
    owner.kill('SIGKILL');
    await waitFor(() => members().length === 0 && fs.existsSync(marker) && !fs.existsSync(path.join(dir, 'gone')), 10_000, 'the guard stopped the app and cleaned up');
  } finally {
    owner.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('unit guard script: quoted words, dash-compatible kill of a process group', () => {
  const script = guardScript({ processGroup: 42, graceMs: 500, commands: [['ip', 'netns', 'del', "it's"]], paths: ['/etc/netns/weft-1'] });
  assert.match(script, /^kill -TERM -42 /m);
  assert.match(script, /\[ \$i -lt 5 \]/);
  assert.match(script, /^'ip' 'netns' 'del' 'it'\\''s' >\/dev\/null 2>&1$/m);
  assert.match(script, /^rm -rf -- '\/etc\/netns\/weft-1'$/m);
  const syntax = spawnSync('sh', ['-n', '-c', script]);
  assert.equal(syntax.status, 0, String(syntax.stderr));
});

test('without privileges, weft run --transparent says what is missing and how to run without it', { skip: process.getuid?.() !== 0 ? 'needs root to drop privileges with setpriv' : false, timeout: 20_000 }, () => {
  const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, path.join(ROOT, 'bin/weft.js'), 'run', '--transparent', '--service', 'web', '--', 'true'], {
    encoding: 'utf8',
    timeout: 15_000,
  });
  assert.equal(r.error, undefined, String(r.error));
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /weft run --transparent needs CAP_NET_ADMIN and CAP_SYS_ADMIN/);
  assert.match(r.stderr, /without --transparent: HTTP_PROXY mode needs no privilege/);
  const egress = spawnSync(process.execPath, [path.join(ROOT, 'bin/weft.js'), 'run', '--egress', 'mesh-only', '--', 'true'], { encoding: 'utf8', timeout: 15_000 });
  assert.equal(egress.status, 1);
  assert.match(egress.stderr, /--egress applies to --transparent units only/);
});
