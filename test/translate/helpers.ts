// Shared by the translator tests: a MeshView from YAML (validated by the
// real schemas, defaults applied), nodes, and a strict round trip of every
// resource (field names checked, encoded, decoded with enums as names).
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { KINDS, metadataSchema, type Kind, type Resource } from '../../src/config/kinds';
import { translate } from '../../src/translate/translate';
import type { Endpoint, MeshView, NodeInfo, ResourceSet } from '../../src/translate/types';
import { decodeMessage, encodeMessage } from '../../src/xds/protos';
import { TYPE_URL } from '../../src/xds/type-urls';

export type Obj = Record<string, any>;

/** Resources from a YAML stream, each validated by its kind's schema. */
export function parseResources(yamlText: string): Resource[] {
  return parseAllDocuments(yamlText)
    .map((d) => d.toJS())
    .filter((doc) => doc)
    .map((doc) => {
      const kind = doc.kind as Kind;
      assert.ok(KINDS[kind], `unknown kind ${doc.kind}`);
      return {
        apiVersion: doc.apiVersion ?? KINDS[kind].apiVersion,
        kind,
        metadata: metadataSchema.parse(doc.metadata),
        spec: KINDS[kind].spec.parse(doc.spec),
      } as Resource;
    });
}

/** A fixture file of test/fixtures/translate (tests run from dist/test/translate). */
export function fixture(name: string): string {
  return fs.readFileSync(path.join(__dirname, '..', '..', '..', 'test', 'fixtures', 'translate', name), 'utf8');
}

export type EndpointSpec = Partial<Endpoint> & { address: string; ports: Record<string, number> };

/**
 * A MeshView of the YAML resources. Endpoints: "namespace/name" → endpoints;
 * static endpoints of the Service specs are added the way the registry
 * does (every service port at the endpoint's port or the port's own).
 */
export function meshView(yamlText: string, endpoints: Record<string, EndpointSpec[]> = {}): MeshView {
  const resources = parseResources(yamlText);
  const of = <K extends Kind>(kind: K) => resources.filter((r): r is Resource<K> => r.kind === kind);
  const eps = new Map<string, Endpoint[]>();
  for (const s of of('Service')) {
    const key = `${s.metadata.namespace}/${s.metadata.name}`;
    const fromSpec = (s.spec.endpoints ?? []).map(
      (e): Endpoint => ({
        address: e.address,
        ports: Object.fromEntries(s.spec.ports.map((p) => [p.name, e.ports?.[p.name] ?? e.port ?? p.targetPort ?? p.port])),
        labels: e.labels ?? {},
        ...(e.zone ? { zone: e.zone } : {}),
        weight: e.weight ?? 1,
        health: 'healthy',
        origin: 'static',
      }),
    );
    if (fromSpec.length) eps.set(key, fromSpec);
  }
  for (const [key, list] of Object.entries(endpoints)) {
    eps.set(key, [
      ...(eps.get(key) ?? []),
      ...list.map((e, i): Endpoint => ({ labels: {}, weight: 1, health: 'healthy', origin: `reg-${i}`, ...e })),
    ]);
  }
  return {
    services: of('Service'),
    httpRoutes: of('HTTPRoute'),
    grpcRoutes: of('GRPCRoute'),
    tcpRoutes: of('TCPRoute'),
    trafficPolicies: of('TrafficPolicy'),
    meshTls: of('MeshTLS'),
    authorizationPolicies: of('AuthorizationPolicy'),
    requestAuthentications: of('RequestAuthentication'),
    plugins: of('Plugin'),
    endpoints: eps,
  };
}

export function sidecar(extra: Partial<NodeInfo> = {}): NodeInfo {
  return { id: 'sidecar-1', role: 'sidecar', namespace: 'default', ...extra };
}

export function proxyless(extra: Partial<NodeInfo> = {}): NodeInfo {
  return { id: 'client-1', role: 'proxyless', namespace: 'default', ...extra };
}

