// Minimal protobuf wire-format writers. Responses are assembled from bytes
// encoded once per snapshot; protobuf allows fields in any order and repeated
// fields to be split, so concatenating encoded fields yields a valid message.

/** Wire type 2 (length-delimited) tag byte(s) for a field number. */
function tag(field: number): Buffer {
  return varint((field << 3) | 2);
}

export function varint(n: number): Buffer {
  const bytes: number[] = [];
  while (n > 0x7f) {
    bytes.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  bytes.push(n);
  return Buffer.from(bytes);
}

/** A length-delimited field: tag, length, payload. */
export function bytesField(field: number, payload: Uint8Array): Buffer {
  return Buffer.concat([tag(field), varint(payload.length), payload]);
}

export function stringField(field: number, value: string): Buffer {
  return bytesField(field, Buffer.from(value, 'utf8'));
}

/** google.protobuf.Any { type_url = 1; value = 2 } */
export function encodeAny(typeUrl: string, value: Uint8Array): Buffer {
  return Buffer.concat([stringField(1, typeUrl), bytesField(2, value)]);
}
