// HTTP/1.1 strictness through the sidecar on raw sockets: every malformed or
// smuggling-shaped request is answered (400, 431, 501 or 505) with
// `connection: close`, the connection is closed, and not one byte reaches the
// upstream; the proxy then keeps serving well-formed requests.
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { docs, Mesh, onRequestHeads, RawClient, RawUpstream, serviceYaml, type Sidecar, sleep, T, exitGuard } from '../../helpers/proxy-harness';

let mesh: Mesh;
let sc: Sidecar;
let upstream: RawUpstream;
let requests = 0;

before(async () => {
  // A minimal upstream: answers every request head with "ok" (the cases here send no bodies it must read).
  upstream = await RawUpstream.start((socket) => {
    onRequestHeads(socket, () => {
      requests++;
      socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
    });
  });
  mesh = await Mesh.start({ 'services.yaml': docs(serviceYaml({ name: 'alpha', port: 80, endpoints: [upstream.port] })) });
  sc = await mesh.sidecar();
}, T);

after(async () => {
  exitGuard();
  await mesh.close();
  await upstream.close();
}, T);

interface Case {
  name: string;
  bytes: string | Buffer;
  status: number;
}

const H = 'Host: alpha\r\n';
const CASES: Case[] = [
  { name: 'Content-Length and Transfer-Encoding', bytes: `POST / HTTP/1.1\r\n${H}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, status: 400 },
  { name: 'Transfer-Encoding then Content-Length', bytes: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n${H}\r\n`, status: 400 },
  { name: 'duplicate Content-Length (equal)', bytes: `POST / HTTP/1.1\r\n${H}Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc`, status: 400 },
  { name: 'duplicate Content-Length (different)', bytes: `POST / HTTP/1.1\r\n${H}Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd`, status: 400 },
  { name: 'Content-Length list', bytes: `POST / HTTP/1.1\r\n${H}Content-Length: 3, 3\r\n\r\nabc`, status: 400 },
  { name: 'negative Content-Length', bytes: `POST / HTTP/1.1\r\n${H}Content-Length: -1\r\n\r\n`, status: 400 },
  { name: 'Content-Length with a sign', bytes: `POST / HTTP/1.1\r\n${H}Content-Length: +3\r\n\r\nabc`, status: 400 },
  { name: 'Content-Length in hex', bytes: `POST / HTTP/1.1\r\n${H}Content-Length: 0x3\r\n\r\nabc`, status: 400 },
  { name: 'empty Content-Length', bytes: `POST / HTTP/1.1\r\n${H}Content-Length:\r\n\r\n`, status: 400 },
  { name: 'Transfer-Encoding without chunked', bytes: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: gzip\r\n\r\n`, status: 501 },
  { name: 'chunked not last', bytes: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n`, status: 400 },
  { name: 'chunked twice', bytes: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, status: 400 },
  { name: 'Transfer-Encoding in HTTP/1.0', bytes: `POST / HTTP/1.0\r\n${H}Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, status: 400 },
  { name: 'obs-fold', bytes: `GET / HTTP/1.1\r\n${H}X-Long: a\r\n  folded\r\n\r\n`, status: 400 },
  { name: 'whitespace before the first header', bytes: `GET / HTTP/1.1\r\n ${H}\r\n`, status: 400 },
  { name: 'bare LF line endings', bytes: `GET / HTTP/1.1\n${H.replace('\r\n', '\n')}\n`, status: 400 },
  { name: 'bare LF after a header', bytes: `GET / HTTP/1.1\r\n${H}X-A: b\n\r\n`, status: 400 },
  { name: 'bare CR in a header value', bytes: `GET / HTTP/1.1\r\n${H}X-A: b\rc\r\n\r\n`, status: 400 },
  { name: 'bad chunk size', bytes: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n`, status: 400 },
  { name: 'chunk size overflow', bytes: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\nx\r\n0\r\n\r\n`, status: 400 },
  { name: 'chunk size with bare LF', bytes: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n`, status: 400 },
  { name: 'chunk data longer than its size', bytes: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n`, status: 400 },
  { name: 'missing Host', bytes: 'GET / HTTP/1.1\r\nAccept: */*\r\n\r\n', status: 400 },
  { name: 'two Host headers', bytes: `GET / HTTP/1.1\r\n${H}Host: beta\r\n\r\n`, status: 400 },
  { name: 'invalid Host', bytes: 'GET / HTTP/1.1\r\nHost: al pha\r\n\r\n', status: 400 },
  { name: 'space in a header name', bytes: `GET / HTTP/1.1\r\n${H}Bad Name: x\r\n\r\n`, status: 400 },
  { name: 'space before the colon', bytes: `GET / HTTP/1.1\r\nHost : alpha\r\n\r\n`, status: 400 },
  { name: 'invalid character in a header name', bytes: `GET / HTTP/1.1\r\n${H}X(y): z\r\n\r\n`, status: 400 },
  { name: 'empty header name', bytes: `GET / HTTP/1.1\r\n${H}: z\r\n\r\n`, status: 400 },
  { name: 'control character in a header value', bytes: `GET / HTTP/1.1\r\n${H}X-A: a\x01b\r\n\r\n`, status: 400 },
  { name: 'NUL in a header value', bytes: `GET / HTTP/1.1\r\n${H}X-A: a\x00b\r\n\r\n`, status: 400 },
  { name: 'two spaces in the request line', bytes: `GET  / HTTP/1.1\r\n${H}\r\n`, status: 400 },
  { name: 'lower-case version', bytes: `GET / http/1.1\r\n${H}\r\n`, status: 400 },
  { name: 'HTTP/1.2', bytes: `GET / HTTP/1.2\r\n${H}\r\n`, status: 505 },
  { name: 'HTTP/2.0 request line', bytes: `GET / HTTP/2.0\r\n${H}\r\n`, status: 505 },
  { name: 'fragment in the target', bytes: `GET /a#b HTTP/1.1\r\n${H}\r\n`, status: 400 },
  { name: 'oversized head', bytes: `GET / HTTP/1.1\r\n${H}X-Big: ${'a'.repeat(70_000)}\r\n\r\n`, status: 431 },
  { name: 'too many header fields', bytes: `GET / HTTP/1.1\r\n${H}${Array.from({ length: 150 }, (_, i) => `X-${i}: v\r\n`).join('')}\r\n`, status: 431 },
];

async function expectRefused(c: Case): Promise<void> {
  const before = { connections: upstream.connections, bytes: upstream.bytes, requests };
  const client = await RawClient.connect(sc.outboundPort);
  try {
    client.write(c.bytes);
    const res = await client.readResponse('GET', 2000);
    assert.equal(res.status, c.status, `${c.name}: ${res.rawHead}${res.body}`);
    assert.equal(res.headers.connection, 'close', `${c.name}: connection: close`);
    assert.equal(res.headers['x-weft-response-flags'], 'DPE', c.name);
    await client.waitEnd(2000);
  } finally {
    client.destroy();
  }
  // Give a wrongly forwarded request time to arrive before counting.
  await sleep(10);
  assert.equal(upstream.bytes, before.bytes, `${c.name}: no byte reached the upstream`);
  assert.equal(requests, before.requests, `${c.name}: no request reached the upstream`);
  assert.equal(upstream.connections, before.connections, `${c.name}: no upstream connection was made`);
}

async function expectServed(): Promise<void> {
  const client = await RawClient.connect(sc.outboundPort);
  try {
    client.write(`GET /fine HTTP/1.1\r\n${H}\r\n`);
    const res = await client.readResponse();
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), 'ok');
  } finally {
    client.destroy();
  }
}

