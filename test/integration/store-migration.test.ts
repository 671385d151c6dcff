// `weft store export` / `import` with the real CLI: a mesh started on the
// embedded store moves to etcd (CA, join tokens, resources, registrations,
// issuance records), runs there as a replica with its CA keys sealed, and
// moves back to a data directory; every step keeps the same trust bundle and
// the same tokens.
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startControlPlane, type ControlPlaneOptions } from '../../src/control/control-plane';
import { silentLogger } from '../../src/observe/log';
import { createCsr, generateKeyPem } from '../../src/ca/pki';
import { parseDocuments } from '../../src/config';
import { EtcdCluster, etcdctl, etcdMissing } from '../helpers/etcd-cluster';
import { exitGuard, serviceYaml } from '../helpers/proxy-harness';
import { tempDir } from '../helpers/tmp';

const BIN = path.resolve(__dirname, '../../../bin/weft.js');
const LONG = { timeout: 60_000 };
const missing = etcdMissing();
let etcd: EtcdCluster;

function weft(args: string[]): { code: number | null; out: string; err: string } {
  const res = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 20_000 });
  return { code: res.status, out: res.stdout, err: res.stderr };
}

async function plane(extra: Partial<ControlPlaneOptions>) {
  return startControlPlane({ xdsPort: 0, apiPort: 0, dev: true, log: silentLogger, ...extra });
}

before(async () => {
  if (!missing) etcd = await EtcdCluster.start(1);
}, LONG);

after(async () => {
  exitGuard();
  await etcd?.stop();
}, LONG);

test('a mesh moves from a data directory to etcd and back, CA, tokens and resources included', { ...LONG, skip: missing }, async () => {
  const work = tempDir(undefined, 'weft-migrate-');
  const first = path.join(work, 'first');
  // 1. A mesh on the embedded store.
  const a = await plane({ dataDir: first });
  await a.store.apply([parseService('web', 8080)]);
  const token = await a.tokens.create({ service: 'web' });
  await a.ca.sign(await createCsr(await generateKeyPem(), a.ca.spiffeIdOf({ namespace: 'default', service: 'web' })), { namespace: 'default', service: 'web' }, 'web-1');
  await a.registry.register({ service: 'web', address: '127.0.0.1', port: 9999, ttlSeconds: 60 });
  const bundle = a.ca.bundlePem();
  await a.close();

  // 2. Exported to a file only its owner can read.
  const exported = path.join(work, 'mesh.json');
  const out = weft(['store', 'export', '--data-dir', first, '-o', exported]);
  assert.equal(out.code, 0, out.err);
  assert.match(out.err, /exported 1 resource\(s\), 1 join token\(s\), the CA, 1 registration\(s\), 1 issuance record\(s\)/);
  assert.equal(fs.statSync(exported).mode & 0o777, 0o600);

  // 3. Imported into etcd with the CA keys sealed; a replica runs on it.
  const secret = path.join(work, 'ca-secret');
  fs.writeFileSync(secret, 'a-secret-of-thirty-two-characters!!');
  const imported = weft(['store', 'import', '--store', etcd.url, '-i', exported, '--ca-key-secret-file', secret]);
  assert.equal(imported.code, 0, imported.err);
  const sealed = etcdctl(etcd.endpoint(0), ['get', '/weft/ca/material', '--print-value-only']);
  assert.ok(!sealed.includes('PRIVATE KEY'), 'no private key in the clear in etcd');
  const again = weft(['store', 'import', '--store', etcd.url, '-i', exported, '--ca-key-secret-file', secret]);
  assert.notEqual(again.code, 0);
  assert.match(again.err, /etcd already holds \d+ weft key\(s\) under \/weft\/; import into an empty prefix .* or pass --force/);
  const r = await plane({ dataDir: path.join(work, 'replica'), etcd: { url: etcd.url }, caKeySecretFile: secret });
  try {
    assert.equal(r.ca.bundlePem(), bundle, 'the same trust bundle: sidecars keep trusting');
    assert.deepEqual(r.tokens.verify(token.token), { namespace: 'default', service: 'web' });
    assert.ok(r.store.get('Service', 'default', 'web'));
    assert.equal(r.registry.list().length, 1);
    assert.deepEqual(r.ca.latestIssuances().map((i) => i.nodeId), ['web-1']);
  } finally {
    await r.close();
  }
  // Without the secret, a replica refuses the sealed keys and says what to pass.
  await assert.rejects(plane({ dataDir: path.join(work, 'no-secret'), etcd: { url: etcd.url } }), /sealed: give this replica the same --ca-key-secret-file/);

  // 4. And back to a data directory.
  const back = path.join(work, 'back.json');
  assert.equal(weft(['store', 'export', '--store', etcd.url, '--ca-key-secret-file', secret, '-o', back]).code, 0);
  const second = path.join(work, 'second');
  const restored = weft(['store', 'import', '--data-dir', second, '-i', back]);
  assert.equal(restored.code, 0, restored.err);
  const b = await plane({ dataDir: second });
  try {
    assert.equal(b.ca.bundlePem(), bundle);
    assert.deepEqual(b.tokens.verify(token.token), { namespace: 'default', service: 'web' });
    assert.ok(b.store.get('Service', 'default', 'web'));
  } finally {
    await b.close();
  }
});

test('bad input: no target, both targets, not an export', { timeout: 20_000 }, () => {
  const work = tempDir(undefined, 'weft-migrate-bad-');
  assert.match(weft(['store', 'export']).err, /give the store: --store etcd:\/\/host:port\[,…\] or --data-dir <dir>/);
  assert.match(weft(['store', 'export', '--data-dir', work, '--store', 'etcd://127.0.0.1:1']).err, /either --store \(etcd\) or --data-dir, not both/);
  const junk = path.join(work, 'junk.json');
  fs.writeFileSync(junk, '{"hello": 1}');
  assert.match(weft(['store', 'import', '--data-dir', path.join(work, 'x'), '-i', junk]).err, /not a weft store export/);
  assert.match(weft(['store', 'export', '--data-dir', path.join(work, 'nope')]).err, /data directory .*nope does not exist/);
});

function parseService(name: string, port: number) {
  return parseDocuments(serviceYaml({ name, port }), 'test').resources[0];
}
