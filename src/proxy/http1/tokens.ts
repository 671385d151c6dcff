import { isIPv6 } from 'node:net';

/**
 * Byte classes and small grammar checks of RFC 9110/9112 (and RFC 3986 for
 * authorities). Byte classes are 256-entry tables: a parser tests a byte with
 * one indexed load instead of a regex or a chain of comparisons.
 */

function table(pred: (b: number) => boolean): Uint8Array {
  const t = new Uint8Array(256);
  for (let b = 0; b < 256; b++) t[b] = pred(b) ? 1 : 0;
  return t;
}

const isAlpha = (b: number): boolean => (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a);
const isDigit = (b: number): boolean => b >= 0x30 && b <= 0x39;
const oneOf = (chars: string) => (b: number): boolean => chars.includes(String.fromCharCode(b));

/** tchar: the characters of a token (method, header name, coding, extension name). */
export const TCHAR = table((b) => isAlpha(b) || isDigit(b) || oneOf("!#$%&'*+-.^_`|~")(b));

/** field-vchar plus SP and HTAB: what a header value may hold (obs-text included, CTLs and DEL not). */
export const FIELD_CHAR = table((b) => b === 0x09 || (b >= 0x20 && b !== 0x7f));

/**
 * Request-target bytes: visible ASCII without '#' (a fragment never belongs in
 * a request). Looser than RFC 3986 for the unencoded '|', '{', '"' … real
 * clients send, but never lets SP, CTLs or non-ASCII bytes through.
 */
export const TARGET_CHAR = table((b) => b > 0x20 && b < 0x7f && b !== 0x23);

/** reg-name characters of a host: unreserved / sub-delims ('%' is pct-encoded, checked apart). */
const REG_NAME_CHAR = table((b) => isAlpha(b) || isDigit(b) || oneOf("-._~!$&'()*+,;=")(b));

/** qdtext of a quoted-string (RFC 9110 5.6.4), and what may follow a backslash. */
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

/** Table lookup on a string's char code; codes above 0xff (not from latin1 bytes) are in no class. */
function inClass(t: Uint8Array, s: string, i: number): boolean {
  const c = s.charCodeAt(i);
  return c <= 0xff && t[c] === 1;
}

function isHexAt(s: string, i: number): boolean {
  const c = s.charCodeAt(i);
  return c <= 0xff && HEX[c] >= 0;
}

/** True when s is a non-empty token. */
export function isToken(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) if (!inClass(TCHAR, s, i)) return false;
  return true;
}

/**
 * RFC 3986 authority without userinfo: host [":" port], host being a reg-name
 * (IPv4 literals are reg-names) or an IPv6 literal in brackets. When the colon
 * is there the port must be 1-5 digits up to 65535 (RFC 3986 allows an empty
 * port, which only gives one authority two spellings). `portRequired` is
 * CONNECT's authority-form. An empty host is refused: routing needs one.
 */
export function isAuthority(s: string, portRequired: boolean): boolean {
  const n = s.length;
  let i = 0;
  if (n > 0 && s.charCodeAt(0) === 0x5b /* [ */) {
    const close = s.indexOf(']');
    // net.isIPv6 accepts a zone ("%eth0"), which a URI spells differently (RFC 6874): refuse both.
    const literal = close < 0 ? '' : s.slice(1, close);
    if (literal.includes('%') || !isIPv6(literal)) return false;
    i = close + 1;
  } else {
    while (i < n) {
      if (inClass(REG_NAME_CHAR, s, i)) i++;
      else if (s.charCodeAt(i) === 0x25 /* % */ && isHexAt(s, i + 1) && isHexAt(s, i + 2)) i += 3;
      else break;
    }
    if (i === 0) return false;
  }
  if (i === n) return !portRequired;
  if (s.charCodeAt(i) !== 0x3a /* : */) return false;
  const digits = n - i - 1;
  if (digits < 1 || digits > 5) return false;
  let port = 0;
  for (let j = i + 1; j < n; j++) {
    const c = s.charCodeAt(j);
    if (c < 0x30 || c > 0x39) return false;
    port = port * 10 + (c - 0x30);
  }
  return port <= 65535;
}
