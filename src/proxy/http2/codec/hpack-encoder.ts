/**
 * HPACK encoder (RFC 7541) for the HTTP/2 connection: one per connection,
 * used for every header block it sends, in order.
 *
 * - A field equal to a static entry is sent as an index; otherwise its name
 *   is indexed when the static or dynamic table has it.
 * - Fields that repeat across messages (content-type, server, grpc-status,
 *   the date of the current second, …) are added to the dynamic table
 *   (incremental indexing), so the next message sends them as one index.
 * - Sensitive fields (authorization, proxy-authorization, cookie,
 *   set-cookie) are "never indexed" (§6.2.3, §7.1.3): not in our table, and
 *   an intermediary must not index them either.
 * - Values that are unique per message are sent without indexing: adding
 *   them would only evict entries that do repeat. These are content-length,
 *   etag, last-modified, grpc-message (error text), request and trace ids,
 *   and any value longer than 256 bytes or than half the table.
 *   `date` IS indexed: its value is the same for every response within a
 *   second, so under load almost every response sends it as one index,
 *   for one ~65-byte insertion a second.
 * - Literals are raw (no Huffman) by default. bench/hpack.ts: a response
 *   head with a new 29-byte date literal costs ~690 ns raw and ~750 ns
 *   Huffman-coded (+~2 ns per literal byte, here and again in the peer's
 *   decoder) to save ~25% of the literal bytes; once the head is indexed
 *   both are ~180 ns and the same 9–10 bytes. On the loopback and LAN
 *   links a sidecar serves, bytes are cheaper than CPU, so raw it is.
 *   `{ huffman: true }` codes a literal when that is shorter, as nghttp2 does.
 *
 * The block is written into one scratch buffer kept across calls (grown
 * when a field would not fit) and copied out once, exactly sized.
 */
import { STATIC_COUNT, STATIC_FIELD_INDEX, STATIC_NAME_INDEX } from './hpack-static-table';
import { huffmanEncode, huffmanEncodedLength } from './huffman';

const ENTRY_OVERHEAD = 32;
/** Values longer than this are never added to the dynamic table. */
const MAX_INDEXED_VALUE = 256;
/** SETTINGS_HEADER_TABLE_SIZE's initial value (RFC 9113 §6.5.2): the table size both ends start with. */
const DEFAULT_TABLE_SIZE = 4096;

const INDEX = 0;
const NO_INDEX = 1;
const NEVER_INDEX = 2;

/** What the encoder knows of a name: its static index (0: none), its static fields, and how to index it. */
interface NameInfo {
  index: number;
  fields: ReadonlyMap<string, number> | undefined;
  policy: number;
}

const NAME_INFO = new Map<string, NameInfo>();
for (const [name, index] of STATIC_NAME_INDEX) NAME_INFO.set(name, { index, fields: STATIC_FIELD_INDEX.get(name), policy: INDEX });
function setPolicy(policy: number, names: string[]): void {
  for (const name of names) {
    const info = NAME_INFO.get(name);
    if (info) info.policy = policy;
    else NAME_INFO.set(name, { index: 0, fields: undefined, policy });
  }
}
setPolicy(NEVER_INDEX, ['authorization', 'proxy-authorization', 'cookie', 'set-cookie']);
setPolicy(NO_INDEX, [
  'content-length',
  'content-range',
  'etag',
  'last-modified',
  'age',
  'grpc-message',
  'x-request-id',
  'x-envoy-expected-rq-timeout-ms',
  'traceparent',
  'tracestate',
  'x-b3-traceid',
  'x-b3-spanid',
  'x-b3-parentspanid',
  'b3',
  'x-cloud-trace-context',
]);

/** The dynamic table's entries of one name: value → entry id, and how many entries have the name. */
interface DynamicName {
  ids: Map<string, number>;
  latest: number;
  live: number;
}

export interface HpackEncoderOptions {
  /** Upper bound of our dynamic table whatever the peer allows (bytes; default 4096). */
  maxTableSize?: number;
  /** Huffman-code literals when that is shorter (default false: raw literals, less CPU). */
  huffman?: boolean;
}

