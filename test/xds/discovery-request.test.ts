import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { decodeDiscoveryRequest, DiscoveryRequestMessage, MalformedMessage } from '../../src/xds/server/discovery-request';
import { encodeMessage } from '../../src/xds/protos';
import { TYPE_URL } from '../../src/xds/type-urls';

const REQ = 'envoy.service.discovery.v3.DiscoveryRequest';

function decode(bytes: Buffer): DiscoveryRequestMessage {
  const msg = decodeDiscoveryRequest(bytes);
  assert.ok(msg instanceof DiscoveryRequestMessage, msg instanceof MalformedMessage ? msg.reason : 'decoded');
  return msg;
}

test('decodes every field the server reads', () => {
  const msg = decode(
    encodeMessage(REQ, {
      version_info: 'v1',
      node: { id: 'n1', user_agent_name: 'gRPC Go', metadata: { fields: { WEFT_SERVICE: { stringValue: 'web' } } } },
      resource_names: ['a', 'bé', 'c'],
      type_url: TYPE_URL.ClusterLoadAssignment,
      response_nonce: 'n-7',
      error_detail: { code: 3, message: 'rejected' },
    }),
  );
  assert.equal(msg.version_info, 'v1');
  assert.equal(msg.node?.id, 'n1');
  assert.equal(msg.node?.metadata?.fields?.WEFT_SERVICE?.stringValue, 'web');
  assert.deepEqual(msg.resource_names, ['a', 'bé', 'c']);
  assert.equal(msg.type_url, TYPE_URL.ClusterLoadAssignment);
  assert.equal(msg.response_nonce, 'n-7');
  assert.deepEqual({ code: msg.error_detail?.code, message: msg.error_detail?.message }, { code: 3, message: 'rejected' });
});

test('equal name lists give equal namesBytes, also when other fields interleave', () => {
  const a = decode(encodeMessage(REQ, { resource_names: ['x', 'y'], type_url: TYPE_URL.Cluster, version_info: '1' }));
  const b = decode(encodeMessage(REQ, { resource_names: ['x', 'y'], type_url: TYPE_URL.Cluster, version_info: '2' }));
  assert.ok(a.namesBytes.equals(b.namesBytes));
  const name = (s: string) => Buffer.concat([Buffer.from([0x1a, s.length]), Buffer.from(s)]);
  const typeUrl = Buffer.concat([Buffer.from([0x22, TYPE_URL.Cluster.length]), Buffer.from(TYPE_URL.Cluster)]);
  const scattered = decode(Buffer.concat([name('x'), typeUrl, name('y')]));
  assert.deepEqual(scattered.resource_names, ['x', 'y']);
  assert.ok(scattered.namesBytes.equals(a.namesBytes));
  assert.equal(scattered.type_url, TYPE_URL.Cluster);
  assert.deepEqual(decode(Buffer.alloc(0)).resource_names, []);
});

test('skips unknown fields of every wire type', () => {
  const unknown = Buffer.from([
    0x78, 0x96, 0x01, // field 15 varint
    0x81, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, // field 16 fixed64
    0x8d, 0x01, 1, 2, 3, 4, // field 17 fixed32
    0x3a, 0x00, // field 7 (resource_locators), empty
  ]);
  const msg = decode(Buffer.concat([unknown, encodeMessage(REQ, { type_url: TYPE_URL.Listener })]));
  assert.equal(msg.type_url, TYPE_URL.Listener);
});

test('malformed bytes give a MalformedMessage, never a throw', () => {
  for (const bytes of [
    [0x0a, 0x05, 0x61], // length past the end
    [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], // endless varint
    [0x0b], // group start wire type
    [0x00, 0x01], // field 0
    [0x12, 0x02, 0xff, 0xff], // node that does not decode
  ]) {
    const msg = decodeDiscoveryRequest(Buffer.from(bytes));
    assert.ok(msg instanceof MalformedMessage, `rejects ${Buffer.from(bytes).toString('hex')}`);
    assert.match(msg.reason, /DiscoveryRequest does not decode/);
  }
});
