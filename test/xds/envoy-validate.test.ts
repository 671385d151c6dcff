// Envoy's own rules on what weft makes: the bootstrap of `weft bootstrap
// --envoy` in Envoy's JSON mapping against bootstrap.proto, and every
// resource the translator serves for the demo mesh (a sidecar and a
// proxyless node) against the protoc-gen-validate annotations of the shipped
// protos, the checks Envoy runs before it accepts a resource.
import { describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { envoyBootstrap } from '../../src/xds/envoy-bootstrap';
import {
  assertValidEnvoyBootstrap,
  decodedTree,
  envoyBootstrapProblems,
  EnvoyValidationError,
  pgvProblems,
  type ValidationProblem,
} from '../../src/xds/envoy-validate';
import { encodeMessage, envoyMessageType } from '../../src/xds/protos';
import { TYPE_URL } from '../../src/xds/type-urls';
import { translate } from '../../src/translate/translate';
import type { MeshView, NodeInfo } from '../../src/translate/types';
import { certificateSecret, trustBundleSecret } from '../../src/ca/sds-protocol';
import { fixture, meshView, proxyless, sidecar } from '../translate/helpers';

const root = path.resolve(__dirname, '../../..');

function demoMesh(): MeshView {
  const dir = path.join(root, 'examples', 'mesh');
  const yaml = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => fs.readFileSync(path.join(dir, f), 'utf8'))
    .join('\n---\n');
  // Endpoints as `weft run` registers them (sidecar-fronted: auto mTLS), two zones.
  return meshView(yaml, {
    'default/storefront': [{ address: '10.0.0.1', ports: { http: 8080 }, zone: 'a' }],
    'default/product': [{ address: '10.0.0.2', ports: { http: 8081 }, zone: 'a' }, { address: '10.0.0.3', ports: { http: 8081 }, zone: 'b' }],
    'default/product-v2': [{ address: '10.0.0.4', ports: { http: 8081 } }],
    'default/order': [{ address: '10.0.0.5', ports: { http: 8082 } }],
    'default/payment': [{ address: '10.0.0.6', ports: { http: 8083 } }],
  });
}

/** Every resource of the node, encoded (no unknown field), decoded and PGV-checked; returns the problems and how many were checked per type. */
function checkServed(view: MeshView, node: NodeInfo): { problems: ValidationProblem[]; counted: Map<string, number> } {
  const problems: ValidationProblem[] = [];
  const counted = new Map<string, number>();
  for (const [typeUrl, byName] of translate(view, node)) {
    const type = envoyMessageType(typeUrl);
    for (const [name, item] of byName) {
      const tree = decodedTree(type, encodeMessage(typeUrl, item.resource));
      problems.push(...pgvProblems(type, tree, `${typeUrl.split('.').pop()}[${name}]`));
      counted.set(typeUrl, (counted.get(typeUrl) ?? 0) + 1);
    }
  }
  return { problems, counted };
}

/**
 * A known finding, version-dependent: a TrafficPolicy rateLimit.local with `by` makes a
 * LocalRateLimit descriptor entry with no value (one bucket per distinct value, Envoy ≥ 1.34's
 * dynamic descriptors, rate-limit.ts). The shipped protos (an older Envoy API) say
 * RateLimitDescriptor.Entry.value {min_len: 1}: an Envoy before dynamic descriptors NACKs that
 * inbound Listener. Only this, and only where such a policy applies, is let through.
 */
const EMPTY_DESCRIPTOR_VALUE = /\(envoy\.extensions\.filters\.http\.local_ratelimit\.v3\.LocalRateLimit\)\.descriptors\[0\]\.entries\[0\]\.value: needs at least 1 character/;

function withoutKnown(problems: ValidationProblem[]): { known: ValidationProblem[]; others: ValidationProblem[] } {
  const known = problems.filter((p) => EMPTY_DESCRIPTOR_VALUE.test(`${p.path}: ${p.message}`));
  return { known, others: problems.filter((p) => !known.includes(p)) };
}

function show(problems: ValidationProblem[]): string {
  return problems.map((p) => `${p.path}: ${p.message}`).join('\n');
}

