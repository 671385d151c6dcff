// The CA on real files: key modes, restart, bring-your-own root, rotation,
// CSR refusals; join tokens persisted hashed.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { isSignedBy, splitPemCertificates } from '../../src/ca/cert-info';
import { CaError, CertificateAuthority, RootInUseError } from '../../src/ca/certificate-authority';
import { JoinTokenError, JoinTokenStore } from '../../src/ca/join-tokens';
import { FileDocumentSet } from '../../src/store/document-set';
import type { CaMaterial, IssuanceRecord } from '../../src/ca/certificate-authority';
import { createCsr, createRoot, generateKeyPem, spiffeId } from '../../src/ca/pki';
import { tempDir } from '../helpers/tmp';

const ORDERS = { namespace: 'default', service: 'orders' };

async function csrFor(uri: string): Promise<string> {
  return createCsr(await generateKeyPem(), uri);
}

test('the root is generated into <dataDir>/ca with 0600 keys and reused on restart', async () => {
  const dataDir = tempDir();
  const ca = await CertificateAuthority.open({ dataDir });
  const dir = path.join(dataDir, 'ca');
  for (const key of ['root-key.pem', 'ca-key.pem']) assert.equal(fs.statSync(path.join(dir, key)).mode & 0o777, 0o600, key);
  assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
  const again = await CertificateAuthority.open({ dataDir });
  assert.equal(again.bundlePem(), ca.bundlePem());
  assert.equal(fs.readFileSync(path.join(dir, 'trust-bundle.pem'), 'utf8'), ca.bundlePem());
  // A leaf of the restarted CA chains to the same root.
  const issued = await again.sign(await csrFor(spiffeId('cluster.local', 'default', 'orders')), ORDERS, 'n1');
  const [leaf, mid] = splitPemCertificates(issued.chainPem);
  assert.ok(isSignedBy(leaf, mid) && isSignedBy(mid, ca.bundlePem()));
});

test('bring your own root: weft makes its intermediate under it; a key of another root is refused', async () => {
  const dir = tempDir();
  const mine = await createRoot({ commonName: 'corp root', ttlMs: 3600_000 * 24 * 30 });
  const other = await createRoot({ commonName: 'other root', ttlMs: 3600_000 });
  fs.writeFileSync(path.join(dir, 'root.pem'), mine.certPem);
  fs.writeFileSync(path.join(dir, 'root.key'), mine.keyPem);
  fs.writeFileSync(path.join(dir, 'other.key'), other.keyPem);
  const ca = await CertificateAuthority.open({ dataDir: path.join(dir, 'data'), rootCertFile: path.join(dir, 'root.pem'), rootKeyFile: path.join(dir, 'root.key'), trustDomain: 'corp.example' });
  assert.equal(ca.bundlePem(), mine.certPem);
  assert.ok(!fs.existsSync(path.join(dir, 'data/ca/root-key.pem')), 'a brought root key is not copied');
  const issued = await ca.sign(await csrFor('spiffe://corp.example/ns/default/sa/orders'), ORDERS);
  const [leaf, mid] = splitPemCertificates(issued.chainPem);
  assert.ok(isSignedBy(leaf, mid) && isSignedBy(mid, mine.certPem));
  await assert.rejects(
    CertificateAuthority.open({ rootCertFile: path.join(dir, 'root.pem'), rootKeyFile: path.join(dir, 'other.key') }),
    (e: CaError) => e.code === 'CA_FILES' && /does not belong to the root certificate/.test(e.message),
  );
  await assert.rejects(CertificateAuthority.open({ rootCertFile: path.join(dir, 'root.pem') }), /needs both/);
});

