import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { peerAddress, prometheusTargets } from '../../src/observe/prometheus-sd';
import type { NodeInfo } from '../../src/translate/types';
import type { NodeStatus } from '../../src/xds/server/node-status';

function node(nodeId: string, info: Partial<NodeInfo>, peer: string, extra: Partial<NodeStatus> = {}): NodeStatus {
  return {
    streamId: 1,
    nodeId,
    node: { id: nodeId, role: 'sidecar', namespace: 'default', ...info },
    peer,
    replica: 'cp-1',
    connectedAt: new Date(1_000),
    mode: 'delta',
    types: [],
    ...extra,
  };
}

test('an unspecified host is replaced by the peer address of the xDS stream; an announced address is kept', () => {
  const groups = prometheusTargets([
    node('beta~198.18.3.3~7', { service: 'beta', metricsAddress: '0.0.0.0:15090' }, '198.18.3.3:40112'),
    node('alpha~198.18.3.2~9', { service: 'alpha', namespace: 'shop', metricsAddress: '0.0.0.0:15090' }, 'ipv4:198.18.3.2:51234', { replica: 'cp-2' }),
    node('gamma', { service: 'gamma', metricsAddress: '10.1.2.3:9102' }, '198.18.3.9:40000'),
  ]);
  assert.deepEqual(groups, [
    { targets: ['10.1.2.3:9102'], labels: { __metrics_path__: '/stats/prometheus', weft_service: 'gamma', weft_namespace: 'default', weft_node: 'gamma', weft_replica: 'cp-1' } },
    { targets: ['198.18.3.2:15090'], labels: { __metrics_path__: '/stats/prometheus', weft_service: 'alpha', weft_namespace: 'shop', weft_node: 'alpha~198.18.3.2~9', weft_replica: 'cp-2' } },
    { targets: ['198.18.3.3:15090'], labels: { __metrics_path__: '/stats/prometheus', weft_service: 'beta', weft_namespace: 'default', weft_node: 'beta~198.18.3.3~7', weft_replica: 'cp-1' } },
  ]);
});

test('IPv6 and IPv4-mapped peers; [::] is unspecified too', () => {
  const targets = (metricsAddress: string, peer: string) => prometheusTargets([node('n', { metricsAddress }, peer)]).flatMap((g) => g.targets);
  assert.deepEqual(targets('[::]:15090', 'ipv6:[fd00::5]:5000'), ['[fd00::5]:15090']);
  assert.deepEqual(targets('[::]:15090', '::ffff:198.18.3.2:5000'), ['198.18.3.2:15090']);
  assert.deepEqual(targets('0.0.0.0:15090', '::1:5000'), ['[::1]:15090']);
  assert.deepEqual(targets('[fd00::7]:15090', '198.18.3.2:5000'), ['[fd00::7]:15090']);
  // A peer that names no address: the unspecified host cannot be resolved, so the node is left out.
  assert.deepEqual(targets('0.0.0.0:15090', 'unknown'), []);
  assert.equal(peerAddress('fe80::1%eth0:5000'), 'fe80::1');
  assert.equal(peerAddress('fd00::5:5000'), 'fd00::5', 'grpc-js writes IPv6 peers unbracketed; the last part is the port');
});

test('nodes without a metrics address and proxyless nodes are left out; a node seen twice is listed once, from its newest stream', () => {
  const groups = prometheusTargets([
    node('no-metrics', { service: 'a' }, '198.18.3.2:1'),
    node('grpc-client', { role: 'proxyless', service: 'b', metricsAddress: '0.0.0.0:15090' }, '198.18.3.4:1'),
    node('old', { service: 'c', metricsAddress: '0.0.0.0:15090' }, '198.18.3.5:1', { connectedAt: new Date(1_000), replica: 'cp-1' }),
    node('new', { service: 'c', metricsAddress: '0.0.0.0:15090' }, '198.18.3.5:2', { connectedAt: new Date(2_000), replica: 'cp-2' }),
    node('client', { metricsAddress: '0.0.0.0:15091' }, '198.18.3.5:3'),
  ]);
  assert.deepEqual(groups.map((g) => [g.targets[0], g.labels.weft_node, g.labels.weft_replica, g.labels.weft_service]), [
    ['198.18.3.5:15090', 'new', 'cp-2', 'c'],
    ['198.18.3.5:15091', 'client', 'cp-1', undefined],
  ]);
  assert.deepEqual(prometheusTargets([]), []);
});
