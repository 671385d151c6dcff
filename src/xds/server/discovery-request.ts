// A DiscoveryRequest decoder for the server's hot path. Envoy repeats every
// subscribed name in every ACK (hundreds of EDS names per request, thousands
// of requests per config push), so the names stay undecoded bytes until the
// stream sees they differ from the previous request's. Nested messages (node,
// error_detail) are decoded with protobufjs.
import { messageType } from '../protos';
import type { XdsNodeLike } from '../node-info';

export interface RpcStatusLike {
  code?: number;
  message?: string;
}

/** What the request deserializer yields for bytes that are not a valid request. */
export class MalformedMessage {
  constructor(readonly reason: string) {}
}

const EMPTY = Buffer.alloc(0);

/** envoy.service.discovery.v3.DiscoveryRequest field numbers. */
const FIELD = { versionInfo: 1, node: 2, resourceNames: 3, typeUrl: 4, responseNonce: 5, errorDetail: 6 } as const;

export class DiscoveryRequestMessage {
  version_info = '';
  node: XdsNodeLike | null = null;
  type_url = '';
  response_nonce = '';
  error_detail: RpcStatusLike | null = null;
  /** The resource_names fields exactly as sent (tags included): equal bytes, equal subscription. */
  namesBytes: Buffer = EMPTY;
  private names: string[] | undefined;

  get resource_names(): string[] {
    this.names ??= decodeNames(this.namesBytes);
    return this.names;
  }
}

class Truncated extends Error {}

function readVarint(buf: Buffer, pos: number): [value: number, next: number] {
  let value = 0;
  for (let shift = 0; shift < 64; shift += 7) {
    if (pos >= buf.length) throw new Truncated('truncated varint');
    const b = buf[pos++];
    value += (b & 0x7f) * 2 ** shift;
    if (b < 0x80) return [value, pos];
  }
  throw new Truncated('varint longer than 10 bytes');
}

/** The end of a length-delimited payload starting at pos (after its tag). */
function lengthDelimited(buf: Buffer, pos: number): [start: number, end: number] {
  const [len, start] = readVarint(buf, pos);
  const end = start + len;
  if (end > buf.length) throw new Truncated('field runs past the end of the message');
  return [start, end];
}

function decodeNames(bytes: Buffer): string[] {
  const names: string[] = [];
  let pos = 0;
  while (pos < bytes.length) {
    const [, afterTag] = readVarint(bytes, pos);
    const [start, end] = lengthDelimited(bytes, afterTag);
    names.push(bytes.toString('utf8', start, end));
    pos = end;
  }
  return names;
}


export function decodeDiscoveryRequest(buf: Buffer): DiscoveryRequestMessage | MalformedMessage {
  const msg = new DiscoveryRequestMessage();
  let namesStart = -1;
  let namesEnd = -1;
  let scattered: Buffer[] | undefined;
  try {
    let pos = 0;
    while (pos < buf.length) {
      const fieldStart = pos;
      const [key, afterTag] = readVarint(buf, pos);
      const field = Math.floor(key / 8);
      const wire = key & 7;
      if (field === 0) throw new Truncated('field number 0');
      if (wire === 0) {
        [, pos] = readVarint(buf, afterTag);
        continue;
      }
      if (wire === 1 || wire === 5) {
        pos = afterTag + (wire === 1 ? 8 : 4);
        if (pos > buf.length) throw new Truncated('truncated fixed-width field');
        continue;
      }
      if (wire !== 2) throw new Truncated(`unexpected wire type ${wire} for field ${field}`);
      const [start, end] = lengthDelimited(buf, afterTag);
      pos = end;
      switch (field) {
        case FIELD.versionInfo:
          msg.version_info = buf.toString('utf8', start, end);
          break;
        case FIELD.typeUrl:
          msg.type_url = buf.toString('utf8', start, end);
          break;
        case FIELD.responseNonce:
          msg.response_nonce = buf.toString('utf8', start, end);
          break;
        case FIELD.node:
          msg.node = messageType('envoy.config.core.v3.Node').decode(buf.subarray(start, end)) as unknown as XdsNodeLike;
          break;
        case FIELD.errorDetail:
          msg.error_detail = messageType('google.rpc.Status').decode(buf.subarray(start, end)) as unknown as RpcStatusLike;
          break;
        case FIELD.resourceNames:
          // Names normally arrive back to back; other fields between them force a copy.
          if (namesStart < 0) [namesStart, namesEnd] = [fieldStart, end];
          else if (fieldStart === namesEnd && !scattered) namesEnd = end;
          else {
            scattered ??= [buf.subarray(namesStart, namesEnd)];
            scattered.push(buf.subarray(fieldStart, end));
          }
          break;
        default:
          break; // resource_locators and fields newer than this server
      }
    }
  } catch (err) {
    return new MalformedMessage(`envoy.service.discovery.v3.DiscoveryRequest does not decode: ${(err as Error).message}`);
  }
  if (scattered) msg.namesBytes = Buffer.concat(scattered);
  else if (namesStart >= 0) msg.namesBytes = buf.subarray(namesStart, namesEnd);
  return msg;
}
