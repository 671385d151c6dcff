// HTTP/2 and gRPC through sidecars: grpc-js clients through the client
// sidecar (unary calls, error statuses with their messages, metadata both
// ways), two hops (client sidecar → server sidecar's inbound listener → app),
// HTTP/1.1 → HTTP/2 and h2c → HTTP/1.1 translation, and gRPC-shaped local
// replies (grpc-status for no endpoint, no route).
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import * as http2 from 'node:http2';
import type * as net from 'node:net';
import { docs, exitGuard, freePort, HttpUpstream, Mesh, RawClient, request, serviceYaml, T, waitFor, type Sidecar } from '../../helpers/proxy-harness';

// ---- a gRPC service with a JSON codec ----

const json = {
  serialize: (value: unknown) => Buffer.from(JSON.stringify(value)),
  deserialize: (bytes: Buffer) => JSON.parse(bytes.toString() || 'null'),
};
const method = (name: string) => ({
  path: `/it.Greeter/${name}`,
  requestStream: false,
  responseStream: false,
  requestSerialize: json.serialize,
  requestDeserialize: json.deserialize,
  responseSerialize: json.serialize,
  responseDeserialize: json.deserialize,
});
const greeterService = { Hello: method('Hello'), Fail: method('Fail'), Hang: method('Hang') };
const GreeterClient = grpc.makeGenericClientConstructor(greeterService, 'Greeter') as unknown as new (
  target: string,
  creds: grpc.ChannelCredentials,
  options?: grpc.ChannelOptions,
) => grpc.Client & Record<string, Function>;

interface CallResult {
  err: grpc.ServiceError | null;
  res: any;
  headers: grpc.Metadata | undefined;
  trailers: grpc.Metadata | undefined;
}

function call(client: grpc.Client & Record<string, Function>, name: string, req: unknown, md = new grpc.Metadata()): Promise<CallResult> {
  return new Promise((resolve) => {
    let headers: grpc.Metadata | undefined;
    let trailers: grpc.Metadata | undefined;
    const c = client[name](req, md, { deadline: Date.now() + 5000 }, (err: grpc.ServiceError | null, res: unknown) => {
      // 'status' comes after the callback in grpc-js; wait a tick for it.
      setImmediate(() => resolve({ err, res, headers, trailers }));
    });
    c.on('metadata', (m: grpc.Metadata) => (headers = m));
    c.on('status', (s: grpc.StatusObject) => (trailers = s.metadata));
  });
}

async function startGreeter(name: string): Promise<{ server: grpc.Server; port: number; calls: number; cancelled: number }> {
  const server = new grpc.Server();
  const state = { server, port: 0, calls: 0, cancelled: 0 };
  server.addService(greeterService, {
    Hello: (c: grpc.ServerUnaryCall<any, any>, cb: grpc.sendUnaryData<any>) => {
      state.calls++;
      const echo = c.metadata.get('x-req')[0];
      const head = new grpc.Metadata();
      head.set('x-server', name);
      c.sendMetadata(head);
      const trailer = new grpc.Metadata();
      trailer.set('x-trailer', `t-${echo ?? ''}`);
      cb(null, { from: name, hello: c.request?.name, authority: c.getPath() }, trailer);
    },
    Fail: (c: grpc.ServerUnaryCall<any, any>, cb: grpc.sendUnaryData<any>) => {
      state.calls++;
      const trailer = new grpc.Metadata();
      trailer.set('x-why', 'missing');
      cb({ code: grpc.status.NOT_FOUND, details: `no such thing: ${c.request?.id} (ü)`, metadata: trailer });
    },
    Hang: (c: grpc.ServerUnaryCall<any, any>) => {
      state.calls++;
      c.on('cancelled', () => state.cancelled++); // never answers
    },
  });
  state.port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
  );
  return state;
}

// ---- the mesh ----

let mesh: Mesh;
let client: Sidecar;
let server: Sidecar;
let app: Awaited<ReturnType<typeof startGreeter>>;
let hopApp: Awaited<ReturnType<typeof startGreeter>>;
let h2app: http2.Http2Server;
let h2port: number;
let h1app: HttpUpstream;
let h1hang: HttpUpstream;
/** Requests h1hang holds open. */
let h1held = 0;
const clients: grpc.Client[] = [];

