/**
 * Strict HTTP/1.x head parser of the sidecar's hot path (RFC 9110/9112).
 *
 * It reads the start line and the header section only; bodies are forwarded
 * by the engine as raw slices under the framing computed here. Everything a
 * request-smuggling attack relies on is refused (ambiguous framing, obs-fold,
 * bare CR/LF, invalid names or values, duplicate Content-Length or Host).
 *
 * Speed: bytes are classified with lookup tables in plain loops; the head is
 * decoded to one latin1 string once and names and values are substrings of it
 * (one native call instead of one per string).
 */
import { HttpParseError } from './errors';
import * as tokens from './tokens';
import { AUTHORITY_INVALID, AUTHORITY_UPPER, METHODS, authority, isToken, type Latin1Buffer } from './tokens';

// Module-level copies of the byte tables and constants: the byte loops would
// otherwise load them from the imported module object on every byte.
const { TCHAR, FIELD_CHAR, TARGET_CHAR, CR, LF, SP, HTAB } = tokens;

export type BodyFraming = { kind: 'none' } | { kind: 'length'; length: number } | { kind: 'chunked' } | { kind: 'eof' }; // 'eof' only for responses

export interface HeadLimits {
  maxHeadBytes: number;
  maxHeaders: number;
}
export const DEFAULT_LIMITS: HeadLimits = Object.freeze({ maxHeadBytes: 65536, maxHeaders: 100 });

export interface RequestHead {
  method: string;
  target: string;
  minor: 0 | 1;
  /** Flat [name, value, name, value, …], names as received, values without surrounding OWS. */
  headers: string[];
  /** Lower-cased authority (from an absolute-form or authority-form target, else Host); '' when none (HTTP/1.0 only). */
  host: string;
  /** Origin-form path + query; for absolute-form the URL's path + query ('/' if empty); '*' for OPTIONS *; '' for CONNECT. */
  path: string;
  absoluteForm: boolean;
  body: BodyFraming;
  keepAlive: boolean;
  /** The Upgrade header value when Connection lists "upgrade" (HTTP/1.1); for CONNECT the target. */
  upgrade: string | undefined;
  expectContinue: boolean;
  /** Bytes of the head from `start`, including empty lines before the request line and the final CRLFCRLF. */
  headLength: number;
}

export interface ResponseHead {
  minor: 0 | 1;
  status: number;
  reason: string;
  headers: string[];
  body: BodyFraming;
  keepAlive: boolean;
  headLength: number;
  /** 101 Switching Protocols. */
  upgrade: boolean;
}

const COLON = 0x3a;
const MAX_LENGTH = Number.MAX_SAFE_INTEGER;

const NO_BODY: BodyFraming = Object.freeze({ kind: 'none' });
const CHUNKED: BodyFraming = Object.freeze({ kind: 'chunked' });
const UNTIL_EOF: BodyFraming = Object.freeze({ kind: 'eof' });

function fail(code: string, message: string): never {
  throw new HttpParseError(code, message, 400);
}

// ---- what the header walk notes ----

const CONN_CLOSE = 1;
const CONN_KEEP_ALIVE = 2;
const CONN_UPGRADE = 4;

/** The header fields framing, routing and connection handling depend on. */
interface Fields {
  headers: string[];
  contentLength: string | undefined;
  contentLengthCount: number;
  /** Every Transfer-Encoding line, joined with ','. */
  transferEncoding: string | undefined;
  /** The first Host value, and where it is in the buffer. */
  host: string | undefined;
  hostStart: number;
  hostEnd: number;
  hostCount: number;
  connection: number;
  upgrade: string | undefined;
  expectContinue: boolean;
}

// Parsing is synchronous and not re-entrant: one scratch record serves every call.
const F: Fields = {
  headers: [],
  contentLength: undefined,
  contentLengthCount: 0,
  transferEncoding: undefined,
  host: undefined,
  hostStart: 0,
  hostEnd: 0,
  hostCount: 0,
  connection: 0,
  upgrade: undefined,
  expectContinue: false,
};

function resetFields(headers: string[]): Fields {
  F.headers = headers;
  F.contentLength = undefined;
  F.contentLengthCount = 0;
  F.transferEncoding = undefined;
  F.host = undefined;
  F.hostCount = 0;
  F.connection = 0;
  F.upgrade = undefined;
  F.expectContinue = false;
  return F;
}

