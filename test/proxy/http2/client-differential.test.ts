// weft's HTTP/2 client codec (client-connection.ts) against node:http2's own
// client (nghttp2) as the reference: both make the same requests to the same
// node:http2 servers (an echo in many shapes, a server that allows 5 streams
// at once, one with a small initial window, one that sends GOAWAY mid-way,
// one that resets streams), and each request must come out alike: status,
// headers, body bytes, trailers, rstCode. Then raw-socket servers answer with
// mutated frames: the codec must fail the affected streams with an error, in
// bounded time, and never throw out of the process.
//
// Reproduce the fuzz part with WEFT_CLIENT_FUZZ_SEED=<n>.
import { after, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { createHash } from 'node:crypto';
import { H2ClientConnection } from '../../../src/proxy/http2/codec/client-connection';
import type { H2ClientStream } from '../../../src/proxy/http2/codec/client-stream';
import { Flag, frame, FrameType, literalBlock, settingsFrame, u32 } from '../../helpers/h2-tools';
import { Gen, mutated } from '../../helpers/h2-fuzz-corpus';

const T = { timeout: 60_000 };
const SEED = Number(process.env.WEFT_CLIENT_FUZZ_SEED ?? 0xc11e47) >>> 0;
const { HTTP2_HEADER_STATUS } = http2.constants;

/** What one request came to, as either client saw it. */
interface Outcome {
  status: number | undefined;
  headers: Record<string, unknown> | undefined;
  /** Length and sha256 of the body bytes. */
  body: string;
  trailers: Record<string, unknown> | undefined;
  rstCode: number;
  error: boolean;
}

type Client = 'node' | 'weft';
type AnyStream = http2.ClientHttp2Stream | H2ClientStream;

interface Req {
  headers: http2.OutgoingHttpHeaders;
  body?: Buffer;
  trailers?: http2.OutgoingHttpHeaders;
}

/** A connection of either kind, with the one call both share. */
interface Conn {
  kind: Client;
  request(headers: http2.OutgoingHttpHeaders, opts: { endStream: boolean; waitForTrailers: boolean }): AnyStream;
  close(): void;
}

function connect(kind: Client, port: number): Conn {
  if (kind === 'node') {
    const s = http2.connect(`http://127.0.0.1:${port}`);
    s.on('error', () => {});
    return { kind, request: (h, o) => s.request(h, o), close: () => s.close() };
  }
  const c = new H2ClientConnection(net.connect({ host: '127.0.0.1', port }), { peerMaxConcurrentStreams: 100, secure: false });
  return { kind, request: (h, o) => c.request(h, o), close: () => c.close() };
}

function clean(h: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
  if (!h) return h;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(h).sort()) if (k !== 'date') out[k] = h[k];
  return out;
}

/** Makes a request and waits for its stream to close; bounded by the test's timeout. */
function exchange(conn: Conn, req: Req): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const hasBody = req.body !== undefined || req.trailers !== undefined;
    const s = conn.request({ ':method': hasBody ? 'POST' : 'GET', ':path': '/', ':authority': 'diff', ':scheme': 'http', ...req.headers }, { endStream: !hasBody, waitForTrailers: req.trailers !== undefined }) as H2ClientStream;
    const out: Outcome = { status: undefined, headers: undefined, body: '', trailers: undefined, rstCode: 0, error: false };
    const hash = createHash('sha256');
    let bytes = 0;
    s.on('response', (h: Record<string, unknown>) => {
      out.status = Number(h[HTTP2_HEADER_STATUS]);
      out.headers = clean({ ...h });
    });
    s.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      hash.update(chunk);
    });
    s.on('trailers', (t: Record<string, unknown>) => (out.trailers = clean({ ...t })));
    s.on('error', () => (out.error = true));
    const timer = setTimeout(() => reject(new Error(`${conn.kind}: no close within 20 s for ${JSON.stringify(req.headers)} body ${req.body?.length}: ${JSON.stringify(out)}, ${bytes} bytes`)), 20_000);
    s.on('close', () => {
      clearTimeout(timer);
      out.rstCode = s.rstCode ?? 0;
      out.body = `${bytes}:${hash.digest('hex').slice(0, 16)}`;
      resolve(out);
    });
    if (req.trailers) s.on('wantTrailers', () => s.sendTrailers(req.trailers!));
    if (hasBody) writeBody(s, req.body ?? Buffer.alloc(0));
  });
}

