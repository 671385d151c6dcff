// Mutual TLS between sidecars (MeshTLS), with real certificates from
// src/ca/pki.ts put straight into each sidecar's SecretStore: HTTP/1.1, h2
// and TCP over mTLS, the caller's identity on the inbound side, permissive
// and strict ports, refused clients (plaintext, foreign CA, expired, no
// certificate), an upstream with the wrong identity, garbage and truncated
// handshakes, certificate rotation under load, and responses that reach a
// sidecar as many TLS records in one read.
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { Duplex } from 'node:stream';
import * as tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { createIntermediate, createRoot, issueKeyedLeaf, spiffeId, type KeyedCertificate } from '../../../src/ca/pki';
import type { RequestRecord } from '../../../src/observe/request-record';
import { firstMismatch, pattern, writeUntilPushedBack } from '../../helpers/byte-pattern';
import { admin, docs, exitGuard, freePort, HttpUpstream, Mesh, parsePrometheus, RawClient, request, serviceYaml, sleep, T, waitFor, type Sidecar } from '../../helpers/proxy-harness';

const HOUR = 3600_000;
let root: KeyedCertificate;
let mid: KeyedCertificate;
let foreignRoot: KeyedCertificate;
let mesh: Mesh;
let apiApp: HttpUpstream;
let secureApp: HttpUpstream;
let victimApp: HttpUpstream;
let rpcApp: http2.Http2Server;
let echo: net.Server;
/** An instance of "records" without a sidecar of its own: a TLS server that writes each response as many small records. */
let recordsServer: net.Server;
let shop: Sidecar;
let api: Sidecar;
let secure: Sidecar;
let rpc: Sidecar;
let db: Sidecar;
let victim: Sidecar;
let dbPort: number;
const ports: Record<string, number> = {};

async function leaf(service: string, opts: { issuer?: KeyedCertificate; notBefore?: Date; ttlMs?: number } = {}) {
  const issuer = opts.issuer ?? mid;
  const uri = spiffeId('cluster.local', 'default', service);
  const k = await issueKeyedLeaf(issuer, { uri, ttlMs: opts.ttlMs ?? HOUR, notBefore: opts.notBefore });
  return { ...k, chainPem: k.certPem + (issuer === mid ? mid.certPem : ''), uri };
}

/** What the certificate agent will do: the workload certificate and the trust bundle into the sidecar's SecretStore. */
async function giveIdentity(sc: Sidecar, service: string): Promise<string> {
  const l = await leaf(service);
  const cert = new X509Certificate(l.certPem);
  sc.proxy.secrets.setCertificate('default', {
    certificateChainPem: l.chainPem,
    privateKeyPem: l.keyPem,
    spiffeId: l.uri,
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
  });
  sc.proxy.secrets.setTrustBundle('ROOTCA', { trustedCaPem: root.certPem });
  return cert.serialNumber;
}