const lowerBytes = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0));
const N_HOST = lowerBytes('host');
const N_EXPECT = lowerBytes('expect');
const N_UPGRADE = lowerBytes('upgrade');
const N_CONNECTION = lowerBytes('connection');
const N_CONTENT_LENGTH = lowerBytes('content-length');
const N_TRANSFER_ENCODING = lowerBytes('transfer-encoding');

/**
 * Case-insensitive match of a tchar name against a lower-case name of letters
 * and '-': `| 0x20` folds A-Z onto a-z, and maps no other tchar onto a letter or '-'.
 */
function nameIs(buf: Buffer, at: number, lower: Uint8Array): boolean {
  for (let i = 0; i < lower.length; i++) if ((buf[at + i] | 0x20) !== lower[i]) return false;
  return true;
}

function noteField(buf: Buffer, at: number, length: number, value: string, valueStart: number, f: Fields): void {
  switch (length) {
    case 4:
      if (nameIs(buf, at, N_HOST) && f.hostCount++ === 0) {
        f.host = value;
        f.hostStart = valueStart;
        f.hostEnd = valueStart + value.length;
      }
      break;
    case 6:
      if (nameIs(buf, at, N_EXPECT) && equalsLower(value, 0, value.length, '100-continue')) f.expectContinue = true;
      break;
    case 7:
      if (nameIs(buf, at, N_UPGRADE)) f.upgrade ??= value;
      break;
    case 10:
      if (nameIs(buf, at, N_CONNECTION)) f.connection |= connectionOptions(value);
      break;
    case 14:
      if (nameIs(buf, at, N_CONTENT_LENGTH)) {
        if (tabAfter(buf, valueStart + value.length)) fail('E_HTTP_BAD_CONTENT_LENGTH', 'HTAB after the Content-Length value');
        f.contentLengthCount++;
        f.contentLength ??= value;
      }
      break;
    case 17:
      if (nameIs(buf, at, N_TRANSFER_ENCODING)) {
        if (tabAfter(buf, valueStart + value.length)) fail('E_HTTP_BAD_TRANSFER_ENCODING', 'HTAB after the Transfer-Encoding value');
        f.transferEncoding = f.transferEncoding === undefined ? value : `${f.transferEncoding},${value}`;
      }
      break;
  }
}

// ---- the walk over the bytes ----

const INCOMPLETE = -1;

/** Offsets of each field the walk finds: name start, name end, value start, value end. Grows on demand. */
let offsets = new Int32Array(4 * 128);
/** Fields found by the last walk. */
let fieldCount = 0;

/**
 * True when the OWS between a value's end and its line's CR holds an HTAB.
 * llhttp refuses that after Content-Length and Transfer-Encoding values (SP
 * it allows): weft refuses it there too, never accepting framing llhttp refuses.
 */
function tabAfter(buf: Buffer, valueEnd: number): boolean {
  for (let i = valueEnd; buf[i] !== CR; i++) if (buf[i] === HTAB) return true;
  return false;
}

/**
 * Validates the header lines from `pos` (just past the start line) and notes
 * their offsets; strings are made only once the whole head is there. Bytes
 * from `stop` on (the end of the data, or the head size limit) do not count.
 * A Uint8Array read past its end gives undefined, which no table holds, so
 * the byte loops need no bounds checks: each loop's end is checked once.
 * Returns the offset just past the empty line ending the head, or INCOMPLETE.
 */
