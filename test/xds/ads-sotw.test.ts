// StreamAggregatedResources over real gRPC on 127.0.0.1.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { TYPE_URL } from '../../src/xds/type-urls';
import type { NackEvent } from '../../src/xds/server/node-status';
import { ack, eventually, NODE, resourcesOf, startHarness, TestStream } from './fixtures';

test('SotW: initial fetch, ACK recorded, status SYNCED', async () => {
  const h = await startHarness();
  const s = new TestStream(h.port);
  try {
    s.send({ node: NODE, type_url: TYPE_URL.Cluster });
    const cds = await s.next();
    assert.equal(cds.type_url, TYPE_URL.Cluster);
    assert.ok(cds.version_info);
    assert.ok(cds.nonce);
    assert.deepEqual(resourcesOf(cds).map((c) => c.name).sort(), ['backend', 'other']);
    assert.equal(resourcesOf(cds)[0].type, 'EDS');
    s.send(ack(cds));
    await eventually(() => h.server.status()[0]?.types[0]?.ackedVersion === cds.version_info);
    const [st] = h.server.status();
    assert.equal(st.nodeId, 'node-1');
    assert.deepEqual(st.node, { id: 'node-1', role: 'proxyless', namespace: 'default', service: 'client', zone: 'z1' });
    assert.equal(st.mode, 'sotw');
    assert.match(st.peer, /127\.0\.0\.1/);
    assert.ok(st.connectedAt instanceof Date);
    assert.deepEqual(
      { ...st.types[0], lastNack: undefined },
      {
        typeUrl: TYPE_URL.Cluster,
        type: 'CDS',
        subscription: '*',
        snapshotVersion: cds.version_info,
        sentVersion: cds.version_info,
        ackedVersion: cds.version_info,
        lastNack: undefined,
        state: 'SYNCED',
      },
    );
    assert.ok(await s.quiet(), 'nothing more after the ACK');
  } finally {
    s.close();
    await h.close();
  }
});

test('SotW: a change is pushed with a new version; unchanged types are not', async () => {
  const h = await startHarness();
  const s = new TestStream(h.port);
  try {
    s.send({ node: NODE, type_url: TYPE_URL.Cluster });
    const cds = await s.next();
    s.send(ack(cds));
    s.send({ type_url: TYPE_URL.ClusterLoadAssignment, resource_names: ['backend'] });
    const eds = await s.next();
    assert.deepEqual(resourcesOf(eds).map((r) => r.cluster_name), ['backend']);
    s.send(ack(eds, ['backend']));
    await eventually(() => h.server.status()[0].types.every((t) => t.state === 'SYNCED'));

    h.state.clusters.set('backend', [19001, 19002]);
    await h.cache.refresh();
    const eds2 = await s.next();
    assert.equal(eds2.type_url, TYPE_URL.ClusterLoadAssignment);
    assert.notEqual(eds2.version_info, eds.version_info);
    assert.notEqual(eds2.nonce, eds.nonce);
    const lbs = resourcesOf(eds2)[0].endpoints[0].lb_endpoints;
    assert.deepEqual(lbs.map((l: any) => l.endpoint.address.socket_address.port_value), [19001, 19002]);
    await eventually(() => h.server.status()[0].types[1].state === 'STALE');
    s.send(ack(eds2, ['backend']));
    assert.ok(await s.quiet(), 'CDS did not change, nothing else is sent');
    await eventually(() => h.server.status()[0].types[1].state === 'SYNCED');
  } finally {
    s.close();
    await h.close();
  }
});

