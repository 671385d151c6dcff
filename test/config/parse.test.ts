import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError, KIND_NAMES, loadConfigPath, parseDocuments, parseResource, type Resource } from '../../src/config';
import { BASE_KEYS, FIXTURES, keys, loadYaml, onlyError, withBase } from './support';

const ROUTE_OK = `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: ok }
spec:
  parentRefs: [{ name: web, port: 80 }]
  rules: [{ backendRefs: [{ name: web, port: 80 }] }]`;

test('a valid multi-document file of every kind (the canary example) loads without errors', async () => {
  const file = join(FIXTURES, 'valid-mesh.yaml');
  const { resources, errors, files } = await loadConfigPath(file);
  assert.deepEqual(errors.map((e) => e.message), []);
  assert.deepEqual(files, [file]);
  assert.deepEqual([...new Set(resources.map((r) => r.kind))].sort(), [...KIND_NAMES].sort());

  const canary = resources.find((r) => r.kind === 'GRPCRoute') as Resource<'GRPCRoute'>;
  assert.equal(canary.metadata.namespace, 'default', 'namespace defaults to "default"');
  assert.deepEqual(canary.spec.parentRefs, [{ kind: 'Service', name: 'greeter', port: 50051 }]);
  assert.deepEqual(
    canary.spec.rules[0].backendRefs?.map((b) => [b.name, b.weight]),
    [['greeter-v1', 80], ['greeter-v2', 20]],
  );
  const redirect = (resources.find((r) => r.kind === 'HTTPRoute') as Resource<'HTTPRoute'>).spec.rules[0].filters?.[0];
  assert.equal(redirect?.type === 'RequestRedirect' && redirect.requestRedirect.statusCode, 301);
});

test('the error message names file, document, resource, field, expectation and value', () => {
  const text = [
    'apiVersion: weft.dev/v1\nkind: Service\nmetadata: { name: web }\nspec: { ports: [{ name: http, port: 80, protocol: http }] }',
    'apiVersion: weft.dev/v1\nkind: Service\nmetadata: { name: api }\nspec: { ports: [{ name: http, port: 80, protocol: http }] }',
    `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: shop }
spec:
  parentRefs: [{ name: web }]
  rules:
    - backendRefs:
        - { name: web, port: 80 }
        - { name: api, port: 80, weight: -5 }`,
  ].join('\n---\n');
  const { resources, errors } = parseDocuments(text, 'examples/mesh/routes.yaml');
  const e = onlyError(errors, { code: 'E_SCHEMA', file: 'examples/mesh/routes.yaml', document: 2, path: 'spec.rules[0].backendRefs[1].weight' });
  assert.equal(
    e.message,
    'examples/mesh/routes.yaml: document 2 (HTTPRoute default/shop): spec.rules[0].backendRefs[1].weight: expected an integer >= 0, got -5',
  );
  assert.equal(e.expected, 'an integer >= 0');
  assert.equal(e.line, 19);
  assert.deepEqual(e.resource, { kind: 'HTTPRoute', namespace: 'default', name: 'shop' });
  assert.deepEqual(keys(resources), ['Service/default/web', 'Service/default/api']);
  const json = JSON.parse(JSON.stringify(e));
  assert.equal(json.code, 'E_SCHEMA');
  assert.equal(json.path, 'spec.rules[0].backendRefs[1].weight');
  assert.equal(json.document, 2);
  assert.equal(json.message, e.message);
});

test('malformed YAML names file, document and line; the other documents still load', async () => {
  const { file, resources, errors } = await loadYaml(withBase('apiVersion: weft.dev/v1\nkind: Service: x\n', ROUTE_OK));
  const e = onlyError(errors, { code: 'E_YAML', file, document: 3, path: undefined });
  // BASE is lines 1-21 (it starts and ends with a newline), "---" is line 22.
  assert.deepEqual([e.line, e.column], [24, 7]);
  assert.match(e.message, /mesh\.yaml: document 3: line 24, column 7: Nested mappings are not allowed/);
  assert.deepEqual(keys(resources), [...BASE_KEYS, 'HTTPRoute/default/ok']);
});

test('duplicate keys in one YAML mapping are a syntax error', () => {
  const { resources, errors } = parseDocuments('apiVersion: weft.dev/v1\nkind: Service\nkind: Service\n', 'dup.yaml');
  const e = onlyError(errors, { code: 'E_YAML', file: 'dup.yaml', document: 0, path: undefined });
  assert.equal(e.line, 3);
  assert.match(e.detail, /unique/);
  assert.equal(resources.length, 0);
});

