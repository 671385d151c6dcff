// Issuance end to end over real gRPC: SDS FetchSecrets on the control plane's
// xDS port (TLS outside dev mode), join tokens, the sidecar's certificate
// agent (renewal at half life), ROOTCA over ADS and root rotation, admin
// /certs and `weft certs`.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { isSignedBy, splitPemCertificates } from '../../src/ca/cert-info';
import { createCsr, createRoot, generateKeyPem, spiffeId } from '../../src/ca/pki';
import { CSR_METADATA, decodeDiscoveryResponse, encodeDiscoveryRequest, FETCH_SECRETS_PATH, SECRET_TYPE_URL } from '../../src/ca/sds-protocol';
import { runCerts } from '../../src/cli/commands/certs';
import { startControlPlane, type ControlPlane } from '../../src/control/control-plane';
import { silentLogger } from '../../src/observe/log';
import { startProxy, type Proxy } from '../../src/proxy/proxy';
import { decodeMessage } from '../../src/xds/protos';
import { freePort, Mesh, waitFor } from '../helpers/proxy-harness';
import { tempDir } from '../helpers/tmp';
import { ack, resourcesOf, TestStream } from '../xds/fixtures';
import { TYPE_URL } from '../../src/xds/type-urls';
import { ControlPlaneCredentials } from '../../src/xds/client/control-plane-tls';

const T = { timeout: 30_000 };
const closers: (() => Promise<unknown> | unknown)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

async function securePlane(extra: Record<string, unknown> = {}): Promise<ControlPlane> {
  const cp = await startControlPlane({ dataDir: tempDir(), xdsPort: 0, apiPort: 0, log: silentLogger, ...extra });
  closers.push(() => cp.close());
  return cp;
}

function caCredentials(cp: ControlPlane): grpc.ChannelCredentials {
  return new ControlPlaneCredentials(Buffer.from(cp.ca.bundlePem()));
}

/** One FetchSecrets call; resolves with the chain or rejects with the gRPC error. */
function fetchSecrets(cp: ControlPlane, creds: grpc.ChannelCredentials, csr: string, opts: { token?: string; service?: string; namespace?: string } = {}): Promise<string> {
  const client = new grpc.Client(`127.0.0.1:${cp.xdsPort}`, creds);
  const fields: Record<string, { stringValue: string }> = { [CSR_METADATA]: { stringValue: csr } };
  if (opts.service) fields.WEFT_SERVICE = { stringValue: opts.service };
  if (opts.namespace) fields.WEFT_NAMESPACE = { stringValue: opts.namespace };
  const md = new grpc.Metadata();
  if (opts.token) md.set('authorization', `Bearer ${opts.token}`);
  const request = { type_url: SECRET_TYPE_URL, resource_names: ['default'], node: { id: 'test-node', metadata: { fields } } };
  return new Promise<string>((resolve, reject) => {
    client.makeUnaryRequest(FETCH_SECRETS_PATH, encodeDiscoveryRequest, decodeDiscoveryResponse, request, md, { deadline: Date.now() + 5000 }, (err, res) => {
      client.close();
      if (err) return reject(err);
      resolve(decodeMessage(SECRET_TYPE_URL, res!.resources[0].value).tls_certificate.certificate_chain.inline_string);
    });
  });
}

const csrFor = async (svc: string, ns = 'default') => createCsr(await generateKeyPem(), spiffeId('cluster.local', ns, svc));
const code = (c: grpc.status, re: RegExp) => (e: grpc.ServiceError) => {
  assert.equal(grpc.status[e.code], grpc.status[c], e.details);
  assert.match(e.details, re);
  return true;
};

