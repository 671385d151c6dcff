/**
 * Validates a chunked body (RFC 9112 7.1) as its bytes go by, so the engine
 * forwards them unchanged yet knows exactly where the body ends. A state
 * machine over bytes: the same verdict whichever way the body is split
 * across reads. Chunk data is skipped in one step, never looked at.
 */
import { HttpParseError } from './errors';
import * as tokens from './tokens';

// Module-level copies of the byte tables and constants, not a load from the module object per byte.
const { FIELD_CHAR, HEX, QDTEXT, QUOTED_PAIR, TCHAR, CR, HTAB, LF, SP } = tokens;

export interface ChunkedLimits {
  /** Bytes of chunk extensions on one chunk-size line. */
  maxExtensionBytes: number;
  /** Bytes of the trailer section, its final CRLF included. */
  maxTrailerBytes: number;
}
export const DEFAULT_CHUNKED_LIMITS: ChunkedLimits = Object.freeze({ maxExtensionBytes: 4096, maxTrailerBytes: 65536 });

/** 16 hex digits fill 64 bits; sizes must also stay exact in a double. */
const MAX_SIZE_DIGITS = 16;
const MAX_SIZE = Number.MAX_SAFE_INTEGER;

/**
 * Fields a trailer must not carry (RFC 9110 6.5.1 lets a recipient treat them
 * as an error): framing, which the head already settled, and routing. llhttp
 * refuses the framing ones too. Lower case; matched as the name streams by.
 */
const FORBIDDEN_TRAILERS = ['content-length', 'transfer-encoding', 'host'].map((n) => Uint8Array.from(n, (c) => c.charCodeAt(0)));
const ALL_FORBIDDEN = (1 << FORBIDDEN_TRAILERS.length) - 1;

// States: where the next byte belongs.
const SIZE_FIRST = 0; // first HEXDIG of a chunk size
const SIZE = 1; // further HEXDIGs, ';' or CR
const EXT_NAME_FIRST = 2; // after ';'
const EXT_NAME = 3;
const EXT_VALUE_FIRST = 4; // after '='
const EXT_TOKEN = 5;
const EXT_QUOTED = 6;
const EXT_QUOTED_PAIR = 7; // after '\' in a quoted-string
const EXT_AFTER_QUOTED = 8;
const SIZE_LF = 9;
const DATA = 10;
const DATA_CR = 11;
const DATA_LF = 12;
const TRAILER_LINE = 13; // start of a trailer field line, or the final CRLF
const TRAILER_NAME = 14;
const TRAILER_VALUE = 15;
const TRAILER_LF = 16;
const FINAL_LF = 17;
const DONE = 18;
const FAILED = 19;

export class ChunkedScanner {
  private state = SIZE_FIRST;
  private size = 0;
  private sizeDigits = 0;
  /** Data bytes still to skip in the current chunk. */
  private remaining = 0;
  private extensionBytes = 0;
  private trailerBytes = 0;
  /** Bytes of the current trailer name, and which FORBIDDEN_TRAILERS it still matches (bit i for entry i). */
  private nameLength = 0;
  private forbidden = 0;
  private error: HttpParseError | undefined;
  private decoded = 0;

  constructor(private readonly limits: ChunkedLimits = DEFAULT_CHUNKED_LIMITS) {}

  /** True once the last chunk and the trailer section have been seen. */
  get done(): boolean {
    return this.state === DONE;
  }

  /** The sizes of the chunks begun so far; once done, the decoded body's length. */
  get dataLength(): number {
    return this.decoded;
  }

  reset(): void {
    this.state = SIZE_FIRST;
    this.size = this.sizeDigits = this.remaining = this.extensionBytes = this.trailerBytes = this.decoded = 0;
    this.error = undefined;
  }

  /**
   * Scans buf[start, end). Returns the offset just past the body's last byte
   * (after the final CRLF of the trailer section) when the body ended inside
   * this range, or -1 when more is needed. Throws HttpParseError
   * ('E_HTTP_BAD_CHUNK', …, 400) on invalid framing, and again on every later
   * call. Once done, returns `start`: nothing more belongs to the body.
   */
  scan(buf: Buffer, start: number, end: number): number {
    if (this.error) throw this.error;
    if (this.state === DONE) return start;
    try {
      return this.run(buf, start, end);
    } catch (err) {
      this.state = FAILED;
      this.error = err as HttpParseError;
      throw err;
    }
  }

