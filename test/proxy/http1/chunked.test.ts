import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ChunkedScanner } from '../../../src/proxy/http1/chunked';
import { HttpParseError } from '../../../src/proxy/http1/errors';
import { bytes } from './support';

/** What scanning a whole body gives: where it ends and its decoded length, an error, or "needs more". */
type Result = { end: number; dataLength: number } | { error: string } | { more: true };

/** Scans `body` fed in the given pieces (offsets where a new read begins). */
function scanPieces(body: Buffer, cuts: number[], scanner = new ChunkedScanner()): Result {
  const bounds = [0, ...cuts, body.length];
  try {
    for (let i = 0; i + 1 < bounds.length; i++) {
      const end = scanner.scan(body, bounds[i], bounds[i + 1]);
      if (end >= 0) return { end, dataLength: scanner.dataLength };
    }
    return { more: true };
  } catch (err) {
    assert.ok(err instanceof HttpParseError && err.status === 400);
    return { error: err.code };
  }
}

const valid = (body: string, dataLength: number): [string, Result] => [body, { end: body.length, dataLength }];
const invalid = (body: string): [string, Result] => [body, { error: 'E_HTTP_BAD_CHUNK' }];

const BODIES: [string, [string, Result]][] = [
  ['one chunk', valid('5\r\nhello\r\n0\r\n\r\n', 5)],
  ['several chunks, hex sizes in any case', valid('a\r\n0123456789\r\nB\r\n0123456789a\r\n0\r\n\r\n', 21)],
  ['empty body', valid('0\r\n\r\n', 0)],
  ['leading zeros', valid('0005\r\nhello\r\n000\r\n\r\n', 5)],
  ['CRLF and any bytes inside chunk data', valid('4\r\n\r\n\x00\xff\r\n0\r\n\r\n', 4)],
  ['chunk extensions: names, tokens, quoted strings', valid('5;a;b=c;d="x y\\"z"\r\nhello\r\n0;last\r\n\r\n', 5)],
  ['trailer fields', valid('5\r\nhello\r\n0\r\nX-Sum: 1\r\nX-Other:\t2 3\r\n\r\n', 5)],
  ['16 hex digits are allowed', valid('0000000000000005\r\nhello\r\n0\r\n\r\n', 5)],
  ['17 hex digits overflow', invalid('00000000000000005\r\nhello\r\n0\r\n\r\n')],
  ['size above 2^53-1', invalid('20000000000000\r\n')],
  ['no size', invalid('\r\nhello\r\n0\r\n\r\n')],
  ['non-hex size', invalid('g\r\n')],
  ['negative size', invalid('-5\r\nhello\r\n0\r\n\r\n')],
  ['0x prefix', invalid('0x5\r\nhello\r\n0\r\n\r\n')],
  ['SP after the size', invalid('5 \r\nhello\r\n0\r\n\r\n')],
  ['SP before the size', invalid(' 5\r\nhello\r\n0\r\n\r\n')],
  ['SP before an extension', invalid('5 ;a=b\r\nhello\r\n0\r\n\r\n')],
  ['size line ends with bare LF', invalid('5\nhello\r\n0\r\n\r\n')],
  ['size line ends with bare CR', invalid('5\rhello\r\n0\r\n\r\n')],
  ['data longer than the size', invalid('5\r\nhello!\r\n0\r\n\r\n')],
  ['data shorter than the size', invalid('5\r\nhell\r\n0\r\n\r\n')],
  ['data followed by bare LF', invalid('5\r\nhello\n0\r\n\r\n')],
  ['empty extension name', invalid('5;=b\r\nhello\r\n0\r\n\r\n')],
  ['extension name not a token', invalid('5;a@b\r\nhello\r\n0\r\n\r\n')],
  ['empty extension value', invalid('5;a=\r\nhello\r\n0\r\n\r\n')],
  ['unterminated quoted value', invalid('5;a="x\r\nhello\r\n0\r\n\r\n')],
  ['control character in a quoted value', invalid('5;a="\x01"\r\nhello\r\n0\r\n\r\n')],
  ['bytes after a quoted value', invalid('5;a="x"y\r\nhello\r\n0\r\n\r\n')],
  ['trailer obs-fold', invalid('0\r\nX: 1\r\n 2\r\n\r\n')],
  ['trailer without colon', invalid('0\r\nX\r\n\r\n')],
  ['trailer name with SP before the colon', invalid('0\r\nX : 1\r\n\r\n')],
  ['trailer value with NUL', invalid('0\r\nX: \x00\r\n\r\n')],
  ['trailer line ends with bare LF', invalid('0\r\nX: 1\n\r\n')],
  ['framing and routing fields are not trailers', invalid('0\r\nContent-Length: 5\r\n\r\n')],
  ['Transfer-Encoding trailer', invalid('0\r\ntransfer-ENCODING: chunked\r\n\r\n')],
  ['Host trailer', invalid('0\r\nHOST: a\r\n\r\n')],
  ['names that only begin like forbidden ones', valid('0\r\nHost-X: 1\r\nContent-Length2: 1\r\nHos: 1\r\n\r\n', 0)],
  ['final bare LF', invalid('0\r\n\n')],
  ['final bare CR', invalid('0\r\n\rx')],
  ['not complete', ['5\r\nhello\r\n0\r\n', { more: true }]],
];