test('outside dev mode: a token for A cannot obtain B; no token, a revoked token and a malformed CSR are refused; others keep being served', T, async () => {
  const cp = await securePlane();
  const creds = caCredentials(cp);
  const orders = await cp.tokens.create({ service: 'orders' });
  // The right identity works.
  const chain = await fetchSecrets(cp, creds, await csrFor('orders'), { token: orders.token });
  assert.equal(splitPemCertificates(chain).length, 2);
  // Token for orders, CSR for payments: refused, however the node describes itself.
  await assert.rejects(fetchSecrets(cp, creds, await csrFor('payments'), { token: orders.token, service: 'payments' }), code(grpc.status.PERMISSION_DENIED, /asks for spiffe:\/\/cluster.local\/ns\/default\/sa\/payments.*may only obtain .*sa\/orders/));
  // No token outside dev mode, even with a declared service.
  await assert.rejects(fetchSecrets(cp, creds, await csrFor('orders'), { service: 'orders' }), code(grpc.status.UNAUTHENTICATED, /join token is required/));
  // Malformed CSR: a clear reason, and the server goes on serving.
  await assert.rejects(fetchSecrets(cp, creds, 'hello', { token: orders.token }), code(grpc.status.INVALID_ARGUMENT, /CSR is missing or not a PEM/));
  await assert.rejects(fetchSecrets(cp, creds, '-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n', { token: orders.token }), code(grpc.status.INVALID_ARGUMENT, /CSR/));
  await fetchSecrets(cp, creds, await csrFor('orders'), { token: orders.token });
  // Revoked.
  await cp.tokens.revoke(orders.id);
  await assert.rejects(fetchSecrets(cp, creds, await csrFor('orders'), { token: orders.token }), code(grpc.status.PERMISSION_DENIED, /unknown or revoked/));
  await assert.rejects(fetchSecrets(cp, creds, await csrFor('orders'), { token: 'weft.nope' }), code(grpc.status.PERMISSION_DENIED, /malformed/));
  assert.equal(cp.ca.issuances().length, 2);
});

test('xDS over TLS: a sidecar with the right --ca-file connects and gets its certificate; one with a foreign CA does not', T, async () => {
  const cp = await securePlane();
  const token = (await cp.tokens.create({ service: 'orders' })).token;
  const started: Proxy[] = [];
  closers.push(() => Promise.all(started.map((p) => p.close())));
  const sidecar = async (caFile: string, nodeId: string) => {
    const p = await startProxy({ xds: `127.0.0.1:${cp.xdsPort}`, nodeId, service: 'orders', namespace: 'default', outboundPort: await freePort(), inboundPort: await freePort(), adminPort: 0, log: silentLogger, caFile, joinToken: token, certificateRetry: { initialMs: 100, maxMs: 500 } });
    started.push(p);
    return p;
  };
  const good = await sidecar(cp.ca.bundleFile()!, 'good');
  await good.waitReady(10_000);
  await good.certificateAgent!.waitForCertificate(10_000);
  assert.equal(good.secrets.certificate('default')!.spiffeId, spiffeId('cluster.local', 'default', 'orders'));
  await waitFor(() => good.secrets.trustBundle('ROOTCA')?.trustedCaPem === cp.ca.bundlePem(), 5000, 'ROOTCA over ADS');

  const foreign = await createRoot({ commonName: 'someone else', ttlMs: 3600_000 });
  const foreignFile = path.join(tempDir(), 'foreign.pem');
  fs.writeFileSync(foreignFile, foreign.certPem);
  const bad = await sidecar(foreignFile, 'bad');
  // Its attempts fail (the control plane's certificate does not chain to the foreign root); give it
  // at least 1.5 s of them, and wait for the first failure, however long that takes.
  await Promise.all([
    new Promise((r) => setTimeout(r, 1500)),
    waitFor(() => /UNAVAILABLE/.test(bad.certificateAgent!.status().lastError ?? ''), 10_000, 'a failed certificate request'),
  ]);
  assert.equal(bad.xds.status().connected, false);
  assert.equal(bad.ready(), false);
  assert.equal(bad.secrets.certificate('default'), undefined);
  assert.match(bad.certificateAgent!.status().lastError ?? '', /UNAVAILABLE/);
  assert.ok(!cp.xds.status().some((n) => n.nodeId === 'bad'));
});

