import { strict as assert } from 'node:assert';
import * as tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { test } from 'node:test';
import type { AddressInfo } from 'node:net';
import { createCsr, createIntermediate, createRoot, generateKeyPem, issueKeyedLeaf, issueLeaf, parseCsr, parseSpiffeId, PkiError, spiffeId } from '../../src/ca/pki';

const HOUR = 3600_000;

test('a CSR round-trips to a leaf chained to the root, with only the SPIFFE URI SAN', async () => {
  const root = await createRoot({ commonName: 'weft root', ttlMs: 24 * HOUR, organization: 'cluster.local' });
  const mid = await createIntermediate(root, { commonName: 'weft intermediate', ttlMs: 12 * HOUR });
  const key = await generateKeyPem();
  const uri = spiffeId('cluster.local', 'default', 'orders');
  const csr = await parseCsr(await createCsr(key, uri));
  assert.deepEqual(csr.uris, [uri]);
  assert.deepEqual(csr.otherNames, []);
  const leaf = new X509Certificate(await issueLeaf(mid, csr.publicKey, { uri, ttlMs: HOUR }));
  assert.equal(leaf.subjectAltName, `URI:${uri}`);
  assert.ok(leaf.verify(new X509Certificate(mid.certPem).publicKey));
  assert.ok(new X509Certificate(mid.certPem).verify(new X509Certificate(root.certPem).publicKey));
  assert.ok(new X509Certificate(mid.certPem).ca);
  const life = Date.parse(leaf.validTo) - Date.parse(leaf.validFrom);
  assert.ok(life > HOUR && life <= HOUR + 6 * 60_000, `lifetime ${life}`);
  assert.deepEqual(parseSpiffeId(uri), { trustDomain: 'cluster.local', namespace: 'default', service: 'orders' });
  assert.equal(parseSpiffeId('spiffe://x/other'), undefined);
});

test('a leaf never outlives its issuer', async () => {
  const root = await createRoot({ commonName: 'r', ttlMs: HOUR });
  const leaf = await issueKeyedLeaf(root, { uri: spiffeId('td', 'a', 'b'), ttlMs: 48 * HOUR });
  assert.equal(new X509Certificate(leaf.certPem).validTo, new X509Certificate(root.certPem).validTo);
});

test('garbage and tampered CSRs are refused with a reason', async () => {
  await assert.rejects(parseCsr('not a csr'), (e: PkiError) => e.code === 'CSR_MALFORMED');
  const pem = await createCsr(await generateKeyPem(), spiffeId('td', 'a', 'b'));
  const der = Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
  der[der.length - 5] ^= 0xff; // inside the signature
  const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
  await assert.rejects(parseCsr(tampered), (e: PkiError) => e.code === 'CSR_SIGNATURE' || e.code === 'CSR_MALFORMED');
});

test('two leaves of one intermediate complete mutual TLS with node:tls', async () => {
  const root = await createRoot({ commonName: 'r', ttlMs: 24 * HOUR });
  const mid = await createIntermediate(root, { commonName: 'i', ttlMs: 24 * HOUR });
  const server = await issueKeyedLeaf(mid, { uri: spiffeId('td', 'ns', 'server'), ttlMs: HOUR });
  const client = await issueKeyedLeaf(mid, { uri: spiffeId('td', 'ns', 'client'), ttlMs: HOUR });
  const srv = tls.createServer({ cert: server.certPem + mid.certPem, key: server.keyPem, ca: root.certPem, requestCert: true, rejectUnauthorized: true }, (s) => {
    s.end((s as tls.TLSSocket).getPeerCertificate().subjectaltname ?? '');
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  try {
    const got = await new Promise<string>((resolve, reject) => {
      const s = tls.connect({
        port: (srv.address() as AddressInfo).port,
        host: '127.0.0.1',
        cert: client.certPem + mid.certPem,
        key: client.keyPem,
        ca: root.certPem,
        checkServerIdentity: (_h, cert) => (cert.subjectaltname === `URI:${spiffeId('td', 'ns', 'server')}` ? undefined : new Error('wrong peer')),
      });
      let text = '';
      s.on('data', (d) => (text += d));
      s.on('end', () => resolve(text));
      s.on('error', reject);
    });
    assert.equal(got, `URI:${spiffeId('td', 'ns', 'client')}`);
  } finally {
    srv.close();
  }
});