test('strictness: a well-formed request is served', T, async () => {
  await expectServed();
});

for (const c of CASES) {
  test(`strictness: ${c.name} → ${c.status}, closed, nothing forwarded`, T, async () => {
    await expectRefused(c);
    await expectServed();
  });
}

test('strictness: a malformed request pipelined behind a good one: the good one is answered, the bad one refused', T, async () => {
  const before = requests;
  const client = await RawClient.connect(sc.outboundPort);
  try {
    client.write(`GET /one HTTP/1.1\r\n${H}\r\nGET /two HTTP/1.1\r\n${H}Content-Length: 1\r\nContent-Length: 2\r\n\r\nxx`);
    const first = await client.readResponse();
    assert.equal(first.status, 200);
    const second = await client.readResponse();
    assert.equal(second.status, 400);
    assert.equal(second.headers.connection, 'close');
    await client.waitEnd(2000);
  } finally {
    client.destroy();
  }
  await sleep(10);
  assert.equal(requests, before + 1, 'only the good request went upstream');
});

test('strictness: a chunked body that goes bad after its head was forwarded cuts the upstream connection', T, async () => {
  const closedBefore = upstream.connections;
  const client = await RawClient.connect(sc.outboundPort);
  try {
    client.write(`POST /stream HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n`);
    // The head and the first chunk are on their way upstream.
    const deadline = Date.now() + 2000;
    while (!upstream.text().includes('POST /stream') && Date.now() < deadline) await sleep(5);
    assert.ok(upstream.text().includes('POST /stream'), 'the head was forwarded');
    client.write('5\r\nworld\r\nXYZ\r\n');
    const res = await client.readResponse('POST', 2000);
    // The upstream answered the head already ("ok", our simple server), or the proxy refused the body.
    assert.ok(res.status === 200 || res.status === 400, `status ${res.status}`);
    await client.waitEnd(2000);
  } finally {
    client.destroy();
  }
  assert.ok(upstream.connections >= closedBefore);
  await expectServed();
});

test('strictness: the body of a request answered locally is never read as a request (no smuggling past a local reply)', T, async () => {
  const before = { requests, bytes: upstream.bytes };
  const inner = `GET /smuggled HTTP/1.1\r\n${H}\r\n`;
  const client = await RawClient.connect(sc.outboundPort);
  try {
    // No route for this host: 404 while the body is still to come; the body holds a request for alpha.
    client.write(`POST /x HTTP/1.1\r\nHost: nowhere.example\r\nContent-Length: ${inner.length}\r\n\r\n`);
    const res = await client.readResponse('POST');
    assert.equal(res.status, 404);
    assert.equal(res.headers.connection, 'close');
    client.write(inner);
    await client.waitEnd(2000);
    await sleep(50);
  } finally {
    client.destroy();
  }
  assert.equal(requests, before.requests, 'the body went nowhere');
  assert.equal(upstream.bytes, before.bytes);
});

test('strictness: after "connection: close" a further request on that connection is not forwarded', T, async () => {
  const before = requests;
  const client = await RawClient.connect(sc.outboundPort);
  try {
    client.write(`GET /one HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
    const res = await client.readResponse();
    assert.equal(res.status, 200);
    assert.equal(res.headers.connection, 'close');
    client.write(`GET /two HTTP/1.1\r\n${H}\r\n`);
    await client.waitEnd(2000);
    await sleep(50);
    assert.equal(client.buffered.length, 0, 'no second response');
  } finally {
    client.destroy();
  }
  assert.equal(requests, before + 1, 'only the first request went upstream');
});
