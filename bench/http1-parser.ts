// HTTP/1.1 head parser micro-benchmark: ns per head for weft's strict parser
// (src/proxy/http1/head-parser) against Node's llhttp as node:http drives it
// (the HTTPParser binding with a headers-complete callback), on the same
// bytes in the same process. Also the chunked scanner on a small body.
// Short by design (about 5 s on a busy 2-core machine):
//
//   node dist/bench/http1-parser.js [--iterations 300000] [--rounds 5]
import { ChunkedScanner } from '../src/proxy/http1/chunked';
import { parseRequestHead, parseResponseHead } from '../src/proxy/http1/head-parser';
import { measure, parseArgs } from './micro';

/** Node's llhttp binding, as lib/_http_common exports it to node:http (internal: typed with just what is used here). */
interface LlhttpParser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  execute(buf: Buffer): number | Error;
  [callback: number]: (...args: never[]) => unknown;
}
// eslint-disable-next-line @typescript-eslint/no-require-imports
const HTTPParser: { new (): LlhttpParser; REQUEST: number; kOnHeadersComplete: number } = require('_http_common').HTTPParser;

/** A typical API request head through a sidecar: 7 fields, 211 bytes. */
const REQUEST = Buffer.from(
  'GET /api/v1/users/42?fields=name,email HTTP/1.1\r\n' +
    'Host: users.default.svc:8080\r\n' +
    'User-Agent: curl/8.5.0\r\n' +
    'Accept: application/json\r\n' +
    'Accept-Encoding: gzip, br\r\n' +
    'X-Request-Id: 0f8fad5b-d9cb-469f-a165\r\n' +
    'Content-Length: 0\r\n' +
    '\r\n',
  'latin1',
);

/** A browser's request head: 14 fields, cookies, 700-odd bytes. */
const BROWSER = Buffer.from(
  'GET /dashboard/orders?page=2&sort=desc HTTP/1.1\r\n' +
    'Host: shop.example.com\r\n' +
    'Connection: keep-alive\r\n' +
    'sec-ch-ua: "Chromium";v="124", "Not-A.Brand";v="99"\r\n' +
    'sec-ch-ua-mobile: ?0\r\n' +
    'sec-ch-ua-platform: "Linux"\r\n' +
    'Upgrade-Insecure-Requests: 1\r\n' +
    'User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36\r\n' +
    'Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8\r\n' +
    'Sec-Fetch-Site: same-origin\r\n' +
    'Sec-Fetch-Mode: navigate\r\n' +
    'Referer: https://shop.example.com/dashboard\r\n' +
    'Accept-Encoding: gzip, deflate, br, zstd\r\n' +
    'Accept-Language: en-US,en;q=0.9,fr;q=0.8\r\n' +
    'Cookie: session=9f2c1e7a4b8d0c3e5f6a7b8c9d0e1f2a; theme=dark; consent=1\r\n' +
    '\r\n',
  'latin1',
);

const RESPONSE = Buffer.from(
  'HTTP/1.1 200 OK\r\n' +
    'Content-Type: application/json\r\n' +
    'Content-Length: 128\r\n' +
    'Date: Sat, 21 Nov 2026 11:00:00 GMT\r\n' +
    'Server: users/1.4\r\n' +
    '\r\n',
  'latin1',
);

const CHUNKED_BODY = Buffer.from('1a;ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n10\r\n0123456789abcdef\r\n0\r\nX-Checksum: 9\r\n\r\n', 'latin1');

function main(): void {
  const { iterations, rounds } = parseArgs(process.argv.slice(2), { iterations: 300_000, rounds: 5 });
  console.log(`node ${process.version}, ${iterations} iterations x ${rounds} rounds; request head ${REQUEST.length} B, response head ${RESPONSE.length} B`);

  const weftReq = measure(`weft parseRequestHead, API (${REQUEST.length} B)`, iterations, rounds, () => (parseRequestHead(REQUEST) as { headLength: number }).headLength);

  // llhttp, as node:http uses it: one parser, the head executed again and again (each a complete keep-alive request).
  const parser = new HTTPParser();
  let seen = 0;
  parser[HTTPParser.kOnHeadersComplete] = (_maj: number, _min: number, headers: string[]) => {
    seen += headers.length;
    return 0;
  };
  parser.initialize(HTTPParser.REQUEST, {}, 0, 0);
  const llhttpReq = measure(`llhttp (node:http binding), API (${REQUEST.length} B)`, iterations, rounds, () => {
    const r = parser.execute(REQUEST);
    if (r instanceof Error) throw r;
    return r;
  });
  if (seen === 0) throw new Error('llhttp saw no headers');

  const weftBrowser = measure(`weft parseRequestHead, browser (${BROWSER.length} B)`, iterations, rounds, () => (parseRequestHead(BROWSER) as { headLength: number }).headLength);
  const llhttpBrowser = measure(`llhttp, browser (${BROWSER.length} B)`, iterations, rounds, () => {
    const r = parser.execute(BROWSER);
    if (r instanceof Error) throw r;
    return r;
  });

  const weftRes = measure('weft parseResponseHead', iterations, rounds, () => (parseResponseHead(RESPONSE, 'GET') as { headLength: number }).headLength);
  const scanner = new ChunkedScanner();
  const chunked = measure(`weft ChunkedScanner (${CHUNKED_BODY.length} B, 2 chunks + trailer)`, iterations, rounds, () => {
    scanner.reset();
    return scanner.scan(CHUNKED_BODY, 0, CHUNKED_BODY.length);
  });

  console.log(`\nAPI head: weft ${weftReq.toFixed(0)} ns, llhttp ${llhttpReq.toFixed(0)} ns, ratio weft/llhttp ${(weftReq / llhttpReq).toFixed(2)}`);
  console.log(`browser head: weft ${weftBrowser.toFixed(0)} ns, llhttp ${llhttpBrowser.toFixed(0)} ns, ratio ${(weftBrowser / llhttpBrowser).toFixed(2)}`);
  console.log(`response head: ${weftRes.toFixed(0)} ns; chunked scan: ${chunked.toFixed(0)} ns`);
}

main();