test('sign refuses with a reason: malformed, foreign identity, extra SANs, other trust domain', async () => {
  const ca = await CertificateAuthority.open({});
  await assert.rejects(ca.sign('not a csr', ORDERS), (e: CaError) => e.code === 'CSR_MALFORMED' && /CERTIFICATE REQUEST/.test(e.message));
  await assert.rejects(ca.sign('-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n', ORDERS), (e: CaError) => e.code === 'CSR_MALFORMED');
  await assert.rejects(
    ca.sign(await csrFor(spiffeId('cluster.local', 'default', 'payments')), ORDERS),
    (e: CaError) => e.code === 'CSR_IDENTITY' && /asks for spiffe:\/\/cluster.local\/ns\/default\/sa\/payments, but this caller may only obtain spiffe:\/\/cluster.local\/ns\/default\/sa\/orders/.test(e.message),
  );
  await assert.rejects(ca.sign(await csrFor(spiffeId('evil.org', 'default', 'orders')), ORDERS), (e: CaError) => e.code === 'CSR_IDENTITY');
  // A CSR with a DNS SAN next to the URI.
  const x509 = await import('@peculiar/x509');
  const { webcrypto } = await import('node:crypto');
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as any;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: 'O=x',
    keys,
    signingAlgorithm: alg,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: spiffeId('cluster.local', 'default', 'orders') }, { type: 'dns', value: 'orders.example' }])],
  });
  await assert.rejects(ca.sign(csr.toString('pem'), ORDERS), (e: CaError) => e.code === 'CSR_SANS' && /dns:orders.example/.test(e.message));
  assert.equal(ca.issuances().length, 0);
});

test('leaf TTL and trust domain are validated', async () => {
  await assert.rejects(CertificateAuthority.open({ leafTtlMs: 10 }), (e: CaError) => e.code === 'CA_OPTIONS' && /leaf TTL/.test(e.message));
  await assert.rejects(CertificateAuthority.open({ trustDomain: 'Bad Domain' }), /trust domain/);
  const ca = await CertificateAuthority.open({ leafTtlMs: 90_000 });
  const { record } = await ca.sign(await csrFor(spiffeId('cluster.local', 'default', 'orders')), ORDERS, 'n1');
  const life = Date.parse(record.notAfter) - Date.now();
  assert.ok(life > 80_000 && life <= 91_000, `lifetime left ${life}`);
});

test('root rotation: the bundle holds old and new roots, new leaves chain to the new root, retire drops the old', async () => {
  const dataDir = tempDir();
  const ca = await CertificateAuthority.open({ dataDir });
  const oldRoot = ca.bundlePem();
  await ca.rotateRoot();
  const roots = splitPemCertificates(ca.bundlePem());
  assert.equal(roots.length, 2);
  assert.equal(roots[1], oldRoot);
  const { chainPem } = await ca.sign(await csrFor(spiffeId('cluster.local', 'default', 'orders')), ORDERS);
  const [, mid] = splitPemCertificates(chainPem);
  assert.ok(isSignedBy(mid, roots[0]) && !isSignedBy(mid, oldRoot));
  // Survives a restart.
  assert.equal((await CertificateAuthority.open({ dataDir })).bundlePem(), ca.bundlePem());
  await ca.retireRoots();
  assert.deepEqual(splitPemCertificates(ca.bundlePem()), [roots[0]]);
  assert.equal((await CertificateAuthority.open({ dataDir })).bundlePem(), roots[0]);
});