function walkFields(buf: Buffer, pos: number, stop: number, maxHeaders: number): number {
  let n = 0;
  for (;;) {
    if (pos >= stop) return INCOMPLETE;
    let c = buf[pos];
    if (c === CR) {
      if (pos + 1 >= stop) return INCOMPLETE;
      if (buf[pos + 1] !== LF) fail('E_HTTP_BARE_CR', 'CR not followed by LF in the header section');
      fieldCount = n;
      return pos + 2;
    }
    if (c === LF) fail('E_HTTP_BARE_LF', 'header line ends with LF without CR');
    if (c === SP || c === HTAB) {
      fail('E_HTTP_OBS_FOLD', n === 0 ? 'whitespace before the first header field' : 'obsolete line folding in a header value');
    }
    const nameStart = pos;
    while (TCHAR[buf[pos]] === 1) pos++;
    if (pos >= stop) return INCOMPLETE;
    if (buf[pos] !== COLON) {
      c = buf[pos];
      fail('E_HTTP_BAD_HEADER_NAME', c === SP || c === HTAB ? 'whitespace between a header name and its colon' : 'invalid character in a header name (or no colon)');
    }
    if (pos === nameStart) fail('E_HTTP_BAD_HEADER_NAME', 'empty header name');
    const nameEnd = pos++;
    while ((c = buf[pos]) === SP || c === HTAB) pos++;
    const valueStart = pos;
    while (FIELD_CHAR[buf[pos]] === 1) pos++;
    if (pos >= stop) return INCOMPLETE;
    c = buf[pos];
    if (c !== CR) {
      if (c === LF) fail('E_HTTP_BARE_LF', 'header line ends with LF without CR');
      fail('E_HTTP_BAD_HEADER_VALUE', `control character 0x${c.toString(16).padStart(2, '0')} in a header value`);
    }
    if (pos + 1 >= stop) return INCOMPLETE;
    if (buf[pos + 1] !== LF) fail('E_HTTP_BARE_CR', 'CR not followed by LF in a header value');
    let valueEnd = pos;
    while (valueEnd > valueStart && ((c = buf[valueEnd - 1]) === SP || c === HTAB)) valueEnd--;
    if (n >= maxHeaders) throw new HttpParseError('E_HTTP_TOO_MANY_HEADERS', `more than ${maxHeaders} header fields`, 431);
    const o = n * 4;
    if (o + 4 > offsets.length) {
      const grown = new Int32Array(offsets.length * 2);
      grown.set(offsets);
      offsets = grown;
    }
    offsets[o] = nameStart;
    offsets[o + 1] = nameEnd;
    offsets[o + 2] = valueStart;
    offsets[o + 3] = valueEnd;
    n++;
    pos += 2;
  }
}

/** The strings of the fields the walk found (`text` is the head decoded from offset `base`), and what they say. */
function collectFields(buf: Buffer, text: string, base: number): Fields {
  // Sized once: cheaper than growing by push.
  const headers = new Array<string>(fieldCount * 2);
  const f = resetFields(headers);
  for (let i = 0; i < fieldCount; i++) {
    const o = i * 4;
    const nameStart = offsets[o];
    const nameEnd = offsets[o + 1];
    const valueStart = offsets[o + 2];
    const value = text.slice(valueStart - base, offsets[o + 3] - base);
    headers[2 * i] = text.slice(nameStart - base, nameEnd - base);
    headers[2 * i + 1] = value;
    noteField(buf, nameStart, nameEnd - nameStart, value, valueStart, f);
  }
  return f;
}

/** The head is not complete: null, unless it cannot complete within the limit. */
function notYet(buf: Buffer, start: number, limits: HeadLimits): null {
  if (buf.length - start >= limits.maxHeadBytes) {
    throw new HttpParseError('E_HTTP_HEAD_TOO_LARGE', `the head exceeds ${limits.maxHeadBytes} bytes`, 431);
  }
  return null;
}

/** "HTTP/" DIGIT "." DIGIT at pos (8 bytes the caller has), as major * 10 + minor; throws `code` on other bytes. */
function parseVersion(buf: Buffer, pos: number, code: string): number {
  const major = buf[pos + 5] - 0x30;
  const minor = buf[pos + 7] - 0x30;
  if (
    buf[pos] !== 0x48 || buf[pos + 1] !== 0x54 || buf[pos + 2] !== 0x54 || buf[pos + 3] !== 0x50 || buf[pos + 4] !== 0x2f ||
    !(major >= 0 && major <= 9) || buf[pos + 6] !== 0x2e || !(minor >= 0 && minor <= 9)
  ) {
    fail(code, 'the version is not "HTTP/x.y"');
  }
  return major * 10 + minor;
}

function checkVersion(version: number): 0 | 1 {
  if (version !== 10 && version !== 11) {
    throw new HttpParseError('E_HTTP_VERSION', `HTTP/${Math.floor(version / 10)}.${version % 10} is not supported`, 505);
  }
  return version === 11 ? 1 : 0;
}

// ---- request ----

