import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { headerValue, parseRequestHead, parseResponseHead, type RequestHead, type ResponseHead } from '../../../src/proxy/http1/head-parser';
import { bytes, outcome, pick } from './support';

/** A head from a start line and header lines, each ended by CRLF, and the empty line. */
const head = (start: string, ...fields: string[]): string => `${start}\r\n${fields.map((f) => `${f}\r\n`).join('')}\r\n`;
const get = (...fields: string[]): string => head('GET / HTTP/1.1', 'Host: a', ...fields);

/** An expectation: the fields a valid head must have, an error code (with its status), or null for "not complete yet". */
type Expect<T> = Partial<T> | { error: string; status?: number } | null;
const err = (code: string, status = 400) => ({ error: code, status });

function check<T extends object>(result: ReturnType<typeof outcome<T>>, expect: Expect<T>): void {
  if (expect === null) return assert.deepEqual(result, { incomplete: true });
  if ('error' in expect && typeof expect.error === 'string') return assert.deepEqual(result, { error: expect.error, status: expect.status ?? 400 });
  assert.ok('ok' in result, `expected a valid head, got ${JSON.stringify(result)}`);
  assert.deepEqual(pick(result.ok, Object.keys(expect)), expect);
}

const REQUESTS: [string, string, Expect<RequestHead>][] = [
  // request line
  ['origin-form GET', get('User-Agent: t'), { method: 'GET', target: '/', path: '/', host: 'a', minor: 1, absoluteForm: false, body: { kind: 'none' }, keepAlive: true, upgrade: undefined, expectContinue: false, headLength: 42 }],
  ['path and query kept as received', head('GET /a/../b?x=1&y=%20 HTTP/1.1', 'Host: a'), { target: '/a/../b?x=1&y=%20', path: '/a/../b?x=1&y=%20' }],
  ['extension method', head('PURGE /x HTTP/1.1', 'Host: a'), { method: 'PURGE' }],
  ['a method of the registry', head('PROPFIND /x HTTP/1.1', 'Host: a'), { method: 'PROPFIND' }],
  ['an unknown method', head('FOO / HTTP/1.1', 'Host: a'), err('E_HTTP_UNKNOWN_METHOD', 501)],
  ['methods are case-sensitive', head('get / HTTP/1.1', 'Host: a'), err('E_HTTP_UNKNOWN_METHOD', 501)],
  ['method is not a token', head('GE(T / HTTP/1.1', 'Host: a'), err('E_HTTP_BAD_REQUEST_LINE')],
  ['empty method', head(' / HTTP/1.1', 'Host: a'), err('E_HTTP_BAD_REQUEST_LINE')],
  ['two SP after the method', head('GET  / HTTP/1.1', 'Host: a'), err('E_HTTP_BAD_REQUEST_LINE')],
  ['two SP before the version', head('GET /  HTTP/1.1', 'Host: a'), err('E_HTTP_BAD_REQUEST_LINE')],
  ['HTAB as separator', head('GET\t/ HTTP/1.1', 'Host: a'), err('E_HTTP_BAD_REQUEST_LINE')],
  ['SP after the version', head('GET / HTTP/1.1 ', 'Host: a'), err('E_HTTP_BAD_REQUEST_LINE')],
  ['lower-case protocol name', head('GET / http/1.1', 'Host: a'), err('E_HTTP_BAD_REQUEST_LINE')],
  ['version with two digits', head('GET / HTTP/1.10', 'Host: a'), err('E_HTTP_BAD_REQUEST_LINE')],
  ['HTTP/0.9 request line', 'GET /\r\n\r\n', err('E_HTTP_BAD_REQUEST_LINE')],
  ['HTTP/1.2', head('GET / HTTP/1.2', 'Host: a'), err('E_HTTP_VERSION', 505)],
  ['HTTP/2.0', head('GET / HTTP/2.0', 'Host: a'), err('E_HTTP_VERSION', 505)],
  ['HTTP/2 preface', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', err('E_HTTP_VERSION', 505)],
  ['request line ends with bare LF', 'GET / HTTP/1.1\nHost: a\r\n\r\n', err('E_HTTP_BARE_LF')],
  ['request line ends with bare CR', 'GET / HTTP/1.1\rHost: a\r\n\r\n', err('E_HTTP_BARE_CR')],
  ['target holds a fragment', head('GET /a#b HTTP/1.1', 'Host: a'), err('E_HTTP_BAD_REQUEST_LINE')],
  ['target holds a non-ASCII byte', head('GET /\xe9 HTTP/1.1', 'Host: a'), err('E_HTTP_BAD_REQUEST_LINE')],
  ['target holds a control character', head('GET /\x01 HTTP/1.1', 'Host: a'), err('E_HTTP_BAD_REQUEST_LINE')],
  ['target is neither origin, absolute nor asterisk form', head('GET a/b HTTP/1.1', 'Host: a'), err('E_HTTP_BAD_REQUEST_LINE')],
  ['empty lines before the request line are skipped', `\r\n\r\n${get()}`, { method: 'GET', headLength: 4 + get().length }],
  // absolute-form, authority-form, asterisk-form
  ['absolute-form: host from the URL, lower-cased', head('GET HTTP://Example.COM:8080/p?q HTTP/1.1', 'Host: other'), { absoluteForm: true, host: 'example.com:8080', path: '/p?q', target: 'HTTP://Example.COM:8080/p?q' }],
  ['absolute-form https with empty path', head('POST https://a.b HTTP/1.1', 'Host: a.b', 'Content-Length: 0'), { absoluteForm: true, host: 'a.b', path: '/' }],
  ['absolute-form with only a query', head('GET http://a.b?x HTTP/1.1', 'Host: a.b'), { path: '/?x' }],
  ['absolute-form with userinfo', head('GET http://u:p@a.b/ HTTP/1.1', 'Host: a.b'), err('E_HTTP_BAD_REQUEST_LINE')],
  ['absolute-form with another scheme', head('GET ftp://a.b/ HTTP/1.1', 'Host: a.b'), err('E_HTTP_BAD_REQUEST_LINE')],
  ['absolute-form without a host', head('GET http:///x HTTP/1.1', 'Host: a.b'), err('E_HTTP_BAD_REQUEST_LINE')],
  ['CONNECT authority-form', head('CONNECT Db.example:443 HTTP/1.1', 'Host: db.example:443'), { method: 'CONNECT', host: 'db.example:443', path: '', upgrade: 'Db.example:443', body: { kind: 'none' } }],
  ['CONNECT to an IPv6 literal', head('CONNECT [2001:db8::1]:443 HTTP/1.1', 'Host: [2001:db8::1]:443'), { host: '[2001:db8::1]:443' }],
  ['CONNECT without a port', head('CONNECT db.example HTTP/1.1', 'Host: db.example'), err('E_HTTP_BAD_REQUEST_LINE')],
  ['CONNECT with origin-form', head('CONNECT / HTTP/1.1', 'Host: a'), err('E_HTTP_BAD_REQUEST_LINE')],
  ['CONNECT with a body length', head('CONNECT a:1 HTTP/1.1', 'Host: a:1', 'Content-Length: 5'), err('E_HTTP_BAD_CONTENT_LENGTH')],
  ['CONNECT with Content-Length: 0', head('CONNECT a:1 HTTP/1.1', 'Host: a:1', 'Content-Length: 0'), { method: 'CONNECT' }],
  ['CONNECT with Transfer-Encoding', head('CONNECT a:1 HTTP/1.1', 'Host: a:1', 'Transfer-Encoding: chunked'), err('E_HTTP_BAD_TRANSFER_ENCODING')],
  ['authority-form with GET', head('GET a.b:443 HTTP/1.1', 'Host: a.b'), err('E_HTTP_BAD_REQUEST_LINE')],
  ['OPTIONS *', head('OPTIONS * HTTP/1.1', 'Host: a'), { path: '*', target: '*' }],
  ['asterisk-form with GET', head('GET * HTTP/1.1', 'Host: a'), err('E_HTTP_BAD_REQUEST_LINE')],
  // header names and values
  ['names as received, values without surrounding OWS', get('X-A: \t 1 2\t ', 'x-b:3', 'X-Empty:', 'X-Tab: a\tb'), { headers: ['Host', 'a', 'X-A', '1 2', 'x-b', '3', 'X-Empty', '', 'X-Tab', 'a\tb'] }],
  ['obs-text in a value', get('X-A: caf\xe9'), { headers: ['Host', 'a', 'X-A', 'caf\xe9'] }],
  ['whitespace before the colon', get('X-A : 1'), err('E_HTTP_BAD_HEADER_NAME')],
  ['HTAB before the colon', get('X-A\t: 1'), err('E_HTTP_BAD_HEADER_NAME')],
  ['non-tchar in a name', get('X(A): 1'), err('E_HTTP_BAD_HEADER_NAME')],
  ['empty name', get(': 1'), err('E_HTTP_BAD_HEADER_NAME')],
  ['line without a colon', get('X-A'), err('E_HTTP_BAD_HEADER_NAME')],
  ['NUL in a value', get('X-A: a\x00b'), err('E_HTTP_BAD_HEADER_VALUE')],
  ['DEL in a value', get('X-A: a\x7fb'), err('E_HTTP_BAD_HEADER_VALUE')],
  ['VT in a value', get('X-A: a\x0bb'), err('E_HTTP_BAD_HEADER_VALUE')],
  ['bare CR in a value', get('X-A: a\rb'), err('E_HTTP_BARE_CR')],
  ['header line ends with bare LF', 'GET / HTTP/1.1\r\nHost: a\nX: 1\r\n\r\n', err('E_HTTP_BARE_LF')],
  ['head ends with a bare LF line', 'GET / HTTP/1.1\r\nHost: a\r\n\n', err('E_HTTP_BARE_LF')],
  ['head ends with LF LF', 'GET / HTTP/1.1\nHost: a\n\n', err('E_HTTP_BARE_LF')],
  ['empty line ends with bare CR', 'GET / HTTP/1.1\r\nHost: a\r\n\rX', err('E_HTTP_BARE_CR')],
  ['obs-fold', get('X-A: 1', ' 2'), err('E_HTTP_OBS_FOLD')],
  ['obs-fold with HTAB', get('X-A: 1', '\t2'), err('E_HTTP_OBS_FOLD')],
  ['whitespace before the first header', head('GET / HTTP/1.1', ' Host: a'), err('E_HTTP_OBS_FOLD')],
  // Content-Length
  ['Content-Length', get('Content-Length: 42'), { body: { kind: 'length', length: 42 } }],
  ['Content-Length: 0', get('Content-Length: 0'), { body: { kind: 'length', length: 0 } }],
  ['Content-Length with leading zeros', get('Content-Length: 007'), { body: { kind: 'length', length: 7 } }],
  ['Content-Length at 2^53-1', get('Content-Length: 9007199254740991'), { body: { kind: 'length', length: 9007199254740991 } }],
  ['Content-Length above 2^53-1', get('Content-Length: 9007199254740992'), err('E_HTTP_BAD_CONTENT_LENGTH')],
  ['Content-Length with a sign', get('Content-Length: +5'), err('E_HTTP_BAD_CONTENT_LENGTH')],
  ['negative Content-Length', get('Content-Length: -1'), err('E_HTTP_BAD_CONTENT_LENGTH')],
  ['Content-Length with an inner space', get('Content-Length: 1 2'), err('E_HTTP_BAD_CONTENT_LENGTH')],
  ['Content-Length list', get('Content-Length: 5, 5'), err('E_HTTP_BAD_CONTENT_LENGTH')],
  ['hexadecimal Content-Length', get('Content-Length: 0x10'), err('E_HTTP_BAD_CONTENT_LENGTH')],
  ['empty Content-Length', get('Content-Length:'), err('E_HTTP_BAD_CONTENT_LENGTH')],
  ['two equal Content-Length', get('Content-Length: 5', 'content-length: 5'), err('E_HTTP_DUPLICATE_CONTENT_LENGTH')],
  ['two different Content-Length', get('Content-Length: 5', 'Content-Length: 6'), err('E_HTTP_DUPLICATE_CONTENT_LENGTH')],
  // Transfer-Encoding
  ['Transfer-Encoding: chunked', get('Transfer-Encoding: chunked'), { body: { kind: 'chunked' } }],
  ['chunked in any case, with OWS', get('transfer-encoding:  ChUnKeD '), { body: { kind: 'chunked' } }],
  ['chunked with empty list elements', get('Transfer-Encoding: , chunked'), err('E_HTTP_BAD_TRANSFER_ENCODING')],
  ['chunked followed by an empty element', get('Transfer-Encoding: chunked,'), err('E_HTTP_BAD_TRANSFER_ENCODING')],
  ['HTAB after chunked', get('Transfer-Encoding: chunked\t'), err('E_HTTP_BAD_TRANSFER_ENCODING')],
  ['HTAB before chunked', get('Transfer-Encoding:\tchunked'), { body: { kind: 'chunked' } }],
  ['HTAB after a Content-Length', get('Content-Length: 1 \t'), err('E_HTTP_BAD_CONTENT_LENGTH')],
  ['HTAB before a Content-Length', get('Content-Length:\t1'), { body: { kind: 'length', length: 1 } }],
  ['Content-Length and Transfer-Encoding', get('Content-Length: 5', 'Transfer-Encoding: chunked'), err('E_HTTP_CL_AND_TE')],
  ['Transfer-Encoding and Content-Length', get('Transfer-Encoding: chunked', 'Content-Length: 5'), err('E_HTTP_CL_AND_TE')],
  ['unknown coding', get('Transfer-Encoding: gzip'), err('E_HTTP_BAD_TRANSFER_ENCODING', 501)],
  ['another coding before chunked', get('Transfer-Encoding: gzip, chunked'), err('E_HTTP_BAD_TRANSFER_ENCODING', 501)],
  ['chunked not last', get('Transfer-Encoding: chunked, gzip'), err('E_HTTP_BAD_TRANSFER_ENCODING')],
  ['chunked twice in one line', get('Transfer-Encoding: chunked, chunked'), err('E_HTTP_BAD_TRANSFER_ENCODING')],
  ['chunked twice in two lines', get('Transfer-Encoding: chunked', 'Transfer-Encoding: chunked'), err('E_HTTP_BAD_TRANSFER_ENCODING')],
  ['chunked with a parameter', get('Transfer-Encoding: chunked;q=1'), err('E_HTTP_BAD_TRANSFER_ENCODING')],
  ['chunked lookalike', get('Transfer-Encoding: xchunked'), err('E_HTTP_BAD_TRANSFER_ENCODING', 501)],
  ['empty Transfer-Encoding', get('Transfer-Encoding:'), err('E_HTTP_BAD_TRANSFER_ENCODING')],
  ['Transfer-Encoding in HTTP/1.0', head('POST / HTTP/1.0', 'Transfer-Encoding: chunked'), err('E_HTTP_BAD_TRANSFER_ENCODING')],
  // Host
  ['HTTP/1.1 without Host', head('GET / HTTP/1.1', 'X: 1'), err('E_HTTP_MISSING_HOST')],
  ['two Host headers', get('host: a'), err('E_HTTP_DUPLICATE_HOST')],
  ['HTTP/1.0 without Host', head('GET / HTTP/1.0'), { host: '', minor: 0 }],
  ['HTTP/1.0 with Host', head('GET / HTTP/1.0', 'Host: A.b'), { host: 'a.b' }],
  ['Host with port, IPv4, upper case', head('GET / HTTP/1.1', 'Host: 10.0.0.1:8080'), { host: '10.0.0.1:8080' }],
  ['Host lower-cased', head('GET / HTTP/1.1', 'Host: Svc.NS'), { host: 'svc.ns' }],
  ['Host as IPv6 literal', head('GET / HTTP/1.1', 'Host: [::1]:80'), { host: '[::1]:80' }],
  ['Host with pct-encoding', head('GET / HTTP/1.1', 'Host: a%41b'), { host: 'a%41b' }],
  ['empty Host', head('GET / HTTP/1.1', 'Host:'), err('E_HTTP_BAD_HOST')],
  ['Host with a path', head('GET / HTTP/1.1', 'Host: a/b'), err('E_HTTP_BAD_HOST')],
  ['Host with userinfo', head('GET / HTTP/1.1', 'Host: u@a'), err('E_HTTP_BAD_HOST')],
  ['Host with inner space', head('GET / HTTP/1.1', 'Host: a b'), err('E_HTTP_BAD_HOST')],
  ['Host with an empty port', head('GET / HTTP/1.1', 'Host: a:'), err('E_HTTP_BAD_HOST')],
  ['Host port above 65535', head('GET / HTTP/1.1', 'Host: a:65536'), err('E_HTTP_BAD_HOST')],
  ['Host with an unclosed IPv6 literal', head('GET / HTTP/1.1', 'Host: [::1'), err('E_HTTP_BAD_HOST')],
  ['Host with an invalid IPv6 literal', head('GET / HTTP/1.1', 'Host: [1:2:3]'), err('E_HTTP_BAD_HOST')],
  ['Host with an IPv6 zone', head('GET / HTTP/1.1', 'Host: [fe80::1%25eth0]'), err('E_HTTP_BAD_HOST')],
  ['Host with a bad pct-encoding', head('GET / HTTP/1.1', 'Host: a%4'), err('E_HTTP_BAD_HOST')],
  // Connection, Upgrade, Expect
  ['Connection: close', get('Connection: close'), { keepAlive: false }],
  ['Connection options in any case and order', get('Connection: Keep-Alive, CLOSE'), { keepAlive: false }],
  ['HTTP/1.0 closes by default', head('GET / HTTP/1.0'), { keepAlive: false }],
  ['HTTP/1.0 keep-alive', head('GET / HTTP/1.0', 'Connection: keep-alive'), { keepAlive: true }],
  ['Upgrade listed in Connection', get('Connection: Upgrade', 'Upgrade: websocket'), { upgrade: 'websocket', keepAlive: true }],
  ['Upgrade listed in a second Connection line', get('Connection: keep-alive', 'Connection: upgrade', 'Upgrade: h2c'), { upgrade: 'h2c' }],
  ['Upgrade not listed in Connection', get('Upgrade: websocket'), { upgrade: undefined }],
  ['Upgrade in HTTP/1.0 is ignored', head('GET / HTTP/1.0', 'Connection: upgrade', 'Upgrade: websocket'), { upgrade: undefined }],
  ['Expect: 100-continue', get('Expect: 100-Continue', 'Content-Length: 3'), { expectContinue: true }],
  ['other Expect', get('Expect: something'), { expectContinue: false }],
  ['Expect in HTTP/1.0 is ignored', head('POST / HTTP/1.0', 'Expect: 100-continue'), { expectContinue: false }],
  // completeness
  ['no empty line yet', 'GET / HTTP/1.1\r\nHost: a\r\n', null],
  ['nothing yet', '', null],
  ['a CR that may start an empty line', '\r', null],
  ['TLS ClientHello refused at once', '\x16\x03\x01\x02\x00\x01\x00', err('E_HTTP_BAD_REQUEST_LINE')],
];

describe('parseRequestHead', () => {
  for (const [name, raw, expect] of REQUESTS) {
    test(name, () => check(outcome(() => parseRequestHead(bytes(raw))), expect));
  }

  test('the body after the head is not part of it', () => {
    const h = get('Content-Length: 5');
    const r = parseRequestHead(bytes(`${h}hello`));
    assert.equal(r?.headLength, h.length);
  });

  test('start: the head at an offset, after a previous message', () => {
    const prev = 'xxxxx';
    const h = get('X: 1');
    const r = parseRequestHead(bytes(prev + h + 'GET'), prev.length);
    assert.equal(r?.headLength, h.length);
    assert.deepEqual(r?.headers, ['Host', 'a', 'X', '1']);
  });

  test('maxHeaders: as many fields as allowed pass, one more is 431', () => {
    const fields = (n: number) => Array.from({ length: n }, (_, i) => `X-${i}: ${i}`);
    const limits = { maxHeadBytes: 65536, maxHeaders: 10 };
    assert.equal(parseRequestHead(bytes(get(...fields(9))), 0, limits)?.headers.length, 20);
    assert.deepEqual(outcome(() => parseRequestHead(bytes(get(...fields(10))), 0, limits)), { error: 'E_HTTP_TOO_MANY_HEADERS', status: 431 });
    assert.equal(parseRequestHead(bytes(get(...fields(99))))?.headers.length, 200, 'default: 100 fields');
  });

  test('maxHeadBytes: a head of exactly the limit passes; one byte more is 431, complete or not', () => {
    const h = get('X: 1');
    const limits = { maxHeadBytes: h.length, maxHeaders: 100 };
    assert.equal(parseRequestHead(bytes(h), 0, limits)?.headLength, h.length);
    const longer = get('X: 12');
    assert.deepEqual(outcome(() => parseRequestHead(bytes(longer), 0, limits)), { error: 'E_HTTP_HEAD_TOO_LARGE', status: 431 });
    assert.deepEqual(outcome(() => parseRequestHead(bytes(longer.slice(0, h.length)), 0, limits)), { error: 'E_HTTP_HEAD_TOO_LARGE', status: 431 });
    assert.equal(parseRequestHead(bytes(longer.slice(0, h.length - 1)), 0, limits), null);
    const big = bytes(`GET / HTTP/1.1\r\nHost: a\r\nX: ${'x'.repeat(70000)}`);
    assert.deepEqual(outcome(() => parseRequestHead(big)), { error: 'E_HTTP_HEAD_TOO_LARGE', status: 431 }, 'default: 64 KiB');
  });
});

const RESPONSES: [string, string, string, Expect<ResponseHead>][] = [
  ['200 with Content-Length', 'GET', head('HTTP/1.1 200 OK', 'Content-Length: 5'), { minor: 1, status: 200, reason: 'OK', body: { kind: 'length', length: 5 }, keepAlive: true, upgrade: false, headers: ['Content-Length', '5'] }],
  ['reason with spaces and obs-text', 'GET', head('HTTP/1.1 404 Not \xc0 Found', 'Content-Length: 0'), { reason: 'Not \xc0 Found' }],
  ['no SP before an empty reason', 'GET', head('HTTP/1.1 200', 'Content-Length: 0'), { status: 200, reason: '' }],
  ['SP and an empty reason', 'GET', head('HTTP/1.1 200 ', 'Content-Length: 0'), { reason: '' }],
  ['chunked', 'GET', head('HTTP/1.1 200 OK', 'Transfer-Encoding: chunked'), { body: { kind: 'chunked' }, keepAlive: true }],
  ['codings ending with chunked', 'GET', head('HTTP/1.1 200 OK', 'Transfer-Encoding: gzip, chunked'), { body: { kind: 'chunked' } }],
  ['codings not ending with chunked: until close', 'GET', head('HTTP/1.1 200 OK', 'Transfer-Encoding: chunked, gzip'), { body: { kind: 'eof' }, keepAlive: false }],
  ['no framing: until close', 'GET', head('HTTP/1.1 200 OK'), { body: { kind: 'eof' }, keepAlive: false }],
  ['HTTP/1.0 with keep-alive', 'GET', head('HTTP/1.0 200 OK', 'Connection: keep-alive', 'Content-Length: 1'), { minor: 0, keepAlive: true }],
  ['HTTP/1.0 closes by default', 'GET', head('HTTP/1.0 200 OK', 'Content-Length: 1'), { keepAlive: false }],
  ['Connection: close', 'GET', head('HTTP/1.1 200 OK', 'Connection: close', 'Content-Length: 1'), { keepAlive: false }],
  ['204 has no body', 'GET', head('HTTP/1.1 204 No Content'), { body: { kind: 'none' }, keepAlive: true }],
  ['304 has no body even with Content-Length', 'GET', head('HTTP/1.1 304 Not Modified', 'Content-Length: 10'), { body: { kind: 'none' } }],
  ['1xx has no body', 'GET', head('HTTP/1.1 100 Continue'), { status: 100, body: { kind: 'none' } }],
  ['101 upgrades', 'GET', head('HTTP/1.1 101 Switching Protocols', 'Connection: upgrade', 'Upgrade: websocket'), { upgrade: true, body: { kind: 'none' } }],
  ['HEAD: no body whatever the headers say', 'HEAD', head('HTTP/1.1 200 OK', 'Content-Length: 10'), { body: { kind: 'none' } }],
  ['HEAD with chunked', 'HEAD', head('HTTP/1.1 200 OK', 'Transfer-Encoding: chunked'), { body: { kind: 'none' } }],
  ['2xx to CONNECT: the tunnel', 'CONNECT', head('HTTP/1.1 200 Connection Established'), { body: { kind: 'none' }, keepAlive: true }],
  ['non-2xx to CONNECT has a body', 'CONNECT', head('HTTP/1.1 407 Proxy Auth', 'Content-Length: 3'), { body: { kind: 'length', length: 3 } }],
  ['Content-Length and Transfer-Encoding', 'GET', head('HTTP/1.1 200 OK', 'Content-Length: 3', 'Transfer-Encoding: chunked'), err('E_HTTP_CL_AND_TE')],
  ['two Content-Length', 'GET', head('HTTP/1.1 200 OK', 'Content-Length: 3', 'Content-Length: 3'), err('E_HTTP_DUPLICATE_CONTENT_LENGTH')],
  ['bad Content-Length', 'GET', head('HTTP/1.1 200 OK', 'Content-Length: 3a'), err('E_HTTP_BAD_CONTENT_LENGTH')],
  ['bad Content-Length on a 304', 'GET', head('HTTP/1.1 304 OK', 'Content-Length: x'), err('E_HTTP_BAD_CONTENT_LENGTH')],
  ['Transfer-Encoding in HTTP/1.0', 'GET', head('HTTP/1.0 200 OK', 'Transfer-Encoding: chunked'), err('E_HTTP_BAD_TRANSFER_ENCODING')],
  ['two-digit status', 'GET', head('HTTP/1.1 20 OK'), err('E_HTTP_BAD_STATUS_LINE')],
  ['four-digit status', 'GET', head('HTTP/1.1 2000 OK'), err('E_HTTP_BAD_STATUS_LINE')],
  ['status 600', 'GET', head('HTTP/1.1 600 X'), err('E_HTTP_BAD_STATUS_LINE')],
  ['status 099', 'GET', head('HTTP/1.1 099 X'), err('E_HTTP_BAD_STATUS_LINE')],
  ['two SP before the status', 'GET', head('HTTP/1.1  200 OK'), err('E_HTTP_BAD_STATUS_LINE')],
  ['control character in the reason', 'GET', head('HTTP/1.1 200 O\x01K'), err('E_HTTP_BAD_STATUS_LINE')],
  ['status line ends with bare LF', 'GET', 'HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n', err('E_HTTP_BARE_LF')],
  ['HTTP/2.0 status line', 'GET', head('HTTP/2.0 200 OK'), err('E_HTTP_VERSION', 505)],
  ['not an HTTP status line', 'GET', head('ICY 200 OK', 'X: 1'), err('E_HTTP_BAD_STATUS_LINE')],
  ['obs-fold in a response', 'GET', head('HTTP/1.1 200 OK', 'X: 1', ' 2', 'Content-Length: 0'), err('E_HTTP_OBS_FOLD')],
  ['bad header name in a response', 'GET', head('HTTP/1.1 200 OK', 'X Y: 1'), err('E_HTTP_BAD_HEADER_NAME')],
  ['not complete', 'GET', 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n', null],
];

describe('parseResponseHead', () => {
  for (const [name, method, raw, expect] of RESPONSES) {
    test(name, () => check(outcome(() => parseResponseHead(bytes(raw), method)), expect));
  }

  test('start and headLength', () => {
    const h = head('HTTP/1.1 200 OK', 'Content-Length: 2');
    const r = parseResponseHead(bytes(`ab${h}hi`), 'GET', 2);
    assert.equal(r?.headLength, h.length);
  });
});

// Every prefix of a head is "not yet" (null), or — for an invalid head — the
// same error as the whole head; from the full head on, the same result.
describe('split feeding: every prefix', () => {
  const extra = 'BODY-BYTES\r\n\r\n';
  for (const [name, raw] of REQUESTS) {
    test(`request: ${name}`, () => assertSplitConsistent(raw, (b) => parseRequestHead(b)));
  }
  for (const [name, method, raw] of RESPONSES) {
    test(`response: ${name}`, () => assertSplitConsistent(raw, (b) => parseResponseHead(b, method)));
  }

  function assertSplitConsistent<T extends { headLength: number }>(raw: string, parse: (b: Buffer) => T | null): void {
    const full = outcome(() => parse(bytes(raw + extra)));
    const whole = outcome(() => parse(bytes(raw)));
    if ('ok' in full) assert.deepEqual(whole, full, 'bytes after the head change nothing');
    for (let k = 0; k < raw.length; k++) {
      const part = outcome(() => parse(bytes(raw.slice(0, k))));
      if ('incomplete' in part) continue;
      if ('ok' in full) assert.fail(`prefix of ${k} bytes gave ${JSON.stringify(part)} before the head was complete`);
      assert.deepEqual(part, full, `prefix of ${k} bytes`);
    }
  }
});

describe('headerValue', () => {
  const headers = ['Host', 'a', 'Content-Type', 'text/plain', 'X-Dup', '1', 'x-dup', '2', 'X-Empty', ''];
  test('first value, case-insensitive name', () => {
    assert.equal(headerValue(headers, 'content-type'), 'text/plain');
    assert.equal(headerValue(headers, 'x-dup'), '1');
    assert.equal(headerValue(headers, 'host'), 'a');
  });
  test('an empty value is a value', () => assert.equal(headerValue(headers, 'x-empty'), ''));
  test('absent names, and names that differ only beyond ASCII case folding', () => {
    assert.equal(headerValue(headers, 'content-length'), undefined);
    assert.equal(headerValue(headers, 'x-du'), undefined);
    assert.equal(headerValue(['X_A', '1'], 'x-a'), undefined);
    assert.equal(headerValue(['X-^', '1'], 'x-~'), undefined, "'^' is not the upper case of '~'");
    assert.equal(headerValue([], 'host'), undefined);
  });
  test('values are never mistaken for names', () => assert.equal(headerValue(['A', 'host', 'B', 'x'], 'host'), undefined));
});
