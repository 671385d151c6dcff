/**
 * The HPACK Huffman code (RFC 7541 §5.2, Appendix B): decoding for the
 * decoder's hot path, and encoding (the encoder writes raw literals by
 * default; Huffman is there for tests and for callers that favour bytes).
 *
 * The code is canonical, so it is rebuilt at load from each symbol's code
 * length (huffman-code-lengths.ts, measured by scripts/gen-huffman-lengths.py).
 * Decoding walks a byte-wise state machine built from the codes: a state is an
 * internal node of the code tree (256 of them for 257 leaves), and one table
 * load per input byte gives the next state and the 0–2 symbols completed
 * (every code is at least 5 bits, so a byte completes at most two).
 */
import { HUFFMAN_CODE_LENGTHS } from './huffman-code-lengths';
import type { Latin1Buffer } from '../../http1/tokens';

/** A malformed Huffman-coded string (the HPACK decoder turns it into a COMPRESSION_ERROR). */
export class HuffmanError extends Error {}

const EOS = 256;

/** Code (right-aligned) and length in bits of each symbol. */
const CODES = new Uint32Array(257);
const LENGTHS = new Uint8Array(257);

// Canonical assignment: symbols ordered by (length, symbol), each code the
// previous one plus one, shifted left when the length grows.
{
  const order = Array.from({ length: 257 }, (_, s) => s).sort((a, b) => HUFFMAN_CODE_LENGTHS[a] - HUFFMAN_CODE_LENGTHS[b] || a - b);
  let code = 0;
  let len = HUFFMAN_CODE_LENGTHS[order[0]];
  for (const s of order) {
    const n = HUFFMAN_CODE_LENGTHS[s];
    code *= 2 ** (n - len); // up to 30 bits: plain numbers, no int32 sign trouble
    len = n;
    CODES[s] = code;
    LENGTHS[s] = n;
    code++;
  }
  if (code !== 2 ** len) throw new Error('HPACK Huffman code lengths do not form a complete code');
}

// The code tree: node k's children at KIDS[2k] (bit 0) and KIDS[2k+1] (bit 1);
// a value >= 0 is an internal node, a negative value -(symbol + 1) a leaf.
const KIDS = new Int16Array(512).fill(0x7fff);
{
  let nodes = 1;
  for (let s = 0; s <= EOS; s++) {
    let node = 0;
    for (let b = LENGTHS[s] - 1; b >= 0; b--) {
      const slot = 2 * node + (Math.floor(CODES[s] / 2 ** b) & 1);
      if (b === 0) KIDS[slot] = -(s + 1);
      else {
        if (KIDS[slot] === 0x7fff) KIDS[slot] = nodes++;
        node = KIDS[slot];
      }
    }
  }
  if (nodes !== 256) throw new Error(`HPACK Huffman tree has ${nodes} internal nodes, expected 256`);
}

// DECODE[state << 8 | byte]: bits 0-7 next state, 8-15 first symbol, 16-23
// second symbol, 24-25 how many symbols, bit 26 EOS was decoded.
const FAIL = 1 << 26;
const DECODE = new Uint32Array(256 * 256);
// How a string may end in each state: the bits since the last symbol must be
// the first 0–7 bits of EOS (all ones). 1: yes; 2: ones but 8 or more; 0: not all ones.
const END_OK = 1;
const END_LONG = 2;
const ENDING = new Uint8Array(256);
// Built at the first decode, not at load: ~6 ms before V8 optimizes the loop,
// which a sidecar that never sees HTTP/2 should not pay at start.
let built = false;