/**
 * Returns null when the head is not complete yet (and the buffer is under
 * maxHeadBytes); throws HttpParseError when invalid. `start` = offset of the
 * head in buf. A prefix of a head gives null or the error the whole head gives.
 */
export function parseRequestHead(buf: Buffer, start = 0, limits: HeadLimits = DEFAULT_LIMITS): RequestHead | null {
  const stop = Math.min(buf.length, start + limits.maxHeadBytes);
  let pos = start;
  // RFC 9112 2.2: a server SHOULD ignore empty lines received before the request-line.
  while (pos + 1 < stop && buf[pos] === CR && buf[pos + 1] === LF) pos += 2;
  if (pos + 1 >= stop) return notYet(buf, start, limits);

  // request-line = method SP request-target SP HTTP-version CRLF
  const base = pos;
  while (TCHAR[buf[pos]] === 1) pos++;
  if (pos >= stop) return notYet(buf, start, limits);
  if (pos === base || buf[pos] !== SP) fail('E_HTTP_BAD_REQUEST_LINE', 'the method is not a token followed by one SP');
  const methodEnd = pos++;
  const targetStart = pos;
  while (TARGET_CHAR[buf[pos]] === 1) pos++;
  if (pos >= stop) return notYet(buf, start, limits);
  if (pos === targetStart || buf[pos] !== SP) fail('E_HTTP_BAD_REQUEST_LINE', 'the request-target is empty, holds an invalid character or is not followed by one SP');
  const targetEnd = pos++;
  if (pos + 10 > stop) return notYet(buf, start, limits);
  const version = parseVersion(buf, pos, 'E_HTTP_BAD_REQUEST_LINE');
  pos += 8;
  if (buf[pos] !== CR) fail(buf[pos] === LF ? 'E_HTTP_BARE_LF' : 'E_HTTP_BAD_REQUEST_LINE', 'the request line does not end with CRLF after the version');
  if (buf[pos + 1] !== LF) fail('E_HTTP_BARE_CR', 'CR not followed by LF after the request line');
  const minor = checkVersion(version);

  const end = walkFields(buf, pos + 2, stop, limits.maxHeaders);
  if (end < 0) return notYet(buf, start, limits);
  const text = (buf as Latin1Buffer).latin1Slice(base, end);
  const method = text.slice(0, methodEnd - base);
  if (!METHODS.has(method)) throw new HttpParseError('E_HTTP_UNKNOWN_METHOD', `method ${method} is not supported`, 501);
  const target = text.slice(targetStart - base, targetEnd - base);
  const form = targetForm(buf, method, target, targetStart);
  const f = collectFields(buf, text, base);

  const isConnect = method === 'CONNECT';
  const body = requestFraming(f, minor, isConnect);
  const host = requestHost(buf, f, minor, form);
  const conn = f.connection;
  return {
    method,
    target,
    minor,
    headers: f.headers,
    host,
    path: form.path,
    absoluteForm: form.kind === ABSOLUTE,
    body,
    keepAlive: (conn & CONN_CLOSE) === 0 && (minor === 1 || (conn & CONN_KEEP_ALIVE) !== 0),
    upgrade: isConnect ? target : minor === 1 && (conn & CONN_UPGRADE) !== 0 ? f.upgrade : undefined,
    expectContinue: minor === 1 && f.expectContinue,
    headLength: end - start,
  };
}

const ORIGIN = 0;
const ABSOLUTE = 1;
const AUTHORITY = 2;
const ASTERISK = 3;

interface TargetForm {
  kind: number;
  path: string;
  /** The lower-cased authority of an absolute-form or authority-form target. */
  host: string | undefined;
}

