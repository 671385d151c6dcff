// An edge's mTLS state from config, checked against what the translator
// actually gives the caller's sidecar: the cluster's transport_socket_matches
// and the tlsMode metadata of each endpoint (Envoy's auto mTLS).
import { describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { edgeSecurity, withEdgeSecurity } from '../../src/observe/edge-security';
import type { Topology } from '../../src/observe/topology';
import type { MeshView } from '../../src/translate/types';
import { meshView, resourcesFor, service, sidecar, type Obj } from '../translate/helpers';

const meshTls = (name: string, spec: string, namespace = 'default') => `apiVersion: weft.dev/v1
kind: MeshTLS
metadata: { name: ${name}, namespace: ${namespace} }
spec: ${spec}
---
`;
const BASE = service('web', 8080) + service('api', 8081) + service('legacy', 8082, 'http', '  endpoints: [{ address: 10.0.9.1 }]\n');
const REGISTERED = {
  'default/api': [
    { address: '10.0.0.2', ports: { p: 15006 }, sidecar: true },
    { address: '10.0.0.3', ports: { p: 15006 }, sidecar: true },
  ],
};

/** What the caller's sidecar is told: per endpoint of the destination, does a TLS transport socket match it? */
function translatedTls(view: MeshView, caller: string, cluster: string): boolean[] {
  const d = resourcesFor(view, sidecar({ service: caller }));
  const matches = (d.cluster(cluster).transport_socket_matches ?? []) as Obj[];
  const tlsFor = (meta: Obj | undefined) => matches.some((m) => Object.entries(m.match?.fields ?? {}).every(([k, v]) => (meta?.fields?.[k] as Obj)?.stringValue === (v as Obj).stringValue));
  return d.endpoints(cluster).endpoints.flatMap((l: Obj) => l.lb_endpoints.map((e: Obj) => tlsFor(e.metadata?.filter_metadata?.['envoy.transport_socket_match'])));
}

describe('edge security', () => {
  test('every endpoint behind a sidecar: mtls, and the translator gives the caller TLS to each of them', () => {
    const view = meshView(BASE, REGISTERED);
    const s = edgeSecurity(view, 'web.default', 'api.default');
    assert.deepEqual({ security: s?.security, tlsMode: s?.tlsMode }, { security: 'mtls', tlsMode: 'permissive' });
    assert.match(s!.securityReason, /all 2 endpoints have a sidecar/);
    assert.deepEqual(translatedTls(view, 'web', 'outbound|8081||api.default'), [true, true]);
  });

  test('a static endpoint (no sidecar): plaintext, and the translator agrees', () => {
    const view = meshView(BASE);
    const s = edgeSecurity(view, 'web.default', 'legacy.default');
    assert.equal(s?.security, 'plaintext');
    assert.match(s!.securityReason, /its endpoint has no sidecar/);
    assert.deepEqual(translatedTls(view, 'web', 'outbound|8082||legacy.default'), [false]);
  });

  test('strict MeshTLS (its own or the namespace\'s) is reported; strict with an endpoint that has no sidecar is still plaintext to it', () => {
    const own = edgeSecurity(meshView(BASE + meshTls('api-strict', '{ targetRef: { name: api }, mode: strict }'), REGISTERED), 'web.default', 'api.default');
    assert.deepEqual([own?.security, own?.tlsMode], ['mtls', 'strict']);
    assert.match(own!.securityReason, /plaintext refused/);
    const nsWide = edgeSecurity(meshView(BASE + meshTls('all', '{ mode: strict }'), REGISTERED), 'web.default', 'api.default');
    assert.equal(nsWide?.tlsMode, 'strict');
    const otherNs = edgeSecurity(meshView(BASE + meshTls('all', '{ mode: strict }', 'other'), REGISTERED), 'web.default', 'api.default');
    assert.equal(otherNs?.tlsMode, 'permissive', 'a MeshTLS of another namespace does not apply');
    // The service's own MeshTLS wins over its namespace's.
    const both = edgeSecurity(meshView(BASE + meshTls('all', '{ mode: strict }') + meshTls('api-open', '{ targetRef: { name: api }, mode: permissive }'), REGISTERED), 'web.default', 'api.default');
    assert.equal(both?.tlsMode, 'permissive');

    const mixedView = meshView(BASE + meshTls('api-strict', '{ targetRef: { name: api }, mode: strict }'), {
      'default/api': [...REGISTERED['default/api'], { address: '10.0.0.4', ports: { p: 8081 } }],
    });
    const mixed = edgeSecurity(mixedView, 'web.default', 'api.default');
    assert.equal(mixed?.security, 'plaintext');
    assert.match(mixed!.securityReason, /1 of 3 endpoints have no sidecar.*enforced only by a sidecar/);
    assert.deepEqual(translatedTls(mixedView, 'web', 'outbound|8081||api.default').sort(), [false, true, true]);
  });

  test('draining endpoints do not count; no endpoints, an undeclared destination or an unknown caller: no answer', () => {
    const view = meshView(BASE, { 'default/api': [...REGISTERED['default/api'], { address: '10.0.0.9', ports: { p: 8081 }, health: 'draining' }] });
    assert.equal(edgeSecurity(view, 'web.default', 'api.default')?.security, 'mtls');
    assert.equal(edgeSecurity(meshView(BASE), 'web.default', 'api.default'), undefined, 'api has no endpoints');
    assert.equal(edgeSecurity(view, 'web.default', 'ghost.default'), undefined);
    assert.equal(edgeSecurity(view, '-', 'api.default'), undefined);
  });

  test('withEdgeSecurity decorates a copy: the observer\'s topology keeps its shape', () => {
    const view = meshView(BASE, REGISTERED);
    const t: Topology = {
      at: new Date().toISOString(),
      windowSeconds: 10,
      services: [],
      edges: [
        { source: 'web.default', destination: 'api.default', rps: 1, requests: 10 },
        { source: 'web.default', destination: 'legacy.default', rps: 1, requests: 10 },
        { source: 'web.default', destination: 'ghost.default', rps: 1, requests: 10 },
      ],
      unreachable: [],
    };
    const d = withEdgeSecurity(view, t);
    assert.deepEqual(d.edges.map((e) => e.security), ['mtls', 'plaintext', undefined]);
    assert.equal(t.edges[0].security, undefined);
  });
});