describe('weft bootstrap --envoy against Envoy\'s bootstrap.proto', () => {
  const base = { xds: '198.18.0.2:15010,198.18.0.3:15010', service: 'storefront', namespace: 'shop', nodeId: 'storefront-1', zone: 'a' };

  test('the generated bootstrap converts with Envoy\'s JSON mapping and passes its PGV rules: TLS, token, several replicas', () => {
    const b = envoyBootstrap({ ...base, caFile: '/etc/weft/trust-bundle.pem', joinToken: 'wjt_abc', adminPort: 19000 });
    assert.deepEqual(envoyBootstrapProblems(b), []);
    assert.doesNotThrow(() => assertValidEnvoyBootstrap(JSON.parse(JSON.stringify(b))), 'as read back from the printed JSON');
  });

  test('plaintext (dev), a DNS name (STRICT_DNS, SNI), no token: also valid', () => {
    const dev = envoyBootstrap({ ...base, xds: '127.0.0.1:15010' }) as any;
    assert.deepEqual(envoyBootstrapProblems(dev), []);
    assert.equal(dev.static_resources.clusters[0].type, 'STATIC');
    assert.equal(dev.static_resources.clusters[0].transport_socket, undefined, 'no --ca-file: plaintext');
    assert.equal(dev.dynamic_resources.ads_config.grpc_services[0].initial_metadata, undefined);
    const named = envoyBootstrap({ ...base, xds: 'control.weft.internal:15010', caFile: 'bundle.pem' }) as any;
    assert.deepEqual(envoyBootstrapProblems(named), []);
    const cluster = named.static_resources.clusters[0];
    assert.equal(cluster.type, 'STRICT_DNS');
    assert.equal(cluster.transport_socket.typed_config.sni, 'control.weft.internal');
    assert.deepEqual(cluster.transport_socket.typed_config.common_tls_context.validation_context.match_typed_subject_alt_names, [
      { san_type: 'DNS', matcher: { exact: 'control.weft.internal' } },
    ]);
    assert.ok(path.isAbsolute(cluster.transport_socket.typed_config.common_tls_context.validation_context.trusted_ca.filename));
  });

  test('with a local SDS socket: WEFT_LOCAL_SDS=true and a static cluster weft_sds (HTTP/2 over a pipe), still valid', () => {
    const b = envoyBootstrap({ ...base, caFile: 'bundle.pem', sdsSocket: '/run/weft/sds/sds.sock' }) as any;
    assert.deepEqual(envoyBootstrapProblems(b), []);
    assert.equal(b.node.metadata.WEFT_LOCAL_SDS, 'true');
    const sds = b.static_resources.clusters.find((c: any) => c.name === 'weft_sds');
    assert.deepEqual(sds.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address, { pipe: { path: '/run/weft/sds/sds.sock' } });
    assert.ok(sds.typed_extension_protocol_options['envoy.extensions.upstreams.http.v3.HttpProtocolOptions'].explicit_http_config.http2_protocol_options);
    assert.equal(sds.transport_socket, undefined);
    assert.equal((envoyBootstrap(base) as any).node.metadata.WEFT_LOCAL_SDS, undefined);
    // The checker sees the pipe: an empty path breaks a PGV rule.
    sds.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.pipe.path = '';
    assert.deepEqual(envoyBootstrapProblems(b).map((p) => p.path), ['static_resources.clusters[1].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.pipe.path']);
  });

  test('lowerCamel JSON names and Duration strings are read as Envoy reads them', () => {
    const b = envoyBootstrap(base) as any;
    b.static_resources.clusters[0] = { ...b.static_resources.clusters[0], connectTimeout: '0.250s' };
    delete b.static_resources.clusters[0].connect_timeout;
    assert.deepEqual(envoyBootstrapProblems(b), []);
  });

  test('a broken bootstrap fails naming the field: an empty node id, an empty cluster name, an unknown field, a bad enum, a zero timeout', () => {
    const emptyId = envoyBootstrap(base) as any;
    emptyId.node.id = '';
    assert.deepEqual(envoyBootstrapProblems(emptyId).map((p) => p.path), ['node.id']);

    const noName = envoyBootstrap(base) as any;
    noName.static_resources.clusters[0].name = '';
    noName.dynamic_resources.ads_config.grpc_services[0].envoy_grpc.cluster_name = '';
    assert.deepEqual(envoyBootstrapProblems(noName).map((p) => p.path).sort(), [
      'dynamic_resources.ads_config.grpc_services[0].envoy_grpc.cluster_name',
      'static_resources.clusters[0].name',
    ]);

    const unknown = envoyBootstrap(base) as any;
    unknown.static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].endpoint.adress = 'x';
    assert.throws(() => assertValidEnvoyBootstrap(unknown), (err: unknown) => {
      assert.ok(err instanceof EnvoyValidationError);
      assert.equal(err.problems[0].path, 'static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].endpoint.adress');
      assert.match(err.message, /unknown field: envoy\.config\.endpoint\.v3\.Endpoint has no field "adress"/);
      return true;
    });

    const inAny = envoyBootstrap({ ...base, caFile: 'b.pem' }) as any;
    inAny.static_resources.clusters[0].transport_socket.typed_config.common_tls_context.validation_context.trusted_cas = {};
    assert.match(show(envoyBootstrapProblems(inAny)), /transport_socket\.typed_config\.common_tls_context\.validation_context\.trusted_cas: unknown field/);

    const badEnum = envoyBootstrap(base) as any;
    badEnum.dynamic_resources.ads_config.api_type = 'DELTA';
    assert.match(show(envoyBootstrapProblems(badEnum)), /dynamic_resources\.ads_config\.api_type: must be one of .*DELTA_GRPC/);

    const zero = envoyBootstrap(base) as any;
    zero.static_resources.clusters[0].connect_timeout = '0s';
    assert.match(show(envoyBootstrapProblems(zero)), /static_resources\.clusters\[0\]\.connect_timeout: must be > 0s/);

    const header = envoyBootstrap({ ...base, joinToken: 't' }) as any;
    header.dynamic_resources.ads_config.grpc_services[0].initial_metadata[0].key = '';
    assert.match(show(envoyBootstrapProblems(header)), /initial_metadata\[0\]\.key: needs at least 1 character/);
  });

  test('(validate.required) oneofs and repeated min_items are checked', () => {
    const noTarget = envoyBootstrap(base) as any;
    noTarget.dynamic_resources.ads_config.grpc_services[0] = { timeout: '1s' };
    assert.match(show(envoyBootstrapProblems(noTarget)), /grpc_services\[0\]\.target_specifier: one of envoy_grpc, google_grpc is required/);
    const noSource = envoyBootstrap(base) as any;
    noSource.dynamic_resources.cds_config = { resource_api_version: 'V3' };
    assert.match(show(envoyBootstrapProblems(noSource)), /dynamic_resources\.cds_config\.config_source_specifier: one of .*ads.* is required/);
    const routes = envoyMessageType(TYPE_URL.RouteConfiguration);
    const split = { name: 'r', virtual_hosts: [{ name: 'v', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { weighted_clusters: { clusters: [] } } }] }] };
    assert.deepEqual(pgvProblems(routes, decodedTree(routes, encodeMessage(TYPE_URL.RouteConfiguration, split))), [
      { path: 'virtual_hosts[0].routes[0].route.weighted_clusters.clusters', message: 'needs at least 1 item(s), has 0' },
    ]);
  });
});