/** Writes a body in uneven chunks, waiting for 'drain' when told to. */
function writeBody(s: AnyStream, body: Buffer): void {
  let at = 0;
  const more = () => {
    while (at < body.length) {
      const n = Math.min(body.length - at, 7000 + (at % 50_000));
      const ok = s.write(body.subarray(at, at + n));
      at += n;
      if (!ok) return void s.once('drain', more);
    }
    s.end();
  };
  more();
}

function pattern(n: number, seed = 7): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed + (i >> 10)) & 0xff;
  return b;
}

/** The echo: the request body back, and the request's shape said in headers; x-* headers ask for response shapes. */
function echo(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  stream.on('end', () => {
    const body = Buffer.concat(chunks);
    const trailersIn = (stream as unknown as { receivedTrailers?: http2.IncomingHttpHeaders }).receivedTrailers;
    const status = Number(headers['x-status'] ?? 200);
    if (headers['x-reset-before'] !== undefined) return stream.close(Number(headers['x-reset-before']));
    if (headers['x-early-hints'] !== undefined) stream.additionalHeaders({ ':status': 103, link: '</a.css>; rel=preload' });
    const res: http2.OutgoingHttpHeaders = {
      ':status': status,
      'x-method': String(headers[':method']),
      'x-got-bytes': String(body.length),
      'x-got-sha': createHash('sha256').update(body).digest('hex').slice(0, 16),
      'set-cookie': ['a=1', 'b=2'],
      'x-multi': ['one', 'two'],
    };
    if (trailersIn) res['x-got-trailers'] = JSON.stringify(trailersIn);
    if (headers['x-trailers-only'] !== undefined) {
      res['grpc-status'] = '5';
      return stream.respond(res, { endStream: true });
    }
    const out = headers['x-body-size'] !== undefined ? pattern(Number(headers['x-body-size']), 3) : body;
    if (headers['x-content-length'] !== undefined) res['content-length'] = String(out.length);
    const wantTrailers = headers['x-want-trailers'] !== undefined;
    if (status === 204 || status === 304 || headers[':method'] === 'HEAD') return stream.respond(res, { endStream: true });
    stream.respond(res, { waitForTrailers: wantTrailers });
    if (wantTrailers) stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', 'x-trailer': 'yes' }));
    if (headers['x-reset-after'] !== undefined) {
      stream.write(out.subarray(0, 1000), () => stream.close(Number(headers['x-reset-after'])));
      return;
    }
    stream.end(out);
  });
  stream.on('trailers', (t) => ((stream as unknown as { receivedTrailers?: unknown }).receivedTrailers = { ...t }));
  stream.on('error', () => {});
}

interface Server {
  port: number;
  server: http2.Http2Server;
  /** Streams open at once, at most. */
  peak: number;
  sessions: Set<http2.ServerHttp2Session>;
}

async function startServer(settings: http2.Settings, onStream: (s: http2.ServerHttp2Stream, h: http2.IncomingHttpHeaders, srv: Server) => void = echo): Promise<Server> {
  const server = http2.createServer({ settings });
  const srv: Server = { port: 0, server, peak: 0, sessions: new Set() };
  server.on('session', (session) => {
    srv.sessions.add(session);
    session.on('close', () => srv.sessions.delete(session));
  });
  let open = 0;
  server.on('stream', (s, h) => {
    open++;
    srv.peak = Math.max(srv.peak, open);
    s.on('close', () => open--);
    onStream(s, h, srv);
  });
  server.on('sessionError', () => {});
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  srv.port = (server.address() as net.AddressInfo).port;
  return srv;
}

const servers: Server[] = [];
after(async () => {
  // Sessions a test left with streams open (the GOAWAY server holds two) would keep close() waiting.
  await Promise.all(
    servers.map((s) => {
      for (const session of s.sessions) session.destroy();
      return new Promise<void>((r) => s.server.close(() => r()));
    }),
  );
});