before(async () => {
  app = await startGreeter('direct');
  hopApp = await startGreeter('behind-sidecar');
  h1app = await HttpUpstream.start('h1');
  h1hang = await HttpUpstream.start('h1hang');
  h1hang.handler = (_req, res) => {
    h1held++;
    res.on('close', () => h1held--);
  };
  // An h2c server: echoes method, path and body, with a trailer.
  h2app = http2.createServer();
  h2app.on('stream', (stream, headers) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      stream.respond({ ':status': 201, 'content-type': 'text/plain', 'x-h2': 'yes' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'x-checksum': String(body.length) }));
      stream.end(`${headers[':method']} ${headers[':path']} ${headers[':authority']} body=${body}`);
    });
  });
  await new Promise<void>((resolve) => h2app.listen(0, '127.0.0.1', () => resolve()));
  h2port = (h2app.address() as net.AddressInfo).port;

  const serverInbound = await freePort();
  mesh = await Mesh.start({
    'services.yaml': docs(
      serviceYaml({ name: 'greeter', port: 50051, protocol: 'grpc', endpoints: [app.port] }),
      // The second hop: greeter2's endpoint is its sidecar's inbound listener; the sidecar forwards to the app.
      serviceYaml({ name: 'greeter2', port: 50052, protocol: 'grpc', endpoints: [serverInbound] }),
      serviceYaml({ name: 'nobody', port: 50053, protocol: 'grpc' }),
      serviceYaml({ name: 'h2svc', port: 8443, protocol: 'http2', endpoints: [h2port] }),
      serviceYaml({ name: 'web', port: 80, protocol: 'http', endpoints: [h1app.port] }),
      serviceYaml({ name: 'slow-grpc', port: 50054, protocol: 'grpc', endpoints: [app.port] }),
      serviceYaml({ name: 'slow-web', port: 80, protocol: 'http', endpoints: [h1hang.port] }),
      serviceYaml({ name: 'drained', port: 50055, protocol: 'grpc' }),
    ),
    'routes.yaml': `
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: { name: drained }
spec:
  parentRefs: [{ kind: Service, name: drained, port: 50055 }]
  rules: [{ backendRefs: [{ name: greeter, port: 50051, weight: 0 }] }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: { name: slow-grpc }
spec:
  parentRefs: [{ kind: Service, name: slow-grpc, port: 50054 }]
  rules: [{ backendRefs: [{ name: slow-grpc }], timeouts: { request: 200ms } }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: slow-web }
spec:
  parentRefs: [{ kind: Service, name: slow-web, port: 80 }]
  rules: [{ backendRefs: [{ name: slow-web }], timeouts: { request: 200ms } }]
`,
  });
  client = await mesh.sidecar({ nodeId: 'client' });
  server = await mesh.sidecar({ nodeId: 'greeter2-1', service: 'greeter2', inboundPort: serverInbound, appPort: hopApp.port });
}, T);

after(async () => {
  exitGuard();
  for (const c of clients) c.close();
  await mesh.close();
  await new Promise<void>((resolve) => app.server.tryShutdown(() => resolve()));
  await new Promise<void>((resolve) => hopApp.server.tryShutdown(() => resolve()));
  await new Promise<void>((resolve) => h2app.close(() => resolve()));
  await h1app.close();
  await h1hang.close();
}, T);

function greeterVia(sc: Sidecar, authority: string): grpc.Client & Record<string, Function> {
  const c = new GreeterClient(`127.0.0.1:${sc.outboundPort}`, grpc.credentials.createInsecure(), { 'grpc.default_authority': authority });
  clients.push(c);
  return c;
}

test('grpc: unary calls through the client sidecar, metadata both ways', T, async () => {
  const c = greeterVia(client, 'greeter:50051');
  for (let i = 0; i < 5; i++) {
    const md = new grpc.Metadata();
    md.set('x-req', `r${i}`);
    const r = await call(c, 'Hello', { name: `n${i}` }, md);
    assert.equal(r.err, null, r.err?.message);
    assert.equal(r.res.from, 'direct');
    assert.equal(r.res.hello, `n${i}`);
    assert.equal(r.headers?.get('x-server')[0], 'direct', 'response headers');
    assert.equal(r.trailers?.get('x-trailer')[0], `t-r${i}`, 'trailers and request metadata');
  }
  assert.equal(app.calls >= 5, true);
});