/** RFC 9112 3.2: which of the four forms the target (at targetStart in buf) has, and whether the method allows it. */
function targetForm(buf: Buffer, method: string, target: string, targetStart: number): TargetForm {
  if (method === 'CONNECT') {
    const host = hostAt(buf, targetStart, targetStart + target.length, target, true);
    if (host === undefined) fail('E_HTTP_BAD_REQUEST_LINE', 'CONNECT needs an authority-form target (host:port)');
    return { kind: AUTHORITY, path: '', host };
  }
  const first = target.charCodeAt(0);
  if (first === 0x2f /* / */) return { kind: ORIGIN, path: target, host: undefined };
  if (first === 0x2a /* * */ && target.length === 1) {
    if (method !== 'OPTIONS') fail('E_HTTP_BAD_REQUEST_LINE', 'the asterisk-form target is for OPTIONS only');
    return { kind: ASTERISK, path: '*', host: undefined };
  }
  const schemeEnd = equalsLower(target, 0, 7, 'http://') ? 7 : equalsLower(target, 0, 8, 'https://') ? 8 : -1;
  if (schemeEnd < 0) fail('E_HTTP_BAD_REQUEST_LINE', 'the request-target is not origin-form, an http(s) URL, or asterisk-form');
  let end = schemeEnd;
  while (end < target.length && target.charCodeAt(end) !== 0x2f && target.charCodeAt(end) !== 0x3f) end++;
  const host = hostAt(buf, targetStart + schemeEnd, targetStart + end, target.slice(schemeEnd, end), false);
  if (host === undefined) fail('E_HTTP_BAD_REQUEST_LINE', 'the URL has no valid authority (userinfo is not allowed)');
  const rest = target.slice(end);
  return { kind: ABSOLUTE, path: rest === '' ? '/' : rest.charCodeAt(0) === 0x3f ? `/${rest}` : rest, host };
}

/** `text` (the bytes buf[start, end)) lower-cased when it is a valid authority, else undefined. */
function hostAt(buf: Buffer, start: number, end: number, text: string, portRequired: boolean): string | undefined {
  const verdict = authority(buf, start, end, portRequired);
  if (verdict === AUTHORITY_INVALID) return undefined;
  return verdict === AUTHORITY_UPPER ? text.toLowerCase() : text;
}

function requestFraming(f: Fields, minor: 0 | 1, isConnect: boolean): BodyFraming {
  let body = NO_BODY;
  if (f.transferEncoding !== undefined) {
    if (f.contentLengthCount > 0) fail('E_HTTP_CL_AND_TE', 'both Content-Length and Transfer-Encoding');
    if (minor === 0) fail('E_HTTP_BAD_TRANSFER_ENCODING', 'Transfer-Encoding in an HTTP/1.0 request');
    const te = f.transferEncoding;
    const codings = transferCodings(te);
    if (codings === TE_CHUNKED_NOT_LAST) fail('E_HTTP_BAD_TRANSFER_ENCODING', 'chunked is not the last transfer coding, or is applied twice');
    if (codings !== TE_CHUNKED) throw new HttpParseError('E_HTTP_BAD_TRANSFER_ENCODING', `unsupported transfer coding in "${te}"`, 501);
    // The one accepted spelling: llhttp refuses some list forms RFC 9110 allows ("chunked,").
    if (!equalsLower(te, 0, te.length, 'chunked')) fail('E_HTTP_BAD_TRANSFER_ENCODING', 'empty list elements around chunked');
    body = CHUNKED;
  } else if (f.contentLengthCount > 0) {
    body = { kind: 'length', length: contentLength(f) };
  }
  // RFC 9110 9.3.6: a CONNECT request has no content; framing headers there only invite disagreement.
  if (isConnect && body !== NO_BODY && !(body.kind === 'length' && body.length === 0)) {
    fail(body === CHUNKED ? 'E_HTTP_BAD_TRANSFER_ENCODING' : 'E_HTTP_BAD_CONTENT_LENGTH', 'a CONNECT request has no content');
  }
  return body;
}

function requestHost(buf: Buffer, f: Fields, minor: 0 | 1, form: TargetForm): string {
  if (f.hostCount > 1) fail('E_HTTP_DUPLICATE_HOST', 'more than one Host header');
  let host = '';
  if (f.host === undefined) {
    if (minor === 1) fail('E_HTTP_MISSING_HOST', 'HTTP/1.1 request without Host');
  } else {
    const valid = hostAt(buf, f.hostStart, f.hostEnd, f.host, false);
    if (valid === undefined) fail('E_HTTP_BAD_HOST', 'the Host header is not a valid authority');
    host = valid;
  }
  // RFC 9112 3.2.2: the target's authority wins over Host.
  return form.host ?? host;
}

