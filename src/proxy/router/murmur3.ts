// MurmurHash3 (x86, 32-bit) over the UTF-8 bytes of a string, without
// encoding it into a buffer first: consistent hashing needs the same value in
// every process, and the hot path must not allocate.

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;

function mixBlock(h: number, k: number): number {
  k = Math.imul(k, C1);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, C2);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

// Streaming state for the non-ASCII path (single-threaded, reset per call).
let state = 0;
let pending = 0;
let pendingBytes = 0;
let byteLength = 0;

function feed(byte: number): void {
  pending |= byte << (pendingBytes << 3);
  byteLength++;
  if (++pendingBytes === 4) {
    state = mixBlock(state, pending);
    pending = 0;
    pendingBytes = 0;
  }
}

/** Feeds one code point (or a lone surrogate, as U+FFFD like Buffer.from) as UTF-8. */
function feedCodePoint(cp: number): void {
  if (cp < 0x80) {
    feed(cp);
  } else if (cp < 0x800) {
    feed(0xc0 | (cp >> 6));
    feed(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    feed(0xe0 | (cp >> 12));
    feed(0x80 | ((cp >> 6) & 0x3f));
    feed(0x80 | (cp & 0x3f));
  } else {
    feed(0xf0 | (cp >> 18));
    feed(0x80 | ((cp >> 12) & 0x3f));
    feed(0x80 | ((cp >> 6) & 0x3f));
    feed(0x80 | (cp & 0x3f));
  }
}

export function murmur3(text: string, seed: number): number {
  const n = text.length;
  let h = seed | 0;
  let i = 0;
  // ASCII fast path: four characters are one block.
  for (; i + 4 <= n; i += 4) {
    const c0 = text.charCodeAt(i);
    const c1 = text.charCodeAt(i + 1);
    const c2 = text.charCodeAt(i + 2);
    const c3 = text.charCodeAt(i + 3);
    if ((c0 | c1 | c2 | c3) >= 0x80) break;
    h = mixBlock(h, c0 | (c1 << 8) | (c2 << 16) | (c3 << 24));
  }
  state = h;
  pending = 0;
  pendingBytes = 0;
  byteLength = i;
  for (; i < n; i++) {
    let cp = text.charCodeAt(i);
    if (cp >= 0xd800 && cp <= 0xdfff) {
      const next = i + 1 < n ? text.charCodeAt(i + 1) : 0;
      if (cp <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        cp = 0x10000 + ((cp - 0xd800) << 10) + (next - 0xdc00);
        i++;
      } else {
        cp = 0xfffd;
      }
    }
    feedCodePoint(cp);
  }
  h = state;
  if (pendingBytes > 0) {
    let k = Math.imul(pending, C1);
    k = (k << 15) | (k >>> 17);
    h ^= Math.imul(k, C2);
  }
  h ^= byteLength;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
