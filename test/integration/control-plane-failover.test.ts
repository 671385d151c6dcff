// Clients that fail over between control plane replicas, in process on
// loopback: two control planes in dev mode, each with its own config and
// data directories holding the same files (two replicas of one mesh; they
// share nothing, so each has its own CA). A sidecar given both addresses
// keeps serving, under continuous requests, while the replica it is
// connected to goes away; it is on the other within 5 s, and a config
// change made there reaches it. The certificate agent and the rate limit
// client skip a replica that cannot be reached, and `weft status` says
// which replica serves each node.
import { after, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { runStatus } from '../../src/cli/commands/status';
import { RlsClient } from '../../src/proxy/filters/rls-client';
import { RegistrationClient } from '../../src/run/registration-client';
import { CertificateAgent } from '../../src/proxy/tls/certificate-agent';
import { SecretStore } from '../../src/proxy/tls/secret-store';
import { ControlPlaneAddresses } from '../../src/xds/client/control-plane-addresses';
import { admin, docs, exitGuard, HttpUpstream, Mesh, request, serviceYaml, T, waitFor } from '../helpers/proxy-harness';
import { freePort } from '../helpers/ports';

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  exitGuard();
  for (const c of cleanups.reverse()) await c().catch(() => {});
});

const API_CLUSTER = 'outbound|80||api.default';
const EXTRA_CLUSTER = 'outbound|80||extra.default';


/** Two replicas of one mesh: the same files, each with its own directories. */
async function twoReplicas(files: Record<string, string>): Promise<[Mesh, Mesh]> {
  const a = await Mesh.start(files, { replicaId: 'replica-a' });
  cleanups.push(() => a.close());
  const b = await Mesh.start(files, { replicaId: 'replica-b' });
  cleanups.push(() => b.close());
  return [a, b];
}

test('a sidecar on --xds A,B: its replica goes away under load, no request fails, it is on the other within 5 s and follows its config', { timeout: 30_000 }, async () => {
  const api = await HttpUpstream.start('api');
  const extra = await HttpUpstream.start('extra');
  cleanups.push(() => api.close(), () => extra.close());
  const [a, b] = await twoReplicas({ 'mesh.yaml': docs(serviceYaml({ name: 'web' }), serviceYaml({ name: 'api', endpoints: [api.port] })) });
  const sc = await a.sidecar({ nodeId: 'web-1', service: 'web', proxy: { xds: `${a.xdsAddress},${b.xdsAddress}` } });
  await waitFor(() => sc.proxy.xds.status().connected, 5000, 'the sidecar connected');
  // The first replica is drawn at random: whichever it is goes away.
  const [first, second] = sc.proxy.xds.status().server === a.xdsAddress ? [a, b] : [b, a];
  const secondId = second === a ? 'replica-a' : 'replica-b';
  const firstApi = `http://127.0.0.1:${first.cp!.apiPort}`;
  const secondApi = `http://127.0.0.1:${second.cp!.apiPort}`;
  assert.equal(first.cp!.xds.status().find((n) => n.nodeId === 'web-1')?.replica, second === a ? 'replica-b' : 'replica-a');

  // Continuous requests through the sidecar, bounded: 2,000 or 10 s.
  const failures: string[] = [];
  let ok = 0;
  let stop = false;
  const deadline = Date.now() + 10_000;
  const worker = async () => {
    while (!stop && ok + failures.length < 2000 && Date.now() < deadline) {
      try {
        const r = await request(sc.outboundPort, { host: 'api' });
        if (r.status === 200) ok++;
        else failures.push(`HTTP ${r.status} ${r.headers['x-weft-response-flags'] ?? ''} ${r.text.slice(0, 100)}`);
      } catch (err) {
        failures.push(String(err));
      }
    }
  };
  const load = Promise.all([worker(), worker()]);
  try {
    await waitFor(() => ok >= 50, 3000, 'requests flowing');
    const okBefore = ok;
    const closedAt = Date.now();
    await first.stopControlPlane();
    await waitFor(() => sc.proxy.xds.status().connected && sc.proxy.xds.status().server === second.xdsAddress, 5000, 'the sidecar connected to the other replica');
    const failoverMs = Date.now() - closedAt;
    const okAtFailover = ok;

    // What the sidecar says (admin /xds) and what the replica says.
    const xds = (await admin(sc, '/xds')).json();
    assert.equal(xds.server, second.xdsAddress);
    assert.equal(xds.connected, true);
    assert.deepEqual(xds.servers, [a.xdsAddress, b.xdsAddress]);
    await waitFor(() => second.cp!.xds.status().some((n) => n.nodeId === 'web-1'), 2000, 'the node on the second replica');
    assert.equal(second.cp!.xds.status().find((n) => n.nodeId === 'web-1')!.replica, secondId);

    // A change made on the replica it is connected to now reaches it.
    second.write('extra.yaml', serviceYaml({ name: 'extra', endpoints: [extra.port] }));
    await sc.waitConfig((c) => c.clusters.has(EXTRA_CLUSTER) && c.clusters.has(API_CLUSTER), 5000, 'the change made on the second replica');
    const viaExtra = await request(sc.outboundPort, { host: 'extra' });
    assert.equal(viaExtra.status, 200);
    assert.equal(viaExtra.json().name, 'extra');
    await load;
    assert.deepEqual(failures, [], `${failures.length} of ${ok + failures.length} requests failed`);
    assert.ok(ok > okAtFailover, 'requests went on after the failover');
    process.stderr.write(`# failover: on the other replica ${failoverMs} ms after the close; ${ok} requests (${okBefore} before it, ${okAtFailover - okBefore} during it), none failed\n`);

    // `weft status` with the dead replica's API first: the node, on the replica serving it.
    let out = '';
    await runStatus({ api: `${firstApi},${secondApi}`, out: { write: (t: string) => (out += t) } });
    assert.match(out, /^NODE\s+REPLICA\s+SERVICE/m);
    assert.match(out, new RegExp(`^web-1\\s+${secondId}\\s+web\\.default\\s+sidecar\\s+delta\\s+SYNCED`, 'm'));
    assert.doesNotMatch(out, new RegExp(firstApi.replace(/[.:/]/g, '\\$&')), 'the unreachable replica is not named when another answers');
  } finally {
    stop = true;
    await load;
  }
});

