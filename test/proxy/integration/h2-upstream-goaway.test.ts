// An HTTP/2 upstream that ends its connections by GOAWAY after a number of
// requests, as nginx does every 1000 (keepalive_requests) and many servers do
// on deploys, under more concurrent requests than it takes streams: no client
// may see it. Streams the proxy had queued on the going connection move to
// the next one, streams the GOAWAY left out or the server refused are sent
// again, bodies included, from h2c clients and from HTTP/1.1 clients (the
// bridge) alike. Before, hundreds of queued streams were refused at once and
// some, refused twice, became 503s (bench/sidecar.ts against nginx showed it
// as h2load's failures).
//
// The upstream is a raw-socket server that behaves as nginx does at those
// limits, not node:http2: a node:http2 server closed from its 'stream' handler
// while HEADERS are still arriving frees a stream nghttp2 is still using
// (seen here as glibc's "corrupted size vs. prev_size", a crash of the whole
// test process).
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { docs, exitGuard, Mesh, serviceYaml, T, type Sidecar } from '../../helpers/proxy-harness';
import { Flag, frame, FrameType, literalBlock, PREFACE, Setting, settingsFrame, u32 } from '../../helpers/h2-tools';
import { HpackDecoder } from '../../../src/proxy/http2/codec/hpack-decoder';

/** Requests a connection of the upstream serves before its GOAWAY (nginx: 1000). */
const REQUESTS_PER_CONNECTION = 60;
/** The upstream's SETTINGS_MAX_CONCURRENT_STREAMS; a stream beyond it is refused (REFUSED_STREAM), as nginx does. */
const MAX_STREAMS = 40;
const REFUSED_STREAM = 7;

let mesh: Mesh;
let sc: Sidecar;
let upstream: net.Server;
let connections = 0;
/** Requests the upstream processed: each path once. */
const served: string[] = [];
let refused = 0;

/**
 * One connection of the nginx-like upstream: answers each request (status 200, its path, the
 * length of its body) 2 ms after its END_STREAM, refuses streams beyond MAX_STREAMS, and after
 * REQUESTS_PER_CONNECTION accepted ones says GOAWAY with the last of them, ignores every later
 * stream, and ends the connection once it has answered.
 */
function nginxLike(socket: net.Socket): void {
  connections++;
  socket.on('error', () => {});
  socket.write(settingsFrame([[Setting.MAX_CONCURRENT_STREAMS, MAX_STREAMS]]));
  const decoder = new HpackDecoder({ maxHeaderListSize: 65_536 });
  const open = new Map<number, { path: string; body: number }>();
  let accepted = 0;
  let lastId = 0;
  let goaway = false;
  let buf = Buffer.alloc(0);
  let preface = false;
  const finish = (id: number): void => {
    const s = open.get(id)!;
    served.push(s.path);
    setTimeout(() => {
      if (socket.destroyed) return;
      socket.write(frame(FrameType.HEADERS, Flag.END_HEADERS, id, literalBlock([[':status', '200'], ['x-path', s.path]])));
      socket.write(frame(FrameType.DATA, Flag.END_STREAM, id, Buffer.from(`body ${s.body}`)));
      open.delete(id);
      if (goaway && open.size === 0) socket.end();
    }, 2);
  };
  socket.on('data', (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    if (!preface) {
      if (buf.length < PREFACE.length) return;
      buf = buf.subarray(PREFACE.length);
      preface = true;
    }
    while (buf.length >= 9 && buf.length >= 9 + buf.readUIntBE(0, 3)) {
      const [length, type, flags, id] = [buf.readUIntBE(0, 3), buf[3], buf[4], buf.readUInt32BE(5) & 0x7fffffff];
      const payload = buf.subarray(9, 9 + length);
      buf = buf.subarray(9 + length);
      if (type === FrameType.SETTINGS && !(flags & Flag.ACK)) socket.write(settingsFrame([], true));
      if (type === FrameType.PING && !(flags & Flag.ACK)) socket.write(frame(FrameType.PING, Flag.ACK, 0, payload));
      if (type === FrameType.DATA) {
        if (length > 0) socket.write(frame(FrameType.WINDOW_UPDATE, 0, 0, u32(length)));
        const s = open.get(id);
        if (s === undefined) continue; // a stream refused or ignored
        s.body += length;
        if (flags & Flag.END_STREAM) finish(id);
      }
      if (type !== FrameType.HEADERS) continue;
      // Every block is decoded, in order, whatever becomes of its stream: HPACK's table is the connection's.
      const fields: string[] = [];
      decoder.decode(payload, fields);
      if (goaway && id > lastId) continue; // after a GOAWAY, later streams are ignored (§6.8)
      if (open.size >= MAX_STREAMS) {
        refused++;
        socket.write(frame(FrameType.RST_STREAM, 0, id, u32(REFUSED_STREAM)));
        continue;
      }
      open.set(id, { path: fields[fields.indexOf(':path') + 1], body: 0 });
      if (++accepted === REQUESTS_PER_CONNECTION) {
        goaway = true;
        lastId = id;
        socket.write(frame(FrameType.GOAWAY, 0, 0, Buffer.concat([u32(lastId), u32(0)])));
      }
      if (flags & Flag.END_STREAM) finish(id);
    }
  });
}

