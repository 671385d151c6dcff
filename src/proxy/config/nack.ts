// How a decoder rejects a resource: a ConfigNackError naming the resource and
// the field path, and the per-message allow-lists that make a field outside
// weft's supported subset a NACK by default (a new Envoy field the decoder
// has never heard of is rejected, never silently ignored).
import type * as protobuf from 'protobufjs';
import { messageType } from '../../xds/protos';

/** The Envoy resource kinds the proxy decodes. */
export type ResourceKind = 'Listener' | 'RouteConfiguration' | 'Cluster' | 'ClusterLoadAssignment' | 'Secret';

/**
 * E_CONFIG_UNSUPPORTED: a field that changes behaviour and weft does not implement.
 * E_CONFIG_INVALID: a value that is wrong in itself (a regex RE2 rejects, port 0, …).
 */
export type NackCode = 'E_CONFIG_UNSUPPORTED' | 'E_CONFIG_INVALID';

/** A resource the proxy cannot apply; the message is what the NACK's error_detail carries. */
export class ConfigNackError extends Error {
  constructor(
    readonly code: NackCode,
    readonly resourceKind: ResourceKind,
    readonly resourceName: string,
    /** e.g. `virtual_hosts[0].routes[2].match.safe_regex.regex`; empty for the resource itself. */
    readonly fieldPath: string,
    detail: string,
  ) {
    super(`${resourceKind} "${resourceName}": ${fieldPath ? `${fieldPath} ` : ''}${detail}`);
    this.name = 'ConfigNackError';
  }
}

/** Where a decoder is inside a resource: builds field paths and the errors that name them. */
export class FieldPath {
  constructor(
    readonly kind: ResourceKind,
    readonly resourceName: string,
    readonly path = '',
  ) {}

  field(key: string): FieldPath {
    return new FieldPath(this.kind, this.resourceName, this.path ? `${this.path}.${key}` : key);
  }

  index(i: number): FieldPath {
    return new FieldPath(this.kind, this.resourceName, `${this.path}[${i}]`);
  }

  /** A path segment that is not a field, e.g. the extension inside a typed_config. */
  note(text: string): FieldPath {
    return new FieldPath(this.kind, this.resourceName, `${this.path} (${text})`);
  }

  unsupported(detail = 'is not supported by weft proxy yet'): never {
    throw new ConfigNackError('E_CONFIG_UNSUPPORTED', this.kind, this.resourceName, this.path, detail);
  }

  invalid(reason: string): never {
    throw new ConfigNackError('E_CONFIG_INVALID', this.kind, this.resourceName, this.path, reason);
  }
}

/**
 * Whether a decoded field is set in a way that can matter. A message counts
 * when present (an empty `outlier_detection {}` switches detection on); a
 * scalar or enum at its default, an empty list or map, does not: proto3
 * cannot tell it from absent, and Envoy behaves as if it were.
 */
function isSet(field: protobuf.Field, value: unknown): boolean {
  if (value === undefined || value === null) return false;
  if (field.map) return Object.keys(value as object).length > 0;
  if (field.repeated) return (value as unknown[]).length > 0;
  const resolved = field.resolvedType;
  if (resolved && 'fields' in resolved) return true;
  if (resolved && 'values' in resolved) return value !== 0 && (resolved as protobuf.Enum).values[value as string] !== 0;
  if (value instanceof Uint8Array) return value.length > 0;
  return value !== 0 && value !== '' && value !== false;
}

/**
 * Throws naming the first field of `obj` (a decoded `typeName` message) that
 * is set and not in `allowed`. Oneof group names (`oneofs: true` adds them)
 * are not fields and are skipped.
 */
export function onlyFields(at: FieldPath, typeName: string, obj: Record<string, unknown>, allowed: readonly string[]): void {
  const type = messageType(typeName);
  for (const [key, value] of Object.entries(obj)) {
    if (allowed.includes(key)) continue;
    const field = type.fields[key];
    if (!field) continue; // a oneof name
    if (isSet(field.resolve(), value)) at.field(key).unsupported();
  }
}
