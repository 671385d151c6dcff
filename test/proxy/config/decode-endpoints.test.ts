// ClusterLoadAssignment decoding: translator output with zones, weights and
// health, hand-written assignments for the rest, one NACK per case.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { decodeClusterLoadAssignment } from '../../../src/proxy/config/decode-endpoints';
import { resourcesFor, meshView, sidecar } from '../../translate/helpers';
import { nack, TYPE_URL, wire, type Obj } from './helpers';

const MESH = `
apiVersion: weft.dev/v1
kind: Service
metadata: { name: api }
spec: { ports: [{ name: http, port: 8080, protocol: http }] }
`;

test('endpoints: translator output — localities by zone, the node zone first, weights and health', () => {
  const view = meshView(MESH, {
    'default/api': [
      { address: '10.0.0.1', ports: { http: 8080 }, zone: 'z1', weight: 3 },
      { address: '10.0.0.2', ports: { http: 8081 }, zone: 'z2', health: 'draining' },
      { address: 'fd00::3', ports: { http: 8080 }, zone: 'z2', health: 'unhealthy' },
    ],
  });
  const msg = resourcesFor(view, sidecar({ zone: 'z1' })).get(TYPE_URL.ClusterLoadAssignment, 'outbound|8080||api.default');
  assert.deepEqual(decodeClusterLoadAssignment(msg), {
    clusterName: 'outbound|8080||api.default',
    localities: [
      {
        zone: 'z1',
        priority: 0,
        weight: 3,
        endpoints: [{ address: '10.0.0.1', port: 8080, weight: 3, health: 'healthy', zone: 'z1', key: '10.0.0.1:8080' }],
      },
      {
        zone: 'z2',
        priority: 1,
        weight: 1,
        endpoints: [
          { address: '10.0.0.2', port: 8081, weight: 1, health: 'draining', zone: 'z2', key: '10.0.0.2:8081' },
          { address: 'fd00::3', port: 8080, weight: 1, health: 'unhealthy', zone: 'z2', key: '[fd00::3]:8080' },
        ],
      },
    ],
  });
  const empty = resourcesFor(meshView(MESH), sidecar()).get(TYPE_URL.ClusterLoadAssignment, 'outbound|8080||api.default');
  assert.deepEqual(decodeClusterLoadAssignment(empty), { clusterName: 'outbound|8080||api.default', localities: [] });
});

const ep = (address: string, port: number, extra: Obj = {}): Obj => ({
  endpoint: { address: { socket_address: { address, port_value: port } } },
  ...extra,
});
const cla = (endpoints: Obj[], extra: Obj = {}): Obj => ({ cluster_name: 'c', endpoints, ...extra });
const decode = (msg: Obj) => decodeClusterLoadAssignment(wire(TYPE_URL.ClusterLoadAssignment, msg));

test('endpoints: hand-written — defaults, health states, priority order, accepted no-ops', () => {
  const set = decode(
    cla([
      { priority: 1, locality: { region: 'r', zone: 'b', sub_zone: 's' }, lb_endpoints: [ep('10.0.0.9', 1, { health_status: 'TIMEOUT' })] },
      {
        load_balancing_weight: { value: 5 },
        metadata: {},
        lb_endpoints: [
          ep('10.0.0.1', 80),
          ep('10.0.0.2', 80, { health_status: 'HEALTHY', load_balancing_weight: { value: 2 }, metadata: {} }),
          { endpoint: { address: { socket_address: { address: '10.0.0.3', port_value: 80 } }, health_check_config: { port_value: 9 } } },
        ],
      },
    ], { policy: {} }),
  );
  assert.deepEqual(
    set.localities.map((l) => [l.zone, l.priority, l.weight, l.endpoints.map((e) => [e.key, e.weight, e.health, e.zone])]),
    [
      ['', 0, 5, [['10.0.0.1:80', 1, 'unknown', ''], ['10.0.0.2:80', 2, 'healthy', ''], ['10.0.0.3:80', 1, 'unknown', '']]],
      ['b', 1, 1, [['10.0.0.9:1', 1, 'unhealthy', 'b']]],
    ],
  );
});