/** The same requests through both clients, on one connection each; the outcomes must be equal. */
async function both(port: number, reqs: Req[], opts: { concurrent: boolean; warm?: boolean } = { concurrent: true }): Promise<Outcome[][]> {
  const results: Outcome[][] = [];
  for (const kind of ['node', 'weft'] as Client[]) {
    const conn = connect(kind, port);
    try {
      // A first request, so that the server's SETTINGS are known before a burst (nghttp2 refuses streams over a limit it has announced).
      if (opts.warm) await exchange(conn, { headers: {} });
      results.push(opts.concurrent ? await Promise.all(reqs.map((r) => exchange(conn, r))) : await sequential(conn, reqs));
    } finally {
      conn.close();
    }
  }
  return results;
}

async function sequential(conn: Conn, reqs: Req[]): Promise<Outcome[]> {
  const out: Outcome[] = [];
  for (const r of reqs) out.push(await exchange(conn, r));
  return out;
}

function assertSame(results: Outcome[][], reqs: Req[]): void {
  const [node, weft] = results;
  for (let i = 0; i < reqs.length; i++) {
    assert.deepEqual(weft[i], node[i], `request ${i} (${JSON.stringify(reqs[i].headers)}, body ${reqs[i].body?.length ?? 0}): weft saw ${JSON.stringify(weft[i])}, node ${JSON.stringify(node[i])}`);
  }
}

const SIZES = [0, 1, 100, 16_383, 16_384, 16_385, 65_535, 65_536, 200_000, 1_500_000];

test('echo: bodies of every size both ways, trailers both ways, trailers-only, 1xx, repeated fields, HEAD, 204', T, async () => {
  const srv = await startServer({});
  servers.push(srv);
  const reqs: Req[] = [
    { headers: {} },
    ...SIZES.map((n) => ({ headers: {}, body: pattern(n) })),
    ...SIZES.map((n) => ({ headers: { 'x-body-size': String(n), 'x-content-length': '1' } })),
    { headers: { 'x-want-trailers': '1' }, body: pattern(70_000) },
    { headers: {}, body: pattern(5000), trailers: { 'x-req-trailer': 'here', 'x-two': 'too' } },
    { headers: { 'x-want-trailers': '1' }, trailers: { 'x-only-trailer': '1' } },
    { headers: { 'x-trailers-only': '1' } },
    { headers: { 'x-early-hints': '1' }, body: pattern(10) },
    { headers: { ':method': 'HEAD', 'x-body-size': '500', 'x-content-length': '1' } },
    { headers: { 'x-status': '204' } },
    { headers: { 'x-status': '404' }, body: pattern(3) },
    { headers: { 'x-status': '503', 'x-body-size': '20000' } },
    { headers: { cookie: ['a=1', 'b=2'] as unknown as string, 'x-repeat': ['1', '2'] as unknown as string } },
  ];
  assertSame(await both(srv.port, reqs, { concurrent: false }), reqs);
  assertSame(await both(srv.port, reqs), reqs);
});

test('100 concurrent streams on one connection', T, async () => {
  const srv = await startServer({});
  servers.push(srv);
  const reqs: Req[] = Array.from({ length: 100 }, (_, i) => (i % 3 === 0 ? { headers: { 'x-body-size': String(i * 997) } } : { headers: { 'x-want-trailers': String(i) }, body: pattern(i * 1531, i) }));
  assertSame(await both(srv.port, reqs), reqs);
});

test('a server that allows 5 streams at once: the others queue, all complete, never more than 5 open', T, async () => {
  const srv = await startServer({ maxConcurrentStreams: 5 });
  servers.push(srv);
  const reqs: Req[] = Array.from({ length: 40 }, (_, i) => ({ headers: { 'x-body-size': String(i * 4001) }, body: pattern(i * 777) }));
  const results = await both(srv.port, reqs, { concurrent: true, warm: true });
  assertSame(results, reqs);
  for (const o of results[1]) assert.equal(o.status, 200);
  assert.ok(srv.peak <= 5, `the server saw ${srv.peak} streams open at once`);
});