test('SotW: a NACK is logged and recorded, the version is not resent, a later change is', async () => {
  const nacks: NackEvent[] = [];
  const h = await startHarness({ onNack: (e) => nacks.push(e) });
  const s = new TestStream(h.port);
  try {
    s.send({ node: NODE, type_url: TYPE_URL.Cluster });
    const v1 = await s.next();
    s.send(ack(v1));
    h.state.clusters.set('third', [19201]);
    await h.cache.refresh();
    const v2 = await s.next();
    assert.notEqual(v2.version_info, v1.version_info);
    // Reject v2: version_info stays the last good one.
    s.send({ version_info: v1.version_info, response_nonce: v2.nonce, type_url: TYPE_URL.Cluster, error_detail: { code: 3, message: 'cluster third: unsupported field' } });
    await eventually(() => nacks.length === 1);
    assert.equal(nacks[0].nodeId, 'node-1');
    assert.equal(nacks[0].type, 'CDS');
    assert.equal(nacks[0].version, v2.version_info);
    assert.equal(nacks[0].message, 'cluster third: unsupported field');
    const logged = h.logs.find((l) => l.msg.includes('NACK'));
    assert.deepEqual(logged?.fields, { node: 'node-1', type: 'CDS', version: v2.version_info, error: 'cluster third: unsupported field' });
    const t = h.server.status()[0].types[0];
    assert.equal(t.state, 'NACKED');
    assert.equal(t.ackedVersion, v1.version_info);
    assert.equal(t.lastNack?.version, v2.version_info);
    assert.ok(await s.quiet(300), 'the rejected version is not resent');

    await h.cache.refresh(); // same content: still nothing
    assert.ok(await s.quiet(100));

    h.state.clusters.delete('third');
    h.state.clusters.set('fourth', [19301]);
    await h.cache.refresh();
    const v3 = await s.next();
    assert.notEqual(v3.version_info, v2.version_info);
    // Make before break: the addition first, the removal in the next response.
    assert.deepEqual(resourcesOf(v3).map((c) => c.name).sort(), ['backend', 'fourth', 'other', 'third']);
    s.send(ack(v3));
    const v4 = await s.next();
    assert.deepEqual(resourcesOf(v4).map((c) => c.name).sort(), ['backend', 'fourth', 'other']);
    s.send(ack(v4));
    await eventually(() => h.server.status()[0].types[0].state === 'SYNCED');
  } finally {
    s.close();
    await h.close();
  }
});

test('SotW: a request with a stale nonce is ignored', async () => {
  const h = await startHarness();
  const s = new TestStream(h.port);
  try {
    s.send({ node: NODE, type_url: TYPE_URL.ClusterLoadAssignment, resource_names: ['backend'] });
    const r1 = await s.next();
    s.send(ack(r1, ['backend']));
    h.state.clusters.set('backend', [19002]);
    await h.cache.refresh();
    const r2 = await s.next();
    // An ACK of r1 arriving now (stale), even one changing the subscription, is ignored.
    s.send({ version_info: r1.version_info, response_nonce: r1.nonce, type_url: TYPE_URL.ClusterLoadAssignment, resource_names: ['backend', 'other'] });
    assert.ok(await s.quiet(200));
    const t = h.server.status()[0].types[0];
    assert.equal(t.ackedVersion, r1.version_info, 'the stale request did not count as an ACK of r2');
    assert.deepEqual(t.subscription, ['backend']);
    s.send(ack(r2, ['backend']));
    await eventually(() => h.server.status()[0].types[0].ackedVersion === r2.version_info);
  } finally {
    s.close();
    await h.close();
  }
});

test('SotW: named subscriptions get only the names asked for, and subscription changes are answered', async () => {
  const h = await startHarness();
  const s = new TestStream(h.port);
  try {
    // A proxyless client asks LDS for its target by name.
    s.send({ node: NODE, type_url: TYPE_URL.Listener, resource_names: ['greeter:50051'] });
    const lds = await s.next();
    assert.deepEqual(resourcesOf(lds).map((l) => l.name), ['greeter:50051']);
    s.send(ack(lds, ['greeter:50051']));

    s.send({ type_url: TYPE_URL.RouteConfiguration, resource_names: ['greeter-route'] });
    const rds = await s.next();
    assert.deepEqual(resourcesOf(rds).map((r) => r.name), ['greeter-route']);
    s.send(ack(rds, ['greeter-route']));

    s.send({ type_url: TYPE_URL.ClusterLoadAssignment, resource_names: ['backend'] });
    const eds1 = await s.next();
    assert.deepEqual(resourcesOf(eds1).map((r) => r.cluster_name), ['backend']);
    // Add a name: same version, answered with both.
    s.send(ack(eds1, ['backend', 'other']));
    const eds2 = await s.next();
    assert.equal(eds2.version_info, eds1.version_info);
    assert.deepEqual(resourcesOf(eds2).map((r) => r.cluster_name).sort(), ['backend', 'other']);
    s.send(ack(eds2, ['backend', 'other']));
    assert.ok(await s.quiet());

    // LDS for a name that does not exist: answered with no resources (the client learns it is absent).
    s.send(ack(lds, ['greeter:50051', 'nope:1']));
    const lds2 = await s.next();
    assert.deepEqual(resourcesOf(lds2).map((l) => l.name), ['greeter:50051']);
    const st = h.server.status()[0].types;
    assert.deepEqual(st.map((t) => [t.type, t.subscription]), [
      ['EDS', ['backend', 'other']],
      ['LDS', ['greeter:50051', 'nope:1']],
      ['RDS', ['greeter-route']],
    ]);
  } finally {
    s.close();
    await h.close();
  }
});

