// Load balancing through the sidecar: round robin over three servers, ring
// hash on a header (sticky), and an endpoint removed from the config under
// continuous load: it stops receiving traffic quickly and no request fails.
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as http from 'node:http';
import { docs, exitGuard, HttpUpstream, Mesh, request, serviceYaml, sleep, T, waitFor, type Sidecar } from '../../helpers/proxy-harness';

let mesh: Mesh;
let sc: Sidecar;
let servers: HttpUpstream[];
let dyn: HttpUpstream[];

const STICKY_POLICY = `
apiVersion: weft.dev/v1
kind: TrafficPolicy
metadata: { name: sticky }
spec:
  targetRef: { name: sticky }
  loadBalancer: { type: RingHash, hashOn: [{ header: x-user }] }
`;

before(async () => {
  servers = await Promise.all(['s0', 's1', 's2'].map((n) => HttpUpstream.start(n)));
  dyn = await Promise.all(['d0', 'd1', 'd2'].map((n) => HttpUpstream.start(n)));
  const ports = servers.map((s) => s.port);
  mesh = await Mesh.start({
    'services.yaml': docs(serviceYaml({ name: 'rr', endpoints: ports }), serviceYaml({ name: 'sticky', endpoints: ports })),
    'dyn.yaml': serviceYaml({ name: 'dyn', endpoints: dyn.map((s) => s.port) }),
    'policy.yaml': STICKY_POLICY,
  });
  sc = await mesh.sidecar();
}, T);

after(async () => {
  exitGuard();
  await mesh.close();
  await Promise.all([...servers, ...dyn].map((s) => s.close().catch(() => {})));
}, T);

async function spread(host: string, n: number, headers: http.OutgoingHttpHeaders = {}): Promise<Record<string, number>> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  const counts: Record<string, number> = {};
  try {
    for (let i = 0; i < n; i += 20) {
      const batch = await Promise.all(Array.from({ length: Math.min(20, n - i) }, () => request(sc.outboundPort, { host, agent, headers })));
      for (const r of batch) {
        assert.equal(r.status, 200, r.text);
        const name = r.headers['x-upstream'] as string;
        counts[name] = (counts[name] ?? 0) + 1;
      }
    }
  } finally {
    agent.destroy();
  }
  return counts;
}

test('load balancing: round robin spreads evenly over three servers', T, async () => {
  const counts = await spread('rr', 300);
  assert.deepEqual(Object.keys(counts).sort(), ['s0', 's1', 's2']);
  for (const [name, n] of Object.entries(counts)) assert.ok(n >= 95 && n <= 105, `${name} got ${n} of 300: ${JSON.stringify(counts)}`);
});

test('load balancing: ring hash on x-user: the same user always reaches the same server', T, async () => {
  const chosen = new Map<string, string>();
  for (let u = 0; u < 30; u++) {
    const counts = await spread('sticky', 6, { 'x-user': `user-${u}` });
    const names = Object.keys(counts);
    assert.equal(names.length, 1, `user-${u} reached ${JSON.stringify(counts)}`);
    chosen.set(`user-${u}`, names[0]);
  }
  const used = new Set(chosen.values());
  assert.ok(used.size >= 2, `30 users all hashed to ${[...used]}`);
  // Without the header there is no hash: requests spread.
  const unhashed = await spread('sticky', 30);
  assert.ok(Object.keys(unhashed).length >= 2, JSON.stringify(unhashed));
});

test('load balancing: an endpoint removed from the config stops receiving traffic within 1 s, and no request fails', T, async () => {
  const removed = dyn[2];
  const failures: string[] = [];
  let stop = false;
  let total = 0;
  let lastAtRemoved = 0;
  const loop = async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      while (!stop) {
        try {
          const r = await request(sc.outboundPort, { host: 'dyn', agent });
          total++;
          if (r.status !== 200) failures.push(`${r.status} ${r.headers['x-weft-response-flags'] ?? ''} ${r.text}`);
          else if (r.headers['x-upstream'] === 'd2') lastAtRemoved = Date.now();
        } catch (err) {
          failures.push(String(err));
        }
      }
    } finally {
      agent.destroy();
    }
  };
  const loops = [loop(), loop(), loop(), loop()];
  try {
    await waitFor(() => removed.requests > 0, 3000, 'the load reaching the endpoint to be removed');
    const before = removed.requests;
    assert.ok(before > 0, 'the endpoint served before its removal');
    const changedAt = Date.now();
    mesh.write('dyn.yaml', serviceYaml({ name: 'dyn', endpoints: [dyn[0].port, dyn[1].port] }));
    await sc.waitConfig((c) => (c.endpoints.get('outbound|80||dyn.default')?.localities ?? []).flatMap((l) => l.endpoints).length === 2, 2000, 'two endpoints');
    const applied = Date.now() - changedAt;
    await sleep(300);
    // Gone from the config: the server itself may go now.
    await removed.close();
    await sleep(300);
    stop = true;
    await Promise.all(loops);
    const quiet = lastAtRemoved - changedAt;
    assert.ok(quiet < 1000, `the removed endpoint served until ${quiet} ms after the change (config applied after ${applied} ms)`);
    assert.deepEqual(failures, [], `${failures.length} of ${total} requests failed`);
    assert.ok(total > 100, `only ${total} requests in the run`);
    assert.ok(dyn[0].requests > 0 && dyn[1].requests > 0);
  } finally {
    stop = true;
    await Promise.all(loops);
  }
});
