// Loads the Envoy v3 and xDS protos shipped in @grpc/grpc-js-xds (never copied
// into this repository) into one protobufjs Root, and offers the encoders the
// translator, cache, server and proxy share. Types are looked up in the
// sidecar's pruned set first (sidecar-protos.ts), so a sidecar never parses
// the full set; the control plane loads it on the first type outside.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as protobuf from 'protobufjs';
import { PROMETHEUS_MODEL, PROMETHEUS_MODEL_IMPORT } from './prometheus-model';
import { sidecarMessageType, sidecarRoot } from './sidecar-protos';

/** The proto files weft uses; their imports are resolved from the include dirs. */
const PROTO_FILES = [
  'envoy/service/discovery/v3/ads.proto',
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/route/v3/route.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  'envoy/extensions/filters/http/fault/v3/fault.proto',
  'envoy/extensions/filters/http/local_ratelimit/v3/local_rate_limit.proto',
  'envoy/extensions/filters/http/ratelimit/v3/rate_limit.proto',
  'envoy/extensions/filters/http/rbac/v3/rbac.proto',
  'envoy/extensions/filters/network/rbac/v3/rbac.proto',
  'envoy/service/ratelimit/v3/rls.proto',
  'envoy/extensions/filters/http/jwt_authn/v3/config.proto',
  'envoy/service/secret/v3/sds.proto',
  'envoy/extensions/upstreams/http/v3/http_protocol_options.proto',
  'envoy/extensions/transport_sockets/tls/v3/secret.proto',
  'envoy/extensions/transport_sockets/tls/v3/tls.proto',
  'envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.proto',
  'envoy/extensions/load_balancing_policies/ring_hash/v3/ring_hash.proto',
  'envoy/extensions/load_balancing_policies/round_robin/v3/round_robin.proto',
  'envoy/extensions/load_balancing_policies/least_request/v3/least_request.proto',
  'envoy/extensions/load_balancing_policies/maglev/v3/maglev.proto',
  'envoy/extensions/load_balancing_policies/random/v3/random.proto',
  'envoy/service/metrics/v3/metrics_service.proto',
  'xds/type/v3/typed_struct.proto',
];

/** Folders of the proto tree inside @grpc/grpc-js-xds. */
export function protoIncludeDirs(): string[] {
  const pkg = require.resolve('@grpc/grpc-js-xds/package.json');
  const deps = path.join(path.dirname(pkg), 'deps');
  return [
    path.join(deps, 'envoy-api'),
    path.join(deps, 'xds'),
    path.join(deps, 'googleapis'),
    path.join(deps, 'protoc-gen-validate'),
    path.join(path.dirname(require.resolve('protobufjs/package.json'))),
  ];
}

/** A Root.resolvePath that finds an import in the include dirs (google/protobuf/*.proto: protobufjs bundles them, the target as it is). */
export function includeDirResolver(includeDirs: readonly string[]): (origin: string, target: string) => string {
  return (_origin, target) => {
    if (path.isAbsolute(target) && fs.existsSync(target)) return target;
    for (const dir of includeDirs) {
      const candidate = path.join(dir, target);
      if (fs.existsSync(candidate)) return candidate;
    }
    return target;
  };
}

let root: protobuf.Root | undefined;

/** The shared Root, loaded once (about a few hundred ms) on first use. */
export function protoRoot(): protobuf.Root {
  if (root) return root;
  const fromIncludeDirs = includeDirResolver(protoIncludeDirs());
  const r = new protobuf.Root();
  // Prometheus's client model is not shipped with the Envoy protos: declared in code instead.
  r.addJSON(PROMETHEUS_MODEL.nested!);
  r.resolvePath = (origin, target) => (target === PROMETHEUS_MODEL_IMPORT ? (null as unknown as string) : fromIncludeDirs(origin, target));
  r.loadSync(PROTO_FILES, { keepCase: true });
  r.resolveAll();
  root = r;
  return r;
}

const typeCache = new Map<string, protobuf.Type>();

