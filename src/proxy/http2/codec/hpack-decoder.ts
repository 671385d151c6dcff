/**
 * HPACK decoder (RFC 7541) for the HTTP/2 server connection: one per
 * connection, fed each complete header block in order.
 *
 * Strict: every malformed representation is an HpackError (the connection
 * ends with COMPRESSION_ERROR); nothing is guessed. Pure: field names and
 * values are not validated here (the connection layer does that), only
 * decoded, byte-preserving, as latin1 strings.
 *
 * Speed: one pass over the block with a local cursor; static and dynamic
 * entries are returned as the strings stored at insertion (no allocation per
 * indexed field); raw literals are one latin1Slice each; the dynamic table is
 * a ring of names and values with a byte size.
 */
import type { Latin1Buffer } from '../../http1/tokens';
import { STATIC_COUNT, STATIC_NAMES, STATIC_VALUES } from './hpack-static-table';
import { huffmanDecode, HuffmanError } from './huffman';

/** An HPACK decoding error: the connection ends with COMPRESSION_ERROR (RFC 9113 §4.3). */
export class HpackError extends Error {}

/** RFC 7541 §4.1: an entry's size is its name and value lengths plus 32. */
const ENTRY_OVERHEAD = 32;
/** Integers above this are refused (RFC 7541 §5.1 leaves the limit to the implementation; 2^31-1 covers every HTTP/2 length). */
const MAX_INT = 0x7fffffff;

export interface HpackDecoderOptions {
  /** The SETTINGS_HEADER_TABLE_SIZE weft advertises: size updates above it are errors. Default 4096. */
  maxTableSize?: number;
  /** Header list size (RFC 9113 §6.5.2) above which decode() returns -1. */
  maxHeaderListSize: number;
}

export class HpackDecoder {
  private readonly maxTableSize: number;
  private readonly maxHeaderListSize: number;
  /** The table's current maximum size (the last size update, else maxTableSize). */
  private capacity: number;
  /** Sum of the entries' sizes. */
  private size = 0;
  // The dynamic table: a ring, newest entry at slot (head - 1) & mask; grown when full.
  private names: string[] = new Array<string>(16).fill('');
  private values: string[] = new Array<string>(16).fill('');
  private mask = 15;
  private head = 0;
  private count = 0;
  /** The cursor after the last readInt/readString (their second result). */
  private p = 0;

  constructor(opts: HpackDecoderOptions) {
    this.maxTableSize = opts.maxTableSize ?? 4096;
    this.maxHeaderListSize = opts.maxHeaderListSize;
    this.capacity = this.maxTableSize;
  }

  /** Entries in the dynamic table, and their total size (for tests and stats). */
  get tableLength(): number {
    return this.count;
  }
  get tableSize(): number {
    return this.size;
  }

  /**
   * Decodes one complete header block (HEADERS + CONTINUATION payloads
   * already joined, padding and priority already removed) into `out` as name,
   * value, name, value, … (latin1 strings, byte-preserving). Returns the
   * header list size (RFC 9113 §6.5.2: Σ name + value + 32), or -1 when that
   * exceeds maxHeaderListSize: decoding then still runs to the end (the
   * dynamic table must stay in sync with the peer's) but `out` keeps only
   * the fields that fit. Throws HpackError on every HPACK error; the
   * decoder is then out of step with the peer, and the connection must end.
   */
  decode(block: Buffer, out: string[]): number {
    const end = block.length;
    let pos = 0;
    // Dynamic table size updates are allowed only before the first field (§4.2).
    while (pos < end && (block[pos] & 0xe0) === 0x20) {
      const size = this.readInt(block, pos, 0x1f);
      pos = this.p;
      if (size > this.maxTableSize) throw new HpackError(`dynamic table size update to ${size} above the advertised SETTINGS_HEADER_TABLE_SIZE ${this.maxTableSize}`);
      this.capacity = size;
      this.evictTo(size);
    }
    const limit = this.maxHeaderListSize;
    let listSize = 0;
    let over = false;
    while (pos < end) {
      const b = block[pos];
      let name: string;
      let value: string;
      if (b & 0x80) {
        // Indexed field (§6.1).
        let index = b & 0x7f;
        pos++;
        if (index === 0x7f) {
          index = this.readInt(block, pos - 1, 0x7f);
          pos = this.p;
        } else if (index === 0) throw new HpackError('indexed header field with index 0');
        if (index <= STATIC_COUNT) {
          name = STATIC_NAMES[index];
          value = STATIC_VALUES[index];
        } else {
          const age = index - STATIC_COUNT - 1;
          if (age >= this.count) throw this.indexError(index);
          const slot = (this.head - 1 - age) & this.mask;
          name = this.names[slot];
          value = this.values[slot];
        }
      } else if ((b & 0xe0) === 0x20) {
        throw new HpackError('dynamic table size update after a header field (allowed only at the start of a block)');
      } else {
        // Literal field (§6.2): with incremental indexing (01), without indexing (0000) or never indexed (0001).
        const indexing = (b & 0x40) !== 0;
        const prefix = indexing ? 0x3f : 0x0f;
        let nameIndex = b & prefix;
        pos++;
        if (nameIndex === prefix) {
          nameIndex = this.readInt(block, pos - 1, prefix);
          pos = this.p;
        }
        if (nameIndex === 0) {
          name = this.readString(block, pos);
          pos = this.p;
        } else if (nameIndex <= STATIC_COUNT) {
          name = STATIC_NAMES[nameIndex];
        } else {
          const age = nameIndex - STATIC_COUNT - 1;
          if (age >= this.count) throw this.indexError(nameIndex);
          name = this.names[(this.head - 1 - age) & this.mask];
        }
        value = this.readString(block, pos);
        pos = this.p;
        if (indexing) this.insert(name, value);
      }
      listSize += name.length + value.length + ENTRY_OVERHEAD;
      if (!over) {
        if (listSize > limit) over = true;
        else out.push(name, value);
      }
    }
    return over ? -1 : listSize;
  }

