/**
 * Byte classes and small grammar checks of RFC 9110/9112 (and RFC 3986 for
 * authorities). Byte classes are 256-entry tables: a parser tests a byte with
 * one indexed load instead of a regex or a chain of comparisons.
 */
import { isIPv6 } from 'node:net';

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

/**
 * Request methods parsed: those of the IANA registry that llhttp knows (what
 * node:http, and so many upstreams here, accept). Another token is answered
 * 501 (RFC 9110 9.1) rather than forwarded to an upstream that may refuse it.
 */
export const METHODS: ReadonlySet<string> = new Set(
  ('ACL BIND CHECKOUT CONNECT COPY DELETE GET HEAD LINK LOCK M-SEARCH MERGE MKACTIVITY MKCALENDAR MKCOL MOVE NOTIFY OPTIONS ' +
    'PATCH POST PROPFIND PROPPATCH PURGE PUT QUERY REBIND REPORT SEARCH SOURCE SUBSCRIBE TRACE UNBIND UNLINK UNLOCK UNSUBSCRIBE').split(' '),
);

export const CR = 0x0d;
export const LF = 0x0a;
export const SP = 0x20;
export const HTAB = 0x09;

/** True when s is a non-empty token. */
export function isToken(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0xff || TCHAR[c] !== 1) return false;
  }
  return true;
}

/** What `authority` found. */
export const AUTHORITY_INVALID = -1;
export const AUTHORITY_LOWER = 0;
/** Valid, with upper-case letters: the caller lower-cases it. */
export const AUTHORITY_UPPER = 1;

// Node's Buffer has latin1Slice (what toString('latin1') calls after its argument checks); @types/node omits it.
export type Latin1Buffer = Buffer & { latin1Slice(start: number, end: number): string };

/**
 * Checks buf[start, end) as an RFC 3986 authority without userinfo:
 * host [":" port], host being a reg-name (IPv4 literals are reg-names) or an
 * IPv6 literal in brackets. When the colon is there the port must be 1-5
 * digits up to 65535 (RFC 3986 allows an empty port, which only gives one
 * authority two spellings). `portRequired` is CONNECT's authority-form. An
 * empty host is refused: routing needs one.
 */
export function authority(buf: Buffer, start: number, end: number, portRequired: boolean): number {
  let i = start;
  let upper = false;
  if (i < end && buf[i] === 0x5b /* [ */) {
    const close = buf.indexOf(0x5d /* ] */, i);
    if (close < 0 || close >= end) return AUTHORITY_INVALID;
    // net.isIPv6 accepts a zone ("%eth0"), which a URI spells differently (RFC 6874): refuse both.
    const literal = (buf as Latin1Buffer).latin1Slice(i + 1, close);
    if (literal.includes('%') || !isIPv6(literal)) return AUTHORITY_INVALID;
    upper = literal !== literal.toLowerCase();
    i = close + 1;
  } else {
    for (; i < end; i++) {
      const c = buf[i];
      if (REG_NAME_CHAR[c] === 1) {
        if (c >= 0x41 && c <= 0x5a) upper = true;
      } else if (c === 0x25 /* % */ && i + 2 < end && HEX[buf[i + 1]] >= 0 && HEX[buf[i + 2]] >= 0) {
        i += 2;
      } else break;
    }
    if (i === start) return AUTHORITY_INVALID;
  }
  if (i < end) {
    if (buf[i] !== 0x3a /* : */ || end - i - 1 < 1 || end - i - 1 > 5) return AUTHORITY_INVALID;
    let port = 0;
    for (let j = i + 1; j < end; j++) {
      const d = buf[j] - 0x30;
      if (!(d >= 0 && d <= 9)) return AUTHORITY_INVALID;
      port = port * 10 + d;
    }
    if (port > 65535) return AUTHORITY_INVALID;
  } else if (portRequired) return AUTHORITY_INVALID;
  return upper ? AUTHORITY_UPPER : AUTHORITY_LOWER;
}
