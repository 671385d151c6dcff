// DeltaAggregatedResources over real gRPC on 127.0.0.1.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { TYPE_URL } from '../../src/xds/type-urls';
import { deltaResourcesOf, eventually, NODE, startHarness, TestStream, type Response } from './fixtures';

const deltaAck = (r: Response) => ({ type_url: r.type_url, response_nonce: r.nonce });

test('delta: wildcard CDS and named EDS initial responses, ACKs, status', async () => {
  const h = await startHarness();
  const s = new TestStream(h.port, 'delta');
  try {
    s.send({ node: NODE, type_url: TYPE_URL.Cluster });
    const cds = await s.next();
    assert.equal(cds.type_url, TYPE_URL.Cluster);
    assert.ok(cds.system_version_info);
    const clusters = deltaResourcesOf(cds);
    assert.deepEqual(clusters.map((c) => c.name).sort(), ['backend', 'other']);
    assert.ok(clusters.every((c) => /^[0-9a-f]{16}$/.test(c.version)), 'resource version = content hash');
    assert.equal(clusters[0].resource.name, clusters[0].name);
    s.send(deltaAck(cds));

    s.send({ type_url: TYPE_URL.ClusterLoadAssignment, resource_names_subscribe: ['backend'] });
    const eds = await s.next();
    assert.deepEqual(deltaResourcesOf(eds).map((r) => r.name), ['backend']);
    assert.deepEqual(eds.removed_resources, []);
    s.send(deltaAck(eds));
    await eventually(() => h.server.status()[0]?.types.length === 2 && h.server.status()[0].types.every((t) => t.state === 'SYNCED'));
    const [st] = h.server.status();
    assert.equal(st.mode, 'delta');
    assert.deepEqual(st.types.map((t) => [t.type, t.subscription, t.ackedVersion === t.snapshotVersion]), [
      ['CDS', '*', true],
      ['EDS', ['backend'], true],
    ]);
    assert.ok(await s.quiet());
  } finally {
    s.close();
    await h.close();
  }
});

test('delta: only changed resources are sent, removals are named, unsubscribed names are no longer sent', async () => {
  const h = await startHarness();
  const s = new TestStream(h.port, 'delta');
  try {
    s.send({ node: NODE, type_url: TYPE_URL.Cluster });
    const cds = await s.next();
    s.send(deltaAck(cds));
    s.send({ type_url: TYPE_URL.ClusterLoadAssignment, resource_names_subscribe: ['backend', 'other'] });
    const eds = await s.next();
    assert.equal(eds.resources.length, 2);
    s.send(deltaAck(eds));

    // One assignment changes: only it is sent.
    h.state.clusters.set('other', [19101, 19102]);
    await h.cache.refresh();
    const eds2 = await s.next();
    assert.deepEqual(deltaResourcesOf(eds2).map((r) => r.name), ['other']);
    assert.deepEqual(eds2.removed_resources, []);
    s.send(deltaAck(eds2));

    // A cluster (and its assignment) goes away: both removals named.
    h.state.clusters.delete('other');
    await h.cache.refresh();
    const cds2 = await s.next();
    assert.equal(cds2.type_url, TYPE_URL.Cluster, 'CDS first');
    assert.deepEqual(cds2.resources, []);
    assert.deepEqual(cds2.removed_resources, ['other']);
    const eds3 = await s.next();
    assert.equal(eds3.type_url, TYPE_URL.ClusterLoadAssignment);
    assert.deepEqual(eds3.removed_resources, ['other']);
    s.send(deltaAck(cds2));
    s.send(deltaAck(eds3));

    // Unsubscribe from backend: its changes no longer come.
    s.send({ type_url: TYPE_URL.ClusterLoadAssignment, resource_names_unsubscribe: ['backend'], response_nonce: eds3.nonce });
    await eventually(() => JSON.stringify(h.server.status()[0].types[1].subscription) === '["other"]');
    h.state.clusters.set('backend', [19001, 19003]);
    await h.cache.refresh();
    const cdsOnly = await s.quiet(200);
    assert.ok(cdsOnly, 'backend CLA changed but the client unsubscribed from it (Cluster unchanged)');
  } finally {
    s.close();
    await h.close();
  }
});