test('dev mode: a sidecar gets a certificate for its service and renews it at about half life', T, async () => {
  const ttl = 4000;
  const mesh = await Mesh.start({}, { certTtlMs: ttl });
  closers.push(() => mesh.close());
  const sc = await mesh.sidecar({ service: 'orders', proxy: { certificateRetry: { initialMs: 100, maxMs: 500 } } });
  const seen: { at: number; serial: string; notAfter: Date }[] = [];
  const record = () => {
    const c = sc.proxy.secrets.certificate('default');
    if (c && !seen.some((s) => s.notAfter.getTime() === c.notAfter.getTime() && s.serial === c.certificateChainPem)) seen.push({ at: Date.now(), serial: c.certificateChainPem, notAfter: c.notAfter });
  };
  const stop = sc.proxy.secrets.onChange(record);
  record();
  await waitFor(() => seen.length >= 3, 3 * ttl, 'two renewals');
  stop();
  for (let i = 1; i < seen.length; i++) {
    const gap = seen[i].at - seen[i - 1].at;
    // Renewed at 45-50% of the lifetime: before half life plus a margin, never at the last moment.
    assert.ok(gap <= ttl / 2 + 700, `renewed ${gap} ms after the previous certificate (TTL ${ttl})`);
    // X.509 times have whole seconds, so a 4 s lifetime may come out up to 1 s shorter.
    assert.ok(gap >= (ttl - 1000) * 0.45 - 100, `renewed too early: ${gap} ms`);
    assert.ok(seen[i - 1].notAfter.getTime() > seen[i].at, 'the previous certificate was still valid');
    assert.notEqual(seen[i].serial, seen[i - 1].serial);
  }
  // A sidecar without a service asks for nothing.
  const plain = await mesh.sidecar({});
  assert.equal(plain.proxy.certificateAgent, undefined);
  assert.equal(mesh.cp!.ca.issuances().filter((r) => r.nodeId === plain.proxy.opts.nodeId).length, 0);
});

test('root rotation: the connected sidecar receives both roots over ADS, then a certificate from the new root', T, async () => {
  const mesh = await Mesh.start({}, { certTtlMs: 3000 });
  closers.push(() => mesh.close());
  const sc = await mesh.sidecar({ service: 'orders', proxy: { certificateRetry: { initialMs: 100, maxMs: 500 } } });
  await sc.proxy.certificateAgent!.waitForCertificate(5000);
  await waitFor(() => sc.proxy.secrets.trustBundle('ROOTCA') !== undefined, 5000, 'ROOTCA');
  const oldRoot = mesh.cp!.ca.bundlePem();
  await mesh.cp!.ca.rotateRoot();
  const bundle = mesh.cp!.ca.bundlePem();
  await waitFor(() => sc.proxy.secrets.trustBundle('ROOTCA')!.trustedCaPem === bundle, 5000, 'the new bundle pushed');
  const roots = splitPemCertificates(sc.proxy.secrets.trustBundle('ROOTCA')!.trustedCaPem);
  assert.equal(roots.length, 2);
  assert.ok(roots.includes(oldRoot));
  const newRoot = roots.find((r) => r !== oldRoot)!;
  await waitFor(() => {
    const [, mid] = splitPemCertificates(sc.proxy.secrets.certificate('default')!.certificateChainPem);
    return isSignedBy(mid, newRoot);
  }, 5000, 'a certificate from the new intermediate');
  await mesh.cp!.ca.retireRoots();
  await waitFor(() => splitPemCertificates(sc.proxy.secrets.trustBundle('ROOTCA')!.trustedCaPem).length === 1, 5000, 'the old root retired');
});

test('a certificate that comes back under another root than the bundle\'s active one is asked for again with backoff, and kept serving meanwhile', T, async () => {
  const mesh = await Mesh.start();
  closers.push(() => mesh.close());
  const sc = await mesh.sidecar({ service: 'orders', proxy: { certificateRetry: { initialMs: 100, maxMs: 400 } } });
  const agent = sc.proxy.certificateAgent!;
  await agent.waitForCertificate(5000);
  await waitFor(() => sc.proxy.secrets.trustBundle('ROOTCA') !== undefined, 5000, 'ROOTCA');
  const issued = agent.status().issued;
  // A bundle whose active root is one this CA does not sign with (as from a replica ahead of the one that answers FetchSecrets).
  const foreign = await createRoot({ commonName: 'elsewhere', ttlMs: 3600_000 });
  const real = mesh.cp!.ca.bundlePem();
  sc.proxy.secrets.setTrustBundle('ROOTCA', { trustedCaPem: foreign.certPem + real });
  await waitFor(() => agent.status().issued >= issued + 3, 5000, 'renewals asked again');
  assert.match(agent.status().lastError ?? '', /does not chain to the active root of the trust bundle/);
  assert.ok(sc.proxy.secrets.certificate('default'), 'a certificate is held throughout');
  // The bundle agrees with the CA again: the next renewal settles at about half life, drawn in
  // [45 %, 50 %] of a lifetime that starts 5 min back (10.7 h to 12 h from now), not a backoff away.
  sc.proxy.secrets.setTrustBundle('ROOTCA', { trustedCaPem: real });
  await waitFor(() => agent.status().lastError === undefined, 5000, 'the agent settled');
  const settled = agent.status();
  assert.ok(Date.parse(settled.nextRenewalAt!) - Date.now() > 10 * 3600_000, `next renewal at ${settled.nextRenewalAt}`);
});

