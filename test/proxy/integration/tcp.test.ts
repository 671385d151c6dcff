// TCP services through the sidecar: a listener on 127.0.0.1:<service port>,
// bytes both ways, half-close in each direction, a refused upstream, and a
// TCPRoute's weighted split across two services.
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as net from 'node:net';
import { docs, exitGuard, freePort, Mesh, RawClient, RawUpstream, serviceYaml, T, waitFor, type Sidecar } from '../../helpers/proxy-harness';

let mesh: Mesh;
let sc: Sidecar;
let echo: RawUpstream;
let halfer: RawUpstream;
let splitA: RawUpstream;
let splitB: RawUpstream;
const ports: Record<string, number> = {};

before(async () => {
  // Upper-cases what it gets.
  echo = await RawUpstream.start((s) => {
    s.on('data', (c: Buffer) => s.write(c.toString('latin1').toUpperCase()));
    s.on('end', () => s.end());
  });
  // Answers only once the client has finished sending (half-close), then closes.
  halfer = await RawUpstream.start((s) => {
    let n = 0;
    s.on('data', (c: Buffer) => (n += c.length));
    s.on('end', () => {
      s.write(`got ${n} bytes; `);
      setTimeout(() => s.end('bye'), 20);
    });
  });
  splitA = await RawUpstream.start((s) => s.end('A'));
  splitB = await RawUpstream.start((s) => s.end('B'));
  for (const name of ['echo', 'halfer', 'refused', 'split', 'split-a', 'split-b', 'nowhere']) ports[name] = await freePort();
  const tcp = (name: string, endpoints?: number[]) => serviceYaml({ name, port: ports[name], protocol: 'tcp', endpoints });
  mesh = await Mesh.start({
    'services.yaml': docs(
      tcp('echo', [echo.port]),
      tcp('halfer', [halfer.port]),
      tcp('refused', [ports.nowhere]),
      tcp('split'),
      tcp('split-a', [splitA.port]),
      tcp('split-b', [splitB.port]),
    ),
    'route.yaml': `
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: { name: split }
spec:
  parentRefs: [{ kind: Service, name: split, port: ${ports.split} }]
  rules:
    - backendRefs: [{ name: split-a, port: ${ports['split-a']}, weight: 75 }, { name: split-b, port: ${ports['split-b']}, weight: 25 }]
`,
  });
  sc = await mesh.sidecar();
}, T);

after(async () => {
  exitGuard();
  await mesh.close();
  await Promise.all([echo, halfer, splitA, splitB].map((u) => u.close()));
}, T);

test('tcp: a tcp service port gets a listener on 127.0.0.1:<port> in the sidecar', T, async () => {
  const listeners = sc.proxy.listeners.status();
  for (const name of ['echo', 'halfer', 'split', 'split-a', 'split-b']) {
    const l = listeners.find((x) => x.port === ports[name]);
    assert.ok(l, `a listener for ${name} on ${ports[name]}: ${JSON.stringify(listeners)}`);
    assert.equal(l.address, '127.0.0.1');
    assert.equal(l.state, 'bound');
  }
});

test('tcp: bytes both ways, large and small', T, async () => {
  const c = await RawClient.connect(ports.echo);
  try {
    c.write('hello');
    assert.equal((await c.readBytes(5)).toString(), 'HELLO');
    const big = Buffer.alloc(1 << 20, 'abcdefgh');
    c.write(big);
    const back = await c.readBytes(big.length, 5000);
    assert.ok(back.equals(Buffer.from(big.toString('latin1').toUpperCase(), 'latin1')));
    c.end();
    await c.waitEnd(2000);
  } finally {
    c.destroy();
  }
});

test('tcp: half-close: the client ends its side and still receives the reply', T, async () => {
  const c = await RawClient.connect(ports.halfer);
  try {
    c.write('a'.repeat(1000));
    c.write('b'.repeat(234));
    c.end();
    await c.waitEnd(2000);
    assert.equal(c.buffered.toString(), 'got 1234 bytes; bye');
  } finally {
    c.destroy();
  }
});

test('tcp: the server sends and closes first: the client gets the bytes and the end', T, async () => {
  const c = await RawClient.connect(ports['split-a']);
  try {
    await c.waitEnd(2000);
    assert.equal(c.buffered.toString(), 'A');
  } finally {
    c.destroy();
  }
});

test('tcp: an upstream that refuses → the downstream connection is closed', T, async () => {
  const c = await RawClient.connect(ports.refused);
  try {
    c.write('anyone?');
    await c.waitEnd(3000);
    assert.equal(c.buffered.length, 0);
  } finally {
    c.destroy();
  }
});

test('tcp: a TCPRoute splits connections 75/25 across two services', T, async () => {
  const counts: Record<string, number> = { A: 0, B: 0 };
  for (let i = 0; i < 200; i += 20) {
    const got = await Promise.all(
      Array.from(
        { length: 20 },
        () =>
          new Promise<string>((resolve, reject) => {
            const s = net.connect({ host: '127.0.0.1', port: ports.split });
            let data = '';
            s.on('data', (d) => (data += d));
            s.on('error', reject);
            s.on('close', () => resolve(data));
          }),
      ),
    );
    for (const g of got) counts[g] = (counts[g] ?? 0) + 1;
  }
  assert.equal(counts.A + counts.B, 200, JSON.stringify(counts));
  // Binomial(200, 0.25): mean 50, sd 6.1; ±4 sd.
  assert.ok(counts.B >= 26 && counts.B <= 74, JSON.stringify(counts));
  await waitFor(() => sc.proxy.stats.tcpConnectionsTotal >= 200, 1000, 'connections counted');
});
