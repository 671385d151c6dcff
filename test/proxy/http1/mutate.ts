// Seeded random mutations of HTTP messages, aimed where parsers disagree:
// line endings, separators, framing headers, digits of sizes, case.

export { seeded as prng } from '../../helpers/prng';

const BYTES = ['\r', '\n', '\r\n', ' ', '\t', '\0', ':', ';', ',', '"', '\\', '=', '0', '1', '9', 'f', 'F', 'x', '-', '+', '\x0b', '\x0c', '\x7f', '\x80', '\xff', '#', '?', '/', '@', '[', ']', '%'];

const LINES = [
  'Transfer-Encoding: chunked',
  'Transfer-Encoding: identity',
  'Transfer-Encoding: chunked, chunked',
  'transfer-encoding: CHUNKED',
  'Content-Length: 0',
  'Content-Length: 5',
  'content-length: 13',
  'Host: other',
  'Connection: close',
  'Connection: upgrade',
  'Upgrade: websocket',
  'Expect: 100-continue',
  ' folded',
  'X: y',
];

export function mutate(input: string, rand: () => number): string {
  const int = (n: number): number => Math.floor(rand() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)];
  let s = input;
  // Mostly one change: a single edit keeps more messages valid, where framing disagreements hide.
  const rounds = rand() < 0.6 ? 1 : rand() < 0.75 ? 2 : 3;
  for (let r = 0; r < rounds; r++) {
    const at = int(s.length + 1);
    switch (int(10)) {
      case 0: // insert a byte parsers care about
        s = s.slice(0, at) + pick(BYTES) + s.slice(at);
        break;
      case 1: // replace a byte
        s = s.slice(0, at) + pick(BYTES) + s.slice(at + 1);
        break;
      case 2: // delete a few bytes
        s = s.slice(0, at) + s.slice(at + 1 + int(4));
        break;
      case 3: // repeat a few bytes ("chunkedchunked", "5\r\n5\r\n", "::")
        s = s.slice(0, at) + s.slice(at, at + 1 + int(10)) + s.slice(at);
        break;
      case 4: {
        // duplicate or drop a whole line
        const lines = s.split('\r\n');
        const i = int(lines.length);
        if (rand() < 0.5) lines.splice(i, 0, lines[i]);
        else lines.splice(i, 1);
        s = lines.join('\r\n');
        break;
      }
      case 5: {
        // add a framing-relevant header line
        const lines = s.split('\r\n');
        lines.splice(1 + int(Math.max(1, lines.length - 1)), 0, pick(LINES));
        s = lines.join('\r\n');
        break;
      }
      case 6: {
        // flip the case of a letter
        const c = s.charCodeAt(at);
        if ((c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a)) s = s.slice(0, at) + String.fromCharCode(c ^ 0x20) + s.slice(at + 1);
        break;
      }
      case 7: {
        // damage a line ending
        const i = s.indexOf('\r\n', at);
        if (i >= 0) s = s.slice(0, i) + pick(['\n', '\r', '\n\r', '\r\r\n', '']) + s.slice(i + 2);
        break;
      }
      case 8: {
        // change a digit (sizes, lengths, versions, status codes)
        const i = s.slice(at).search(/[0-9a-fA-F]/);
        if (i >= 0) s = s.slice(0, at + i) + pick([...'0123456789abcdefABCDEF']) + s.slice(at + i + 1);
        break;
      }
      default: // cut the message short or glue junk to it
        s = rand() < 0.5 ? s.slice(0, at) : s + pick(['\r\n', '0\r\n\r\n', 'GET / HTTP/1.1\r\n', 'x']);
    }
  }
  return s;
}