test('admin /certs and weft certs: identity, expiry, remaining, the trust bundle', T, async () => {
  const mesh = await Mesh.start();
  closers.push(() => mesh.close());
  const sc = await mesh.sidecar({ service: 'orders', nodeId: 'orders-1' });
  await mesh.sidecar({ nodeId: 'client-1' });
  await sc.proxy.certificateAgent!.waitForCertificate(5000);
  await waitFor(() => sc.proxy.secrets.trustBundle('ROOTCA') !== undefined, 5000, 'ROOTCA');
  const res = await fetch(`http://127.0.0.1:${sc.proxy.adminPort}/certs`);
  const view = (await res.json()) as any;
  assert.equal(view.certificates[0].spiffeId, 'spiffe://cluster.local/ns/default/sa/orders');
  assert.ok(view.certificates[0].secondsToExpiry > 23 * 3600);
  assert.equal(view.trustBundles[0].roots.length, 1);
  assert.match(view.trustBundles[0].roots[0].subject, /weft root CA/);
  let text = '';
  await runCerts({ api: `http://127.0.0.1:${mesh.cp!.apiPort}`, out: { write: (s: string) => (text += s) } });
  assert.match(text, /Trust domain cluster\.local; workload certificates live 24h \(dev mode/);
  const rootId = mesh.cp!.ca.roots()[0].id;
  assert.match(text, new RegExp(`orders-1\\s+spiffe://cluster\\.local/ns/default/sa/orders\\s+[0-9A-F]+\\s+${rootId}\\s+\\S+\\s+2[34]h\\d*m?\\s+sidecar`));
  assert.match(text, /client-1\s+- \(no service\)/);
  assert.match(text, new RegExp(`Trust bundle \\(1 root\\):\\n  \\* root ${rootId}  O=cluster\\.local, CN=weft root CA`));
});

test('weft certs: certificates of nodes gone for long collapse into one line (--all lists them); a node that just left is listed', T, async () => {
  const mesh = await Mesh.start();
  closers.push(() => mesh.close());
  const live = await mesh.sidecar({ service: 'orders', nodeId: 'orders-live' });
  await live.proxy.certificateAgent!.waitForCertificate(5000);
  for (const nodeId of ['orders-gone-1', 'orders-gone-2']) {
    const sc = await mesh.sidecar({ service: 'orders', nodeId });
    await sc.proxy.certificateAgent!.waitForCertificate(5000);
    await sc.close();
  }
  const api = `http://127.0.0.1:${mesh.cp!.apiPort}`;
  await waitFor(() => !mesh.cp!.xds.status().some((n) => n.nodeId.startsWith('orders-gone')), 5000, 'the gone sidecars disconnected');
  const certs = async (now: number, all?: boolean) => {
    let text = '';
    await runCerts({ api, now, all, out: { write: (s: string) => (text += s) } });
    return text;
  };
  // Just gone: still worth a row each.
  const recent = await certs(Date.now());
  assert.match(recent, /orders-gone-1\s+spiffe:\/\/\S+\s+[0-9A-F]+\s+[0-9A-F]{8}\s+\S+\s+\S+\s+issued \(not connected\)/);
  assert.match(recent, /orders-gone-2\s+.*issued \(not connected\)/);
  // Gone for longer than 10 minutes (the clock moved on): one line says how many, --all lists them.
  const later = await certs(Date.now() + 11 * 60_000);
  assert.doesNotMatch(later, /orders-gone/, later);
  assert.match(later, /orders-live\s+spiffe:\/\/cluster\.local\/ns\/default\/sa\/orders\s+.*sidecar/);
  assert.match(later, /2 more certificate\(s\) issued to nodes not connected now, more than 10m ago \(the latest 11m\d*s? ago\); weft certs --all lists them/);
  const all = await certs(Date.now() + 11 * 60_000, true);
  assert.match(all, /orders-gone-1\s+.*issued \(not connected\)/);
  assert.match(all, /orders-gone-2\s+.*issued \(not connected\)/);
  assert.doesNotMatch(all, /more certificate/);
});

test('the control plane down: the agent keeps its certificate and retries with backoff, then renews', T, async () => {
  const ttl = 3000;
  const mesh = await Mesh.start({}, { certTtlMs: ttl });
  closers.push(() => mesh.close());
  const sc = await mesh.sidecar({ service: 'orders', proxy: { certificateRetry: { initialMs: 100, maxMs: 400 } } });
  const agent = sc.proxy.certificateAgent!;
  await agent.waitForCertificate(5000);
  const held = sc.proxy.secrets.certificate('default')!;
  await mesh.stopControlPlane();
  await waitFor(() => agent.status().failures >= 2, ttl * 2, 'failed renewals');
  assert.equal(agent.status().state, 'retrying');
  assert.match(agent.status().lastError!, /UNAVAILABLE/);
  const issuedBefore = agent.status().issued;
  assert.ok(sc.proxy.secrets.certificate('default') !== undefined, 'the old certificate is kept');
  assert.equal(sc.proxy.secrets.certificate('default')!.certificateChainPem, held.certificateChainPem);
  await mesh.startControlPlane();
  await waitFor(() => agent.status().issued > issuedBefore, 5000, 'a renewal once the control plane is back');
  assert.equal(agent.status().state, 'ready');
});

test('weft token create / list / revoke over the API', T, async (t) => {
  const { runTokenCreate, runTokenList, runTokenRevoke } = await import('../../src/cli/commands/certs');
  const cp = await securePlane();
  const api = `http://127.0.0.1:${cp.apiPort}`;
  // Outside --dev the CLI authenticates with the admin token the control plane wrote.
  process.env.WEFT_TOKEN_FILE = cp.adminTokenFile!;
  process.env.WEFT_CA_FILE = cp.ca.bundleFile()!;
  t.after(() => {
    delete process.env.WEFT_TOKEN_FILE;
    delete process.env.WEFT_CA_FILE;
  });
  let text = '';
  const out = { write: (s: string) => (text += s) };
  await runTokenCreate({ service: 'orders', namespace: 'shop', ttl: 3600, api, out });
  const token = text.trim();
  assert.match(token, /^weft\.[0-9a-f]{12}\.[A-Za-z0-9_-]{43}$/);
  assert.deepEqual(cp.tokens.verify(token), { namespace: 'shop', service: 'orders' });
  text = '';
  await runTokenList({ api, out });
  const id = token.split('.')[1];
  assert.match(text, new RegExp(`${id}\\s+shop\\s+orders\\s+\\S+\\s+20`));
  assert.ok(!text.includes(token.split('.')[2]), 'list never shows the secret');
  await assert.rejects(runTokenCreate({ service: 'Not_Valid', namespace: 'default', api, out }), /service: "Not_Valid" is not a valid service name/);
  await runTokenRevoke(id, { api, out });
  assert.throws(() => cp.tokens.verify(token), /unknown or revoked/);
  await assert.rejects(runTokenRevoke(id, { api, out }), /no join token/);
});

test('SotW ADS: a node subscribing to Secret ROOTCA gets the bundle and the new one after a rotation; CDS alone brings no Secret', T, async () => {
  const mesh = await Mesh.start();
  closers.push(() => mesh.close());
  const node = { id: 'sotw-1', metadata: { fields: { WEFT_ROLE: { stringValue: 'sidecar' }, WEFT_SERVICE: { stringValue: 'orders' } } } };
  const s = new TestStream(mesh.cp!.xdsPort, 'sotw');
  closers.push(() => s.close());
  s.send({ node, type_url: TYPE_URL.Cluster });
  const cds = await s.next();
  assert.equal(cds.type_url, TYPE_URL.Cluster);
  s.send(ack(cds));
  assert.ok(await s.quiet(300), 'nothing but what was asked for');
  s.send({ type_url: TYPE_URL.Secret, resource_names: ['ROOTCA'] });
  const first = await s.next();
  const [secret] = resourcesOf(first);
  assert.equal(secret.name, 'ROOTCA');
  assert.equal(secret.validation_context.trusted_ca.inline_string, mesh.cp!.ca.bundlePem());
  s.send(ack(first, ['ROOTCA']));
  await mesh.cp!.ca.rotateRoot();
  const second = await s.next(3000);
  assert.equal(second.type_url, TYPE_URL.Secret);
  assert.equal(splitPemCertificates(resourcesOf(second)[0].validation_context.trusted_ca.inline_string).length, 2);
});
