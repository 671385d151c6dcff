/**
 * Byte classes of RFC 9110/9112 as 256-entry lookup tables: the parsers test a
 * byte with one indexed load instead of a regex or a chain of comparisons.
 */

function table(pred: (b: number) => boolean): Uint8Array {
  const t = new Uint8Array(256);
  for (let b = 0; b < 256; b++) t[b] = pred(b) ? 1 : 0;
  return t;
}

const isAlpha = (b: number): boolean => (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a);
const isDigit = (b: number): boolean => b >= 0x30 && b <= 0x39;

/** tchar: the characters of a token (method, header name, coding, extension name). */
export const TCHAR = table((b) => isAlpha(b) || isDigit(b) || "!#$%&'*+-.^_`|~".includes(String.fromCharCode(b)));

/** field-vchar plus SP and HTAB: what a header value may hold (obs-text included, CTLs and DEL not). */
export const FIELD_CHAR = table((b) => b === 0x09 || (b >= 0x20 && b !== 0x7f));

/**
 * Request-target bytes: visible ASCII without '#' (a fragment never belongs in
 * a request). Stricter than RFC 3986 would need to be for the common unencoded
 * '|', '{', '"' that real clients send, but never lets SP, CTLs or non-ASCII through.
 */
export const TARGET_CHAR = table((b) => b > 0x20 && b < 0x7f && b !== 0x23);

/** reg-name characters of a host: unreserved / sub-delims ('%' is checked apart, as pct-encoded). */
export const REG_NAME_CHAR = table((b) => isAlpha(b) || isDigit(b) || "-._~!$&'()*+,;=".includes(String.fromCharCode(b)));

/** qdtext and quoted-pair content of a quoted-string (RFC 9110 5.6.4). */
export const QDTEXT = table((b) => b === 0x09 || b === 0x20 || b === 0x21 || (b >= 0x23 && b <= 0x5b) || (b >= 0x5d && b <= 0x7e) || b >= 0x80);
export const QUOTED_PAIR = table((b) => b === 0x09 || (b >= 0x20 && b !== 0x7f));

/** HEXDIG value, or -1. */
export const HEX = ((): Int8Array => {
  const t = new Int8Array(256).fill(-1);
  for (let b = 0; b < 256; b++) {
    if (isDigit(b)) t[b] = b - 0x30;
    else if (b >= 0x41 && b <= 0x46) t[b] = b - 0x37;
    else if (b >= 0x61 && b <= 0x66) t[b] = b - 0x57;
  }
  return t;
})();

export const CR = 0x0d;
export const LF = 0x0a;
export const SP = 0x20;
export const HTAB = 0x09;