test('grpc: an error status and its message arrive intact, with trailing metadata', T, async () => {
  const c = greeterVia(client, 'greeter:50051');
  const r = await call(c, 'Fail', { id: 42 });
  assert.ok(r.err);
  assert.equal(r.err.code, grpc.status.NOT_FOUND, r.err.details);
  assert.equal(r.err.details, 'no such thing: 42 (ü)');
  assert.equal(r.err.metadata.get('x-why')[0], 'missing');
});

test('grpc: two hops — client sidecar → server sidecar (inbound) → app', T, async () => {
  const c = greeterVia(client, 'greeter2:50052');
  const before = hopApp.calls;
  const md = new grpc.Metadata();
  md.set('x-req', 'hop');
  const r = await call(c, 'Hello', { name: 'two hops' }, md);
  assert.equal(r.err, null, r.err?.message);
  assert.equal(r.res.from, 'behind-sidecar');
  assert.equal(r.trailers?.get('x-trailer')[0], 't-hop');
  const f = await call(c, 'Fail', { id: 7 });
  assert.equal(f.err?.code, grpc.status.NOT_FOUND);
  assert.equal(f.err?.details, 'no such thing: 7 (ü)');
  assert.equal(hopApp.calls, before + 2);
  const inbound = [...server.proxy.stats.requests.values()].filter((s) => s.direction === 'inbound');
  assert.ok(inbound.reduce((n, s) => n + s.requests, 0) >= 2, 'the server sidecar counted them on its inbound listener');
});

test('grpc: local replies to gRPC calls carry grpc-status: UNAVAILABLE for no endpoint or no backend, UNIMPLEMENTED for no route', T, async () => {
  const noEndpoint = await call(greeterVia(client, 'nobody:50053'), 'Hello', {});
  assert.equal(noEndpoint.err?.code, grpc.status.UNAVAILABLE, noEndpoint.err?.message);
  assert.match(noEndpoint.err!.details, /UH/);
  // A GRPCRoute rule with no usable backend answers 503 locally: UNAVAILABLE, and nothing reaches the app.
  const calls = app.calls;
  const direct = await call(greeterVia(client, 'drained:50055'), 'Hello', {});
  assert.equal(direct.err?.code, grpc.status.UNAVAILABLE, direct.err?.message);
  assert.equal(app.calls, calls);
  const noRoute = await call(greeterVia(client, 'nowhere:1234'), 'Hello', {});
  assert.equal(noRoute.err?.code, grpc.status.UNIMPLEMENTED, noRoute.err?.message);
  assert.match(noRoute.err!.details, /NR/);
});

test('grpc: an HTTP/1.1 client to an http2 service (h1 → h2)', T, async () => {
  const get = await request(client.outboundPort, { host: 'h2svc:8443', path: '/path?q=1' });
  assert.equal(get.status, 201);
  assert.equal(get.headers['x-h2'], 'yes');
  assert.equal(get.text, 'GET /path?q=1 h2svc:8443 body=');
  const post = await request(client.outboundPort, { host: 'h2svc:8443', path: '/up', method: 'POST', body: 'payload', headers: { 'content-length': 7 } });
  assert.equal(post.status, 201);
  assert.equal(post.text, 'POST /up h2svc:8443 body=payload');
  // The HTTP/2 trailers come back as HTTP/1.1 trailer fields; the connection goes on.
  const c = await RawClient.connect(client.outboundPort);
  try {
    c.write('POST /t HTTP/1.1\r\nHost: h2svc:8443\r\nContent-Length: 5\r\n\r\nabcde');
    const res = await c.readResponse('POST');
    assert.equal(res.status, 201);
    assert.equal(res.body.toString(), 'POST /t h2svc:8443 body=abcde');
    assert.equal(res.trailers['x-checksum'], '5');
    c.write('GET /again HTTP/1.1\r\nHost: h2svc:8443\r\n\r\n');
    assert.equal((await c.readResponse()).body.toString(), 'GET /again h2svc:8443 body=');
  } finally {
    c.destroy();
  }
  // An HTTP/1.0 client cannot read chunked framing: the body is delimited by the close.
  for (const keepAlive of [false, true]) {
    const old = await RawClient.connect(client.outboundPort);
    try {
      old.write(`GET /old HTTP/1.0\r\nHost: h2svc:8443\r\n${keepAlive ? 'Connection: keep-alive\r\n' : ''}\r\n`);
      const res = await old.readResponse();
      assert.equal(res.status, 201);
      assert.equal(res.headers['transfer-encoding'], undefined, 'no chunked framing for HTTP/1.0');
      assert.equal(res.body.toString(), 'GET /old h2svc:8443 body=');
      assert.ok(old.ended);
    } finally {
      old.destroy();
    }
  }
});

