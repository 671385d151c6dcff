// The access log: one JSON line per finished request or TCP connection, to
// a file or stdout. Logging never blocks the proxy: lines are gathered and
// written once per event-loop turn through an fs stream (a thread-pool
// write, even for stdout, whose pipe writes are synchronous in Node on
// Linux); when the sink falls behind by more than `maxBufferedBytes`, lines
// are dropped and counted (weft_access_log_dropped_total).
//
// A line is the RequestRecord (request-record.ts) with `time` as an ISO 8601
// string: {"time":"…","durationMs":…,"direction":"outbound","protocol":"http1",
// "method":"GET","authority":"…","path":"…","route":"…","cluster":"…",
// "upstream":"…","status":200,"flags":"","requestBytes":…,"responseBytes":…,
// "sourceAddress":"…","source":"…","destination":"…","attempts":1,"traceId":"…"}
import * as fs from 'node:fs';
import type { RequestRecord } from './request-record';

export interface AccessLogOptions {
  /** A file path (appended to), or '-' for stdout. */
  path: string;
  /** Fraction of records logged, 0…1 (default 1). */
  sample?: number;
  /** Bytes written but not yet flushed by the sink, past which lines are dropped (default 4 MiB). */
  maxBufferedBytes?: number;
  /** Called once per dropped line. */
  onDrop(): void;
}

export class AccessLog {
  private readonly stream: fs.WriteStream;
  private readonly sample: number;
  private readonly max: number;
  private pending: string[] = [];
  private pendingBytes = 0;
  private scheduled = false;
  private broken = false;

  constructor(private readonly opts: AccessLogOptions) {
    if (opts.sample !== undefined && !(opts.sample >= 0 && opts.sample <= 1)) throw new Error(`access log sample must be between 0 and 1, got ${opts.sample}`);
    this.sample = opts.sample ?? 1;
    this.max = opts.maxBufferedBytes ?? 4 * 1024 * 1024;
    this.stream = opts.path === '-' ? fs.createWriteStream('', { fd: 1, autoClose: false }) : fs.createWriteStream(opts.path, { flags: 'a' });
    // A sink that fails (disk full, closed pipe) drops the rest; the proxy goes on.
    this.stream.on('error', () => (this.broken = true));
  }

  /** The observer to register with RequestObservers. */
  readonly observe = (record: RequestRecord): void => {
    if (this.sample < 1 && Math.random() >= this.sample) return;
    if (this.broken || this.pendingBytes + this.stream.writableLength > this.max) return this.opts.onDrop();
    const line = formatAccessLine(record);
    this.pending.push(line);
    this.pendingBytes += line.length;
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flush);
    }
  };

  private readonly flush = (): void => {
    this.scheduled = false;
    if (this.pending.length === 0) return;
    const chunk = this.pending.join('');
    this.pending = [];
    this.pendingBytes = 0;
    if (!this.broken) this.stream.write(chunk);
  };

  /** Writes what is pending and closes the file (stdout stays open). */
  close(): Promise<void> {
    this.flush();
    return new Promise((resolve) => {
      if (this.broken) return resolve();
      this.stream.end(() => resolve());
    });
  }
}

export function formatAccessLine(record: RequestRecord): string {
  return JSON.stringify({ ...record, time: new Date(record.time).toISOString() }) + '\n';
}