test('SotW: when several types change, CDS comes before EDS and LDS before RDS', async () => {
  const h = await startHarness();
  const s = new TestStream(h.port);
  try {
    s.send({ node: NODE, type_url: TYPE_URL.RouteConfiguration, resource_names: ['greeter-route'] });
    s.send({ type_url: TYPE_URL.ClusterLoadAssignment, resource_names: ['backend', 'third'] });
    s.send({ type_url: TYPE_URL.Cluster });
    s.send({ type_url: TYPE_URL.Listener });
    const initial = [await s.next(), await s.next(), await s.next(), await s.next()];
    for (const r of initial) {
      const names = r.type_url === TYPE_URL.RouteConfiguration ? ['greeter-route'] : r.type_url === TYPE_URL.ClusterLoadAssignment ? ['backend', 'third'] : undefined;
      s.send(ack(r, names));
    }
    await eventually(() => h.server.status()[0]?.types.length === 4 && h.server.status()[0].types.every((t) => t.state === 'SYNCED'));
    h.state.clusters.set('third', [19201]);
    h.state.routeTo = 'third';
    await h.cache.refresh();
    const order = [await s.next(), await s.next(), await s.next()].map((r) => r.type_url);
    assert.deepEqual(order, [TYPE_URL.Cluster, TYPE_URL.ClusterLoadAssignment, TYPE_URL.RouteConfiguration]);
  } finally {
    s.close();
    await h.close();
  }
});

test('SotW: an inconsistent snapshot is not pushed; the last good one keeps serving', async () => {
  const h = await startHarness();
  const s = new TestStream(h.port);
  try {
    s.send({ node: NODE, type_url: TYPE_URL.RouteConfiguration, resource_names: ['greeter-route'] });
    const r1 = await s.next();
    s.send(ack(r1, ['greeter-route']));
    h.state.routeTo = 'missing';
    await h.cache.refresh();
    assert.ok(await s.quiet(200));
    const err = h.cache.lastError('proxyless|default|client|z1');
    assert.equal(err?.code, 'E_SNAPSHOT_INCONSISTENT');
    assert.ok(h.logs.some((l) => l.level === 'error' && String(l.fields?.error).includes('"missing"')));
    const [st] = h.server.status();
    assert.match(st.snapshotError ?? '', /missing/);
    assert.equal(st.types[0].state, 'SYNCED', 'still in sync with the last good snapshot');

    // A second stream of the same group still gets the last good snapshot.
    const s2 = new TestStream(h.port);
    s2.send({ node: { ...NODE, id: 'node-2' }, type_url: TYPE_URL.RouteConfiguration, resource_names: ['greeter-route'] });
    const other = await s2.next();
    assert.equal(other.version_info, r1.version_info);
    s2.close();

    h.state.routeTo = 'other';
    await h.cache.refresh();
    const r2 = await s.next();
    assert.equal(resourcesOf(r2)[0].virtual_hosts[0].routes[0].route.cluster, 'other');
  } finally {
    s.close();
    await h.close();
  }
});

test('SotW: a client reconnecting with the current version of a wildcard type gets nothing new', async () => {
  const h = await startHarness();
  const s = new TestStream(h.port);
  const s2 = new TestStream(h.port);
  try {
    s.send({ node: NODE, type_url: TYPE_URL.Cluster });
    const r1 = await s.next();
    s2.send({ node: NODE, type_url: TYPE_URL.Cluster, version_info: r1.version_info });
    assert.ok(await s2.quiet());
    await eventually(() => h.server.status().length === 2);
    // The first stream has not ACKed yet; the reconnected one holds the current version.
    assert.deepEqual(h.server.status().map((x) => x.types[0].state).sort(), ['STALE', 'SYNCED']);
  } finally {
    s.close();
    s2.close();
    await h.close();
  }
});