  private indexError(index: number): HpackError {
    return new HpackError(`header field index ${index} beyond the static table (${STATIC_COUNT}) and the dynamic table (${this.count} entries)`);
  }

  /** An integer with an N-bit prefix (§5.1) whose first byte is block[pos] (`mask` = 2^N - 1); sets this.p past it. */
  private readInt(block: Buffer, pos: number, mask: number): number {
    const end = block.length;
    if (pos >= end) throw new HpackError('header block truncated inside an integer');
    let value = block[pos++] & mask;
    if (value < mask) {
      this.p = pos;
      return value;
    }
    // At most 5 continuation bytes: 7 × 5 = 35 bits hold any value up to 2^31 - 1 after the prefix.
    for (let shift = 0; shift <= 28; shift += 7) {
      if (pos >= end) throw new HpackError('header block truncated inside an integer');
      const b = block[pos++];
      value += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) {
        if (value > MAX_INT) throw new HpackError(`integer ${value} above 2^31-1`);
        this.p = pos;
        return value;
      }
    }
    throw new HpackError('integer with more continuation bytes than 2^31-1 needs');
  }

  /** A string literal (§5.2) starting at block[pos]; sets this.p past it. */
  private readString(block: Buffer, pos: number): string {
    const end = block.length;
    if (pos >= end) throw new HpackError('header block truncated before a string literal');
    const huffman = (block[pos] & 0x80) !== 0;
    let len = block[pos] & 0x7f;
    pos++;
    if (len === 0x7f) {
      len = this.readInt(block, pos - 1, 0x7f);
      pos = this.p;
    }
    const stop = pos + len;
    if (stop > end) throw new HpackError(`string literal of ${len} bytes runs past the end of the header block (${end - pos} left)`);
    this.p = stop;
    if (!huffman) return (block as Latin1Buffer).latin1Slice(pos, stop);
    try {
      return huffmanDecode(block, pos, stop);
    } catch (err) {
      if (err instanceof HuffmanError) throw new HpackError(err.message);
      throw err;
    }
  }

  /** Adds an entry (§4.4): evicts the oldest until it fits; an entry larger than the table empties it and is not added. */
  private insert(name: string, value: string): void {
    const entrySize = name.length + value.length + ENTRY_OVERHEAD;
    if (entrySize > this.capacity) {
      this.evictTo(0);
      return;
    }
    this.evictTo(this.capacity - entrySize);
    if (this.count > this.mask) this.grow();
    this.names[this.head] = name;
    this.values[this.head] = value;
    this.head = (this.head + 1) & this.mask;
    this.count++;
    this.size += entrySize;
  }

  /** Evicts the oldest entries until the table's size is at most `size`. */
  private evictTo(size: number): void {
    while (this.size > size) {
      const slot = (this.head - this.count) & this.mask;
      this.size -= this.names[slot].length + this.values[slot].length + ENTRY_OVERHEAD;
      this.names[slot] = '';
      this.values[slot] = '';
      this.count--;
    }
  }

  /** Doubles the ring, oldest entry first at slot 0. */
  private grow(): void {
    const n = this.mask + 1;
    const names = new Array<string>(2 * n).fill('');
    const values = new Array<string>(2 * n).fill('');
    for (let i = 0; i < this.count; i++) {
      const slot = (this.head - this.count + i) & this.mask;
      names[i] = this.names[slot];
      values[i] = this.values[slot];
    }
    this.names = names;
    this.values = values;
    this.mask = 2 * n - 1;
    this.head = this.count;
  }
}