describe('what weft serves passes Envoy\'s protoc-gen-validate rules', () => {
  for (const [label, node] of [
    ['a sidecar of storefront (demo mesh)', sidecar({ service: 'storefront', zone: 'a' })],
    ['a sidecar of order, custom ports (demo mesh)', sidecar({ service: 'order', outboundPort: 16001, inboundPort: 16006, appPort: 18082 })],
    ['a proxyless client of storefront (demo mesh)', proxyless({ service: 'storefront' })],
    ['an Envoy of storefront with a local SDS server (demo mesh)', sidecar({ service: 'storefront', localSds: true })],
  ] as const) {
    test(label, () => {
      const { problems, counted } = checkServed(demoMesh(), node);
      const { known, others } = withoutKnown(problems);
      assert.equal(show(others), '');
      // order's TrafficPolicy limits by source (examples/mesh/policies.yaml): the known finding, on each inbound chain.
      assert.equal(known.length > 0, node.service === 'order', show(known));
      assert.ok(known.every((p) => p.path.startsWith('Listener[inbound].')), show(known));
      for (const t of [TYPE_URL.Listener, TYPE_URL.RouteConfiguration, TYPE_URL.Cluster, TYPE_URL.ClusterLoadAssignment]) assert.ok((counted.get(t) ?? 0) > 0, `checked some ${t}`);
    });
  }

  test('the translator fixture mesh (routes, gRPC, TCP, policies): every node kind', () => {
    const view = meshView(fixture('mesh.yaml'));
    for (const node of [sidecar({ service: 'api' }), sidecar({ service: 'web' }), sidecar(), proxyless(), proxyless({ service: 'web' })]) {
      const { problems } = checkServed(view, node);
      assert.equal(show(withoutKnown(problems).others), '', `${node.role} ${node.service ?? '(no service)'}`);
    }
  });

  test('the Secrets: the trust bundle (ROOTCA) and a workload certificate', () => {
    const type = envoyMessageType(TYPE_URL.Secret);
    const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
    for (const secret of [trustBundleSecret('ROOTCA', pem), certificateSecret('default', pem)]) {
      assert.deepEqual(pgvProblems(type, decodedTree(type, encodeMessage(TYPE_URL.Secret, secret))), []);
    }
  });

  test('the checker finds a violation in a served resource shape (it can fail)', () => {
    const type = envoyMessageType(TYPE_URL.Cluster);
    const bad = { name: '', type: 'EDS', eds_cluster_config: { eds_config: { resource_api_version: 'V3' } }, connect_timeout: { seconds: -1 } };
    const paths = pgvProblems(type, decodedTree(type, encodeMessage(TYPE_URL.Cluster, bad))).map((p) => p.path);
    assert.deepEqual(paths.sort(), ['connect_timeout', 'eds_cluster_config.eds_config.config_source_specifier', 'name']);
  });
});