function contentLength(f: Fields): number {
  if (f.contentLengthCount > 1) fail('E_HTTP_DUPLICATE_CONTENT_LENGTH', 'more than one Content-Length header');
  const s = f.contentLength as string;
  if (s.length === 0) fail('E_HTTP_BAD_CONTENT_LENGTH', 'empty Content-Length');
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const d = s.charCodeAt(i) - 0x30;
    if (!(d >= 0 && d <= 9)) fail('E_HTTP_BAD_CONTENT_LENGTH', 'Content-Length is not 1*DIGIT');
    n = n * 10 + d;
    if (n > MAX_LENGTH) fail('E_HTTP_BAD_CONTENT_LENGTH', 'Content-Length is too large');
  }
  return n;
}

// ---- Transfer-Encoding and Connection lists ----

const TE_CHUNKED = 0; // exactly "chunked"
const TE_CHUNKED_LAST = 1; // other codings, then chunked
const TE_CHUNKED_NOT_LAST = 2; // chunked before another coding, or twice
const TE_NO_CHUNKED = 3;

/** Classifies a Transfer-Encoding list (RFC 9110 5.6.1: empty elements are ignored); every coding must be a bare token. */
function transferCodings(te: string): number {
  let count = 0;
  let chunkedAt = -1;
  let chunkedTwice = false;
  for (let i = 0; i <= te.length; ) {
    let j = te.indexOf(',', i);
    if (j < 0) j = te.length;
    const a = skipOws(te, i, j);
    const b = trimOwsEnd(te, a, j);
    if (b > a) {
      const coding = te.slice(a, b);
      if (!isToken(coding)) fail('E_HTTP_BAD_TRANSFER_ENCODING', `invalid transfer coding "${coding}"`);
      if (equalsLower(te, a, b, 'chunked')) {
        if (chunkedAt >= 0) chunkedTwice = true;
        chunkedAt = count;
      }
      count++;
    }
    i = j + 1;
  }
  if (count === 0) fail('E_HTTP_BAD_TRANSFER_ENCODING', 'empty Transfer-Encoding');
  if (chunkedAt < 0) return TE_NO_CHUNKED;
  if (chunkedTwice || chunkedAt !== count - 1) return TE_CHUNKED_NOT_LAST;
  return count === 1 ? TE_CHUNKED : TE_CHUNKED_LAST;
}

/** CONN_* bits of the options a Connection value lists. */
function connectionOptions(v: string): number {
  let bits = 0;
  for (let i = 0; i <= v.length; ) {
    let j = v.indexOf(',', i);
    if (j < 0) j = v.length;
    const a = skipOws(v, i, j);
    const b = trimOwsEnd(v, a, j);
    if (equalsLower(v, a, b, 'close')) bits |= CONN_CLOSE;
    else if (equalsLower(v, a, b, 'keep-alive')) bits |= CONN_KEEP_ALIVE;
    else if (equalsLower(v, a, b, 'upgrade')) bits |= CONN_UPGRADE;
    i = j + 1;
  }
  return bits;
}

function skipOws(s: string, a: number, b: number): number {
  let c;
  while (a < b && ((c = s.charCodeAt(a)) === SP || c === HTAB)) a++;
  return a;
}

function trimOwsEnd(s: string, a: number, b: number): number {
  let c;
  while (b > a && ((c = s.charCodeAt(b - 1)) === SP || c === HTAB)) b--;
  return b;
}

/**
 * s[a, b) equals `lower` (letters, digits, '-', '/', ':') ignoring ASCII case.
 * `| 0x20` folds A-Z onto a-z; the only other codes it maps onto those
 * characters are CTLs, which the strings parsed here cannot hold.
 */
function equalsLower(s: string, a: number, b: number, lower: string): boolean {
  if (b - a !== lower.length || b > s.length) return false;
  for (let i = 0; i < lower.length; i++) if ((s.charCodeAt(a + i) | 0x20) !== lower.charCodeAt(i)) return false;
  return true;
}

// ---- response ----

