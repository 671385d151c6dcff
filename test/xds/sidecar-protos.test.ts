import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as protobuf from 'protobufjs';
import { HTTP_FILTER_TYPES } from '../../src/proxy/filters/catalog';
import { translate } from '../../src/translate/translate';
import { envoyMessageType, protoRoot } from '../../src/xds/protos';
import { pruneDescriptor, sidecarMessageType, sidecarRoot, sidecarRootTypes } from '../../src/xds/sidecar-protos';
import { TYPE_URL, XDS_RESOURCE_TYPES } from '../../src/xds/type-urls';
import { fixture, meshView, sidecar } from '../translate/helpers';

const SRC = path.join(__dirname, '..', '..', '..', 'src');

/** The source files a sidecar runs that name proto types: the proxy, the xDS client, and the protocols it shares with the control plane. */
function sidecarSources(): string[] {
  const walk = (dir: string): string[] =>
    fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : []));
  return [
    ...walk(path.join(SRC, 'proxy')),
    ...walk(path.join(SRC, 'xds/client')),
    path.join(SRC, 'xds/server/ads-service.ts'),
    path.join(SRC, 'ca/sds-protocol.ts'),
    path.join(SRC, 'observe/telemetry/telemetry-protocol.ts'),
  ];
}

/** Dotted names in a source's string literals, with `${PREFIX}Rest` templates expanded from the file's `const PREFIX = '…'`. */
function namesIn(source: string): string[] {
  const consts = new Map<string, string>();
  for (const m of source.matchAll(/const (\w+) = '([a-z][\w.]*)'/g)) consts.set(m[1], m[2]);
  const out: string[] = [];
  for (const m of source.matchAll(/'((?:type\.googleapis\.com\/)?[a-z][\w.]*\.[A-Z][\w.]*)'/g)) out.push(m[1]);
  for (const m of source.matchAll(/`\$\{(\w+)\}([\w.]+)`/g)) {
    const prefix = consts.get(m[1]);
    if (prefix !== undefined) out.push(prefix + m[2]);
  }
  return out.map((n) => n.replace(/^type\.googleapis\.com\//, ''));
}

function isProtoType(name: string): boolean {
  return protoRoot().lookup(name, [protobuf.Type, protobuf.Enum]) !== null;
}

function inSidecarSet(name: string): boolean {
  return sidecarRoot().lookup(name, [protobuf.Type, protobuf.Enum]) !== null;
}

test('every proto type the sidecar code names is in the sidecar set', () => {
  const named = new Set(sidecarSources().flatMap((f) => namesIn(fs.readFileSync(f, 'utf8'))).filter(isProtoType));
  // The scan finds what the decoders check field by field (onlyFields), not just a handful.
  assert.ok(named.size > 80, `only ${named.size} type names found: is the scan still reading the decoders?`);
  assert.deepEqual([...named].filter((n) => !inSidecarSet(n)).sort(), []);
});

test('every resource type and typed config the decoders accept is in the sidecar set (the filter catalog too)', () => {
  const accepted = [...XDS_RESOURCE_TYPES, ...Object.values(TYPE_URL), ...HTTP_FILTER_TYPES.flatMap((t) => [t.typeUrl, t.perRoute?.typeUrl ?? []].flat())];
  for (const url of accepted) {
    const name = url.slice(url.lastIndexOf('/') + 1);
    // A filter without a proto (weft's module filter) comes in a TypedStruct, which is a root.
    if (!isProtoType(name)) continue;
    assert.ok(sidecarMessageType(name), `${url} is accepted by the proxy but missing from the sidecar's proto set (add it to TYPE_URL or SIDECAR_PROTOCOL_MESSAGES)`);
  }
});

test('pruning keeps what a root reaches and drops the rest (the checks above can fail)', () => {
  const pruned = protobuf.Root.fromJSON(pruneDescriptor(protoRoot(), ['envoy.config.endpoint.v3.ClusterLoadAssignment']));
  assert.ok(pruned.lookup('envoy.config.core.v3.SocketAddress'), 'a type the root references');
  assert.equal(pruned.lookup('envoy.config.listener.v3.Listener'), null);
  assert.equal(pruned.lookup('envoy.config.cluster.v3.Cluster'), null);
  assert.ok(sidecarRootTypes().length >= XDS_RESOURCE_TYPES.length);
});

/** Every Any in a decoded tree, nested ones too. */
function anysIn(value: unknown, out: { type_url: string; value: Uint8Array }[] = []): typeof out {
  if (Array.isArray(value)) value.forEach((v) => anysIn(v, out));
  else if (value && typeof value === 'object' && !(value instanceof Uint8Array)) {
    const o = value as Record<string, unknown>;
    if (typeof o.type_url === 'string' && o.value instanceof Uint8Array) out.push(o as { type_url: string; value: Uint8Array });
    Object.values(o).forEach((v) => anysIn(v, out));
  }
  return out;
}

test('the sidecar set decodes translated resources (and the configs in their Anys) exactly as the full set does', () => {
  const opts = { enums: String, longs: Number, defaults: false, oneofs: true };
  let compared = 0;
  const compare = (typeUrl: string, bytes: Uint8Array): void => {
    const full = envoyMessageType(typeUrl);
    const small = sidecarMessageType(typeUrl.slice(typeUrl.lastIndexOf('/') + 1));
    assert.ok(small, `${typeUrl} in the sidecar set`);
    const expected = full.toObject(full.decode(bytes), opts);
    assert.deepEqual(small.toObject(small.decode(bytes), opts), expected, typeUrl);
    // Re-encoding with the sidecar's types gives the same bytes (packed fields, field numbers).
    assert.deepEqual(Buffer.from(small.encode(small.fromObject(expected)).finish()), Buffer.from(full.encode(full.fromObject(expected)).finish()), typeUrl);
    compared++;
    for (const any of anysIn(expected)) if (isProtoType(any.type_url.slice(any.type_url.lastIndexOf('/') + 1))) compare(any.type_url, any.value);
  };
  for (const [typeUrl, byName] of translate(meshView(fixture('mesh.yaml')), sidecar({ service: 'api' }))) {
    for (const item of byName.values()) compare(typeUrl, envoyMessageType(typeUrl).encode(envoyMessageType(typeUrl).fromObject(item.resource)).finish());
  }
  assert.ok(compared > 20, `compared only ${compared} messages`);
});