test('empty documents are skipped but keep their index', () => {
  const text = `---\n# nothing here\n---\n${ROUTE_OK.replace('name: ok', 'name: Bad')}\n---\n---\n${ROUTE_OK}\n`;
  const { resources, errors } = parseDocuments(text, 'r.yaml');
  onlyError(errors, { code: 'E_SCHEMA', file: 'r.yaml', document: 1, path: 'metadata.name' });
  assert.deepEqual(keys(resources), ['HTTPRoute/default/ok']);
});

test('an unknown kind is an error listing the known kinds', async () => {
  const { file, resources, errors } = await loadYaml(withBase('apiVersion: weft.dev/v1\nkind: VirtualService\nmetadata: { name: x }\nspec: {}', ROUTE_OK));
  const e = onlyError(errors, { code: 'E_UNKNOWN_KIND', file, document: 3, path: 'kind' });
  for (const kind of KIND_NAMES) assert.ok(e.expected?.includes(kind), `${kind} in ${e.expected}`);
  assert.match(e.message, /unknown kind "VirtualService"/);
  assert.deepEqual(keys(resources), [...BASE_KEYS, 'HTTPRoute/default/ok']);
});

test('a wrong apiVersion names the expected one', async () => {
  const { file, resources, errors } = await loadYaml(withBase(ROUTE_OK.replace('gateway.networking.k8s.io/v1', 'gateway.networking.k8s.io/v1beta1'), ROUTE_OK.replace('name: ok', 'name: ok2')));
  const e = onlyError(errors, { code: 'E_API_VERSION', file, document: 3, path: 'apiVersion' });
  assert.equal(e.expected, 'gateway.networking.k8s.io/v1');
  assert.match(e.message, /expected apiVersion "gateway\.networking\.k8s\.io\/v1" for kind HTTPRoute, got "gateway\.networking\.k8s\.io\/v1beta1"/);
  assert.deepEqual(keys(resources), [...BASE_KEYS, 'HTTPRoute/default/ok2']);
});

test('TCPRoute wants v1alpha2', () => {
  const doc = 'apiVersion: gateway.networking.k8s.io/v1\nkind: TCPRoute\nmetadata: { name: t }\nspec: { parentRefs: [{ name: db }], rules: [{ backendRefs: [{ name: db }] }] }';
  const e = onlyError(parseDocuments(doc, 't.yaml').errors, { code: 'E_API_VERSION', file: 't.yaml', document: 0, path: 'apiVersion' });
  assert.equal(e.expected, 'gateway.networking.k8s.io/v1alpha2');
});

test('an unknown top-level field is an error', async () => {
  const { file, resources, errors } = await loadYaml(withBase(`${ROUTE_OK}\nstatus: {}`, ROUTE_OK.replace('name: ok', 'name: ok2')));
  const e = onlyError(errors, { code: 'E_SCHEMA', file, document: 3, path: 'status' });
  assert.match(e.message, /unknown field 'status'/);
  assert.deepEqual(keys(resources), [...BASE_KEYS, 'HTTPRoute/default/ok2']);
});

test('an unknown field in metadata is an error', async () => {
  const { file, resources, errors } = await loadYaml(withBase(ROUTE_OK.replace('{ name: ok }', '{ name: ok, lables: { a: b } }')));
  const e = onlyError(errors, { code: 'E_SCHEMA', file, document: 3, path: 'metadata.lables' });
  assert.match(e.detail, /^unknown field 'lables' \(expected one of the fields name, namespace, labels, annotations\)$/);
  assert.deepEqual(keys(resources), BASE_KEYS);
});

test('an unknown field deep in spec is an error pointing at its line', async () => {
  const doc = ROUTE_OK.replace('{ name: web, port: 80 }] }]', '{ name: web, port: 80, wieght: 3 }] }]');
  const { file, resources, errors } = await loadYaml(withBase(ROUTE_OK.replace('name: ok', 'name: ok0'), doc));
  const e = onlyError(errors, { code: 'E_SCHEMA', file, document: 4, path: 'spec.rules[0].backendRefs[0].wieght' });
  assert.match(e.detail, /unknown field 'wieght'.*weight/);
  assert.equal(e.line, 37);
  assert.deepEqual(keys(resources), [...BASE_KEYS, 'HTTPRoute/default/ok0']);
});