  private run(buf: Buffer, pos: number, end: number): number {
    while (pos < end) {
      const c = buf[pos];
      switch (this.state) {
        case DATA: {
          const n = Math.min(this.remaining, end - pos);
          this.remaining -= n;
          pos += n;
          if (this.remaining === 0) this.state = DATA_CR;
          continue;
        }
        case SIZE_FIRST:
          if (HEX[c] < 0) bad('the chunk size is not hexadecimal');
          this.size = HEX[c];
          this.sizeDigits = 1;
          this.extensionBytes = 0;
          this.state = SIZE;
          break;
        case SIZE:
          if (HEX[c] >= 0) {
            this.size = this.size * 16 + HEX[c];
            if (++this.sizeDigits > MAX_SIZE_DIGITS || this.size > MAX_SIZE) bad('the chunk size overflows');
          } else this.endOfSize(c);
          break;
        case EXT_NAME_FIRST:
          if (TCHAR[c] !== 1) bad('a chunk extension name is not a token');
          this.countExtension();
          this.state = EXT_NAME;
          break;
        case EXT_NAME:
          if (c === 0x3d /* = */) this.state = EXT_VALUE_FIRST;
          else if (TCHAR[c] !== 1) {
            this.endOfSize(c);
            break;
          }
          this.countExtension();
          break;
        case EXT_VALUE_FIRST:
          if (c === 0x22 /* " */) this.state = EXT_QUOTED;
          else if (TCHAR[c] === 1) this.state = EXT_TOKEN;
          else bad('a chunk extension value is neither a token nor a quoted-string');
          this.countExtension();
          break;
        case EXT_TOKEN:
          if (TCHAR[c] !== 1) this.endOfSize(c);
          else this.countExtension();
          break;
        case EXT_QUOTED:
          if (c === 0x22) this.state = EXT_AFTER_QUOTED;
          else if (c === 0x5c /* \ */) this.state = EXT_QUOTED_PAIR;
          else if (QDTEXT[c] !== 1) bad('invalid character in a quoted chunk extension value');
          this.countExtension();
          break;
        case EXT_QUOTED_PAIR:
          if (QUOTED_PAIR[c] !== 1) bad('invalid quoted-pair in a chunk extension value');
          this.countExtension();
          this.state = EXT_QUOTED;
          break;
        case EXT_AFTER_QUOTED:
          this.endOfSize(c);
          break;
        case SIZE_LF:
          if (c !== LF) bad('CR not followed by LF after the chunk size');
          if (this.size === 0) {
            this.state = TRAILER_LINE;
          } else {
            this.remaining = this.size;
            this.decoded += this.size;
            this.state = DATA;
          }
          break;
        case DATA_CR:
          if (c !== CR) bad('chunk data is not followed by CRLF');
          this.state = DATA_LF;
          break;
        case DATA_LF:
          if (c !== LF) bad('chunk data is not followed by CRLF');
          this.state = SIZE_FIRST;
          break;
        case TRAILER_LINE:
          this.countTrailer();
          if (c === CR) this.state = FINAL_LF;
          else if (TCHAR[c] === 1) {
            this.nameLength = 0;
            this.forbidden = ALL_FORBIDDEN;
            this.matchName(c);
            this.state = TRAILER_NAME;
          } else if (c === SP || c === HTAB) bad('obsolete line folding in the trailer section');
          else bad(c === LF ? 'bare LF in the trailer section' : 'invalid character in a trailer field name');
          break;
        case TRAILER_NAME:
          this.countTrailer();
          if (c === 0x3a /* : */) {
            if (this.forbiddenName()) bad('a framing or routing field in the trailer section');
            this.state = TRAILER_VALUE;
          } else if (TCHAR[c] === 1) this.matchName(c);
          else bad('invalid character in a trailer field name');
          break;
        case TRAILER_VALUE:
          this.countTrailer();
          if (c === CR) this.state = TRAILER_LF;
          else if (FIELD_CHAR[c] !== 1) bad(c === LF ? 'bare LF in the trailer section' : 'control character in a trailer field value');
          break;
        case TRAILER_LF:
          this.countTrailer();
          if (c !== LF) bad('CR not followed by LF in the trailer section');
          this.state = TRAILER_LINE;
          break;
        case FINAL_LF:
          this.countTrailer();
          if (c !== LF) bad('CR not followed by LF at the end of the chunked body');
          this.state = DONE;
          return pos + 1;
      }
      pos++;
    }
    return -1;
  }

  /** After the size or an extension: another extension, or the line's CR. No whitespace (llhttp strict refuses it too). */
  private endOfSize(c: number): void {
    if (c === 0x3b /* ; */) {
      this.countExtension();
      this.state = EXT_NAME_FIRST;
    } else if (c === CR) this.state = SIZE_LF;
    else bad(c === LF ? 'bare LF after the chunk size' : 'invalid character after the chunk size');
  }

  /** Narrows the forbidden names the trailer name still matches. `| 0x20` folds A-Z; no other tchar becomes a letter or '-'. */
  private matchName(c: number): void {
    const i = this.nameLength++;
    for (let k = 0; k < FORBIDDEN_TRAILERS.length; k++) {
      const name = FORBIDDEN_TRAILERS[k];
      if (i >= name.length || name[i] !== (c | 0x20)) this.forbidden &= ~(1 << k);
    }
  }

  private forbiddenName(): boolean {
    for (let k = 0; k < FORBIDDEN_TRAILERS.length; k++) {
      if ((this.forbidden & (1 << k)) !== 0 && FORBIDDEN_TRAILERS[k].length === this.nameLength) return true;
    }
    return false;
  }

  private countExtension(): void {
    if (++this.extensionBytes > this.limits.maxExtensionBytes) bad(`chunk extensions longer than ${this.limits.maxExtensionBytes} bytes`);
  }

  private countTrailer(): void {
    if (++this.trailerBytes > this.limits.maxTrailerBytes) bad(`trailer section longer than ${this.limits.maxTrailerBytes} bytes`);
  }
}

function bad(message: string): never {
  throw new HttpParseError('E_HTTP_BAD_CHUNK', message, 400);
}
