// The connections (or sockets) a listener keeps while they are open, for its
// idle sweep and its drain. Not a Set, for the reason a connection's streams
// are not in a Map (http2/codec/stream-table.ts): under connection churn a
// long-lived Set is rehashed every few connections, and each table it leaves
// behind in old space still names the connections open then, so the
// scavenger promoted every connection with all it holds. With clients that
// open a connection per request (`Connection: close`), 99.7% of what survived
// one scavenge survived the next.
//
// This is an array with swap-remove: each member knows its slot (under a
// symbol of this set), and a removed member's slot is cleared at once.

export class OpenSet<T extends object> {
  private readonly items: T[] = [];
  /** The property under which a member keeps its slot in this set. */
  private readonly slot = Symbol('open-set slot');

  get size(): number {
    return this.items.length;
  }

  add(item: T): void {
    const member = item as Record<symbol, number | undefined>;
    if (member[this.slot] !== undefined) return;
    member[this.slot] = this.items.length;
    this.items.push(item);
  }

  delete(item: T): boolean {
    const member = item as Record<symbol, number | undefined>;
    const at = member[this.slot];
    if (at === undefined || this.items[at] !== item) return false;
    member[this.slot] = undefined;
    // pop() clears the array's last slot; the member that was there takes the freed one.
    const last = this.items.pop()!;
    if (last !== item) {
      this.items[at] = last;
      (last as Record<symbol, number | undefined>)[this.slot] = at;
    }
    return true;
  }

  /** The members now (a copy: the caller may close them while it walks). */
  values(): T[] {
    return this.items.slice();
  }
}
