// translate() is pure and deterministic: the same input gives byte-identical
// resources, whatever order the view lists things in.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { translate } from '../../src/translate/translate';
import type { MeshView, NodeInfo, ResourceSet } from '../../src/translate/types';
import { encodeMessage } from '../../src/xds/protos';
import { XDS_RESOURCE_TYPES } from '../../src/xds/type-urls';
import { fixture, meshView, proxyless, roundTrip, sidecar } from './helpers';

/** Every resource as [type, name, hex bytes], in the set's own order. */
function encoded(set: ResourceSet): [string, string, string][] {
  const out: [string, string, string][] = [];
  for (const [typeUrl, byName] of set) {
    for (const [name, item] of byName) out.push([typeUrl, name, encodeMessage(typeUrl, item.resource).toString('hex')]);
  }
  return out;
}

function reversed(view: MeshView): MeshView {
  return {
    services: [...view.services].reverse(),
    httpRoutes: [...view.httpRoutes].reverse(),
    grpcRoutes: [...view.grpcRoutes].reverse(),
    tcpRoutes: [...view.tcpRoutes].reverse(),
    trafficPolicies: [...view.trafficPolicies].reverse(),
    meshTls: [...view.meshTls].reverse(),
    authorizationPolicies: [...view.authorizationPolicies].reverse(),
    requestAuthentications: [...view.requestAuthentications].reverse(),
    endpoints: new Map([...view.endpoints].reverse().map(([k, v]) => [k, [...v].reverse()])),
  };
}

const NODES: NodeInfo[] = [
  sidecar(),
  sidecar({ service: 'api', zone: 'zone-a' }),
  proxyless(),
  proxyless({ service: 'greeter', zone: 'zone-b' }),
  proxyless({ namespace: 'other' }),
];

for (const node of NODES) {
  test(`${node.role} ${node.service ?? '-'} ${node.zone ?? ''}: twice, and in reverse input order, the same bytes`, () => {
    const view = meshView(fixture('mesh.yaml'));
    const first = encoded(translate(view, node));
    assert.deepEqual(encoded(translate(view, node)), first);
    assert.deepEqual(encoded(translate(reversed(view), node)), first);
    assert.ok(first.length > 10);
  });
}

test('every type is present, resources sorted by name, and each round-trips', () => {
  const set = translate(meshView(fixture('mesh.yaml')), sidecar({ service: 'api' }));
  assert.deepEqual([...set.keys()], [...XDS_RESOURCE_TYPES]);
  for (const byName of set.values()) {
    const names = [...byName.keys()];
    assert.deepEqual(names, [...names].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
  }
  roundTrip(set);
});

test('the view is not modified', () => {
  const view = meshView(fixture('mesh.yaml'));
  const before = JSON.stringify({ ...view, endpoints: [...view.endpoints] });
  for (const node of NODES) translate(view, node);
  assert.equal(JSON.stringify({ ...view, endpoints: [...view.endpoints] }), before);
});
