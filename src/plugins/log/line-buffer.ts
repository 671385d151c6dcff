// The log plugin's bounded buffer: lines wait here while a batch is on its way
// or the sink is down. It never holds more than its capacity: the oldest
// lines go first, and are counted so the loss is reported, not silent.

export class LineBuffer<T> {
  private items: T[] = [];
  private head = 0;
  /** Lines dropped since the count was last taken. */
  private droppedSince = 0;

  constructor(private capacity: number) {}

  get length(): number {
    return this.items.length - this.head;
  }

  /** Adds at the end; drops the oldest beyond the capacity. */
  push(item: T): void {
    this.items.push(item);
    this.trim();
  }

  /** Puts back a batch that could not be sent, ahead of what came since; still bounded (the oldest go). */
  putBack(batch: readonly T[]): void {
    this.items = [...batch, ...this.items.slice(this.head)];
    this.head = 0;
    this.trim();
  }

  /** Takes up to `n` of the oldest. */
  take(n: number): T[] {
    const batch = this.items.slice(this.head, this.head + n);
    this.head += batch.length;
    // Compact now and then rather than shifting on every take.
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return batch;
  }

  setCapacity(capacity: number): void {
    this.capacity = capacity;
    this.trim();
  }

  /** Lines dropped since the last call (and the count starts over). */
  takeDropped(): number {
    const n = this.droppedSince;
    this.droppedSince = 0;
    return n;
  }

  /** Counts `n` drops again (a report of them that could not be delivered). */
  addDropped(n: number): void {
    this.droppedSince += n;
  }

  private trim(): void {
    const over = this.length - this.capacity;
    if (over <= 0) return;
    this.head += over;
    this.droppedSince += over;
    if (this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }
}