test('grpc: an h2c client to an http service (h2 → h1)', T, async () => {
  const session = http2.connect(`http://127.0.0.1:${client.outboundPort}`);
  session.on('error', () => {});
  try {
    const one = (path: string, body?: string) =>
      new Promise<{ status: number; headers: http2.IncomingHttpHeaders; text: string }>((resolve, reject) => {
        const req = session.request({ ':method': body ? 'POST' : 'GET', ':path': path, ':authority': 'web' }, { endStream: body === undefined });
        let headers: http2.IncomingHttpHeaders = {};
        let text = '';
        req.on('response', (h) => (headers = h));
        req.on('data', (d) => (text += d));
        req.on('end', () => resolve({ status: Number(headers[':status']), headers, text }));
        req.on('error', reject);
        if (body !== undefined) req.end(body);
      });
    const [a, b] = await Promise.all([one('/first'), one('/second', 'xyz')]);
    assert.equal(a.status, 200);
    assert.equal(JSON.parse(a.text).url, '/first');
    assert.equal(JSON.parse(a.text).headers.host, 'web');
    assert.equal(JSON.parse(b.text).method, 'POST');
    assert.equal(JSON.parse(b.text).bodyLength, 3);
    const nr = await one('/x'.replace('/x', '/'), undefined).then(async () => {
      const req = session.request({ ':path': '/', ':authority': 'unknown.example' });
      return new Promise<http2.IncomingHttpHeaders>((resolve) => {
        req.on('response', resolve);
        req.resume();
      });
    });
    assert.equal(nr[':status'], 404);
    assert.equal(nr['x-weft-response-flags'], 'NR');
  } finally {
    session.close();
  }
});

test('grpc: a route timeout → DEADLINE_EXCEEDED with a readable message, and the upstream call is cancelled', T, async () => {
  const c = greeterVia(client, 'slow-grpc:50054');
  const before = app.cancelled;
  const started = Date.now();
  const r = await call(c, 'Hang', {});
  const took = Date.now() - started;
  assert.equal(r.err?.code, grpc.status.DEADLINE_EXCEEDED, r.err?.message);
  assert.equal(r.err?.details, 'UT: upstream did not answer within the route timeout of 200 ms');
  assert.ok(took >= 180 && took < 1000, `took ${took} ms`);
  await waitFor(() => app.cancelled === before + 1, 1000, 'the upstream call cancelled');
});

test('grpc: a route timeout on an h2c request to an HTTP/1.1 service aborts the upstream request', T, async () => {
  const session = http2.connect(`http://127.0.0.1:${client.outboundPort}`);
  session.on('error', () => {});
  try {
    const req = session.request({ ':path': '/', ':authority': 'slow-web' });
    const headers = await new Promise<http2.IncomingHttpHeaders>((resolve) => req.on('response', resolve));
    req.resume();
    assert.equal(headers[':status'], 504);
    assert.equal(headers['x-weft-response-flags'], 'UT');
    await waitFor(() => h1held === 0, 1000, 'the upstream request closed');
  } finally {
    session.close();
  }
});

test('grpc: an h2c connection counts once in the active downstream connections gauge', T, async () => {
  // A sidecar of its own: the connections of the other tests (still closing, or the gRPC clients')
  // cannot move its gauge while this test reads it.
  const own = await mesh.sidecar({ nodeId: 'gauge' });
  const active = () => own.proxy.stats.downstreamConnectionsActive;
  const before = active();
  const session = http2.connect(`http://127.0.0.1:${own.outboundPort}`);
  session.on('error', () => {});
  try {
    const req = session.request({ ':path': '/', ':authority': 'web' });
    req.resume();
    await new Promise((resolve) => req.on('end', resolve));
    assert.equal(active(), before + 1, 'open: counted');
  } finally {
    session.close();
  }
  await waitFor(() => active() === before, 3000, `the gauge back to ${before} (now ${active()})`).catch((err) => {
    throw new Error(`${err.message}; gauge ${active()}`);
  });
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(active(), before, 'closed: not counted twice');
});
