// Shared by the decoder tests: real translator output for small meshes,
// hand-written resources put through the wire (encode, then decode as the
// client does), and assertions on NACKs.
import * as assert from 'node:assert/strict';
import { ConfigNackError, type NackCode } from '../../../src/proxy/config/nack';
import { anyOf, decodeMessage, encodeMessage } from '../../../src/xds/protos';
import { TYPE_URL } from '../../../src/xds/type-urls';
import type { NodeInfo } from '../../../src/translate/types';
import { meshView, resourcesFor, sidecar } from '../../translate/helpers';

export type Obj = Record<string, any>;

export { TYPE_URL, anyOf };

/** An ADS config source, as the translator writes it. */
export const ADS = { ads: {}, resource_api_version: 'V3' };

/** A message as the client sees it: encoded (field names checked), then decoded. */
export function wire(typeUrl: string, obj: Obj): Obj {
  return decodeMessage(typeUrl, encodeMessage(typeUrl, obj));
}

/** The translator's resources for a sidecar of `service` in the mesh of `yaml`, decoded. */
export function translated(yaml: string, node: Partial<NodeInfo> = {}): (typeUrl: string, name: string) => Obj {
  const resources = resourcesFor(meshView(yaml), sidecar(node));
  return (typeUrl, name) => resources.get(typeUrl, name);
}

/** Asserts `fn` NACKs; returns the message. */
export function nack(fn: () => unknown, code: NackCode = 'E_CONFIG_UNSUPPORTED'): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigNackError, `expected a ConfigNackError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return err.message;
  }
  assert.fail('expected a NACK, the resource was accepted');
}

/** A JSON view with RegExps as their source, for deepEqual on decoded configs. */
export function plain(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value, (_k, v) => (v instanceof RegExp ? `/${v.source}/${v.flags}` : v instanceof Set ? [...v] : v)));
}
