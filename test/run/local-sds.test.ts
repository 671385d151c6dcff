// The local SDS server of `weft run --proxy envoy`: a real grpc-js client
// speaking StreamSecrets over the unix socket, fed by a real CertificateAgent
// against a --dev control plane's CA with a short certificate lifetime (so a
// renewal happens within the test).
import { strict as assert } from 'node:assert';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { isSignedBy, splitPemCertificates } from '../../src/ca/cert-info';
import { decodeDiscoveryResponse, encodeDiscoveryRequest, SECRET_TYPE_URL } from '../../src/ca/sds-protocol';
import { CertificateAgent } from '../../src/proxy/tls/certificate-agent';
import { SecretStore } from '../../src/proxy/tls/secret-store';
import { LocalSdsServer, STREAM_SECRETS_PATH } from '../../src/run/envoy/local-sds';
import { decodeMessage } from '../../src/xds/protos';
import { Mesh, waitFor } from '../helpers/proxy-harness';
import { tempDir } from '../helpers/tmp';

const T = { timeout: 30_000 };
const closers: (() => Promise<unknown> | unknown)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

type Obj = Record<string, any>;

/** One StreamSecrets call: what it received, in order, and how it ended. */
function openStream(client: grpc.Client) {
  const call = client.makeBidiStreamRequest(STREAM_SECRETS_PATH, (o: Obj) => encodeDiscoveryRequest(o), decodeDiscoveryResponse);
  const received: Obj[] = [];
  const ended: { error?: grpc.ServiceError } = {};
  call.on('data', (r: Obj) => received.push(r));
  call.on('error', (e: grpc.ServiceError) => (ended.error = e));
  return { call, received, ended };
}

const secretOf = (response: Obj) => response.resources.map((r: Obj) => decodeMessage(SECRET_TYPE_URL, r.value));

test('StreamSecrets on a 0600 socket: "default" once issued (chained to the mesh root, its own key), a renewal pushed, ACK and NACK, names it does not hold', T, async () => {
  const ttl = 4000;
  const mesh = await Mesh.start({}, { certTtlMs: ttl });
  closers.push(() => mesh.close());
  const dir = path.join(tempDir(), 'sds');
  const secrets = new SecretStore();
  const logs: string[] = [];
  const log = (level: string, msg: string, fields?: Obj) => logs.push(`${level} ${msg} ${JSON.stringify(fields ?? {})}`);
  const sds = await LocalSdsServer.start({ dir, secrets, log });
  closers.push(() => sds.close());
  assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
  assert.equal(fs.statSync(sds.socketPath).mode & 0o777, 0o600);
  assert.ok(fs.statSync(sds.socketPath).isSocket());

  const client = new grpc.Client(`unix:${sds.socketPath}`, grpc.credentials.createInsecure());
  closers.push(() => client.close());
  const s = openStream(client);
  closers.push(() => s.call.cancel());
  s.call.write({ node: { id: 'web-envoy' }, type_url: SECRET_TYPE_URL, resource_names: ['default'] });

  // No certificate yet: Envoy is kept waiting (no answer), then the first issuance is pushed.
  const spiffe = 'spiffe://cluster.local/ns/default/sa/web';
  const agent = new CertificateAgent({
    server: mesh.xdsAddress,
    nodeId: 'web-envoy',
    metadata: { WEFT_SERVICE: 'web', WEFT_NAMESPACE: 'default', WEFT_ROLE: 'sidecar' },
    spiffeId: spiffe,
    secrets,
    log,
    backoff: { initialMs: 100, maxMs: 500 },
  });
  closers.push(() => agent.stop());
  assert.equal(s.received.length, 0);
  agent.start();
  await waitFor(() => s.received.length >= 1, 10_000, 'the first certificate pushed');
  const first = s.received[0];
  assert.equal(first.type_url, SECRET_TYPE_URL);
  const [secret] = secretOf(first);
  assert.equal(secret.name, 'default');
  const chain: string = secret.tls_certificate.certificate_chain.inline_string;
  const key: string = secret.tls_certificate.private_key.inline_string;
  const certs = splitPemCertificates(chain);
  assert.ok(isSignedBy(certs.at(-1)!, mesh.cp!.ca.bundlePem()), 'the chain ends at an intermediate the mesh root signed');
  const leaf = new crypto.X509Certificate(certs[0]);
  assert.ok(leaf.checkPrivateKey(crypto.createPrivateKey(key)), 'the key is the certificate\'s');
  assert.match(leaf.subjectAltName ?? '', new RegExp(`URI:${spiffe}`));

  // ACK: nothing is resent; the next response is the renewal, with a new certificate and version.
  s.call.write({ version_info: first.version_info, response_nonce: first.nonce, type_url: SECRET_TYPE_URL, resource_names: ['default'] });
  await waitFor(() => s.received.length >= 2, ttl * 2, 'the renewal pushed');
  const second = s.received[1];
  const renewed = secretOf(second)[0];
  assert.notEqual(second.version_info, first.version_info);
  assert.notEqual(second.nonce, first.nonce);
  assert.notEqual(renewed.tls_certificate.certificate_chain.inline_string, chain, 'a renewal, not the ACKed certificate again');
  assert.notEqual(renewed.tls_certificate.private_key.inline_string, key, 'each renewal makes a new key');

  // NACK: logged with Envoy's error, nothing resent for it.
  s.call.write({ version_info: first.version_info, response_nonce: second.nonce, type_url: SECRET_TYPE_URL, resource_names: ['default'], error_detail: { code: 3, message: 'Failed to load private key' } });
  await waitFor(() => sds.nackCount === 1, 5000, 'the NACK seen');
  assert.ok(logs.some((l) => l.startsWith('warn') && l.includes('SDS NACK') && l.includes('Failed to load private key')), logs.join('\n'));

  // A name it never holds: an empty response for it, and a warning.
  const other = openStream(client);
  closers.push(() => other.call.cancel());
  other.call.write({ node: { id: 'web-envoy' }, type_url: SECRET_TYPE_URL, resource_names: ['ROOTCA'] });
  await waitFor(() => other.received.length >= 1, 5000, 'an answer for ROOTCA');
  assert.deepEqual(other.received[0].resources, []);
  assert.ok(logs.some((l) => l.includes('does not hold') && l.includes('ROOTCA')));
  // Both names on one stream: only "default" comes back.
  other.call.write({ version_info: other.received[0].version_info, response_nonce: other.received[0].nonce, type_url: SECRET_TYPE_URL, resource_names: ['ROOTCA', 'default'] });
  await waitFor(() => other.received.length >= 2, 5000, 'an answer for both');
  assert.deepEqual(secretOf(other.received[1]).map((x: Obj) => x.name), ['default']);

  // Another type is refused.
  const wrong = openStream(client);
  wrong.call.write({ node: { id: 'x' }, type_url: 'type.googleapis.com/envoy.config.cluster.v3.Cluster', resource_names: ['default'] });
  await waitFor(() => wrong.ended.error !== undefined, 5000, 'the wrong type refused');
  assert.equal(wrong.ended.error!.code, grpc.status.INVALID_ARGUMENT);

  await sds.close();
  assert.equal(fs.existsSync(sds.socketPath), false, 'the socket is removed on close');
});

test('a directory others can enter is refused (the key is served there)', T, async () => {
  const dir = path.join(tempDir(), 'open');
  fs.mkdirSync(dir, { mode: 0o755 });
  fs.chmodSync(dir, 0o755);
  await assert.rejects(LocalSdsServer.start({ dir, secrets: new SecretStore(), log: () => {} }), /open to other users \(mode 755\).*0700/);
});
