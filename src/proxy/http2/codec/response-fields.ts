// The fields of a response's header block as HPACK decoded them (an upstream
// answer to weft's client side), checked against RFC 9113 §8.2–8.3 the way
// request-fields.ts checks requests, and turned into the headers object
// node:http2 gives ('response' listeners read one shape). A response that
// breaks a rule is malformed: its stream is reset with PROTOCOL_ERROR (§8.1.1).
import type { IncomingHttpHeaders } from 'node:http2';
import { MalformedFields, newFields, regularField } from './request-fields';

/** A response head: :status (a number in `headers` too, as node gives it) and content-length (-1: none). */
export interface ResponseHead {
  status: number;
  headers: IncomingHttpHeaders;
  contentLength: number;
}

/** A response's header block (name, value, … as decoded) → its head; throws MalformedFields. */
export function responseHead(fields: readonly string[]): ResponseHead {
  const headers = newFields();
  let status = -1;
  let regular = false;
  let length = -1;
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i];
    const value = fields[i + 1];
    if (name.charCodeAt(0) === 0x3a /* : */) {
      // A response has one pseudo-header (§8.3.2); the request ones are malformed here.
      if (name !== ':status') throw new MalformedFields('pseudo_header');
      if (regular) throw new MalformedFields('pseudo_after_regular');
      if (status !== -1) throw new MalformedFields('duplicate_pseudo_header');
      status = statusCode(value);
      (headers as Record<string, unknown>)[':status'] = status;
      continue;
    }
    regular = true;
    length = regularField(headers, name, value, length);
  }
  if (status === -1) throw new MalformedFields('status');
  return { status, headers, contentLength: length };
}

/** :status: exactly three digits (RFC 9110 §15), 100–599 here (§15 defines no other class). */
function statusCode(value: string): number {
  if (value.length !== 3) throw new MalformedFields('status');
  let n = 0;
  for (let i = 0; i < 3; i++) {
    const d = value.charCodeAt(i) - 0x30;
    if (d < 0 || d > 9) throw new MalformedFields('status');
    n = n * 10 + d;
  }
  if (n < 100 || n > 599) throw new MalformedFields('status');
  return n;
}
