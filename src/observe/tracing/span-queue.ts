// Finished spans on their way to the collector: a bounded queue drained in
// batches by one export at a time. The OpenTelemetry BatchSpanProcessor drops
// a batch whose export failed and cannot say how many spans it dropped; this
// one puts a failed batch back, backs off (doubling, capped), and counts
// every span it had to refuse. Spans held — queued plus the batch in flight
// — never exceed `maxQueueSize`, whatever the collector does, and nothing
// here ever waits on it: onEnd is a push or a counted drop.
import type { Context } from '@opentelemetry/api';
import { ExportResultCode } from '@opentelemetry/core';
import type { ReadableSpan, Span, SpanExporter, SpanProcessor } from '@opentelemetry/sdk-trace-base';

export interface SpanQueueOptions {
  maxQueueSize: number;
  maxBatchSize: number;
  /** How long a span may wait for a batch to fill. */
  flushMs: number;
  /** Back-off after a failed export: first wait, and the cap it doubles up to. */
  backoffMs: number;
  maxBackoffMs: number;
}

export const DEFAULT_SPAN_QUEUE: SpanQueueOptions = { maxQueueSize: 2048, maxBatchSize: 512, flushMs: 1000, backoffMs: 1000, maxBackoffMs: 30_000 };

export class SpanQueue implements SpanProcessor {
  private queue: ReadableSpan[] = [];
  private inFlight: ReadableSpan[] | undefined;
  private timer: NodeJS.Timeout | undefined;
  private backoff = 0;
  private closed = false;
  /** Counters for /stats/prometheus. */
  exported = 0;
  dropped = 0;
  exportFailures = 0;

  constructor(
    private readonly exporter: SpanExporter,
    private readonly opts: SpanQueueOptions,
  ) {}

  /** Spans held in memory now (queued and in flight). */
  get held(): number {
    return this.queue.length + (this.inFlight?.length ?? 0);
  }

  onStart(_span: Span, _parent: Context): void {}

  onEnd(span: ReadableSpan): void {
    if (this.closed || (span.spanContext().traceFlags & 1) === 0) return;
    if (this.held >= this.opts.maxQueueSize) {
      this.dropped++;
      return;
    }
    this.queue.push(span);
    if (this.inFlight || this.backoff > 0) return; // the export in flight (or the back-off) schedules the next
    if (this.queue.length >= this.opts.maxBatchSize) this.exportBatch();
    else this.arm(this.opts.flushMs);
  }

  private arm(ms: number): void {
    if (this.timer || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.exportBatch();
    }, ms);
    this.timer.unref();
  }

  private exportBatch(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.inFlight || this.queue.length === 0) return;
    const batch = this.queue.splice(0, this.opts.maxBatchSize);
    this.inFlight = batch;
    this.exporter.export(batch, (result) => {
      this.inFlight = undefined;
      if (result.code === ExportResultCode.SUCCESS) {
        this.exported += batch.length;
        this.backoff = 0;
        if (this.queue.length >= this.opts.maxBatchSize) setImmediate(() => this.exportBatch());
        else if (this.queue.length > 0) this.arm(this.opts.flushMs);
        return;
      }
      this.exportFailures++;
      if (this.closed) {
        this.dropped += batch.length;
        return;
      }
      // Back in front: held spans did not grow while it was out, so it fits.
      this.queue = batch.concat(this.queue);
      this.backoff = this.backoff === 0 ? this.opts.backoffMs : Math.min(this.backoff * 2, this.opts.maxBackoffMs);
      const wait = this.backoff;
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.exportBatch();
      }, wait);
      this.timer.unref();
    });
  }

  /** Exports what is queued now, once; resolves when the exports in flight are done (or failed). */
  async forceFlush(): Promise<void> {
    for (let i = 0; i < 1000 && (this.queue.length > 0 || this.inFlight); i++) {
      if (!this.inFlight) this.exportBatch();
      const before = this.exportFailures;
      await this.settled();
      if (this.exportFailures !== before) return; // the collector is not there: do not spin
    }
  }

  private async settled(): Promise<void> {
    while (this.inFlight) await new Promise((r) => setTimeout(r, 5));
  }

  /** Stops: one last try to send what is held, bounded by `waitMs`. */
  async shutdown(waitMs = 1000): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.backoff = 0;
    const flushed = this.forceFlush();
    await Promise.race([flushed, new Promise((r) => setTimeout(r, waitMs).unref())]);
    this.closed = true;
    this.dropped += this.queue.length;
    this.queue = [];
    await this.exporter.shutdown().catch(() => {});
  }
}