test('a server with a small initial window and frame size: large bodies both ways', T, async () => {
  const srv = await startServer({ initialWindowSize: 1000 });
  servers.push(srv);
  const reqs: Req[] = [300_000, 1_200_000].flatMap((n) => [{ headers: {}, body: pattern(n) }, { headers: { 'x-body-size': String(n) } }]);
  assertSame(await both(srv.port, reqs), reqs);
});

test('a server that resets streams: before the response and after part of it', T, async () => {
  const srv = await startServer({});
  servers.push(srv);
  const { NGHTTP2_INTERNAL_ERROR, NGHTTP2_REFUSED_STREAM, NGHTTP2_CANCEL, NGHTTP2_ENHANCE_YOUR_CALM, NGHTTP2_NO_ERROR } = http2.constants;
  const reqs: Req[] = [NGHTTP2_INTERNAL_ERROR, NGHTTP2_REFUSED_STREAM, NGHTTP2_CANCEL, NGHTTP2_ENHANCE_YOUR_CALM, NGHTTP2_NO_ERROR].map((c) => ({ headers: { 'x-reset-before': String(c) } }));
  assertSame(await both(srv.port, reqs), reqs);
  // After part of a response: the status and the reset agree (how much DATA got out before the RST is the server's timing).
  const after: Req[] = [NGHTTP2_INTERNAL_ERROR, NGHTTP2_CANCEL].map((c) => ({ headers: { 'x-reset-after': String(c), 'x-body-size': '100000' } }));
  const [node, weft] = await both(srv.port, after);
  for (let i = 0; i < after.length; i++) {
    assert.deepEqual([weft[i].status, weft[i].rstCode, weft[i].error], [node[i].status, node[i].rstCode, node[i].error], `reset after: weft ${JSON.stringify(weft[i])}, node ${JSON.stringify(node[i])}`);
  }
});

test('a server that sends GOAWAY mid-way: streams above its last stream id are refused (REFUSED_STREAM), the others complete', T, async () => {
  // The server holds the first 4 requests of a connection, then says GOAWAY with the 2nd one's id and answers those two.
  const held = new Map<http2.Http2Session, http2.ServerHttp2Stream[]>();
  const srv = await startServer({}, (s, h) => {
    const session = s.session!;
    const list = held.get(session) ?? [];
    held.set(session, list);
    list.push(s);
    s.on('error', () => {});
    if (list.length < 4) return;
    const sorted = [...list].sort((a, b) => a.id! - b.id!);
    session.goaway(http2.constants.NGHTTP2_NO_ERROR, sorted[1].id!);
    for (const x of sorted.slice(0, 2)) x.respond({ ':status': 200, 'x-id': String(x.id) }, { endStream: true });
    void h;
  });
  servers.push(srv);
  const reqs: Req[] = Array.from({ length: 4 }, () => ({ headers: {} }));
  const results = await both(srv.port, reqs);
  assertSame(results, reqs);
  assert.deepEqual(results[1].map((o) => o.rstCode).sort(), [0, 0, 7, 7]);
});