test('endpoints: NACK for hostnames and every field outside the subset', () => {
  const AT = 'ClusterLoadAssignment "c": endpoints[0]';
  const cases: [Obj, string][] = [
    [cla([{ lb_endpoints: [ep('api.example.com', 80)] }]), `${AT}.lb_endpoints[0].endpoint.address.socket_address.address "api.example.com" is not an IP address`],
    [cla([{ lb_endpoints: [ep('10.0.0.1', 80, { endpoint: { address: { socket_address: { address: '10.0.0.1', port_value: 80 } }, hostname: 'a.example' } })] }]), `${AT}.lb_endpoints[0].endpoint.hostname is not supported`],
    [cla([{ lb_endpoints: [ep('10.0.0.1', 80, { health_status: 'DEGRADED' })] }]), `${AT}.lb_endpoints[0].health_status DEGRADED is not supported`],
    [cla([{ lb_endpoints: [{ endpoint_name: 'x' }] }]), `${AT}.lb_endpoints[0].endpoint_name is not supported`],
    [cla([{ lb_endpoints: [ep('10.0.0.1', 80, { endpoint: { address: { socket_address: { address: '10.0.0.1', port_value: 80 } }, additional_addresses: [{}] } })] }]), `${AT}.lb_endpoints[0].endpoint.additional_addresses is not supported`],
    [cla([{ lb_endpoints: [{ endpoint: { address: { pipe: { path: '/tmp/s' } } } }] }]), `${AT}.lb_endpoints[0].endpoint.address.pipe is not supported`],
    [cla([{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '10.0.0.1', port_value: 53, protocol: 'UDP' } } } }] }]), `${AT}.lb_endpoints[0].endpoint.address.socket_address.protocol UDP is not supported`],
    [cla([{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '10.0.0.1', named_port: 'http' } } } }] }]), `${AT}.lb_endpoints[0].endpoint.address.socket_address.named_port is not supported`],
    [cla([{ leds_cluster_locality_config: { leds_collection_name: 'x' } }]), `${AT}.leds_cluster_locality_config is not supported`],
    [cla([{ proximity: { value: 1 } }]), `${AT}.proximity is not supported`],
    [cla([], { policy: { overprovisioning_factor: { value: 140 } } }), 'ClusterLoadAssignment "c": policy.overprovisioning_factor is not supported'],
    [cla([], { policy: { drop_overloads: [{ category: 'x' }] } }), 'ClusterLoadAssignment "c": policy.drop_overloads is not supported'],
  ];
  for (const [msg, expected] of cases) {
    const message = nack(() => decode(msg));
    assert.ok(message.startsWith(expected), `expected ${expected}, got: ${message}`);
  }
});

test('endpoints: NACK for invalid values (port 0, zero weights, priority gaps)', () => {
  const cases: [Obj, string][] = [
    [cla([{ lb_endpoints: [ep('10.0.0.1', 0)] }]), 'endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value must be a port 1-65535, got 0'],
    [cla([{ lb_endpoints: [ep('10.0.0.1', 80, { load_balancing_weight: { value: 0 } })] }]), 'endpoints[0].lb_endpoints[0].load_balancing_weight must be at least 1'],
    [cla([{ load_balancing_weight: { value: 0 }, lb_endpoints: [] }]), 'endpoints[0].load_balancing_weight must be at least 1'],
    [cla([{ priority: 0 }, { priority: 2 }]), 'endpoints priorities must be contiguous from 0: 1 is missing'],
    [cla([{ lb_endpoints: [{}] }]), 'endpoints[0].lb_endpoints[0].endpoint is required'],
  ];
  for (const [msg, expected] of cases) {
    const message = nack(() => decode(msg), 'E_CONFIG_INVALID');
    assert.equal(message, `ClusterLoadAssignment "c": ${expected}`);
  }
});

test('endpoints: the transport socket match of an endpoint with a sidecar (auto mTLS)', () => {
  const match = { filter_metadata: { 'envoy.transport_socket_match': { fields: { tlsMode: { stringValue: 'weft' } } }, other: { fields: {} } } };
  const set = decode(cla([{ lb_endpoints: [ep('10.0.0.1', 80, { metadata: match }), ep('10.0.0.2', 80)] }]));
  assert.deepEqual(set.localities[0].endpoints.map((e) => e.socketMatch), [{ tlsMode: 'weft' }, undefined]);
  const bad = { filter_metadata: { 'envoy.transport_socket_match': { fields: { tlsMode: { boolValue: true } } } } };
  assert.match(nack(() => decode(cla([{ lb_endpoints: [ep('10.0.0.1', 80, { metadata: bad })] }]))), /lb_endpoints\[0\]\.metadata\.filter_metadata\.envoy\.transport_socket_match\.tlsMode is not a string/);
});
