// HPACK micro-benchmark: ns per decode and per encode of the header blocks
// of the h2load runs (src/proxy/http2/codec). Short by design (a few
// seconds); run it only on an idle machine:
//
//   node dist/bench/hpack.js [--iterations 200000] [--rounds 5]
import { HpackDecoder } from '../src/proxy/http2/codec/hpack-decoder';
import { HpackEncoder } from '../src/proxy/http2/codec/hpack-encoder';
import { measure, parseArgs } from './micro';

/** h2load's request, as field list. */
const REQUEST = [':method', 'GET', ':path', '/', ':scheme', 'http', ':authority', 'upstream-h2', 'accept', '*/*', 'accept-encoding', 'gzip, deflate, br', 'user-agent', 'h2load nghttp2/1.52.0'];
// The same request as an HPACK encoder that indexes and Huffman-codes
// everything (as nghttp2 does) sends it: python hpack's Encoder, huffman=True,
// first the block of its first appearance (literals with incremental
// indexing), then the block of every later one (indices only).
const REQUEST_FIRST = Buffer.from('8284864188b6b426c28e95a7175383f963e7508d9bd9abfa5242cb40d25fa523b37a8f9c541c722954d3a5358980aed89707', 'hex');
const REQUEST_INDEXED = Buffer.from('828486c1c0bfbe', 'hex');
/** A gRPC server's response head. */
const RESPONSE = [':status', '200', 'content-type', 'application/grpc', 'grpc-accept-encoding', 'identity', 'date', 'Sat, 21 Nov 2026 11:00:00 GMT', 'content-length', '100'];

function check(got: string[], want: string[], what: string): void {
  if (got.join('\n') !== want.join('\n')) throw new Error(`${what}: decoded ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`);
}

function main(): void {
  const { iterations, rounds } = parseArgs(process.argv.slice(2), { iterations: 200_000, rounds: 5 });
  console.log(`node ${process.version}, ${iterations} iterations x ${rounds} rounds`);

  // (a) the request block after its first appearance: indices only.
  const indexed = new HpackDecoder({ maxHeaderListSize: 65536 });
  const out: string[] = [];
  indexed.decode(REQUEST_FIRST, out);
  check(out, REQUEST, 'first request block');
  out.length = 0;
  indexed.decode(REQUEST_INDEXED, out);
  check(out, REQUEST, 'indexed request block');
  measure(`(a) decode request, indexed (${REQUEST_INDEXED.length} B)`, iterations, rounds, () => {
    out.length = 0;
    return indexed.decode(REQUEST_INDEXED, out);
  });

  // (b) the request's first appearance: Huffman-coded literals, each inserted (and, in a loop, evicting the previous copies).
  const fresh = new HpackDecoder({ maxHeaderListSize: 65536 });
  measure(`(b) decode request, first time: Huffman literals (${REQUEST_FIRST.length} B)`, iterations, rounds, () => {
    out.length = 0;
    return fresh.decode(REQUEST_FIRST, out);
  });
  check(out, REQUEST, 'first request block, repeated');

  // (c) the response head on a long-lived encoder: :status static, three dynamic indices, content-length literal.
  const enc = new HpackEncoder();
  const dec = new HpackDecoder({ maxHeaderListSize: 65536 });
  for (let i = 0; i < 2; i++) {
    out.length = 0;
    dec.decode(enc.encode(RESPONSE), out);
    check(out, RESPONSE, 'response round trip');
  }
  const block = enc.encode(RESPONSE);
  const enc0 = new HpackEncoder().encode(RESPONSE);
  measure(`(c) encode response head, raw literals (${block.length} B)`, iterations, rounds, () => enc.encode(RESPONSE).length);
  const hEnc = new HpackEncoder({ huffman: true });
  const hFirst = hEnc.encode(RESPONSE).length;
  measure(`(c') encode response head, Huffman literals (${hEnc.encode(RESPONSE).length} B; first ${hFirst} B, raw ${enc0.length} B)`, iterations, rounds, () => hEnc.encode(RESPONSE).length);
  measure(`    decode response head (${block.length} B)`, iterations, rounds, () => {
    out.length = 0;
    return dec.decode(block, out);
  });

  // The response's first appearance, every time: a new date each call (one insertion and eviction per block).
  const dates = Array.from({ length: 1024 }, (_, i) => `Sat, 21 Nov 2026 11:${String(Math.floor(i / 60) % 60).padStart(2, '0')}:${String(i % 60).padStart(2, '0')} GMT`);
  const withDate = RESPONSE.slice();
  let n = 0;
  measure('(c) encode response head, a new date each time (raw)', iterations, rounds, () => {
    withDate[7] = dates[n++ & 1023];
    return enc.encode(withDate).length;
  });
  measure("(c') encode response head, a new date each time (Huffman)", iterations, rounds, () => {
    withDate[7] = dates[n++ & 1023];
    return hEnc.encode(withDate).length;
  });
  measure('    encode request (long-lived encoder: indices)', iterations, rounds, () => enc.encode(REQUEST).length);
}

main();
