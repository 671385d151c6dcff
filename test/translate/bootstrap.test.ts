// The gRPC bootstrap: what grpc-js-xds reads, and what the control plane reads back from the node.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { validateBootstrapConfig } from '@grpc/grpc-js-xds/build/src/xds-bootstrap';
import { grpcBootstrap, SERVER_LISTENER_NAME_TEMPLATE } from '../../src/xds/bootstrap';
import { nodeInfoFromXdsNode } from '../../src/xds/node-info';

test('a full bootstrap is what grpc-js-xds accepts', () => {
  const b = grpcBootstrap({ xdsServer: '127.0.0.1:15010', nodeId: 'order-1', service: 'order', namespace: 'shop', zone: 'zone-a' });
  assert.deepEqual(b, {
    xds_servers: [{ server_uri: '127.0.0.1:15010', channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
    node: {
      id: 'order-1',
      metadata: { WEFT_SERVICE: 'order', WEFT_NAMESPACE: 'shop', WEFT_ROLE: 'proxyless' },
      locality: { zone: 'zone-a' },
    },
    server_listener_resource_name_template: SERVER_LISTENER_NAME_TEMPLATE,
  });
  const info = validateBootstrapConfig(JSON.parse(JSON.stringify(b)));
  assert.equal(info.xdsServers[0].server_uri, '127.0.0.1:15010');
  assert.equal(info.node.id, 'order-1');
  assert.equal(info.node.locality.zone, 'zone-a');
  assert.equal(info.serverListenerResourceNameTemplate, 'weft.dev/grpc/lds/inbound/%s');
  // What the client sends as its Node, the control plane reads as the same node.
  const fields = Object.fromEntries(Object.entries(b.node.metadata).map(([k, v]) => [k, { string_value: v }]));
  assert.deepEqual(nodeInfoFromXdsNode({ id: b.node.id, metadata: { fields }, locality: b.node.locality }), {
    id: 'order-1',
    role: 'proxyless',
    namespace: 'shop',
    service: 'order',
    zone: 'zone-a',
  });
});

test('a minimal bootstrap: default namespace, no service, an empty locality (grpc-js requires one)', () => {
  const b = grpcBootstrap({ xdsServer: 'cp:15010', nodeId: 'c', service: undefined, zone: undefined });
  assert.deepEqual(b.node, { id: 'c', metadata: { WEFT_NAMESPACE: 'default', WEFT_ROLE: 'proxyless' }, locality: {} });
  assert.doesNotThrow(() => validateBootstrapConfig(JSON.parse(JSON.stringify(b))));
});