function buildDecodeTables(): void {
  built = true;
  for (let node = 0, depth = 0; node >= 0; node = KIDS[2 * node + 1], depth++) ENDING[node] = depth <= 7 ? END_OK : END_LONG;
  // First per nibble (at most one symbol: codes are 5 bits or more), then
  // each byte entry from two nibble entries: 16k bit steps instead of 512k.
  const NIB = new Uint32Array(256 * 16); // bits 0-7 next state, 8-15 symbol, bit 16 a symbol, bit 17 EOS
  for (let state = 0; state < 256; state++) {
    for (let nibble = 0; nibble < 16; nibble++) {
      let node = state;
      let entry = 0;
      for (let b = 3; b >= 0; b--) {
        const next = KIDS[2 * node + ((nibble >> b) & 1)];
        if (next >= 0) node = next;
        else if (next === -(EOS + 1)) {
          entry |= 1 << 17;
          break;
        } else {
          entry |= ((-next - 1) << 8) | (1 << 16);
          node = 0;
        }
      }
      NIB[state * 16 + nibble] = entry | node;
    }
  }
  for (let state = 0; state < 256; state++) {
    for (let byte = 0; byte < 256; byte++) {
      const hi = NIB[state * 16 + (byte >> 4)];
      const lo = NIB[(hi & 0xff) * 16 + (byte & 15)];
      let entry = lo & 0xff;
      let count = 0;
      if (hi & (1 << 16)) entry |= (hi & 0xff00) << (8 * count++);
      if (lo & (1 << 16)) entry |= (lo & 0xff00) << (8 * count++);
      if ((hi | lo) & (1 << 17)) entry |= FAIL;
      DECODE[(state << 8) | byte] = (entry | (count << 24)) >>> 0;
    }
  }
}

let scratch = Buffer.allocUnsafe(1024);

/** Decodes the Huffman-coded bytes src[start, end) to a latin1 string (one char per byte). Throws HuffmanError. */
export function huffmanDecode(src: Buffer, start: number, end: number): string {
  if (!built) buildDecodeTables();
  const most = ((end - start) * 8) / 5; // every code is at least 5 bits
  if (scratch.length < most) scratch = Buffer.allocUnsafe(Math.max(Math.ceil(most), 2 * scratch.length));
  const out = scratch;
  let state = 0;
  let n = 0;
  for (let i = start; i < end; i++) {
    const e = DECODE[(state << 8) | src[i]];
    if (e & 0x7000000) {
      if (e & FAIL) throw new HuffmanError('EOS symbol inside a Huffman-coded string');
      out[n++] = e >>> 8;
      if (e & 0x2000000) out[n++] = e >>> 16;
    }
    state = e & 0xff;
  }
  const ending = ENDING[state];
  if (ending !== END_OK) throw new HuffmanError(ending === END_LONG ? 'Huffman padding longer than 7 bits' : 'Huffman padding is not a prefix of EOS (all ones)');
  return (out as Latin1Buffer).latin1Slice(0, n);
}

/** Bytes that huffmanEncode writes for `s` (a latin1 string: every char code < 256). */
export function huffmanEncodedLength(s: string): number {
  let bits = 0;
  for (let i = 0; i < s.length; i++) bits += LENGTHS[s.charCodeAt(i) & 0xff];
  return (bits + 7) >>> 3;
}

/** Writes the Huffman coding of latin1 string `s` at dst[pos] (padded with ones); returns the position after it. */
export function huffmanEncode(s: string, dst: Buffer, pos: number): number {
  let acc = 0; // pending bits, fewer than 8 between symbols
  let bits = 0;
  for (let i = 0; i < s.length; i++) {
    const sym = s.charCodeAt(i) & 0xff;
    let code = CODES[sym];
    let len = LENGTHS[sym];
    if (len > 24) {
      // keep acc within 32 bits: the high part first
      acc = (acc << (len - 8)) | (code >>> 8);
      bits += len - 8;
      while (bits >= 8) {
        bits -= 8;
        dst[pos++] = acc >>> bits;
      }
      acc &= (1 << bits) - 1;
      code &= 0xff;
      len = 8;
    }
    acc = (acc << len) | code;
    bits += len;
    while (bits >= 8) {
      bits -= 8;
      dst[pos++] = acc >>> bits;
    }
    acc &= (1 << bits) - 1;
  }
  if (bits > 0) dst[pos++] = (acc << (8 - bits)) | (0xff >> bits);
  return pos;
}