describe('ChunkedScanner', () => {
  for (const [name, [body, expect]] of BODIES) {
    test(name, () => assert.deepEqual(scanPieces(bytes(body), []), expect));
  }

  test('split at every offset, and fed byte by byte: the same verdict', () => {
    for (const [name, [body, expect]] of BODIES) {
      const buf = bytes(body);
      for (let k = 0; k <= buf.length; k++) assert.deepEqual(scanPieces(buf, [k]), expect, `${name}, split at ${k}`);
      const everyByte = Array.from({ length: buf.length }, (_, i) => i);
      assert.deepEqual(scanPieces(buf, everyByte), expect, `${name}, byte by byte`);
    }
  });

  test('the offset past the body, when the next message follows in the same read', () => {
    const body = '3\r\nabc\r\n0\r\n\r\n';
    const buf = bytes(`xx${body}GET / HTTP/1.1\r\n`);
    const s = new ChunkedScanner();
    assert.equal(s.scan(buf, 2, buf.length), 2 + body.length);
    assert.equal(s.done, true);
    assert.equal(s.dataLength, 3);
    assert.equal(s.scan(buf, 2 + body.length, buf.length), 2 + body.length, 'after the end nothing more is body');
  });

  test('a failed scanner keeps failing; reset starts over', () => {
    const s = new ChunkedScanner();
    assert.throws(() => s.scan(bytes('z'), 0, 1), { code: 'E_HTTP_BAD_CHUNK' });
    assert.throws(() => s.scan(bytes('0\r\n\r\n'), 0, 5), { code: 'E_HTTP_BAD_CHUNK' });
    s.reset();
    assert.equal(s.scan(bytes('0\r\n\r\n'), 0, 5), 5);
  });

  test('chunk extensions and trailers are bounded', () => {
    const s = () => new ChunkedScanner({ maxExtensionBytes: 8, maxTrailerBytes: 13 });
    assert.deepEqual(scanPieces(bytes('1;aaaaaaa\r\nx\r\n0\r\n\r\n'), [], s()), { end: 19, dataLength: 1 });
    assert.deepEqual(scanPieces(bytes('1;aaaaaaaa\r\nx\r\n0\r\n\r\n'), [], s()), { error: 'E_HTTP_BAD_CHUNK' });
    assert.deepEqual(scanPieces(bytes('0\r\nX: 123456\r\n\r\n'), [], s()), { end: 16, dataLength: 0 });
    assert.deepEqual(scanPieces(bytes('0\r\nX: 1234567\r\n\r\n'), [], s()), { error: 'E_HTTP_BAD_CHUNK' });
    // The defaults: 4 KiB of extensions per chunk line.
    assert.deepEqual(scanPieces(bytes(`1;a=${'b'.repeat(5000)}\r\nx\r\n0\r\n\r\n`), []), { error: 'E_HTTP_BAD_CHUNK' });
  });

  test('large chunks are skipped, not scanned byte by byte', () => {
    const data = Buffer.alloc(1 << 20, 0x0a);
    const buf = Buffer.concat([bytes('100000\r\n'), data, bytes('\r\n0\r\n\r\n')]);
    const s = new ChunkedScanner();
    assert.equal(s.scan(buf, 0, 1000), -1);
    assert.equal(s.scan(buf, 1000, buf.length), buf.length);
    assert.equal(s.dataLength, 1 << 20);
  });
});
