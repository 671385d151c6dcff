// The fields of a request's header block (or its trailers) as HPACK decoded
// them, checked against RFC 9113 §8.2–8.3 and turned into the headers object
// the exchange reads. A request that breaks a rule is malformed: its stream is
// reset with PROTOCOL_ERROR and nothing of it is routed (§8.1.1).
import type { IncomingHttpHeaders } from 'node:http2';
import { TARGET_CHAR, TCHAR } from '../../http1/tokens';

/** The request's headers, and its content-length (-1: none). */
export interface RequestHead {
  headers: IncomingHttpHeaders;
  contentLength: number;
}

/** Why a header block is malformed: the reason label counted, and text for the log. */
export class MalformedFields extends Error {
  constructor(readonly reason: string) {
    super(reason);
  }
}

const PSEUDO_METHOD = 1;
const PSEUDO_SCHEME = 2;
const PSEUDO_PATH = 4;
const PSEUDO_AUTHORITY = 8;

function pseudoBit(name: string): number {
  switch (name) {
    case ':method':
      return PSEUDO_METHOD;
    case ':scheme':
      return PSEUDO_SCHEME;
    case ':path':
      return PSEUDO_PATH;
    case ':authority':
      return PSEUDO_AUTHORITY;
    default:
      return 0;
  }
}

/** Fields an HTTP/2 message must not carry (§8.2.2): they describe a connection, and HTTP/2 has its own. */
function connectionSpecific(name: string): boolean {
  return name === 'connection' || name === 'keep-alive' || name === 'proxy-connection' || name === 'transfer-encoding' || name === 'upgrade';
}

/** A field name: lowercase token characters only (§8.2.1: uppercase is malformed). */
function validName(name: string, from: number): boolean {
  if (name.length <= from) return false;
  for (let i = from; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c >= 0x41 && c <= 0x5a) return false;
    if (c > 0xff || TCHAR[c] !== 1) return false;
  }
  return true;
}

/**
 * A field value (§8.2.1): no NUL, CR or LF, no whitespace at either end. weft also refuses the
 * other control characters, as its HTTP/1.1 parser does: an HTTP/1.1 upstream would get them.
 */
function validValue(value: string): boolean {
  const n = value.length;
  if (n === 0) return true;
  const first = value.charCodeAt(0);
  const last = value.charCodeAt(n - 1);
  if (first === 0x20 || first === 0x09 || last === 0x20 || last === 0x09) return false;
  for (let i = 0; i < n; i++) {
    const c = value.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c === 0x7f) return false;
  }
  return true;
}

/** A :path: an absolute path of request-target characters, or "*" for OPTIONS (§8.3.1). */
function validPath(path: string, method: string): boolean {
  if (path === '*') return method === 'OPTIONS';
  if (path.charCodeAt(0) !== 0x2f /* / */) return false;
  for (let i = 1; i < path.length; i++) if (TARGET_CHAR[path.charCodeAt(i)] !== 1) return false;
  return true;
}

/**
 * A new headers object, as the codec hands heads and trailers out: its own fields only, with no
 * Object.prototype behind it (a field named constructor or __proto__ is a field like any other),
 * and kept in V8's fast mode: Object.create(null) makes a dictionary, 3.5× slower to fill and copy,
 * and five of them per gRPC call were a tenth of what the proxy allocated.
 */
export function newFields(): IncomingHttpHeaders {
  return new (Fields as unknown as new () => IncomingHttpHeaders)();
}
function Fields(): void {}
Fields.prototype = Object.create(null) as object;

/** Adds a field to the headers object the way node:http2 joins repeats, so the exchange reads one shape. */
function addField(headers: IncomingHttpHeaders, name: string, value: string): void {
  const had = headers[name];
  if (had === undefined) {
    headers[name] = name === 'set-cookie' ? [value] : value;
  } else if (Array.isArray(had)) {
    had.push(value);
  } else {
    headers[name] = had + (name === 'cookie' ? '; ' : ', ') + value;
  }
}

/** A decimal content-length; repeats must agree (RFC 9110 §8.6). Throws for anything else. */
function contentLength(value: string, had: number): number {
  if (value.length === 0 || value.length > 15) throw new MalformedFields('content_length');
  let n = 0;
  for (let i = 0; i < value.length; i++) {
    const d = value.charCodeAt(i) - 0x30;
    if (d < 0 || d > 9) throw new MalformedFields('content_length');
    n = n * 10 + d;
  }
  if (had !== -1 && had !== n) throw new MalformedFields('content_length');
  return n;
}

/** A regular field of a request or response head, checked (§8.2) and added; returns the content-length so far (-1: none). */
export function regularField(headers: IncomingHttpHeaders, name: string, value: string, length: number): number {
  if (!validName(name, 0)) throw new MalformedFields('field_name');
  if (!validValue(value)) throw new MalformedFields('field_value');
  if (connectionSpecific(name)) throw new MalformedFields('connection_header');
  if (name === 'te' && value !== 'trailers') throw new MalformedFields('te');
  addField(headers, name, value);
  return name === 'content-length' ? contentLength(value, length) : length;
}

/** A request's header block (name, value, … as decoded) → its head; throws MalformedFields. */
export function requestHead(fields: readonly string[]): RequestHead {
  const headers = newFields();
  let seen = 0;
  let regular = false;
  let length = -1;
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i];
    const value = fields[i + 1];
    if (name.charCodeAt(0) === 0x3a /* : */) {
      const bit = pseudoBit(name);
      if (bit === 0) throw new MalformedFields('pseudo_header');
      if (regular) throw new MalformedFields('pseudo_after_regular');
      if (seen & bit) throw new MalformedFields('duplicate_pseudo_header');
      seen |= bit;
      if (!validValue(value)) throw new MalformedFields('field_value');
      headers[name] = value;
      continue;
    }
    regular = true;
    length = regularField(headers, name, value, length);
  }
  const method = headers[':method'] as string | undefined;
  if (method === undefined || method.length === 0 || !validName(method.toLowerCase(), 0)) throw new MalformedFields('method');
  if (method === 'CONNECT') {
    // §8.5: :authority only. weft answers it 405 later (it does not tunnel).
    if (seen & (PSEUDO_SCHEME | PSEUDO_PATH) || !(seen & PSEUDO_AUTHORITY)) throw new MalformedFields('connect');
    return { headers, contentLength: length };
  }
  if (!(seen & PSEUDO_SCHEME) || (headers[':scheme'] as string).length === 0) throw new MalformedFields('scheme');
  const path = headers[':path'] as string | undefined;
  if (path === undefined || path.length === 0 || !validPath(path, method)) throw new MalformedFields('path');
  return { headers, contentLength: length };
}

/** A trailer block (§8.1): no pseudo-headers, the same field rules; throws MalformedFields. */
export function trailerFields(fields: readonly string[]): IncomingHttpHeaders {
  const trailers = newFields();
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i];
    const value = fields[i + 1];
    if (name.charCodeAt(0) === 0x3a) throw new MalformedFields('pseudo_in_trailers');
    if (!validName(name, 0)) throw new MalformedFields('field_name');
    if (!validValue(value)) throw new MalformedFields('field_value');
    if (connectionSpecific(name)) throw new MalformedFields('connection_header');
    addField(trailers, name, value);
  }
  return trailers;
}