/** A service YAML document with one port. */
export function service(name: string, port = 8080, protocol = 'http', extra = ''): string {
  return `apiVersion: weft.dev/v1
kind: Service
metadata: { name: ${name} }
spec:
  ports: [{ name: ${protocol === 'grpc' ? 'grpc' : 'p'}, port: ${port}, protocol: ${protocol} }]
${extra}---
`;
}

/**
 * Every resource of the set, checked and round-tripped: no unknown field
 * (protobufjs would drop it silently), encodes, decodes. Returns the decoded
 * resources by type URL and name, enums as names, nested Anys left as bytes.
 */
export function roundTrip(set: ResourceSet): Map<string, Map<string, Obj>> {
  const out = new Map<string, Map<string, Obj>>();
  for (const [typeUrl, byName] of set) {
    const decoded = new Map<string, Obj>();
    for (const [name, item] of byName) {
      assert.equal(item.name, name);
      const bytes = encodeMessage(typeUrl, item.resource);
      const message = decodeMessage(typeUrl, bytes);
      const nameField = typeUrl === TYPE_URL.ClusterLoadAssignment ? 'cluster_name' : 'name';
      assert.equal(message[nameField], name, `${typeUrl} ${name}: the resource carries its name`);
      decoded.set(name, message);
    }
    out.set(typeUrl, decoded);
  }
  return out;
}

/** Translates and round-trips: the decoded resources of the node. */
export function resourcesFor(view: MeshView, node: NodeInfo): Decoded {
  return new Decoded(roundTrip(translate(view, node)));
}

export class Decoded {
  constructor(readonly byType: Map<string, Map<string, Obj>>) {}

  names(typeUrl: string): string[] {
    return [...(this.byType.get(typeUrl)?.keys() ?? [])];
  }

  get(typeUrl: string, name: string): Obj {
    const r = this.byType.get(typeUrl)?.get(name);
    assert.ok(r, `no ${typeUrl.split('.').pop()} named "${name}"; have: ${this.names(typeUrl).join(', ')}`);
    return r;
  }

  cluster(name: string): Obj {
    return this.get(TYPE_URL.Cluster, name);
  }

  endpoints(name: string): Obj {
    return this.get(TYPE_URL.ClusterLoadAssignment, name);
  }

  listener(name: string): Obj {
    return this.get(TYPE_URL.Listener, name);
  }

  routeConfig(name: string): Obj {
    return this.get(TYPE_URL.RouteConfiguration, name);
  }

  /** The routes of a virtual host of a route config. */
  routes(routeConfig: string, virtualHost: string): Obj[] {
    const vh = (this.routeConfig(routeConfig).virtual_hosts ?? []).find((v: Obj) => v.name === virtualHost);
    assert.ok(vh, `no virtual host ${virtualHost} in ${routeConfig}`);
    return vh.routes ?? [];
  }
}

/** A nested Any decoded as its own type. */
export function unpack(any: { type_url: string; value: Uint8Array }): Obj {
  return decodeMessage(any.type_url, any.value);
}

/** Asserts every key of `expected` (recursively) has the same value in `actual`; other keys are ignored. */
export function assertSubset(actual: unknown, expected: unknown, where = '$'): void {
  if (expected === null || typeof expected !== 'object') {
    assert.deepEqual(actual, expected, `${where}: ${JSON.stringify(actual)} ≠ ${JSON.stringify(expected)}`);
    return;
  }
  if (Array.isArray(expected)) {
    assert.ok(Array.isArray(actual), `${where}: expected an array, got ${JSON.stringify(actual)}`);
    assert.equal(actual.length, expected.length, `${where}: length of ${JSON.stringify(actual)}`);
    expected.forEach((e, i) => assertSubset(actual[i], e, `${where}[${i}]`));
    return;
  }
  assert.ok(actual && typeof actual === 'object', `${where}: expected an object, got ${JSON.stringify(actual)}`);
  for (const [k, v] of Object.entries(expected)) assertSubset((actual as Obj)[k], v, `${where}.${k}`);
}

/** The route of a decoded route list by name. */
export function routeNamed(routes: Obj[], name: string): Obj {
  const r = routes.find((x) => x.name === name);
  assert.ok(r, `no route ${name}; have ${routes.map((x) => x.name).join(', ')}`);
  return r;
}
