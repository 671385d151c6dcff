// The sidecar's hand-built PKCS#10 request (ca/csr.ts), checked by two
// independent parsers: the CA's (@peculiar/x509, which also verifies its
// signature) and OpenSSL's `req -verify`. A tampered request fails both.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { createCsrPem, generateEcKeyPem } from '../../src/ca/csr';
import { parseCsr } from '../../src/ca/pki';

const URI = 'spiffe://cluster.local/ns/shop/sa/checkout-v2';

function openssl(csr: string): { ok: boolean; text: string } {
  const res = spawnSync('openssl', ['req', '-noout', '-verify', '-text'], { input: csr, encoding: 'utf8' });
  return { ok: res.status === 0 && /verify OK/.test(res.stdout + res.stderr), text: res.stdout + res.stderr };
}

test('a request parses and verifies with the CA parser and with OpenSSL, naming only the SPIFFE ID', async () => {
  const csr = createCsrPem(await generateEcKeyPem(), URI);
  const parsed = await parseCsr(csr);
  assert.deepEqual(parsed.uris, [URI]);
  assert.equal(parsed.publicKey.algorithm.name, 'ECDSA');
  const o = openssl(csr);
  assert.ok(o.ok, o.text);
  assert.match(o.text, /Subject: O ?= ?weft/);
  assert.match(o.text, new RegExp(`URI:${URI}`));
  assert.match(o.text, /ecdsa-with-SHA256/);
});

test('a request whose signed part was altered is refused by both', async () => {
  const csr = createCsrPem(await generateEcKeyPem(), URI);
  const der = Buffer.from(csr.replace(/-----[^-]+-----|\s/g, ''), 'base64');
  // Flip a byte of the SAN's URI (inside the signed CertificationRequestInfo).
  const at = der.indexOf(Buffer.from('checkout'));
  der[at] ^= 0x01;
  const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64').replace(/.{64}/g, '$&\n')}\n-----END CERTIFICATE REQUEST-----\n`;
  await assert.rejects(parseCsr(tampered));
  assert.equal(openssl(tampered).ok, false);
});