test('unit: streams beyond MAX_CONCURRENT_STREAMS wait for a slot, in order; GOAWAY refuses the waiting ones too', T, async () => {
  // A raw server that says MAX_CONCURRENT_STREAMS=2 and never answers, so what goes out can be counted exactly.
  const seen: number[] = [];
  let sock: net.Socket | undefined;
  const server = net.createServer((s) => {
    sock = s;
    s.write(settingsFrame([[3, 2]]));
    let buf = Buffer.alloc(0);
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (buf.subarray(0, 3).toString() === 'PRI') buf = buf.subarray(24);
      while (buf.length >= 9 && buf.length >= 9 + buf.readUIntBE(0, 3)) {
        const len = buf.readUIntBE(0, 3);
        if (buf[3] === FrameType.HEADERS) seen.push(buf.readUInt32BE(5));
        buf = buf.subarray(9 + len);
      }
    });
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  try {
    const conn = new H2ClientConnection(net.connect({ host: '127.0.0.1', port }), { peerMaxConcurrentStreams: 100, secure: false });
    // Once the server's SETTINGS are in (its ACK of ours is not needed), five requests: two go, three wait.
    await new Promise<void>((r) => setTimeout(r, 0)); // let the connection start
    const first = conn.request({ ':method': 'GET', ':path': '/', ':scheme': 'http', ':authority': 'u' }, { endStream: true });
    await waitFor(() => seen.length === 1);
    const streams = Array.from({ length: 4 }, () => conn.request({ ':method': 'GET', ':path': '/', ':scheme': 'http', ':authority': 'u' }, { endStream: true }));
    await waitFor(() => seen.length === 2);
    await new Promise<void>((r) => setImmediate(r));
    assert.deepEqual(seen, [1, 3], 'two streams at once');
    assert.equal(conn.openStreams, 5);
    // The first one is answered and ends: the next waiting one goes.
    sock!.write(frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, 1, literalBlock([[':status', '200']])));
    await waitFor(() => seen.length === 3);
    assert.deepEqual(seen, [1, 3, 5]);
    assert.equal(first.rstCode, undefined);
    // GOAWAY with last stream id 3: stream 5 and the two still waiting are refused, stream 3 stays.
    const closed = streams.map((s) => new Promise<number | undefined>((r) => s.on('close', () => r(s.rstCode))));
    for (const s of streams) s.on('error', () => {});
    sock!.write(frame(FrameType.GOAWAY, 0, 0, Buffer.concat([u32(3), u32(0)])));
    await waitFor(() => !conn.acceptsStreams);
    sock!.write(frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, 3, literalBlock([[':status', '204']])));
    assert.deepEqual(await Promise.all(closed), [undefined, 7, 7, 7]);
    assert.deepEqual(seen, [1, 3, 5], 'nothing new after GOAWAY');
    assert.throws(() => conn.request({ ':method': 'GET', ':path': '/', ':scheme': 'http', ':authority': 'u' }, { endStream: true }), /no new streams/);
  } finally {
    sock?.destroy();
    server.close();
  }
});

test('unit: with a successor, the streams still queued at a GOAWAY move to the next connection, their bodies with them, and are answered there; against a server that processes nothing, a stream tries three more connections, then is refused', T, async () => {
  // A raw server that allows one stream per connection, answers each request once its END_STREAM is in
  // (with the body's length), and says GOAWAY with the first stream's id after answering it.
  const conns: number[] = [];
  const server = net.createServer((s) => {
    const conn = conns.push(0) - 1;
    s.write(settingsFrame([[3, 1]]));
    let buf = Buffer.alloc(0);
    const bodies = new Map<number, number>();
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (buf.subarray(0, 3).toString() === 'PRI') buf = buf.subarray(24);
      while (buf.length >= 9 && buf.length >= 9 + buf.readUIntBE(0, 3)) {
        const [len, type, flags, id] = [buf.readUIntBE(0, 3), buf[3], buf[4], buf.readUInt32BE(5)];
        buf = buf.subarray(9 + len);
        if (type === FrameType.HEADERS) bodies.set(id, 0);
        if (type === FrameType.DATA) bodies.set(id, bodies.get(id)! + len);
        if ((type === FrameType.HEADERS || type === FrameType.DATA) && flags & Flag.END_STREAM) {
          conns[conn]++;
          s.write(frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, id, literalBlock([[':status', '200'], ['x-conn', String(conn)], ['x-body', String(bodies.get(id))]])));
          s.write(frame(FrameType.GOAWAY, 0, 0, Buffer.concat([u32(id), u32(0)])));
        }
      }
    });
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const made: H2ClientConnection[] = [];
  const connect = (): H2ClientConnection => {
    // One stream at a time from the start, as the server's SETTINGS will say: what waits is certain.
    const c = new H2ClientConnection(net.connect({ host: '127.0.0.1', port }), { peerMaxConcurrentStreams: 1, secure: false, successor: connect });
    made.push(c);
    return c;
  };
  try {
    const first = connect();
    // Four requests, two with a body written while they wait: one goes, three wait, and each GOAWAY moves the rest on.
    const streams = [0, 5, 0, 7].map((body) => {
      const s = first.request({ ':method': body ? 'POST' : 'GET', ':path': '/', ':scheme': 'http', ':authority': 'u' }, { endStream: body === 0 });
      if (body) s.end(Buffer.alloc(body, 0x61));
      return s;
    });
    const answers = await Promise.all(
      streams.map(
        (s) =>
          new Promise<string>((resolve, reject) => {
            let head = '';
            s.on('response', (h: Record<string, unknown>) => (head = `${h[':status']} conn ${h['x-conn']} body ${h['x-body']}`));
            s.on('error', reject);
            s.on('close', () => resolve(`${head} rst ${s.rstCode}`));
          }),
      ),
    );
    assert.deepEqual(answers, ['200 conn 0 body 0 rst undefined', '200 conn 1 body 5 rst undefined', '200 conn 2 body 0 rst undefined', '200 conn 3 body 7 rst undefined']);
    assert.deepEqual(conns, [1, 1, 1, 1]);
    assert.equal(made.length, 4, 'a GOAWAY with nothing queued makes no connection');
  } finally {
    for (const c of made) c.socket.destroy();
    server.close();
  }
  // A server that says GOAWAY before processing anything: a queued stream tries three more connections, then is refused.
  let refusing = 0;
  const refuser = net.createServer((s) => {
    refusing++;
    s.write(Buffer.concat([settingsFrame([]), frame(FrameType.GOAWAY, 0, 0, Buffer.concat([u32(0), u32(0)]))]));
    s.on('data', () => {});
    s.on('error', () => {});
  });
  await new Promise<void>((r) => refuser.listen(0, '127.0.0.1', r));
  const refuserPort = (refuser.address() as net.AddressInfo).port;
  const tried: H2ClientConnection[] = [];
  const next = (): H2ClientConnection => {
    const c = new H2ClientConnection(net.connect({ host: '127.0.0.1', port: refuserPort }), { peerMaxConcurrentStreams: 1, secure: false, successor: next });
    tried.push(c);
    return c;
  };
  try {
    const s = next().request({ ':method': 'GET', ':path': '/', ':scheme': 'http', ':authority': 'u' }, { endStream: true });
    s.on('error', () => {});
    const code = await new Promise<number | undefined>((r) => s.on('close', () => r(s.rstCode)));
    assert.equal(code, 7);
    assert.equal(tried.length, 4);
    assert.equal(refusing, 4);
  } finally {
    for (const c of tried) c.socket.destroy();
    refuser.close();
  }
});