before(async () => {
  upstream = net.createServer(nginxLike);
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  mesh = await Mesh.start({
    'services.yaml': docs(serviceYaml({ name: 'h2svc', port: 80, protocol: 'http2', endpoints: [(upstream.address() as net.AddressInfo).port] })),
  });
  sc = await mesh.sidecar({ nodeId: 'h2-goaway' });
}, T);

after(async () => {
  exitGuard();
  await mesh.close();
  await new Promise<void>((r) => upstream.close(() => r()));
}, T);

/** One request on an h2c session to the sidecar: status, the path the upstream saw, and the body. */
function h2Get(session: http2.ClientHttp2Session, path: string, body?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':path': path, ':authority': 'h2svc', ':method': body === undefined ? 'GET' : 'POST' });
    let head = '';
    let text = '';
    req.on('response', (h) => (head = `${h[':status']} ${h['x-path'] ?? ''}`));
    req.setEncoding('utf8');
    req.on('data', (c: string) => (text += c));
    req.on('end', () => resolve(`${head} ${text}`));
    req.on('error', reject);
    req.end(body);
  });
}

function h1Post(port: number, agent: http.Agent, path: string, body: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method: 'POST', agent, headers: { host: 'h2svc', 'content-length': body.length } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve(`${res.statusCode} ${res.headers['x-path'] ?? ''} ${text}`));
    });
    req.on('error', reject);
    req.end(body);
  });
}

test(`an upstream that says GOAWAY every ${REQUESTS_PER_CONNECTION} requests, under ${MAX_STREAMS * 10} concurrent ones: every request is answered 200, by the upstream`, T, async () => {
  const sessions = Array.from({ length: 4 }, () => http2.connect(`http://127.0.0.1:${sc.outboundPort}`));
  const agent = new http.Agent({ keepAlive: true, maxSockets: 40 });
  try {
    const expected: string[] = [];
    const answers: Promise<string>[] = [];
    for (let i = 0; i < 360; i++) {
      const path = `/r${i}`;
      const body = i % 3 === 0 ? 'x'.repeat(i) : undefined;
      expected.push(`200 ${path} body ${body?.length ?? 0}`);
      answers.push(h2Get(sessions[i % sessions.length], path, body));
    }
    for (let i = 0; i < 40; i++) {
      const path = `/b${i}`;
      expected.push(`200 ${path} body ${i + 1}`);
      answers.push(h1Post(sc.outboundPort, agent, path, 'y'.repeat(i + 1)));
    }
    assert.deepEqual(await Promise.all(answers), expected);
    assert.ok(connections >= 400 / REQUESTS_PER_CONNECTION, `the upstream ended its connections (${connections} made)`);
    assert.ok(refused > 0, "streams beyond the upstream's limit were refused (and sent again)");
    // Each request was processed once: what a GOAWAY left out, or a refusal, never reached the handler.
    assert.deepEqual(served.slice().sort(), expected.map((e) => e.split(' ')[1]).sort());
  } finally {
    agent.destroy();
    for (const s of sessions) s.close();
  }
});