before(async () => {
  root = await createRoot({ commonName: 'weft test root', ttlMs: 24 * HOUR, organization: 'cluster.local' });
  mid = await createIntermediate(root, { commonName: 'weft test intermediate', ttlMs: 24 * HOUR });
  foreignRoot = await createRoot({ commonName: 'someone else', ttlMs: 24 * HOUR });
  apiApp = await HttpUpstream.start('api-app');
  secureApp = await HttpUpstream.start('secure-app');
  victimApp = await HttpUpstream.start('victim-app');
  rpcApp = http2.createServer();
  rpcApp.on('stream', (stream, headers) => {
    stream.respond({ ':status': 200, 'content-type': 'text/plain' });
    stream.end(`rpc-app ${headers[':path']}`);
  });
  await new Promise<void>((r) => rpcApp.listen(0, '127.0.0.1', r));
  echo = net.createServer((s) => s.pipe(s));
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  for (const name of ['api', 'secure', 'rpc', 'db', 'victim']) ports[name] = await freePort();
  recordsServer = await smallRecordsServer(await leaf('records'));
  ports.records = (recordsServer.address() as net.AddressInfo).port;
  dbPort = await freePort();
  mesh = await Mesh.start({
    'services.yaml': docs(
      serviceYaml({ name: 'api', port: 80, dependsOn: [] }),
      serviceYaml({ name: 'secure', port: 81, dependsOn: [] }),
      serviceYaml({ name: 'rpc', port: 82, protocol: 'http2', dependsOn: [] }),
      serviceYaml({ name: 'db', port: dbPort, protocol: 'tcp', dependsOn: [] }),
      serviceYaml({ name: 'victim', port: 83, dependsOn: [] }),
      serviceYaml({ name: 'records', port: 84, dependsOn: [] }),
      serviceYaml({ name: 'shop', dependsOn: ['api', 'secure', 'rpc', 'db', 'victim', 'records'] }),
      serviceYaml({ name: 'bare', dependsOn: ['api', 'secure'] }),
    ),
    'mtls.yaml': `apiVersion: weft.dev/v1
kind: MeshTLS
metadata: { name: secure-strict }
spec: { targetRef: { kind: Service, name: secure }, mode: strict }
---
apiVersion: weft.dev/v1
kind: TrafficPolicy
metadata: { name: api }
spec: { targetRef: { name: api }, connectionPool: { maxRequestsPerConnection: 3 } }
`,
  });
  // Every instance registers as `weft run` does: behind its sidecar's inbound port.
  for (const name of ['api', 'secure', 'rpc', 'db', 'victim', 'records']) {
    await mesh.cp!.registry.register({ service: name, address: '127.0.0.1', port: ports[name], sidecar: true, ttlSeconds: 3600 });
  }
  shop = await mesh.sidecar({ nodeId: 'shop-1', service: 'shop', proxy: { sds: false } });
  api = await mesh.sidecar({ nodeId: 'api-1', service: 'api', proxy: { sds: false }, inboundPort: ports.api, appPort: apiApp.port });
  secure = await mesh.sidecar({ nodeId: 'secure-1', service: 'secure', proxy: { sds: false }, inboundPort: ports.secure, appPort: secureApp.port });
  rpc = await mesh.sidecar({ nodeId: 'rpc-1', service: 'rpc', proxy: { sds: false }, inboundPort: ports.rpc, appPort: (rpcApp.address() as net.AddressInfo).port });
  db = await mesh.sidecar({ nodeId: 'db-1', service: 'db', proxy: { sds: false }, inboundPort: ports.db, appPort: (echo.address() as net.AddressInfo).port });
  victim = await mesh.sidecar({ nodeId: 'victim-1', service: 'victim', proxy: { sds: false }, inboundPort: ports.victim, appPort: victimApp.port });
  for (const [sc, name] of [[shop, 'shop'], [api, 'api'], [secure, 'secure'], [rpc, 'rpc'], [db, 'db']] as const) await giveIdentity(sc, name);
  await giveIdentity(victim, 'evil'); // serves "victim" with another service's identity
  await shop.waitConfig((c) => ['api', 'secure', 'rpc', 'db', 'victim', 'records'].every((s) => (c.endpoints.get(`outbound|${s === 'db' ? dbPort : { api: 80, secure: 81, rpc: 82, victim: 83, records: 84 }[s]}||${s}.default`)?.localities.length ?? 0) > 0));
}, { timeout: 30_000 });

after(async () => {
  exitGuard();
  await mesh.close();
  await Promise.all([apiApp.close(), secureApp.close(), victimApp.close()]);
  rpcApp.close();
  echo.close();
  recordsServer.close();
}, T);

/** Body bytes of each response of smallRecordsServer, in pieces of RECORD_BYTES. */
const RECORDS_BODY = 6000;
const RECORD_BYTES = 100;

/**
 * A TLS server with a mesh identity that answers every request head with a
 * response in many small TLS records, sent in one TCP write: the caller's
 * sidecar decrypts them in one read, each record into the same read buffer in
 * turn. (Node's TLS socket would merge writes made together into one record;
 * written one at a time over a stream that holds the ciphertext, each is its own.)
 */