test('a negative weight is an error', async () => {
  const { file, resources, errors } = await loadYaml(withBase(ROUTE_OK.replace('port: 80 }] }]', 'port: 80, weight: -1 }] }]'), ROUTE_OK));
  const e = onlyError(errors, { code: 'E_SCHEMA', file, document: 3, path: 'spec.rules[0].backendRefs[0].weight' });
  assert.equal(e.detail, 'expected an integer >= 0, got -1');
  assert.deepEqual(keys(resources), [...BASE_KEYS, 'HTTPRoute/default/ok']);
});

for (const [port, detail] of [
  [0, 'expected an integer >= 1, got 0'],
  [70000, 'expected an integer <= 65535, got 70000'],
  [80.5, 'expected an integer from 1 to 65535, got 80.5'],
  ['"80"', 'expected an integer from 1 to 65535, got "80"'],
] as const) {
  test(`service port ${port} is an error`, async () => {
    const svc = `apiVersion: weft.dev/v1\nkind: Service\nmetadata: { name: bad }\nspec:\n  ports: [{ name: http, port: ${port}, protocol: http }]`;
    const { file, resources, errors } = await loadYaml(withBase(svc, ROUTE_OK));
    const e = onlyError(errors, { code: 'E_SCHEMA', file, document: 3, path: 'spec.ports[0].port' });
    assert.equal(e.detail, detail);
    assert.deepEqual(keys(resources), [...BASE_KEYS, 'HTTPRoute/default/ok']);
  });
}

test('a missing required field says what belongs there', () => {
  const doc = 'apiVersion: weft.dev/v1\nkind: Service\nmetadata: { name: s }\nspec:\n  ports: [{ name: http, protocol: http }]';
  const e = onlyError(parseDocuments(doc, 's.yaml').errors, { code: 'E_SCHEMA', file: 's.yaml', document: 0, path: 'spec.ports[0].port' });
  assert.equal(e.detail, 'expected an integer from 1 to 65535, but the field is missing');
});

test('a missing top-level field and a document that is not a mapping are errors', () => {
  const { resources, errors } = parseDocuments(`- a\n- b\n---\napiVersion: weft.dev/v1\nkind: MeshTLS\nmetadata: { name: m }\n---\n${ROUTE_OK}`, 'x.yaml');
  assert.deepEqual(
    errors.map((e) => [e.code, e.document, e.path, e.detail]),
    [
      ['E_SCHEMA', 0, undefined, 'expected a mapping with fields apiVersion, kind, metadata, spec, got a list'],
      ['E_SCHEMA', 1, 'spec', 'expected a mapping, but the field is missing'],
    ],
  );
  assert.deepEqual(keys(resources), ['HTTPRoute/default/ok']);
});