type Latin1Writer = Buffer & { latin1Write(s: string, offset: number, length: number): number };

export class HpackEncoder {
  private readonly ownMax: number;
  private readonly huffman: boolean;
  /** The table's maximum size: min(the peer's SETTINGS_HEADER_TABLE_SIZE, ownMax). */
  private capacity: number;
  /** The maximum size the peer's decoder last learnt (a size update, else the protocol default). */
  private announced = DEFAULT_TABLE_SIZE;
  /** The smallest capacity since the last block (§4.2: a shrink then grow signals both). */
  private lowest: number;
  private size = 0;
  // Entries have ids in insertion order; id `a` is live iff dropped <= a < inserted,
  // stored at ring slot a & mask; its index is STATIC_COUNT + inserted - a.
  private inserted = 0;
  private dropped = 0;
  private names: string[];
  private values: string[];
  private readonly mask: number;
  private readonly byName = new Map<string, DynamicName>();
  private buf = Buffer.allocUnsafe(1024) as Latin1Writer;
  /** The end of the block being encoded in `buf`. */
  private pos = 0;

  constructor(opts: HpackEncoderOptions = {}) {
    this.ownMax = opts.maxTableSize ?? DEFAULT_TABLE_SIZE;
    this.huffman = opts.huffman ?? false;
    this.capacity = Math.min(this.ownMax, DEFAULT_TABLE_SIZE);
    this.lowest = this.capacity;
    let ring = 1;
    while (ring <= this.ownMax / ENTRY_OVERHEAD) ring *= 2;
    this.names = new Array<string>(ring).fill('');
    this.values = new Array<string>(ring).fill('');
    this.mask = ring - 1;
  }

  /** The peer's SETTINGS_HEADER_TABLE_SIZE: the encoder's table stays within it; a change is signalled by a size update at the start of the next block (§4.2, §6.3). */
  setPeerMaxTableSize(bytes: number): void {
    this.capacity = Math.min(bytes, this.ownMax);
    if (this.capacity < this.lowest) this.lowest = this.capacity;
    this.evictTo(this.capacity);
  }

  /**
   * Encodes fields (name, value, name, value, …; names lowercase;
   * pseudo-headers first) into one header block, in a new buffer from byte
   * `headroom` (those first bytes are unset).
   */
  encode(fields: readonly string[], headroom = 0): Buffer {
    this.begin();
    for (let i = 0; i + 1 < fields.length; i += 2) this.field(fields[i], fields[i + 1]);
    const block = Buffer.allocUnsafe(headroom + this.pos);
    this.buf.copy(block, headroom, 0, this.pos);
    return block;
  }

  /**
   * Starts a block in `scratch`, for fields given one by one (field()) where building the list
   * first would cost an array per head; blockLength is then its length.
   */
  begin(): void {
    let pos = 0;
    this.reserve(16);
    // Size updates: the lowest size since the last block if below what the peer knows, then the current one.
    if (this.lowest < this.announced) {
      pos = this.writeInt(pos, this.lowest, 0x1f, 0x20);
      this.announced = this.lowest;
    }
    if (this.capacity !== this.announced) {
      pos = this.writeInt(pos, this.capacity, 0x1f, 0x20);
      this.announced = this.capacity;
    }
    this.lowest = this.capacity;
    this.pos = pos;
  }

  /** The block begin() started, at the start of `scratch` (valid until the next begin()). */
  get scratch(): Buffer {
    return this.buf;
  }

  get blockLength(): number {
    return this.pos;
  }