async function smallRecordsServer(id: { chainPem: string; keyPem: string }): Promise<net.Server> {
  const secureContext = tls.createSecureContext({ cert: id.chainPem, key: id.keyPem, ca: root.certPem });
  const server = net.createServer((raw) => {
    let held: Buffer[] | undefined;
    const ciphertext = new Duplex({
      read() {},
      write(chunk: Buffer, _encoding, done) {
        if (held) held.push(Buffer.from(chunk));
        else raw.write(chunk);
        done();
      },
    });
    raw.on('data', (chunk: Buffer) => ciphertext.push(chunk));
    raw.on('error', () => {});
    const socket = new tls.TLSSocket(ciphertext, { isServer: true, secureContext, requestCert: true, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
    socket.on('error', () => {});
    const writeRecord = (bytes: string | Buffer) => new Promise<void>((resolve) => socket.write(bytes, () => resolve()));
    let heads = '';
    let answering = Promise.resolve();
    socket.on('data', (chunk: Buffer) => {
      heads += chunk.toString('latin1');
      for (let end = heads.indexOf('\r\n\r\n'); end >= 0; end = heads.indexOf('\r\n\r\n')) {
        heads = heads.slice(end + 4);
        answering = answering.then(async () => {
          held = [];
          await writeRecord(`HTTP/1.1 200 OK\r\nContent-Length: ${RECORDS_BODY}\r\n\r\n`);
          for (let off = 0; off < RECORDS_BODY; off += RECORD_BYTES) await writeRecord(pattern(off, RECORD_BYTES));
          raw.write(Buffer.concat(held));
          held = undefined;
        });
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return server;
}

async function metrics(sc: Sidecar) {
  const samples = parsePrometheus((await admin(sc, '/stats/prometheus')).text);
  return (name: string, labels: Record<string, string> = {}) =>
    samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((n, s) => n + s.value, 0);
}

/** A client of a sidecar's inbound port, as another sidecar would be (or not). */
function tlsClient(port: number, cert?: { chainPem: string; keyPem: string }, alpn = ['http/1.1']): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca: root.certPem, cert: cert?.chainPem, key: cert?.keyPem, ALPNProtocols: alpn, checkServerIdentity: () => undefined });
    s.once('secureConnect', () => resolve(s));
    s.once('error', reject);
  });
}

/** One GET over an established socket; resolves with the status, or rejects when the connection closes first. */
function getOver(socket: net.Socket, path = '/'): Promise<number> {
  return new Promise((resolve, reject) => {
    let buf = '';
    socket.on('data', (c: Buffer) => {
      buf += c.toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(buf);
      if (m && buf.includes('\r\n\r\n')) resolve(Number(m[1]));
    });
    socket.once('close', () => reject(new Error(`closed before a response (got ${JSON.stringify(buf.slice(0, 40))})`)));
    socket.once('error', () => {});
    socket.write(`GET ${path} HTTP/1.1\r\nhost: x\r\n\r\n`);
  });
}

/** Whether a raw client on `port` is refused: TLS handshake or first request fails, the connection closes. */
async function refused(port: number, cert?: { chainPem: string; keyPem: string }): Promise<boolean> {
  try {
    const s = await tlsClient(port, cert);
    try {
      await getOver(s);
      s.destroy();
      return false;
    } catch {
      return true;
    }
  } catch {
    return true;
  }
}

test('HTTP/1.1 over mTLS: the inbound side sees the caller (metrics source, records), the app a plain request', T, async () => {
  const before = apiApp.requests;
  for (let i = 0; i < 3; i++) assert.equal((await request(shop.outboundPort, { host: 'api', path: `/h1/${i}` })).status, 200);
  assert.equal(apiApp.requests - before, 3);
  const m = await metrics(api);
  assert.equal(m('weft_requests_total', { direction: 'inbound', source: 'shop.default', destination: 'api.default', code: '200' }), 3);
  assert.ok(m('weft_downstream_tls_handshakes_total') >= 1);
  const records = (await admin(api, '/requests')).json<{ items: RequestRecord[] }>().items;
  assert.ok(records.some((r) => r.direction === 'inbound' && r.path === '/h1/2' && r.source === 'shop.default'), 'the record names the caller');
});

test('h2 over mTLS (ALPN h2): the inbound h2 server sees the caller', T, async () => {
  const client = http2.connect(`http://127.0.0.1:${shop.outboundPort}`);
  try {
    const get = (authority: string, path: string) =>
      new Promise<string>((resolve, reject) => {
        const req = client.request({ ':path': path, ':authority': authority });
        let text = '';
        req.on('response', (h) => (h[':status'] === 200 ? undefined : reject(new Error(`status ${h[':status']} ${h['x-weft-response-flags']}`))));
        req.on('data', (c: Buffer) => (text += c));
        req.on('end', () => resolve(text));
        req.on('error', reject);
        req.end();
      });
    for (let i = 0; i < 2; i++) assert.equal(await get('rpc:82', `/h2/${i}`), `rpc-app /h2/${i}`);
    // An h2 caller of an HTTP/1.1 service: the node:http agent's connections get mTLS too.
    const before = (await metrics(api))('weft_requests_total', { direction: 'inbound', source: 'shop.default', code: '200' });
    assert.equal(JSON.parse(await get('api:80', '/h2-to-h1')).url, '/h2-to-h1');
    assert.equal((await metrics(api))('weft_requests_total', { direction: 'inbound', source: 'shop.default', code: '200' }) - before, 1);
  } finally {
    client.close();
  }
  const m = await metrics(rpc);
  assert.equal(m('weft_requests_total', { direction: 'inbound', source: 'shop.default', destination: 'rpc.default', code: '200' }), 2);
});

test('TCP over mTLS: bytes both ways, the inbound side counts the caller', T, async () => {
  const got = await new Promise<string>((resolve, reject) => {
    const s = net.connect(dbPort, '127.0.0.1', () => s.write('ping over tls'));
    let text = '';
    s.on('data', (c: Buffer) => {
      text += c;
      if (text.length >= 13) s.end();
    });
    s.on('close', () => resolve(text));
    s.on('error', reject);
  });
  assert.equal(got, 'ping over tls');
  await waitFor(async () => (await metrics(db))('weft_tcp_connections_total', { direction: 'inbound', source: 'shop.default' }) === 1, 3000, 'the TCP connection counted with its caller');
});

test('new connections between sidecars resume the TLS session: an abbreviated handshake, the caller still identified by its certificate', T, async () => {
  const before = await metrics(db);
  const [handshakes0, resumed0] = [before('weft_downstream_tls_handshakes_total'), before('weft_downstream_tls_resumed_total')];
  const connections0 = before('weft_tcp_connections_total', { direction: 'inbound', source: 'shop.default' });
  for (let i = 0; i < 4; i++) {
    const got = await new Promise<string>((resolve, reject) => {
      const s = net.connect(dbPort, '127.0.0.1', () => s.write(`hello ${i}`));
      let text = '';
      s.on('data', (c: Buffer) => {
        text += c;
        if (text.length >= 7) s.end();
      });
      s.on('close', () => resolve(text));
      s.on('error', reject);
    });
    assert.equal(got, `hello ${i}`);
  }
  await waitFor(async () => (await metrics(db))('weft_tcp_connections_total', { direction: 'inbound', source: 'shop.default' }) - connections0 === 4, 3000, 'four connections, each with its caller');
  const m = await metrics(db);
  assert.equal(m('weft_downstream_tls_handshakes_total') - handshakes0, 4);
  // The first may be a full handshake (or resume the session of the test before); the next ones resume.
  assert.ok(m('weft_downstream_tls_resumed_total') - resumed0 >= 3, `resumed ${m('weft_downstream_tls_resumed_total') - resumed0} of 4`);
});

test('permissive: plaintext callers and mTLS callers are both served; only mTLS ones are identified', T, async () => {
  assert.equal((await request(ports.api, { host: 'api', path: '/plain' })).status, 200);
  const s = await tlsClient(ports.api, await leaf('direct'));
  assert.equal(await getOver(s, '/tls'), 200);
  s.destroy();
  const m = await metrics(api);
  assert.ok(m('weft_requests_total', { direction: 'inbound', source: 'unknown', code: '200' }) >= 1);
  assert.equal(m('weft_requests_total', { direction: 'inbound', source: 'direct.default', code: '200' }), 1);
});

test('strict: a caller with a valid certificate is served; plaintext, a foreign CA, an expired certificate and no certificate are refused', T, async () => {
  assert.equal((await request(shop.outboundPort, { host: 'secure' })).status, 200, 'sidecar to sidecar');
  const good = await tlsClient(ports.secure, await leaf('direct'));
  assert.equal(await getOver(good), 200);
  good.destroy();
  const m0 = await metrics(secure);

  await assert.rejects(request(ports.secure, { host: 'secure' }), 'plaintext is closed');
  assert.ok(await refused(ports.secure, await leaf('shop', { issuer: foreignRoot })), 'a certificate from another CA');
  assert.ok(await refused(ports.secure, await leaf('shop', { notBefore: new Date(Date.now() - 2 * HOUR), ttlMs: HOUR / 2 })), 'an expired certificate');
  assert.ok(await refused(ports.secure), 'no client certificate');

  const m = await metrics(secure);
  const delta = (reason: string) => m('weft_downstream_tls_refused_total', { reason }) - m0('weft_downstream_tls_refused_total', { reason });
  assert.equal(delta('plaintext'), 1);
  assert.equal(delta('client_certificate_rejected'), 2);
  // TLS 1.3: a missing certificate fails the server's handshake ('no certificate') or is seen after it.
  assert.equal(delta('no_client_certificate') + delta('handshake_failed'), 1);
  assert.equal(secureApp.requests, 2, 'no refused client reached the app');
});

test('the outbound side refuses an upstream whose certificate is not the destination service (UF)', T, async () => {
  const r = await request(shop.outboundPort, { host: 'victim' });
  assert.equal(r.status, 503);
  assert.equal(r.headers['x-weft-response-flags'], 'UF');
  assert.match(r.text, /spiffe:\/\/cluster\.local\/ns\/default\/sa\/evil.*expected spiffe:\/\/cluster\.local\/ns\/default\/sa\/victim/);
  assert.equal(victimApp.requests, 0);
});

test('garbage after 0x16 and a truncated ClientHello close only their own connection', T, async () => {
  const keep = await tlsClient(ports.api, await leaf('keeper'));
  assert.equal(await getOver(keep, '/before'), 200);
  const m0 = await metrics(api);

  const closed = (bytes: Buffer, end: boolean) =>
    new Promise<void>((resolve) => {
      const s = net.connect(ports.api, '127.0.0.1', () => (end ? s.end(bytes) : s.write(bytes)));
      s.on('error', () => {});
      s.on('data', () => {}); // a TLS alert may come back before the close
      s.once('close', () => resolve());
    });
  await closed(Buffer.concat([Buffer.from([0x16]), Buffer.from('garbage that is no TLS record at all\r\n\r\n')]), false);
  // A real ClientHello cut in half, then FIN.
  const hello = await new Promise<Buffer>((resolve) => {
    const grab = net.createServer((s) => s.once('data', (c: Buffer) => (resolve(c), s.destroy())));
    grab.listen(0, '127.0.0.1', () => {
      const c = tls.connect({ host: '127.0.0.1', port: (grab.address() as net.AddressInfo).port, rejectUnauthorized: false });
      c.on('error', () => grab.close());
    });
  });
  assert.equal(hello[0], 0x16);
  await closed(hello.subarray(0, hello.length >> 1), true);

  // The open mTLS connection and new ones are unaffected.
  const keepAgain = new Promise<number>((resolve, reject) => {
    let buf = '';
    keep.removeAllListeners('data');
    keep.removeAllListeners('close');
    keep.on('data', (c: Buffer) => {
      buf += c;
      const m = /HTTP\/1\.1 (\d{3})/.exec(buf);
      if (m) resolve(Number(m[1]));
    });
    keep.once('close', () => reject(new Error('the healthy connection was closed')));
    keep.write('GET /after HTTP/1.1\r\nhost: x\r\n\r\n');
  });
  assert.equal(await keepAgain, 200);
  keep.destroy();
  assert.equal((await request(shop.outboundPort, { host: 'api', path: '/after-garbage' })).status, 200);
  const m = await metrics(api);
  assert.equal(m('weft_downstream_tls_refused_total', { reason: 'handshake_failed' }) - m0('weft_downstream_tls_refused_total', { reason: 'handshake_failed' }), 2);
});

test('certificates replaced under continuous load: no request fails, new handshakes present the new certificate', { timeout: 30_000 }, async () => {
  let stop = false;
  let ok = 0;
  const failures: string[] = [];
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  const worker = async () => {
    while (!stop) {
      try {
        const r = await request(shop.outboundPort, { host: 'api', path: '/load', agent });
        if (r.status === 200) ok++;
        else failures.push(`${r.status} ${r.headers['x-weft-response-flags'] ?? ''} ${r.text.slice(0, 200)}`);
      } catch (err) {
        failures.push(String(err));
      }
    }
  };
  const workers = Array.from({ length: 4 }, worker);
  let serial = '';
  for (let i = 0; i < 4; i++) {
    await sleep(150);
    serial = await giveIdentity(api, 'api');
    await sleep(100);
    await giveIdentity(shop, 'shop');
  }
  await sleep(300);
  stop = true;
  await Promise.all(workers);
  agent.destroy();
  assert.deepEqual(failures, []);
  assert.ok(ok > 50, `only ${ok} requests`);
  const s = await tlsClient(ports.api, await leaf('direct'));
  assert.equal(s.getPeerX509Certificate()?.serialNumber, serial, 'a new handshake gets the newest certificate');
  s.destroy();
});

test('a sidecar without a certificate yet: outbound to mTLS endpoints in plaintext, inbound TLS refused', T, async () => {
  const bare = await mesh.sidecar({ nodeId: 'bare-1', service: 'bare', proxy: { sds: false } });
  try {
    const r = await request(bare.outboundPort, { host: 'api', path: '/from-bare' });
    assert.equal(r.status, 200, 'permissive api accepts the plaintext fallback');
    assert.equal((await request(bare.outboundPort, { host: 'secure' })).status, 503, 'strict secure refuses it');
    assert.ok(await refused(bare.inboundPort, await leaf('direct')));
    assert.equal((await metrics(bare))('weft_downstream_tls_refused_total', { reason: 'no_workload_certificate' }), 1);
  } finally {
    await bare.close();
  }
});

test('over mTLS, a client that stops reading gets every byte of a large response once it reads again (the TLS read buffer is not reused too early), and the paused connections serve the next request', { timeout: 30_000 }, async () => {
  let pushedBack!: () => void;
  const appPushedBack = new Promise<void>((r) => (pushedBack = r));
  let sent = -1;
  secureApp.handler = (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    writeUntilPushedBack(res, (piece) => piece, pushedBack, (n) => {
      sent = n;
      res.end();
    });
  };
  const c = await RawClient.connect(shop.outboundPort);
  try {
    c.socket.pause();
    c.write('GET /big HTTP/1.1\r\nHost: secure\r\n\r\n');
    // The app is pushed back only once both sidecars have stopped reading: writes of earlier reads are pending.
    await appPushedBack;
    c.socket.resume();
    const res = await c.readResponse('GET', 20_000);
    assert.equal(res.status, 200);
    assert.equal(res.body.length, sent);
    assert.equal(firstMismatch(res.body), -1, 'every byte as sent');
    // The sidecars' connections went back to their pools though reading had paused: the next request is heard.
    secureApp.handler = (_req, res2) => res2.end('next');
    assert.equal((await request(shop.outboundPort, { host: 'secure', path: '/next' })).text, 'next');
  } finally {
    c.destroy();
    secureApp.handler = undefined;
  }
});

test('over mTLS, a response that arrives as many small TLS records in one read reaches the client byte for byte (what is held to the end of the turn is a copy, not the read buffer)', T, async () => {
  const c = await RawClient.connect(shop.outboundPort);
  try {
    for (let i = 0; i < 20; i++) {
      c.write(`GET /records/${i} HTTP/1.1\r\nHost: records:84\r\n\r\n`);
      const res = await c.readResponse('GET', 10_000);
      assert.equal(res.status, 200, `response ${i}`);
      assert.equal(res.body.length, RECORDS_BODY, `response ${i}`);
      assert.equal(firstMismatch(res.body), -1, `response ${i}: every byte as sent`);
    }
  } finally {
    c.destroy();
  }
});

test('over mTLS, an Upgrade tunnel whose client stops reading gets every byte once it reads again (the server sidecar gives its TLS caller copies and reuses its read buffer)', { timeout: 30_000 }, async () => {
  let pushedBack!: () => void;
  const appPushedBack = new Promise<void>((r) => (pushedBack = r));
  let sent = -1;
  const onUpgrade = (_req: http.IncomingMessage, socket: net.Socket) => {
    socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: stream\r\n\r\n');
    writeUntilPushedBack(socket, (piece) => piece, pushedBack, (n) => {
      sent = n;
      socket.end();
    });
  };
  secureApp.server.on('upgrade', onUpgrade);
  const c = await RawClient.connect(shop.outboundPort);
  try {
    c.socket.pause();
    c.write('GET /stream HTTP/1.1\r\nHost: secure\r\nConnection: Upgrade\r\nUpgrade: stream\r\n\r\n');
    // The app is pushed back only once both sidecars have stopped reading: writes of earlier reads are pending.
    await appPushedBack;
    c.socket.resume();
    assert.equal((await c.readResponse('GET', 10_000)).status, 101);
    await c.waitEnd(20_000);
    assert.ok(sent > 0);
    assert.equal(c.buffered.length, sent);
    assert.equal(firstMismatch(c.buffered), -1, 'every byte as sent');
  } finally {
    c.destroy();
    secureApp.server.off('upgrade', onUpgrade);
  }
});