function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + ms;
    const check = () => {
      if (cond()) return resolve();
      if (Date.now() > deadline) return reject(new Error('condition not met in time'));
      setImmediate(check);
    };
    check();
  });
}

/** A valid response to stream `id` of a raw server: HEADERS, DATA, trailers. */
function responseFrames(g: Gen, id: number): Buffer[] {
  const frames: Buffer[] = [];
  const fields: [string, string][] = [[':status', g.pick(['200', '204', '404', '100', '101', '2000', 'abc'])]];
  if (g.chance(0.3)) fields.push(['content-length', g.pick(['0', '5', '10', 'x'])]);
  if (g.chance(0.1)) fields.push([g.pick([':path', 'connection', 'Upper', 'te']), 'x']);
  if (g.chance(0.1)) fields.reverse();
  const body = g.chance(0.7);
  frames.push(frame(FrameType.HEADERS, Flag.END_HEADERS | (body ? 0 : Flag.END_STREAM), id, literalBlock(fields)));
  if (body) {
    frames.push(frame(FrameType.DATA, 0, id, g.bytes(g.int(20))));
    if (g.chance(0.5)) frames.push(frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, id, literalBlock([['grpc-status', '0']])));
    else frames.push(frame(FrameType.DATA, Flag.END_STREAM, id, g.bytes(g.int(5))));
  }
  return frames;
}