test('delta: initial_resource_versions: only what differs is sent, gone names are removed', async () => {
  const h = await startHarness();
  const first = new TestStream(h.port, 'delta');
  const s = new TestStream(h.port, 'delta');
  try {
    first.send({ node: NODE, type_url: TYPE_URL.Cluster });
    const all = deltaResourcesOf(await first.next());
    const backend = all.find((r) => r.name === 'backend')!;
    // Reconnect holding backend at its current version, other at an old one, and a gone cluster.
    s.send({
      node: NODE,
      type_url: TYPE_URL.Cluster,
      initial_resource_versions: { backend: backend.version, other: 'old', gone: 'x' },
    });
    const r = await s.next();
    assert.deepEqual(deltaResourcesOf(r).map((x) => x.name), ['other']);
    assert.deepEqual(r.removed_resources, ['gone']);
  } finally {
    first.close();
    s.close();
    await h.close();
  }
});

test('delta: subscribing to a name that does not exist is answered with a removal; it is sent once it appears', async () => {
  const h = await startHarness();
  const s = new TestStream(h.port, 'delta');
  try {
    s.send({ node: NODE, type_url: TYPE_URL.ClusterLoadAssignment, resource_names_subscribe: ['later'] });
    const r1 = await s.next();
    assert.deepEqual(r1.resources, []);
    assert.deepEqual(r1.removed_resources, ['later']);
    s.send(deltaAck(r1));
    assert.ok(await s.quiet());
    h.state.clusters.set('later', [19401]);
    await h.cache.refresh();
    const r2 = await s.next();
    assert.deepEqual(deltaResourcesOf(r2).map((x) => x.name), ['later']);
  } finally {
    s.close();
    await h.close();
  }
});

test('delta: a NACK is recorded and the rejected resources are not resent until they change', async () => {
  const h = await startHarness();
  const s = new TestStream(h.port, 'delta');
  try {
    s.send({ node: NODE, type_url: TYPE_URL.Cluster });
    const r1 = await s.next();
    s.send({ ...deltaAck(r1), error_detail: { code: 3, message: 'bad cluster' } });
    await eventually(() => h.server.status()[0]?.types[0]?.state === 'NACKED');
    assert.equal(h.server.status()[0].types[0].lastNack?.message, 'bad cluster');
    assert.ok(await s.quiet(200));
    h.state.clusters.set('third', [1]);
    await h.cache.refresh();
    const r2 = await s.next();
    assert.deepEqual(deltaResourcesOf(r2).map((x) => x.name), ['third']);
    s.send(deltaAck(r2));
    await eventually(() => h.server.status()[0].types[0].state === 'SYNCED');
  } finally {
    s.close();
    await h.close();
  }
});

test('delta: explicit "*" subscribes to everything; unsubscribing "*" stops it', async () => {
  const h = await startHarness();
  const s = new TestStream(h.port, 'delta');
  try {
    s.send({ node: NODE, type_url: TYPE_URL.ClusterLoadAssignment, resource_names_subscribe: ['*'] });
    const r1 = await s.next();
    assert.deepEqual(deltaResourcesOf(r1).map((x) => x.name).sort(), ['backend', 'other']);
    s.send({ ...deltaAck(r1), resource_names_unsubscribe: ['*'] });
    await eventually(() => JSON.stringify(h.server.status()[0].types[0].subscription) === '[]');
    h.state.clusters.set('backend', [5]);
    await h.cache.refresh();
    assert.ok(await s.quiet(200));
  } finally {
    s.close();
    await h.close();
  }
});

test('delta: a wildcard subscription to a type with no resources still gets one (empty) answer', async () => {
  const h = await startHarness();
  const s = new TestStream(h.port, 'delta');
  try {
    // The fixture generator emits no Secret: the client must not be left waiting.
    s.send({ node: NODE, type_url: TYPE_URL.Secret, resource_names_subscribe: ['*'] });
    const sds = await s.next();
    assert.equal(sds.type_url, TYPE_URL.Secret);
    assert.deepEqual(sds.resources, []);
    s.send(deltaAck(sds));
    assert.ok(await s.quiet(), 'and only once');
  } finally {
    s.close();
    await h.close();
  }
});
