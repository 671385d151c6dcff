// RequestAuthentication: the schema's defaults, and one error per mistake,
// naming the field (BASE is document 0-2, the policy document 3).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Resource } from '../../src/config';
import { BASE_KEYS, keys, loadYaml, onlyError, withBase } from './support';

const head = 'apiVersion: weft.dev/v1\nkind: RequestAuthentication\nmetadata: { name: jwt }\nspec:\n';
const ra = (spec: string) => head + spec;
const rule = (jwks: string, more = '') => ra(`  targetRef: { name: web }\n  jwtRules:\n    - issuer: https://issuer.test\n      jwks: ${jwks}\n${more}`);

test('a valid RequestAuthentication gets its defaults', async () => {
  const { resources, errors } = await loadYaml(withBase(rule('{ service: web, port: 80, path: /jwks.json }')));
  assert.deepEqual(errors, []);
  const r = resources.find((x) => x.kind === 'RequestAuthentication') as Resource<'RequestAuthentication'>;
  assert.deepEqual(r.spec.jwtRules[0], { issuer: 'https://issuer.test', jwks: { service: 'web', port: 80, path: '/jwks.json' }, clockSkew: '60s', forwardOriginalToken: true });
});

for (const [what, doc, code, path, detail] of [
  ['a rule without issuer', ra('  jwtRules: [{ jwks: { file: /etc/jwks.json } }]'), 'E_SCHEMA', 'spec.jwtRules[0].issuer', undefined],
  ['two JWKS sources', rule('{ file: /etc/jwks.json, inline: "{}" }'), 'E_INVALID', 'spec.jwtRules[0].jwks.inline', /file and inline are both set/],
  ['no JWKS source', rule('{}'), 'E_INVALID', 'spec.jwtRules[0].jwks', /no key source/],
  ['a JWKS service that does not exist', rule('{ service: auth, port: 80, path: /jwks }'), 'E_REFERENCE', 'spec.jwtRules[0].jwks.service', /Service default\/auth does not exist/],
  ['a JWKS service port it lacks', rule('{ service: web, port: 81, path: /jwks }'), 'E_REFERENCE', 'spec.jwtRules[0].jwks.port', /has no port 81/],
  ['a JWKS service without path', rule('{ service: web, port: 80 }'), 'E_INVALID', 'spec.jwtRules[0].jwks.path', /needs the path/],
  ['a service field on a file source', rule('{ file: /etc/jwks.json, port: 80 }'), 'E_INVALID', 'spec.jwtRules[0].jwks.port', /only applies to a JWKS served by a service/],
  ['a relative JWKS file', rule('{ file: jwks.json }'), 'E_INVALID', 'spec.jwtRules[0].jwks.file', /absolute path/],
  ['an inline JWKS that is not one', rule('{ inline: "{\\"k\\": 1}" }'), 'E_INVALID', 'spec.jwtRules[0].jwks.inline', /no "keys" array/],
  ['a bad clockSkew', rule('{ file: /etc/jwks.json }', '      clockSkew: 1 minute\n'), 'E_SCHEMA', 'spec.jwtRules[0].clockSkew', undefined],
  ['a targetRef to a missing Service', ra('  targetRef: { name: cart }\n  jwtRules: [{ issuer: i, jwks: { file: /j } }]'), 'E_REFERENCE', 'spec.targetRef.name', undefined],
  ['no rules', ra('  jwtRules: []'), 'E_SCHEMA', 'spec.jwtRules', undefined],
] as const) {
  test(`RequestAuthentication: ${what}`, async () => {
    const { file, resources, errors } = await loadYaml(withBase(doc));
    const e = onlyError(errors, { code: code as never, file, document: 3, path });
    if (detail) assert.match(e.detail, detail);
    assert.deepEqual(keys(resources), BASE_KEYS);
  });
}