function otherFrame(g: Gen): Buffer {
  const id = g.pick([0, 1, 3, 2, 7, 0x7fffffff]);
  switch (g.int(8)) {
    case 0:
      return frame(FrameType.PING, g.int(2), id, g.bytes(g.pick([8, 8, 7])));
    case 1:
      return frame(FrameType.WINDOW_UPDATE, 0, id, u32(g.pick([0, 1, 65_535, 0x7fffffff])));
    case 2:
      return frame(FrameType.RST_STREAM, 0, id, u32(g.int(14)));
    case 3:
      return frame(FrameType.GOAWAY, 0, id, Buffer.concat([u32(g.int(5)), u32(g.int(14))]));
    case 4:
      return settingsFrame([[g.int(8), g.pick([0, 1, 100, 16_383, 2 ** 31, 2 ** 32 - 1])]]);
    case 5:
      return frame(FrameType.PUSH_PROMISE, Flag.END_HEADERS, id, Buffer.concat([u32(2), literalBlock([[':method', 'GET']])]));
    case 6:
      return frame(FrameType.CONTINUATION, g.int(8), id, g.bytes(g.int(10)));
    default:
      return frame(g.int(256), g.int(256), id, g.bytes(g.int(12)));
  }
}

test('malicious servers: mutated frames never crash the process, and every stream ends in bounded time', T, async () => {
  const CASES = Number(process.env.WEFT_CLIENT_FUZZ_CASES ?? 300);
  const g = new Gen(SEED);
  const plans: Buffer[] = [];
  for (let i = 0; i < CASES; i++) {
    const parts: Buffer[] = [];
    if (!g.chance(0.05)) parts.push(settingsFrame(g.chance(0.8) ? [] : [[g.int(8), g.int(2 ** 31)]]));
    for (let n = 1 + g.int(6); n > 0; n--) {
      if (g.chance(0.6)) parts.push(...responseFrames(g, g.pick([1, 3, 5])).map((f) => mutated(g, f)));
      else parts.push(mutated(g, otherFrame(g)));
    }
    let bytes = Buffer.concat(parts);
    if (g.chance(0.1)) bytes = bytes.subarray(0, g.int(bytes.length));
    plans.push(bytes);
  }
  let next = 0;
  const server = net.createServer((s) => {
    const bytes = plans[next++ % plans.length];
    s.on('error', () => {});
    // The server answers once it has the client's first bytes, then closes: every case ends.
    s.once('data', () => s.end(bytes));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const uncaught: Error[] = [];
  const onUncaught = (err: Error) => uncaught.push(err);
  process.on('uncaughtException', onUncaught);
  const outcomes = new Map<string, number>();
  try {
    for (let i = 0; i < CASES; i += 10) {
      await Promise.all(
        Array.from({ length: Math.min(10, CASES - i) }, async () => {
          const conn = new H2ClientConnection(net.connect({ host: '127.0.0.1', port }), { peerMaxConcurrentStreams: 100, secure: false });
          const ends = [0, 1, 2].map(
            () =>
              new Promise<string>((resolve, reject) => {
                const s = conn.request({ ':method': 'POST', ':path': '/', ':scheme': 'http', ':authority': 'm' }, { endStream: false, waitForTrailers: false });
                s.write(Buffer.alloc(100));
                s.end();
                let status = 0;
                let error = '';
                s.on('response', (h: Record<string, unknown>) => (status = Number(h[':status'])));
                s.on('data', () => {});
                s.on('error', (err: Error) => (error = err.message));
                const timer = setTimeout(() => reject(new Error('a stream did not end within 5 s')), 5000);
                s.on('close', () => {
                  clearTimeout(timer);
                  // A stream that did not end cleanly says why.
                  if (s.rstCode !== undefined && s.rstCode !== 0 && s.rstCode !== 8 && !error) return reject(new Error(`stream reset ${s.rstCode} without an error`));
                  resolve(error ? error.replace(/\(.*$/, '').trim() : `status ${status}`);
                });
              }),
          );
          for (const o of await Promise.all(ends)) outcomes.set(o, (outcomes.get(o) ?? 0) + 1);
        }),
      );
    }
  } finally {
    process.off('uncaughtException', onUncaught);
    server.close();
  }
  assert.deepEqual(uncaught, []);
  const summary = [...outcomes].sort((a, b) => b[1] - a[1]);
  console.log(`${CASES} malicious servers, ${CASES * 3} streams:\n${summary.map(([k, n]) => `  ${n}× ${k}`).join('\n')}`);
  assert.ok(summary.some(([k]) => /PROTOCOL_ERROR|connection error/.test(k)), 'the corpus reaches the error paths');
});
