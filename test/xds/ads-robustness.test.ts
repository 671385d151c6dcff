// Misbehaving clients end only their own stream; departed clients leave no watch.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { TYPE_URL } from '../../src/xds/type-urls';
import { messageType } from '../../src/xds/protos';
import { ack, eventually, NODE, startHarness, TestStream } from './fixtures';

async function healthyClient(port: number) {
  const s = new TestStream(port);
  s.send({ node: { ...NODE, id: 'healthy' }, type_url: TYPE_URL.ClusterLoadAssignment, resource_names: ['backend'] });
  const r = await s.next();
  s.send(ack(r, ['backend']));
  return { s, r };
}

test('garbage bytes, a missing node, an unknown type end that stream only', async () => {
  const h = await startHarness();
  const { s: healthy, r: first } = await healthyClient(h.port);
  try {
    const garbage = new TestStream(h.port, 'sotw', true);
    garbage.send(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]));
    const g = await garbage.ended;
    assert.equal(g.code, GrpcStatus.INVALID_ARGUMENT);
    assert.match(g.details, /does not decode/);

    const garbageDelta = new TestStream(h.port, 'delta', true);
    garbageDelta.send(Buffer.from('not a protobuf at all, really not'));
    assert.equal((await garbageDelta.ended).code, GrpcStatus.INVALID_ARGUMENT);

    const anonymous = new TestStream(h.port);
    anonymous.send({ type_url: TYPE_URL.Cluster });
    const a = await anonymous.ended;
    assert.equal(a.code, GrpcStatus.INVALID_ARGUMENT);
    assert.match(a.details, /must carry node/);

    const unknown = new TestStream(h.port);
    unknown.send({ node: NODE, type_url: 'type.googleapis.com/envoy.config.nope.v3.Nope' });
    const u = await unknown.ended;
    assert.equal(u.code, GrpcStatus.INVALID_ARGUMENT);
    assert.match(u.details, /unknown resource type URL/);

    // A valid first request, then garbage on the same stream.
    const later = new TestStream(h.port, 'sotw', true);
    const req = messageType('envoy.service.discovery.v3.DiscoveryRequest');
    later.send(Buffer.from(req.encode(req.fromObject({ node: NODE, type_url: TYPE_URL.Cluster })).finish()));
    await later.next();
    later.send(Buffer.from([0x0a, 0x05, 0x01]));
    assert.equal((await later.ended).code, GrpcStatus.INVALID_ARGUMENT);

    for (const c of [garbage, garbageDelta, anonymous, unknown, later]) c.close();
    assert.ok(h.logs.some((l) => l.level === 'warn' && l.fields?.code === 'E_XDS_MALFORMED_REQUEST'));

    // The healthy client still gets updates.
    h.state.clusters.set('backend', [19009]);
    await h.cache.refresh();
    const pushed = await healthy.next();
    assert.notEqual(pushed.version_info, first.version_info);
    await eventually(() => h.server.streamCount === 1);
  } finally {
    healthy.close();
    await h.close();
  }
});

test('a client that disconnects mid-stream leaves no stream and no watch behind', async () => {
  const h = await startHarness();
  const { s: healthy } = await healthyClient(h.port);
  try {
    const s = new TestStream(h.port);
    s.send({ node: { ...NODE, id: 'leaver' }, type_url: TYPE_URL.Cluster });
    const cds = await s.next();
    s.send(ack(cds));
    s.send({ type_url: TYPE_URL.Listener });
    await s.next();
    await eventually(() => h.cache.stats().watches === 2, 2000); // healthy EDS + leaver CDS
    assert.equal(h.server.status().length, 2);
    s.close();
    await eventually(() => h.server.streamCount === 1 && h.cache.stats().watches === 1);
    assert.deepEqual(h.server.status().map((x) => x.nodeId), ['healthy']);
  } finally {
    healthy.close();
    await h.close();
  }
});

test('onStatusChange reports connect, send, ack and disconnect', async () => {
  const changes: string[] = [];
  const h = await startHarness({ onStatusChange: (st, change) => changes.push(`${st.nodeId}:${change}`) });
  const s = new TestStream(h.port);
  try {
    s.send({ node: NODE, type_url: TYPE_URL.Cluster });
    s.send(ack(await s.next()));
    await eventually(() => changes.includes('node-1:acked'));
    s.close();
    await eventually(() => changes.includes('node-1:disconnected'));
    assert.deepEqual(changes, ['node-1:connected', 'node-1:sent', 'node-1:acked', 'node-1:disconnected']);
  } finally {
    await h.close();
  }
});