/** A message type by full name ("envoy.config.listener.v3.Listener") or type URL: from the sidecar's set, else from the full one. */
export function messageType(nameOrTypeUrl: string): protobuf.Type {
  const fullName = nameOrTypeUrl.replace(/^type\.googleapis\.com\//, '');
  let t = typeCache.get(fullName);
  if (!t) {
    t = sidecarMessageType(fullName) ?? protoRoot().lookupType(fullName);
    typeCache.set(fullName, t);
  }
  return t;
}

/** A message type of the full set, with its options (protoc-gen-validate's rules): for checks against Envoy's own rules. */
export function envoyMessageType(nameOrTypeUrl: string): protobuf.Type {
  return protoRoot().lookupType(nameOrTypeUrl.replace(/^type\.googleapis\.com\//, ''));
}

/** An enum's values by full name, from the sidecar's set, else from the full one. */
export function enumValues(fullName: string): Record<string, number> {
  const e = sidecarRoot().lookup(fullName, [protobuf.Enum]) as protobuf.Enum | null;
  return (e ?? protoRoot().lookupEnum(fullName)).values;
}

/**
 * Encodes a plain object (snake_case fields; enums as names or numbers) as the
 * message of the type URL. Throws on a field the type lacks or a value of the
 * wrong type: protobufjs alone would drop the one and coerce the other.
 */
export function encodeMessage(typeUrl: string, obj: Record<string, unknown>): Buffer {
  const type = messageType(typeUrl);
  assertWellTyped(type, obj, '');
  return Buffer.from(type.encode(type.fromObject(obj)).finish());
}

const NUMERIC = new Set(['double', 'float', 'int32', 'uint32', 'sint32', 'fixed32', 'sfixed32']);
const NUMERIC_64 = new Set(['int64', 'uint64', 'sint64', 'fixed64', 'sfixed64']);

/** Throws when `obj`, or any message nested in it, has a field its type lacks or a value that does not fit. */
export function assertWellTyped(type: protobuf.Type, obj: Record<string, unknown>, path: string): void {
  for (const [key, value] of Object.entries(obj)) {
    if (value === undefined || value === null) continue;
    const field = type.fields[key];
    if (!field) throw new Error(`${type.fullName}: no field "${path}${key}"`);
    const items: unknown[] = field.map ? Object.values(value as object) : field.repeated ? asArray(value, type, path + key) : [value];
    const resolved = field.resolve().resolvedType;
    items.forEach((item, i) => {
      const where = field.map || field.repeated ? `${path}${key}[${i}]` : `${path}${key}`;
      if (resolved instanceof protobuf.Type) {
        if (typeof item !== 'object' || item === null || item instanceof Uint8Array) {
          throw new Error(`${type.fullName}: "${where}" must be a ${resolved.fullName.slice(1)} object`);
        }
        assertWellTyped(resolved, item as Record<string, unknown>, `${where}.`);
      } else {
        const problem = scalarProblem(field.type, resolved, item);
        if (problem) throw new Error(`${type.fullName}: "${where}" ${problem}, got ${JSON.stringify(item)}`);
      }
    });
  }
}

function asArray(value: unknown, type: protobuf.Type, where: string): unknown[] {
  if (!Array.isArray(value)) throw new Error(`${type.fullName}: "${where}" must be an array`);
  return value;
}

function scalarProblem(fieldType: string, resolved: protobuf.Enum | protobuf.Type | null, v: unknown): string | undefined {
  if (resolved instanceof protobuf.Enum) {
    const ok = typeof v === 'number' ? Object.values(resolved.values).includes(v) : typeof v === 'string' && v in resolved.values;
    return ok ? undefined : `must be one of ${Object.keys(resolved.values).join(', ')}`;
  }
  if (NUMERIC.has(fieldType)) return typeof v === 'number' && Number.isFinite(v) ? undefined : 'must be a number';
  if (NUMERIC_64.has(fieldType)) {
    return (typeof v === 'number' && Number.isInteger(v)) || (typeof v === 'string' && /^-?\d+$/.test(v)) ? undefined : 'must be an integer';
  }
  if (fieldType === 'bool') return typeof v === 'boolean' ? undefined : 'must be a boolean';
  if (fieldType === 'string') return typeof v === 'string' ? undefined : 'must be a string';
  if (fieldType === 'bytes') return v instanceof Uint8Array || typeof v === 'string' ? undefined : 'must be bytes';
  return undefined;
}

/** A google.protobuf.Any holding `obj` encoded as the type URL, for nesting inside another resource. */
export function anyOf(typeUrl: string, obj: Record<string, unknown>): { type_url: string; value: Buffer } {
  return { type_url: typeUrl, value: encodeMessage(typeUrl, obj) };
}

/** Decodes bytes of the type URL into a plain object (enums as strings, longs as numbers). */
export function decodeMessage(typeUrl: string, bytes: Uint8Array): Record<string, any> {
  const type = messageType(typeUrl);
  return type.toObject(type.decode(bytes), { enums: String, longs: Number, defaults: false, oneofs: true }) as Record<
    string,
    any
  >;
}
