// What a real proxyless client does with our resources: every resource a
// proxyless node receives goes through @grpc/grpc-js-xds's own decoders and
// validators (the code that ACKs or NACKs in a live client), and its route
// matching and virtual host selection behave as the Gateway API asks.
import { describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as grpcXds from '@grpc/grpc-js-xds';
import { Metadata } from '@grpc/grpc-js';
import { ListenerResourceType } from '@grpc/grpc-js-xds/build/src/xds-resource-type/listener-resource-type';
import { RouteConfigurationResourceType } from '@grpc/grpc-js-xds/build/src/xds-resource-type/route-config-resource-type';
import { ClusterResourceType } from '@grpc/grpc-js-xds/build/src/xds-resource-type/cluster-resource-type';
import { EndpointResourceType } from '@grpc/grpc-js-xds/build/src/xds-resource-type/endpoint-resource-type';
import type { XdsDecodeContext, XdsResourceType } from '@grpc/grpc-js-xds/build/src/xds-resource-type/xds-resource-type';
import { findVirtualHostForDomain } from '@grpc/grpc-js-xds/build/src/xds-dependency-manager';
import { getPredicateForMatcher } from '@grpc/grpc-js-xds/build/src/route';
import { parseOverrideFilterConfig } from '@grpc/grpc-js-xds/build/src/http-filter';
import { translate } from '../../src/translate/translate';
import type { NodeInfo } from '../../src/translate/types';
import { encodeMessage } from '../../src/xds/protos';
import { TYPE_URL } from '../../src/xds/type-urls';
import { fixture, meshView, proxyless } from './helpers';

// Registers the router and fault filters the listener validator looks up.
grpcXds.register();

const DECODERS: Record<string, XdsResourceType> = {
  [TYPE_URL.Listener]: ListenerResourceType.get(),
  [TYPE_URL.RouteConfiguration]: RouteConfigurationResourceType.get(),
  [TYPE_URL.Cluster]: ClusterResourceType.get(),
  [TYPE_URL.ClusterLoadAssignment]: EndpointResourceType.get(),
};

// Only TLS validation reads the context; weft sends no TLS yet.
const CONTEXT = {
  server: { server_uri: 'localhost:0', channel_creds: [{ type: 'insecure' }], server_features: [] },
  bootstrap: { certificateProviders: {} },
} as unknown as XdsDecodeContext;

type Decoded = Record<string, any>;

/** The node's resources as grpc-js decodes them; any validation error fails the test. */
function accepted(node: NodeInfo): Map<string, Map<string, Decoded>> {
  const out = new Map<string, Map<string, Decoded>>();
  for (const [typeUrl, byName] of translate(meshView(fixture('mesh.yaml')), node)) {
    const decoder = DECODERS[typeUrl];
    if (!decoder) continue;
    const values = new Map<string, Decoded>();
    for (const [name, item] of byName) {
      const result = decoder.decode(CONTEXT, { type_url: typeUrl, value: encodeMessage(typeUrl, item.resource) });
      assert.equal(result.error, undefined, `grpc-js rejects ${typeUrl.split('.').pop()} ${name}: ${result.error}`);
      assert.equal(result.name, name);
      values.set(name, result.value as Decoded);
    }
    out.set(typeUrl, values);
  }
  return out;
}

const NODES = [proxyless(), proxyless({ service: 'greeter', zone: 'zone-b' }), proxyless({ namespace: 'other', zone: 'zone-a' })];

describe('grpc-js accepts every proxyless resource', () => {
  for (const node of NODES) {
    test(`${node.namespace}/${node.service ?? '-'} zone ${node.zone ?? '-'}`, () => {
      const r = accepted(node);
      for (const type of Object.keys(DECODERS)) assert.ok(r.get(type)!.size > 0, `${type} resources`);
    });
  }
});

describe('what grpc-js makes of them', () => {
  const r = accepted(proxyless({ zone: 'zone-b' }));
  const routeConfig = (name: string) => r.get(TYPE_URL.RouteConfiguration)!.get(name)!;
  const cluster = (name: string) => r.get(TYPE_URL.Cluster)!.get(name)!;
  const greeterRoute = (name: string) =>
    routeConfig('greeter.default:50051').virtual_hosts[0].routes.find((x: Decoded) => x.name === name);

  test('the virtual host is found for every name a client may dial', () => {
    for (const authority of ['greeter:50051', 'greeter.default:50051', 'greeter']) {
      const vh = findVirtualHostForDomain(routeConfig('greeter.default:50051').virtual_hosts, authority);
      assert.ok(vh, authority);
    }
  });

  function firstMatch(config: string, path: string, headers: Record<string, string> = {}): string | undefined {
    const vh = routeConfig(config).virtual_hosts[0];
    const md = new Metadata();
    for (const [k, v] of Object.entries(headers)) md.set(k, v);
    return vh.routes.find((route: Decoded) => getPredicateForMatcher(route.match).apply(path, md))?.name;
  }

  test('GRPCRoute method matches select the rule a Gateway API client expects', () => {
    const c = 'greeter.default:50051';
    assert.equal(firstMatch(c, '/helloworld.Greeter/SayHello', { 'x-canary': 'yes' }), 'GRPCRoute/default/greeter-canary/0/0');
    assert.equal(firstMatch(c, '/helloworld.Greeter/SayHello'), 'GRPCRoute/default/greeter-canary/1/0');
    assert.equal(firstMatch(c, '/helloworld.Greeter/SayGoodbye'), 'GRPCRoute/default/greeter-canary/1/0');
    assert.equal(firstMatch(c, '/other.Svc/LegacyCall'), 'GRPCRoute/default/greeter-canary/2/0');
    assert.equal(firstMatch(c, '/other.Svc/Call'), undefined, 'no rule: UNAVAILABLE "no route"');
  });

  test('a PathPrefix matches whole segments', () => {
    const c = 'api.default:9090';
    assert.equal(firstMatch(c, '/v2/items', { 'x-tier': 'gold' }), 'HTTPRoute/default/api-routes/0/0');
    assert.equal(firstMatch(c, '/v2', { 'x-tier': 'gold' }), 'HTTPRoute/default/api-routes/0/0');
    assert.notEqual(firstMatch(c, '/v2x', { 'x-tier': 'gold' }), 'HTTPRoute/default/api-routes/0/0');
  });

  test('the canary split and its policy reach the client', () => {
    const route = greeterRoute('GRPCRoute/default/greeter-canary/1/0');
    assert.deepEqual(
      route.route.weighted_clusters.clusters.map((c: Decoded) => [c.name, c.weight.value]),
      [
        ['outbound|50051||greeter-v1.default', 80],
        ['outbound|50051||greeter-v2.default', 20],
      ],
    );
    assert.deepEqual(route.route.max_stream_duration.max_stream_duration, { seconds: '2', nanos: 0 });
    assert.equal(route.route.hash_policy[0].header.header_name, 'x-user', 'from greeter-v1\'s policy');
  });

  test('a rule with no usable backend aborts with UNAVAILABLE through the fault filter', () => {
    const route = greeterRoute('GRPCRoute/default/greeter-canary/2/0');
    const parsed = parseOverrideFilterConfig(route.typed_per_filter_config['envoy.filters.http.fault']) as Decoded;
    assert.deepEqual(parsed.config.abort, { kind: 'grpc', code: 14, percentage: { numerator: 100, denominator: 100 } });
  });

  test('cluster policies as grpc-js configures its balancers', () => {
    const payment = cluster('outbound|50052||payment.default');
    assert.deepEqual(payment.lbPolicyConfig, [{ xds_wrr_locality: { child_policy: [{ round_robin: {} }] } }], 'LeastRequest → round robin');
    assert.equal(payment.maxConcurrentRequests, 200);
    assert.equal(payment.outlierDetectionUpdate.success_rate_ejection.enforcement_percentage, 100);
    assert.equal(payment.outlierDetectionUpdate.max_ejection_percent, 50);

    assert.deepEqual(cluster('outbound|50053||ledger.default').lbPolicyConfig, [{ ring_hash: { min_ring_size: 1024, max_ring_size: 8388608 } }]);
    const v1 = cluster('outbound|50051||greeter-v1.default');
    assert.deepEqual(v1.lbPolicyConfig, [{ ring_hash: { min_ring_size: 64, max_ring_size: 1024 } }]);
    assert.equal(v1.outlierDetectionUpdate.success_rate_ejection, undefined, 'success rate off unless asked');
    assert.equal(cluster('outbound|50051||greeter-v1.default').edsServiceName, 'outbound|50051||greeter-v1.default');
  });

  test('retries as the gRPC retry policy', () => {
    const route = routeConfig('payment.default:50052').virtual_hosts[0].routes[0];
    assert.equal(route.route.retry_policy.retry_on, 'unavailable,reset,connect-failure,retriable-status-codes');
    assert.equal(route.route.retry_policy.num_retries.value, 2);
  });

  test('zone preference: the node\'s zone first', () => {
    const cla = r.get(TYPE_URL.ClusterLoadAssignment)!.get('outbound|50051||greeter-v1.default')!;
    assert.deepEqual(
      cla.endpoints.map((l: Decoded) => [l.locality.zone, l.priority, l.load_balancing_weight.value]),
      [
        ['zone-b', 0, 1],
        ['', 1, 1],
        ['zone-a', 1, 4],
      ],
    );
  });
});