  /** One field of the block begin() started (name lowercase; pseudo-headers before the others). */
  field(name: string, value: string): void {
    let pos = this.pos;
    this.reserve(pos + 16 + name.length + value.length); // representation and two lengths: at most 3 + 5 + 5 bytes
    const info = NAME_INFO.get(name);
    if (info !== undefined && info.fields !== undefined) {
      const index = info.fields.get(value);
      if (index !== undefined) {
        this.pos = this.writeInt(pos, index, 0x7f, 0x80);
        return;
      }
    }
    const dyn = this.byName.get(name);
    if (dyn !== undefined) {
      const id = dyn.ids.get(value);
      if (id !== undefined) {
        this.pos = this.writeInt(pos, STATIC_COUNT + this.inserted - id, 0x7f, 0x80);
        return;
      }
    }
    const nameIndex = info !== undefined && info.index !== 0 ? info.index : dyn !== undefined ? STATIC_COUNT + this.inserted - dyn.latest : 0;
    const policy = info === undefined ? INDEX : info.policy;
    const entrySize = name.length + value.length + ENTRY_OVERHEAD;
    if (policy === INDEX && value.length <= MAX_INDEXED_VALUE && entrySize <= this.capacity >> 1) {
      pos = this.writeInt(pos, nameIndex, 0x3f, 0x40);
      if (nameIndex === 0) pos = this.writeString(pos, name);
      pos = this.writeString(pos, value);
      this.insert(name, value, entrySize);
    } else {
      pos = this.writeInt(pos, nameIndex, 0x0f, policy === NEVER_INDEX ? 0x10 : 0x00);
      if (nameIndex === 0) pos = this.writeString(pos, name);
      pos = this.writeString(pos, value);
    }
    this.pos = pos;
  }

  /** Makes the scratch buffer at least `bytes` long, keeping its content. */
  private reserve(bytes: number): void {
    if (bytes <= this.buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(bytes, 2 * this.buf.length)) as Latin1Writer;
    this.buf.copy(grown);
    this.buf = grown;
  }

  /** Writes an integer with an N-bit prefix (`mask` = 2^N - 1) and the representation's high bits `first` (§5.1). */
  private writeInt(pos: number, value: number, mask: number, first: number): number {
    const buf = this.buf;
    if (value < mask) {
      buf[pos++] = first | value;
      return pos;
    }
    buf[pos++] = first | mask;
    value -= mask;
    while (value >= 0x80) {
      buf[pos++] = (value & 0x7f) | 0x80;
      value = Math.floor(value / 0x80);
    }
    buf[pos++] = value;
    return pos;
  }

  /** Writes a string literal (§5.2): raw, or Huffman-coded when enabled and shorter. */
  private writeString(pos: number, s: string): number {
    const n = s.length;
    if (this.huffman && n > 0) {
      const coded = huffmanEncodedLength(s);
      if (coded < n) {
        pos = this.writeInt(pos, coded, 0x7f, 0x80);
        return huffmanEncode(s, this.buf, pos);
      }
    }
    pos = this.writeInt(pos, n, 0x7f, 0);
    if (n <= 32) {
      // a short loop is cheaper than the native call
      const buf = this.buf;
      for (let i = 0; i < n; i++) buf[pos + i] = s.charCodeAt(i);
      return pos + n;
    }
    return pos + this.buf.latin1Write(s, pos, n);
  }

  private insert(name: string, value: string, entrySize: number): void {
    this.evictTo(this.capacity - entrySize);
    const id = this.inserted++;
    const slot = id & this.mask;
    this.names[slot] = name;
    this.values[slot] = value;
    this.size += entrySize;
    const dyn = this.byName.get(name);
    if (dyn === undefined) this.byName.set(name, { ids: new Map([[value, id]]), latest: id, live: 1 });
    else {
      dyn.ids.set(value, id);
      dyn.latest = id;
      dyn.live++;
    }
  }

  /** Evicts the oldest entries until the table's size is at most `size` (§4.4), forgetting them in byName. */
  private evictTo(size: number): void {
    while (this.size > size) {
      const id = this.dropped++;
      const slot = id & this.mask;
      const name = this.names[slot];
      const value = this.values[slot];
      this.size -= name.length + value.length + ENTRY_OVERHEAD;
      this.names[slot] = '';
      this.values[slot] = '';
      const dyn = this.byName.get(name)!;
      if (--dyn.live === 0) this.byName.delete(name);
      else if (dyn.ids.get(value) === id) dyn.ids.delete(value);
    }
  }
}