/** requestMethod: HEAD and CONNECT change the response's framing; 1xx/204/304 have no body. */
export function parseResponseHead(buf: Buffer, requestMethod: string, start = 0, limits: HeadLimits = DEFAULT_LIMITS): ResponseHead | null {
  const stop = Math.min(buf.length, start + limits.maxHeadBytes);
  // status-line = HTTP-version SP status-code SP [ reason-phrase ] CRLF
  let pos = start;
  if (pos + 14 > stop) return notYet(buf, start, limits); // "HTTP/1.1 200" CRLF
  const version = parseVersion(buf, pos, 'E_HTTP_BAD_STATUS_LINE');
  pos += 8;
  const d0 = buf[pos + 1] - 0x30;
  const d1 = buf[pos + 2] - 0x30;
  const d2 = buf[pos + 3] - 0x30;
  if (buf[pos] !== SP || !(d0 >= 1 && d0 <= 5) || !(d1 >= 0 && d1 <= 9) || !(d2 >= 0 && d2 <= 9)) {
    fail('E_HTTP_BAD_STATUS_LINE', 'the status code is not three digits from 100 to 599 after one SP');
  }
  const status = d0 * 100 + d1 * 10 + d2;
  pos += 4;
  // RFC 9112 wants SP before even an empty reason; servers often leave it out, and without it the line is still unambiguous.
  if (buf[pos] === SP) pos++;
  else if (buf[pos] !== CR && buf[pos] !== LF) fail('E_HTTP_BAD_STATUS_LINE', 'no SP after the status code');
  const reasonStart = pos;
  while (FIELD_CHAR[buf[pos]] === 1) pos++;
  if (pos >= stop) return notYet(buf, start, limits);
  if (buf[pos] !== CR) fail(buf[pos] === LF ? 'E_HTTP_BARE_LF' : 'E_HTTP_BAD_STATUS_LINE', 'the status line holds a control character or does not end with CRLF');
  if (pos + 1 >= stop) return notYet(buf, start, limits);
  if (buf[pos + 1] !== LF) fail('E_HTTP_BARE_CR', 'CR not followed by LF after the status line');
  const reasonEnd = pos;
  const minor = checkVersion(version);

  const end = walkFields(buf, pos + 2, stop, limits.maxHeaders);
  if (end < 0) return notYet(buf, start, limits);
  const text = (buf as Latin1Buffer).latin1Slice(start, end);
  const reason = text.slice(reasonStart - start, reasonEnd - start);
  const f = collectFields(buf, text, start);
  const body = responseFraming(f, minor, status, requestMethod);
  const conn = f.connection;
  const keepAlive = body.kind !== 'eof' && (conn & CONN_CLOSE) === 0 && (minor === 1 || (conn & CONN_KEEP_ALIVE) !== 0);
  return { minor, status, reason, headers: f.headers, body, keepAlive, headLength: end - start, upgrade: status === 101 };
}

/** RFC 9112 6.3, strict: CL with TE or two CLs are errors (the engine answers 502), not "TE wins". */
function responseFraming(f: Fields, minor: 0 | 1, status: number, requestMethod: string): BodyFraming {
  const te = f.transferEncoding;
  if (te !== undefined && f.contentLengthCount > 0) fail('E_HTTP_CL_AND_TE', 'both Content-Length and Transfer-Encoding');
  // RFC 9112 6.1: Transfer-Encoding in an HTTP/1.0 message means faulty framing.
  if (te !== undefined && minor === 0) fail('E_HTTP_BAD_TRANSFER_ENCODING', 'Transfer-Encoding in an HTTP/1.0 response');
  const codings = te === undefined ? TE_NO_CHUNKED : transferCodings(te);
  const length = f.contentLengthCount > 0 ? contentLength(f) : -1;
  if (status < 200 || status === 204 || status === 304 || requestMethod === 'HEAD') return NO_BODY;
  if (requestMethod === 'CONNECT' && status < 300) return NO_BODY; // the tunnel begins
  // Codings that do not end with chunked: the body runs until the server closes.
  if (te !== undefined) return codings === TE_CHUNKED || codings === TE_CHUNKED_LAST ? CHUNKED : UNTIL_EOF;
  if (length >= 0) return { kind: 'length', length };
  return UNTIL_EOF;
}

// ---- helpers the engine uses ----

/** The first value of a header, by case-insensitive name (`lowerName` must be lower case). */
export function headerValue(headers: string[], lowerName: string): string | undefined {
  const n = lowerName.length;
  outer: for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i];
    if (name.length !== n) continue;
    for (let k = 0; k < n; k++) {
      const c = name.charCodeAt(k);
      // Fold A-Z only: the lower-case name may hold any character.
      if (c !== lowerName.charCodeAt(k) && !(c >= 0x41 && c <= 0x5a && (c | 0x20) === lowerName.charCodeAt(k))) continue outer;
    }
    return headers[i + 1];
  }
  return undefined;
}
