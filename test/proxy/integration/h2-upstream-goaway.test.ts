// An HTTP/2 upstream that ends its connections by GOAWAY after a number of
// requests, as nginx does every 1000 (keepalive_requests) and many servers do
// on deploys, under more concurrent requests than it takes streams: no client
// may see it. Streams the proxy had queued on the going connection move to
// the next one, streams the GOAWAY refused are sent again, bodies included,
// from h2c clients and from HTTP/1.1 clients (the bridge) alike. Before,
// hundreds of queued streams were refused at once and some, refused twice,
// became 503s (bench/sidecar.ts against nginx showed it as h2load's failures).
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { docs, exitGuard, Mesh, serviceYaml, T, type Sidecar } from '../../helpers/proxy-harness';

/** Requests a connection of the upstream serves before its GOAWAY (nginx: 1000). */
const REQUESTS_PER_CONNECTION = 60;
/** The upstream's SETTINGS_MAX_CONCURRENT_STREAMS: the proxy queues what is beyond it. */
const MAX_STREAMS = 40;

let mesh: Mesh;
let sc: Sidecar;
let upstream: http2.Http2Server;
let connections = 0;
let served = 0;

before(async () => {
  upstream = http2.createServer({ settings: { maxConcurrentStreams: MAX_STREAMS } });
  upstream.on('session', (session) => {
    connections++;
    let requests = 0;
    session.on('stream', (stream, headers) => {
      stream.on('error', () => {});
      if (++requests === REQUESTS_PER_CONNECTION) {
        // Streams after this one are never processed; those in flight are answered, then the connection ends.
        session.goaway(http2.constants.NGHTTP2_NO_ERROR, stream.id!);
        session.close();
      }
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        served++;
        // A little later, so that streams pile up in flight and queued on the proxy's side.
        setTimeout(() => {
          if (stream.destroyed) return;
          stream.respond({ ':status': 200, 'x-path': String(headers[':path']) });
          stream.end(`body ${Buffer.concat(chunks).length}`);
        }, 2);
      });
    });
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  mesh = await Mesh.start({
    'services.yaml': docs(serviceYaml({ name: 'h2svc', port: 80, protocol: 'http2', endpoints: [(upstream.address() as AddressInfo).port] })),
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
    // Each request was processed once: what a GOAWAY left out never reached the handler.
    assert.ok(served === 400, `the upstream processed each request once (${served})`);
  } finally {
    agent.destroy();
    for (const s of sessions) s.close();
  }
});