test('enums, literal unions and discriminated unions list the allowed values', () => {
  const doc = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: r }
spec:
  parentRefs: [{ name: web }]
  rules:
    - filters:
        - { type: RequestRedirect, requestRedirect: { statusCode: 305 } }
        - { type: Rewrite }
      matches: [{ method: FETCH }]`;
  const { resources, errors } = parseDocuments(doc, 'r.yaml');
  assert.deepEqual(
    errors.map((e) => [e.path, e.detail]),
    [
      ['spec.rules[0].filters[0].requestRedirect.statusCode', 'expected one of 301, 302, 303, 307, 308, got 305'],
      [
        'spec.rules[0].filters[1].type',
        'expected one of "RequestHeaderModifier", "ResponseHeaderModifier", "RequestRedirect", "URLRewrite", "RequestMirror", got "Rewrite"',
      ],
      ['spec.rules[0].matches[0].method', 'expected one of "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", got "FETCH"'],
    ],
  );
  assert.equal(resources.length, 0);
});

test('a union without discriminator reports the branch the user meant', () => {
  const doc = `apiVersion: weft.dev/v1
kind: TrafficPolicy
metadata: { name: p }
spec:
  targetRef: { name: web }
  loadBalancer: { type: RingHash, hashOn: [{ header: "bad header" }, { query: q }] }`;
  const { errors } = parseDocuments(doc, 'p.yaml');
  assert.deepEqual(
    errors.map((e) => [e.path, e.detail]),
    [
      ['spec.loadBalancer.hashOn[0].header', 'expected an HTTP header name (RFC 9110 token), got "bad header"'],
      ['spec.loadBalancer.hashOn[1]', 'expected one of {header}, {cookie}, {sourceIP}, got a mapping'],
    ],
  );
});

test('every zod issue of a document becomes its own error', () => {
  const doc = `apiVersion: weft.dev/v1
kind: Service
metadata: { name: Web_1, namespace: "" }
spec:
  ports: []
  endpoints: "none"`;
  const { errors } = parseDocuments(doc, 's.yaml');
  assert.deepEqual(
    errors.map((e) => [e.path, e.expected]),
    [
      ['metadata.name', 'a lowercase DNS label (a-z, 0-9, "-"; starts and ends alphanumeric)'],
      ['metadata.namespace', 'a lowercase DNS label (a-z, 0-9, "-"; starts and ends alphanumeric)'],
      ['spec.ports', 'a non-empty list'],
      ['spec.endpoints', 'a list'],
    ],
  );
  assert.ok(errors.every((e) => e instanceof ConfigError && e.code === 'E_SCHEMA' && e.document === 0));
});

test('parseResource checks an already-decoded object the same way', () => {
  const good = parseResource({
    apiVersion: 'weft.dev/v1',
    kind: 'MeshTLS',
    metadata: { name: 'm', namespace: 'shop' },
    spec: { mode: 'strict' },
  });
  assert.deepEqual(good.errors, []);
  assert.deepEqual(good.resource, { apiVersion: 'weft.dev/v1', kind: 'MeshTLS', metadata: { name: 'm', namespace: 'shop' }, spec: { mode: 'strict' } });

  const bad = parseResource(
    { apiVersion: 'weft.dev/v1', kind: 'MeshTLS', metadata: { name: 'm' }, spec: { mode: 'STRICT', extra: true } },
    { document: 0 },
  );
  assert.equal(bad.resource, undefined);
  assert.deepEqual(
    bad.errors.map((e) => [e.code, e.file, e.document, e.path]),
    [
      ['E_SCHEMA', undefined, 0, 'spec.mode'],
      ['E_SCHEMA', undefined, 0, 'spec.extra'],
    ],
  );
  assert.equal(bad.errors[0].message, 'document 0 (MeshTLS default/m): spec.mode: expected one of "permissive", "strict", got "STRICT"');
  assert.equal(parseResource({ apiVersion: 'weft.dev/v1', kind: 'MeshTLS', metadata: { name: 'm' }, spec: { mode: 'strict' } }, {}).errors.length, 0);
  assert.equal(parseResource('text').errors[0].message, 'expected a mapping with fields apiVersion, kind, metadata, spec, got "text"');
});

test('labels with dotted keys get a quoted path segment', () => {
  const doc = { apiVersion: 'weft.dev/v1', kind: 'MeshTLS', metadata: { name: 'm', labels: { 'app.kubernetes.io/name': 5 } }, spec: { mode: 'strict' } };
  const e = onlyError(parseResource(doc, { file: 'api' }).errors, { code: 'E_SCHEMA', file: 'api', document: undefined, path: 'metadata.labels["app.kubernetes.io/name"]' });
  assert.equal(e.detail, 'expected a string, got 5');
});

test('a directory is read recursively in sorted order, skipping dotfiles and non-YAML files', async () => {
  const dir = join(FIXTURES, 'mesh-dir');
  const { files, resources, errors } = await loadConfigPath(dir);
  assert.deepEqual(files, [join(dir, 'routes', 'web.yml'), join(dir, 'services.yaml')]);
  // The route in routes/web.yml refers to a Service of services.yaml: the set is validated as a whole.
  const e = onlyError(errors, { code: 'E_REFERENCE', file: join(dir, 'routes', 'web.yml'), document: 1, path: 'spec.rules[0].backendRefs[0].name' });
  assert.match(e.detail, /Service default\/api does not exist/);
  assert.deepEqual(keys(resources), ['HTTPRoute/default/web', 'Service/default/web']);
});

test('a path that does not exist is an E_IO error', async () => {
  const missing = join(FIXTURES, 'no-such-dir');
  const { files, resources, errors } = await loadConfigPath(missing);
  onlyError(errors, { code: 'E_IO', file: missing, document: undefined, path: undefined });
  assert.deepEqual([files, resources], [[], []]);
});
