// Config changes under traffic: a request in flight finishes on the config it
// started with, open keep-alive connections (downstream and upstream) survive,
// the sidecar keeps serving while the control plane is down and reconnects
// when it is back on the same port, and a policy change (outlier detection)
// is applied in place.
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { docs, exitGuard, HttpUpstream, Mesh, RawClient, request, serviceYaml, sleep, T, waitFor, type Sidecar } from '../../helpers/proxy-harness';

let mesh: Mesh;
let sc: Sidecar;
let a: HttpUpstream;
let b: HttpUpstream;

const SERVICES = () => docs(serviceYaml({ name: 'web', endpoints: [a.port] }), serviceYaml({ name: 'web-v2', endpoints: [b.port] }));
const WEB = 'outbound|80||web.default';
const WEB_V2 = 'outbound|80||web-v2.default';
const TO_V2 = `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: web }
spec:
  parentRefs: [{ kind: Service, name: web, port: 80 }]
  rules: [{ backendRefs: [{ name: web-v2 }] }]
`;

/** The cluster the first route of web's virtual host sends to. */
function webTarget(sc: Sidecar): string | undefined {
  const vh = sc.config().routeTables.get('outbound')?.virtualHosts.find((v) => v.name === 'web.default:80');
  const action = vh?.routes[0]?.action;
  return action?.kind === 'route' ? action.clusters[0].name : undefined;
}

before(async () => {
  a = await HttpUpstream.start('a');
  b = await HttpUpstream.start('b');
  for (const u of [a, b]) {
    u.handler = (req, res) => {
      const ms = req.url === '/slow' ? 500 : 0;
      setTimeout(() => res.writeHead(200, { 'content-length': 1 }).end(u.name), ms);
    };
  }
  mesh = await Mesh.start({ 'services.yaml': SERVICES() });
  sc = await mesh.sidecar({ nodeId: 'client-1' });
}, T);

after(async () => {
  exitGuard();
  await mesh.close();
  await a.close();
  await b.close();
}, T);

test('config: a request in flight completes while the route table changes under it', T, async () => {
  const slow = request(sc.outboundPort, { host: 'web', path: '/slow' });
  // In flight: routed, and at the upstream (which answers /slow after 500 ms).
  await waitFor(() => a.seen.some((r) => r.url === '/slow'), 2000, 'the slow request at web');
  mesh.write('routes.yaml', TO_V2);
  await sc.waitConfig(() => webTarget(sc) === WEB_V2, 2000, 'the route to web-v2');
  const now = await request(sc.outboundPort, { host: 'web' });
  assert.equal(now.text, 'b', 'new requests follow the new route');
  const res = await slow;
  assert.equal(res.status, 200);
  assert.equal(res.text, 'a', 'the request in flight finished where it started');
  mesh.remove('routes.yaml');
  await sc.waitConfig(() => webTarget(sc) === WEB, 2000, 'the route back to web');
  assert.equal((await request(sc.outboundPort, { host: 'web' })).text, 'a');
});

test('config: open keep-alive connections survive a config change, and so does the upstream connection', T, async () => {
  const c = await RawClient.connect(sc.outboundPort);
  try {
    c.write('GET / HTTP/1.1\r\nHost: web\r\n\r\n');
    assert.equal((await c.readResponse()).body.toString(), 'a');
    const upstreamConnections = a.connections;
    const openUpstream = a.openConnections;
    mesh.write('more.yaml', serviceYaml({ name: 'extra', endpoints: [b.port] }));
    await sc.waitConfig((cfg) => cfg.clusters.has('outbound|80||extra.default'), 2000, 'the extra service');
    for (let i = 0; i < 3; i++) {
      c.write('GET / HTTP/1.1\r\nHost: web\r\n\r\n');
      const res = await c.readResponse();
      assert.equal(res.status, 200);
      assert.equal(res.body.toString(), 'a');
    }
    assert.equal(c.ended, false, 'the downstream connection is still open');
    assert.equal(a.connections, upstreamConnections, 'no new upstream connection: the pool carried over');
    assert.equal(a.openConnections, openUpstream);
    assert.equal((await request(sc.outboundPort, { host: 'extra' })).text, 'b', 'and the change took effect');
  } finally {
    c.destroy();
    mesh.remove('more.yaml');
  }
});

test('config: a policy with outlierDetection is ACKed and applied; the cluster keeps its pool', T, async () => {
  await waitFor(() => mesh.nodeStates('client-1').CDS === 'SYNCED', 2000, 'CDS synced');
  mesh.write('policy.yaml', `
apiVersion: weft.dev/v1
kind: TrafficPolicy
metadata: { name: web }
spec: { targetRef: { name: web }, outlierDetection: { consecutive5xx: 3 } }
`);
  await sc.waitConfig((c) => c.clusters.get(WEB)?.outlierDetection?.consecutive5xx === 3, 3000, 'the policy applied');
  await waitFor(() => mesh.nodeStates('client-1').CDS === 'SYNCED', 3000, 'CDS synced with it');
  for (let i = 0; i < 5; i++) assert.equal((await request(sc.outboundPort, { host: 'web' })).text, 'a');
  mesh.remove('policy.yaml');
  await sc.waitConfig((c) => c.clusters.get(WEB)?.outlierDetection === undefined, 3000, 'the policy gone');
  assert.equal((await request(sc.outboundPort, { host: 'web' })).text, 'a');
});

test('config: the control plane stops → the sidecar keeps serving; it restarts on the same port → the sidecar reconnects', T, async () => {
  const port = mesh.cp!.xdsPort;
  await mesh.stopControlPlane();
  await waitFor(() => !sc.proxy.xds.status().connected, 2000, 'the sidecar sees the outage');
  for (let i = 0; i < 5; i++) {
    const res = await request(sc.outboundPort, { host: 'web' });
    assert.equal(res.status, 200);
    assert.equal(res.text, 'a');
  }
  assert.equal(sc.proxy.ready(), true, 'still ready on its last config');
  // Changed while the control plane is away; seen once it is back.
  mesh.write('routes.yaml', TO_V2);
  await sleep(300);
  const cp = await mesh.startControlPlane();
  assert.equal(cp.xdsPort, port);
  await waitFor(() => sc.proxy.xds.status().connected, 5000, 'reconnected');
  await sc.waitConfig(() => webTarget(sc) === WEB_V2, 3000, 'the change made during the outage');
  assert.equal((await request(sc.outboundPort, { host: 'web' })).text, 'b');
  await waitFor(() => Object.values(mesh.nodeStates('client-1')).every((s) => s === 'SYNCED'), 3000, 'every type synced');
  mesh.remove('routes.yaml');
  await sc.waitConfig(() => webTarget(sc) === WEB, 3000, 'routes removed');
});
