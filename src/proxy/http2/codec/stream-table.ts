// The open streams of a connection, by stream id. Not a Map, because of what
// a Map's table does to the young generation under stream churn:
//
// A connection lives long, so its Map's table is in V8's old space. A Map
// never reuses the slot of a deleted entry; every few streams its table is
// rehashed into a new one (allocated in old space too), and the table left
// behind still points at the streams that were open then. That dead table
// stays until the next full GC, and the scavenger takes its pointers for
// live ones: every stream it names, with its exchange, listeners and heads,
// is copied, then promoted, then dies in old space. Under gRPC load
// (`bench/sidecar-ab.js --protocol grpc --gc`) each scavenge promoted 2.9 MB,
// though a call lasts 18 ms and scavenges came 70 ms apart; with this table,
// 27 KB (BENCHMARKS.md, issue 15).
//
// This table is open addressing with linear probing and backward-shift
// deletion: a deleted slot is cleared at once, and a table outgrown is
// cleared before it is let go, so nothing dead points at a stream.

/** Slots of a new table: a power of two, twice the streams a connection usually holds at once. */
const INITIAL_CAPACITY = 16;

export class StreamTable<S> {
  /** Stream ids by slot; 0 is an empty slot (stream ids start at 1). */
  private ids = new Int32Array(INITIAL_CAPACITY);
  private streams: (S | undefined)[] = new Array<S | undefined>(INITIAL_CAPACITY).fill(undefined);
  private mask = INITIAL_CAPACITY - 1;
  size = 0;

  /** A stream's home slot: ids of one side are all odd (or all even) and mostly consecutive. */
  private home(id: number): number {
    return (id >>> 1) & this.mask;
  }

  get(id: number): S | undefined {
    const ids = this.ids;
    for (let i = this.home(id); ; i = (i + 1) & this.mask) {
      const at = ids[i];
      if (at === id) return this.streams[i];
      if (at === 0) return undefined;
    }
  }

  has(id: number): boolean {
    return this.get(id) !== undefined;
  }

  /** Adds a stream, or replaces the one under its id. */
  set(id: number, stream: S): void {
    if ((this.size + 1) * 2 > this.ids.length) this.grow();
    let i = this.home(id);
    while (this.ids[i] !== 0 && this.ids[i] !== id) i = (i + 1) & this.mask;
    if (this.ids[i] === 0) this.size++;
    this.ids[i] = id;
    this.streams[i] = stream;
  }

  delete(id: number): boolean {
    const ids = this.ids;
    const mask = this.mask;
    let hole = this.home(id);
    for (;;) {
      const at = ids[hole];
      if (at === id) break;
      if (at === 0) return false;
      hole = (hole + 1) & mask;
    }
    // Backward shift: a later entry of the same run moves into the hole unless its home lies
    // (cyclically) after the hole, so every entry stays reachable from its home without tombstones.
    for (let j = (hole + 1) & mask; ids[j] !== 0; j = (j + 1) & mask) {
      const home = this.home(ids[j]);
      const stays = hole <= j ? hole < home && home <= j : hole < home || home <= j;
      if (stays) continue;
      ids[hole] = ids[j];
      this.streams[hole] = this.streams[j];
      hole = j;
    }
    ids[hole] = 0;
    this.streams[hole] = undefined;
    this.size--;
    return true;
  }

  /** The streams in id order (a copy: the caller may close them while it walks). */
  values(): S[] {
    const order: number[] = [];
    for (let i = 0; i < this.ids.length; i++) if (this.ids[i] !== 0) order.push(i);
    order.sort((a, b) => this.ids[a] - this.ids[b]);
    return order.map((i) => this.streams[i]!);
  }

  clear(): void {
    this.ids.fill(0);
    this.streams.fill(undefined);
    this.size = 0;
  }

  private grow(): void {
    const oldIds = this.ids;
    const oldStreams = this.streams;
    const capacity = oldIds.length * 2;
    this.ids = new Int32Array(capacity);
    this.streams = new Array<S | undefined>(capacity).fill(undefined);
    this.mask = capacity - 1;
    this.size = 0;
    for (let i = 0; i < oldIds.length; i++) if (oldIds[i] !== 0) this.set(oldIds[i], oldStreams[i]!);
    // The old array may be in old space already: emptied, it keeps no stream alive after it is dropped.
    oldStreams.fill(undefined);
  }
}