test('the certificate agent and the rate limit client try the next replica when one cannot be reached', T, async () => {
  const policy = `apiVersion: weft.dev/v1
kind: TrafficPolicy
metadata: { name: api-limits }
spec:
  targetRef: { name: api }
  rateLimit: { global: { requests: 2, per: 1m } }
`;
  const [, b] = await twoReplicas({ 'mesh.yaml': docs(serviceYaml({ name: 'web' }), serviceYaml({ name: 'api' }), policy) });
  const dead = `127.0.0.1:${await freePort()}`;

  // SDS: the dead replica is first in line.
  const agentAddresses = new ControlPlaneAddresses([dead, b.xdsAddress], { start: 'first' });
  const secrets = new SecretStore();
  const logs: string[] = [];
  const agent = new CertificateAgent({
    server: agentAddresses,
    nodeId: 'web-agent',
    metadata: { WEFT_SERVICE: 'web', WEFT_NAMESPACE: 'default', WEFT_ROLE: 'sidecar' },
    spiffeId: 'spiffe://cluster.local/ns/default/sa/web',
    secrets,
    log: (level, msg, fields) => logs.push(`${level} ${msg} ${JSON.stringify(fields)}`),
    backoff: { initialMs: 30_000, maxMs: 60_000 },
  });
  cleanups.push(async () => agent.stop());
  agent.start();
  await agent.waitForCertificate(5000);
  assert.deepEqual([agent.status().issued, agent.status().failures], [1, 0], 'one request, answered by the second replica: no retry, no backoff');
  assert.equal(agentAddresses.preferred, b.xdsAddress);
  assert.ok(logs.some((l) => l.startsWith('debug') && l.includes(dead)), 'the skipped replica is in the debug log');

  // Rate limit service: the dead replica first; the verdicts are the live one's counts.
  const rls = new RlsClient(new ControlPlaneAddresses([dead, b.xdsAddress], { start: 'first' }));
  cleanups.push(async () => rls.close());
  const ask = () => rls.shouldRateLimit('weft', [[{ key: 'weft.service', value: 'api.default' }]], 3000);
  assert.deepEqual([(await ask()).overLimit, (await ask()).overLimit, (await ask()).overLimit], [false, false, true]);
  assert.equal(rls.addresses.preferred, b.xdsAddress);

  // Every replica unreachable: the error names each.
  const none = new RlsClient(new ControlPlaneAddresses([dead, `127.0.0.1:${await freePort()}`], { start: 'first' }));
  cleanups.push(async () => none.close());
  await assert.rejects(
    none.shouldRateLimit('weft', [[{ key: 'weft.service', value: 'api.default' }]], 3000),
    (err: Error) => err.message.startsWith('ShouldRateLimit: no control plane address answered: ') && none.addresses.list.every((x) => err.message.includes(x)),
  );
});

test("weft run's registration: a renewal that cannot reach its replica goes to the next, which registers the instance again", T, async () => {
  const [a, b] = await twoReplicas({ 'mesh.yaml': serviceYaml({ name: 'web' }) });
  const apiA = `http://127.0.0.1:${a.cp!.apiPort}`;
  const apiB = `http://127.0.0.1:${b.cp!.apiPort}`;
  const registered = async (api: string) => ((await fetch(`${api}/api/v1/registrations`).then((r) => r.json())) as { items: { service: string }[] }).items.filter((i) => i.service === 'web').length;
  const logs: string[] = [];
  const client = new RegistrationClient(`${apiA},${apiB}`, (level, msg, fields) => logs.push(`${level} ${msg} ${JSON.stringify(fields)}`));
  cleanups.push(() => client.deregister());
  await client.register({ service: 'web', namespace: 'default', address: '127.0.0.1', port: 18080 });
  assert.deepEqual([await registered(apiA), await registered(apiB)], [1, 0], 'registered with the first URL');

  await a.stopControlPlane();
  // A renewal (what the lease timer runs): A refuses, B does not know the instance (404), so it registers there.
  await (client as unknown as { renew(): Promise<void> }).renew();
  assert.equal(await registered(apiB), 1);
  assert.ok(logs.some((l) => l.includes('trying the next replica') && l.includes(apiA)), logs.join('\n'));
  assert.ok(!logs.some((l) => l.includes('renewal failed')), logs.join('\n'));
  await client.deregister();
  assert.equal(await registered(apiB), 0, 'deregistered from the replica that holds it');
});
