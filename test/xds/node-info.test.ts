import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { InvalidNodeError, nodeGroupKey, nodeInfoFromXdsNode } from '../../src/xds/node-info';
import { decodeMessage, encodeMessage } from '../../src/xds/protos';

// protobufjs's google.protobuf.Value uses camelCase field names.
const meta = (fields: Record<string, string>) => ({
  fields: Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, { stringValue: v }])),
});

test('reads service, namespace, role and zone from the node', () => {
  const info = nodeInfoFromXdsNode({
    id: 'sidecar~10.0.0.1~web-1',
    user_agent_name: 'envoy',
    metadata: meta({ WEFT_SERVICE: 'web', WEFT_NAMESPACE: 'shop', WEFT_ROLE: 'sidecar' }),
    locality: { zone: 'eu-1a' },
  });
  assert.deepEqual(info, { id: 'sidecar~10.0.0.1~web-1', role: 'sidecar', namespace: 'shop', service: 'web', zone: 'eu-1a' });
  assert.equal(nodeGroupKey(info), 'sidecar|shop|web|eu-1a');
  assert.notEqual(nodeGroupKey({ ...info, zone: 'eu-1b' }), nodeGroupKey(info), 'nodes in other zones get their own snapshot');
});

test('defaults: namespace "default"; role from the user agent when WEFT_ROLE is absent', () => {
  assert.deepEqual(nodeInfoFromXdsNode({ id: 'a', user_agent_name: 'gRPC Node' }), {
    id: 'a',
    role: 'proxyless',
    namespace: 'default',
  });
  assert.equal(nodeInfoFromXdsNode({ id: 'b', user_agent_name: 'envoy' }).role, 'sidecar');
  assert.equal(nodeInfoFromXdsNode({ id: 'c' }).role, 'sidecar');
  assert.equal(nodeInfoFromXdsNode({ id: 'c', metadata: { fields: { WEFT_SERVICE: { string_value: 's' } } } }).service, 's');
  assert.equal(nodeGroupKey(nodeInfoFromXdsNode({ id: 'c' })), 'sidecar|default||');
  // WEFT_ROLE wins over the user agent.
  assert.equal(nodeInfoFromXdsNode({ id: 'd', user_agent_name: 'gRPC Go', metadata: meta({ WEFT_ROLE: 'sidecar' }) }).role, 'sidecar');
});

test('works on a node decoded from the wire', () => {
  const bytes = encodeMessage('envoy.config.core.v3.Node', {
    id: 'n1',
    user_agent_name: 'gRPC Java',
    metadata: meta({ WEFT_SERVICE: 'greeter' }),
    locality: { zone: 'z' },
  });
  const info = nodeInfoFromXdsNode(decodeMessage('envoy.config.core.v3.Node', bytes));
  assert.deepEqual(info, { id: 'n1', role: 'proxyless', namespace: 'default', service: 'greeter', zone: 'z' });
});

test('rejects a node without id or with an unknown role', () => {
  assert.throws(() => nodeInfoFromXdsNode({ id: '' }), InvalidNodeError);
  assert.throws(() => nodeInfoFromXdsNode({ id: 'x', metadata: meta({ WEFT_ROLE: 'gateway' }) }), /WEFT_ROLE.*gateway/);
});

test('sidecar ports come from metadata, are part of the group key, and must be port numbers', () => {
  const info = nodeInfoFromXdsNode({ id: 's', metadata: meta({ WEFT_SERVICE: 'web', WEFT_INBOUND_PORT: '16006', WEFT_APP_PORT: '3000' }) });
  assert.equal(info.inboundPort, 16006);
  assert.equal(info.appPort, 3000);
  assert.equal(info.outboundPort, undefined);
  assert.equal(nodeGroupKey(info), 'sidecar|default|web|||16006|3000');
  for (const bad of ['0', '70000', 'abc', '12x']) {
    assert.throws(() => nodeInfoFromXdsNode({ id: 's', metadata: meta({ WEFT_APP_PORT: bad }) }), InvalidNodeError);
  }
});

test('WEFT_METRICS_ADDRESS: host:port, IPv6 in brackets; anything else names the key', () => {
  const info = (v: string) => nodeInfoFromXdsNode({ id: 'm', metadata: meta({ WEFT_METRICS_ADDRESS: v }) });
  assert.equal(info('0.0.0.0:15090').metricsAddress, '0.0.0.0:15090');
  assert.equal(info('[::]:15090').metricsAddress, '[::]:15090');
  assert.equal(info('198.18.3.2:9102').metricsAddress, '198.18.3.2:9102');
  for (const bad of ['15090', '0.0.0.0:0', '0.0.0.0:70000', '::1:15090', 'a b:1', '0.0.0.0:15090/x']) {
    assert.throws(() => info(bad), (err: Error) => err instanceof InvalidNodeError && /WEFT_METRICS_ADDRESS/.test(err.message) && err.message.includes(bad), bad);
  }
  // Not part of the node group: it does not change what the node is sent.
  assert.equal(nodeGroupKey(info('0.0.0.0:15090')), nodeGroupKey(nodeInfoFromXdsNode({ id: 'm' })));
});

test('a transparent unit: WEFT_APP_ADDRESS (IPv4) and WEFT_TRANSPARENT ("true"/"false"), both in the group key', () => {
  const info = nodeInfoFromXdsNode({ id: 't', metadata: meta({ WEFT_SERVICE: 'web', WEFT_APP_ADDRESS: '169.254.1.2', WEFT_TRANSPARENT: 'true' }) });
  assert.equal(info.appAddress, '169.254.1.2');
  assert.equal(info.transparent, true);
  const plain = nodeInfoFromXdsNode({ id: 'p', metadata: meta({ WEFT_SERVICE: 'web' }) });
  assert.notEqual(nodeGroupKey(info), nodeGroupKey(plain));
  assert.throws(() => nodeInfoFromXdsNode({ id: 'x', metadata: meta({ WEFT_APP_ADDRESS: 'app.local' }) }), /WEFT_APP_ADDRESS.*IPv4/);
  assert.throws(() => nodeInfoFromXdsNode({ id: 'y', metadata: meta({ WEFT_TRANSPARENT: 'yes' }) }), /WEFT_TRANSPARENT.*"true" or "false"/);
});

test('an Envoy with a local SDS server: WEFT_LOCAL_SDS ("true"/"false", strictly), in the group key', () => {
  const info = nodeInfoFromXdsNode({ id: 'e', metadata: meta({ WEFT_SERVICE: 'web', WEFT_LOCAL_SDS: 'true' }) });
  assert.equal(info.localSds, true);
  assert.equal(nodeInfoFromXdsNode({ id: 'f', metadata: meta({ WEFT_LOCAL_SDS: 'false' }) }).localSds, undefined);
  const plain = nodeInfoFromXdsNode({ id: 'p', metadata: meta({ WEFT_SERVICE: 'web' }) });
  assert.notEqual(nodeGroupKey(info), nodeGroupKey(plain));
  assert.throws(() => nodeInfoFromXdsNode({ id: 'y', metadata: meta({ WEFT_LOCAL_SDS: 'yes' }) }), /WEFT_LOCAL_SDS.*"true" or "false"/);
});
