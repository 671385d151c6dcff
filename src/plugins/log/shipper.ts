// Moves records from the bounded buffer to the sink in batches: a batch goes
// when it is full or when its oldest line has waited `flushIntervalMs`. A
// failed send puts the batch back and retries with exponential backoff; the
// buffer stays bounded meanwhile (the oldest lines go, counted), and the next
// batch that gets through starts with a record saying how many were lost.
import type { Logger } from '../../observe/log';
import { LineBuffer } from './line-buffer';
import type { LogRecord } from './log-record';
import type { Sink } from './sinks';

export interface ShipperOptions {
  bufferLines: number;
  batchLines: number;
  flushIntervalMs: number;
}

/** A record and, for the app's output, its line number on the unit channel. */
export interface Entry {
  record: LogRecord;
  seq?: number;
}

const RETRY_MIN_MS = 200;
const RETRY_MAX_MS = 10_000;

export class Shipper {
  private readonly buffer: LineBuffer<Entry>;
  private timer: NodeJS.Timeout | undefined;
  private sending: Promise<void> | undefined;
  private retryMs = 0;
  private failures = 0;
  private dropping = false;
  /** Lines in the batch on its way. */
  private inFlight = 0;

  constructor(
    private sink: Sink,
    private opts: ShipperOptions,
    private readonly dropRecord: (dropped: number) => LogRecord,
    private readonly log: Logger,
    /** Called after each delivered batch with the highest app-output seq in it. */
    private readonly onShipped: (seq: number) => void = () => {},
  ) {
    this.buffer = new LineBuffer(opts.bufferLines);
  }

  get held(): number {
    return this.buffer.length + this.inFlight;
  }

  add(entry: Entry): void {
    this.buffer.push(entry);
    if (!this.dropping && this.held >= this.opts.bufferLines) {
      this.dropping = true;
      this.log('warn', `the buffer is full (${this.opts.bufferLines} lines): dropping the oldest lines until ${this.sink.describe} takes them`, { sink: this.sink.describe });
    }
    this.schedule();
  }

  /** Lines lost before they reached the plugin (weft run drops them for a reader that lags): reported like the buffer's drops. */
  countDropped(n: number): void {
    this.buffer.addDropped(n);
    this.schedule();
  }

  /** A new sink or settings; what is held stays and goes to the new sink. */
  reconfigure(sink: Sink, opts: ShipperOptions): void {
    this.sink = sink;
    this.opts = opts;
    if (!this.sending) this.buffer.setCapacity(opts.bufferLines);
    this.retryMs = 0;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.schedule();
  }

  /**
   * Sends what is held, retrying, until it is all delivered or `timeoutMs`
   * has passed; resolves to the number of lines left undelivered.
   */
  async flush(timeoutMs: number): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    while (this.buffer.length > 0 || this.sending) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      clearTimeout(this.timer);
      this.timer = undefined;
      if (!this.sending) void this.send(true);
      const settled = await Promise.race([this.sending, new Promise<'late'>((r) => setTimeout(() => r('late'), left).unref())]);
      if (settled === 'late') break;
      // A failed send during the flush: a short pause, not the full backoff.
      if (this.buffer.length > 0 && this.failures > 0) await new Promise((r) => setTimeout(r, Math.min(RETRY_MIN_MS, Math.max(0, deadline - Date.now()))));
    }
    clearTimeout(this.timer);
    this.timer = undefined;
    return this.held;
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(): void {
    if (this.sending || this.buffer.length === 0) return;
    if (this.retryMs === 0 && this.buffer.length >= this.opts.batchLines) {
      clearTimeout(this.timer);
      this.timer = undefined;
      void this.send(false);
      return;
    }
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.send(false);
    }, this.retryMs || this.opts.flushIntervalMs);
  }

  private send(flushing: boolean): Promise<void> {
    const entries = this.buffer.take(this.opts.batchLines);
    const dropped = this.buffer.takeDropped();
    if (entries.length === 0 && dropped === 0) return Promise.resolve();
    // The batch on its way counts against the bound too.
    this.buffer.setCapacity(this.opts.bufferLines - entries.length);
    this.inFlight = entries.length;
    const batch = entries.map((e) => e.record);
    if (dropped > 0) batch.unshift(this.dropRecord(dropped));
    const sink = this.sink;
    this.sending = sink.send(batch).then(
      () => {
        this.sending = undefined;
        this.inFlight = 0;
        this.buffer.setCapacity(this.opts.bufferLines);
        if (this.failures > 0) this.log('info', `${sink.describe} takes lines again after ${this.failures} failed attempt(s)`, { sink: sink.describe });
        if (dropped > 0) this.log('warn', `${dropped} lines were dropped while ${sink.describe} was down or slow (buffer: ${this.opts.bufferLines} lines)`, { dropped });
        this.failures = 0;
        this.retryMs = 0;
        if (this.buffer.length < this.opts.bufferLines) this.dropping = false;
        let top = -1;
        for (const e of entries) if (e.seq !== undefined && e.seq > top) top = e.seq;
        if (top >= 0) this.onShipped(top);
        if (!flushing) this.schedule();
      },
      (err: Error) => {
        this.sending = undefined;
        this.inFlight = 0;
        this.buffer.setCapacity(this.opts.bufferLines);
        this.buffer.putBack(entries);
        this.buffer.addDropped(dropped);
        this.failures++;
        this.retryMs = Math.min(RETRY_MAX_MS, this.retryMs ? this.retryMs * 2 : RETRY_MIN_MS);
        // The first failure and then now and then: a sink down for an hour is not thousands of lines.
        if (this.failures === 1 || this.failures % 10 === 0) {
          this.log('warn', `cannot ship to ${sink.describe} (attempt ${this.failures}): ${err.message}; ${this.buffer.length} lines held, retrying in ${this.retryMs} ms`, { sink: sink.describe });
        }
        if (!flushing) this.schedule();
      },
    );
    return this.sending;
  }
}