test('retire-roots is refused while a live certificate chains to a root being retired, names the nodes, and survives a restart of the records', async () => {
  const dataDir = tempDir();
  const ca = await CertificateAuthority.open({ dataDir });
  const oldRoot = ca.roots()[0];
  const first = await ca.sign(await csrFor(spiffeId('cluster.local', 'default', 'orders')), ORDERS, 'orders-1');
  assert.equal(first.record.rootFingerprint256, oldRoot.fingerprint256);
  assert.match(oldRoot.id, /^[0-9A-F]{8}$/);
  await ca.rotateRoot();
  const newRoot = ca.roots()[0];
  assert.deepEqual(ca.certificatesOffActiveRoot().map((r) => r.nodeId), ['orders-1']);
  await assert.rejects(ca.retireRoots(), (err: RootInUseError) => {
    assert.ok(err instanceof CaError);
    assert.equal(err.code, 'CA_ROOT_IN_USE');
    assert.deepEqual(err.nodes.map((n) => [n.nodeId, n.root]), [['orders-1', oldRoot.id]]);
    assert.match(err.message, /orders-1 \(root [0-9A-F]{8}, valid until 20/);
    return true;
  });
  assert.equal(ca.roots().length, 2, 'nothing retired');
  // A restarted control plane reads the records back and refuses the same.
  await ca.close();
  const again = await CertificateAuthority.open({ dataDir });
  await assert.rejects(again.retireRoots(), /orders-1/);
  // Renewed under the new root: retired without --force.
  const renewed = await again.sign(await csrFor(spiffeId('cluster.local', 'default', 'orders')), ORDERS, 'orders-1');
  assert.equal(renewed.record.rootFingerprint256, newRoot.fingerprint256);
  assert.deepEqual(again.certificatesOffActiveRoot(), []);
  await again.retireRoots();
  assert.equal(again.roots().length, 1);
  // --force retires whatever still chains to the old root.
  await again.rotateRoot();
  await again.sign(await csrFor(spiffeId('cluster.local', 'default', 'shop')), { namespace: 'default', service: 'shop' }, 'shop-1'); // under the newest root
  await assert.rejects(again.retireRoots(), (err: RootInUseError) => err.nodes.length === 1 && err.nodes[0].nodeId === 'orders-1');
  await again.retireRoots({ force: true });
  assert.equal(again.roots().length, 1);
  await again.close();
});

test('retire-roots counts a record that does not name its root (written before roots were recorded) as in use', async () => {
  const dataDir = tempDir();
  const ca = await CertificateAuthority.open({ dataDir });
  await ca.sign(await csrFor(spiffeId('cluster.local', 'default', 'orders')), ORDERS, 'orders-1');
  await ca.close();
  const file = path.join(dataDir, 'ca', 'issued.json');
  const stored = JSON.parse(fs.readFileSync(file, 'utf8'));
  const json = JSON.stringify(stored);
  assert.ok(json.includes('rootFingerprint256'), json.slice(0, 300));
  fs.writeFileSync(file, json.replace(/,"rootFingerprint256":"[^"]*"/g, ''));
  const old = await CertificateAuthority.open({ dataDir });
  await old.rotateRoot();
  await assert.rejects(old.retireRoots(), (err: RootInUseError) => err.nodes[0].nodeId === 'orders-1' && err.nodes[0].root === 'unknown');
  await old.close();
});

test('replicas sharing one store: a certificate one replica issued under the old root stops a retirement on another', async () => {
  const shared = {
    material: new FileDocumentSet<CaMaterial>({ field: 'material', idOf: () => 'material', sweepIntervalMs: 0 }),
    issued: new FileDocumentSet<IssuanceRecord>({ field: 'issued', idOf: (r) => (r as IssuanceRecord).nodeId, sweepIntervalMs: 0 }),
  };
  const a = await CertificateAuthority.open({ shared });
  const b = await CertificateAuthority.open({ shared });
  await a.sign(await csrFor(spiffeId('cluster.local', 'default', 'orders')), ORDERS, 'orders-1');
  await a.rotateRoot();
  assert.equal(b.roots()[0].fingerprint256, a.roots()[0].fingerprint256, 'b adopted the rotation');
  await assert.rejects(b.retireRoots(), (err: RootInUseError) => err.nodes.map((n) => n.nodeId).join() === 'orders-1');
  await b.sign(await csrFor(spiffeId('cluster.local', 'default', 'orders')), ORDERS, 'orders-1');
  await b.retireRoots();
  assert.equal(a.roots().length, 1, 'a adopted the retirement');
});

test('join tokens: stored hashed (0600), verified, expired and revoked ones refused', async () => {
  const dataDir = tempDir();
  let now = Date.now();
  const store = new JoinTokenStore(dataDir, () => now);
  const t = await store.create({ service: 'orders', namespace: 'shop', ttlMs: 60_000 });
  const file = path.join(dataDir, 'join-tokens.json');
  assert.equal(fs.statSync(file).mode & 0o777, 0o600);
  assert.ok(!fs.readFileSync(file, 'utf8').includes(t.token.split('.')[2]), 'the secret is not stored');
  const reopened = new JoinTokenStore(dataDir, () => now);
  assert.deepEqual(reopened.verify(t.token), { namespace: 'shop', service: 'orders' });
  assert.throws(() => reopened.verify(`${t.token.slice(0, -2)}xx`), (e: JoinTokenError) => e.code === 'E_TOKEN_UNKNOWN');
  assert.throws(() => reopened.verify('garbage'), (e: JoinTokenError) => e.code === 'E_TOKEN_INVALID');
  now += 61_000;
  assert.throws(() => reopened.verify(t.token), (e: JoinTokenError) => e.code === 'E_TOKEN_EXPIRED');
  now -= 61_000;
  assert.equal(await reopened.revoke(t.id), true);
  assert.throws(() => reopened.verify(t.token), /unknown or revoked/);
  await assert.rejects(store.create({ service: 'Bad_Name' }), /service: "Bad_Name"/);
});
