// A strict field-name check for plain protobuf objects. protobufjs' verify()
// and fromObject() ignore fields a type does not have, so a misspelt field
// would vanish silently; the translator checks what it nests in Anys here,
// and the tests check every top-level resource the same way.
import * as protobuf from 'protobufjs';
import { messageType } from '../xds/protos';

/** Throws when `obj`, or any message inside it, has a field its type lacks. */
export function assertKnownFields(typeName: string, obj: Record<string, unknown>): void {
  check(messageType(typeName), obj, '');
}

function check(type: protobuf.Type, obj: Record<string, unknown>, path: string): void {
  for (const [key, value] of Object.entries(obj)) {
    if (value === undefined || value === null) continue;
    const field = type.fields[key];
    if (!field) throw new Error(`${type.fullName}: no field "${path}${key}"`);
    const fieldType = field.resolve().resolvedType;
    if (!(fieldType instanceof protobuf.Type)) continue;
    const items: unknown[] = field.map
      ? Object.values(value as object)
      : Array.isArray(value)
        ? value
        : [value];
    items.forEach((item, i) => {
      if (typeof item !== 'object' || item === null || Buffer.isBuffer(item) || item instanceof Uint8Array) return;
      const where = field.map || field.repeated ? `${path}${key}[${i}].` : `${path}${key}.`;
      check(fieldType, item as Record<string, unknown>, where);
    });
  }
}
