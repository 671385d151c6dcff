// Follows a file like `tail -F`: from its end when the plugin starts (new
// lines only), from the start of a file that appears later or replaces it
// (rotation: the old file is read to its end first), from the start again
// when it is truncated. Polls stat() rather than fs.watch: it sees a rename
// and a truncation the same way on every filesystem.
import * as fs from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import type { Logger } from '../../observe/log';

const POLL_MS = 250;
const READ_CHUNK = 64 * 1024;
/** Bytes read per poll, so one huge append does not stall everything else. */
const MAX_READ_PER_POLL = 4 * 1024 * 1024;
const MAX_LINE_CHARS = 16 * 1024;

interface Open {
  fd: fs.promises.FileHandle;
  ino: number;
  offset: number;
}

export class FileFollower {
  private open: Open | undefined;
  private first = true;
  private partial = '';
  private decoder = new StringDecoder('utf8');
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;
  private stopped = false;

  constructor(
    /** As configured (the records name it so). */
    readonly name: string,
    private readonly file: string,
    private readonly onLine: (line: string) => void,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.tick();
  }

  /** Reads what was written up to now (and a last unfinished line), then stops. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.polling;
    await this.poll().catch(() => {});
    this.flushPartial();
    await this.open?.fd.close().catch(() => {});
    this.open = undefined;
  }

  private tick(): void {
    this.polling = this.poll()
      .catch((err: Error) => this.log('warn', `cannot read ${this.name}: ${err.message}`))
      .finally(() => {
        this.polling = undefined;
        if (!this.stopped) this.timer = setTimeout(() => this.tick(), POLL_MS);
      });
  }

  private async poll(): Promise<void> {
    let st: fs.Stats | undefined;
    try {
      st = await fs.promises.stat(this.file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const first = this.first;
    this.first = false;
    if (this.open && (!st || st.ino !== this.open.ino)) {
      // Rotated or removed: what was written to the old file before it went is read first.
      await this.readToEnd(this.open, Infinity);
      this.flushPartial();
      await this.open.fd.close().catch(() => {});
      this.open = undefined;
    }
    if (!st) return;
    if (!this.open) {
      const fd = await fs.promises.open(this.file, 'r');
      this.open = { fd, ino: st.ino, offset: first ? st.size : 0 };
      this.decoder = new StringDecoder('utf8');
    } else if (st.size < this.open.offset) {
      this.log('info', `${this.name} was truncated: following it from its start`);
      this.open.offset = 0;
      this.partial = '';
    }
    await this.readToEnd(this.open, MAX_READ_PER_POLL);
  }

  private async readToEnd(open: Open, limit: number): Promise<void> {
    const buf = Buffer.allocUnsafe(READ_CHUNK);
    let read = 0;
    while (read < limit) {
      const { bytesRead } = await open.fd.read(buf, 0, READ_CHUNK, open.offset);
      if (bytesRead === 0) return;
      open.offset += bytesRead;
      read += bytesRead;
      this.takeText(this.decoder.write(buf.subarray(0, bytesRead)));
    }
  }

  private takeText(text: string): void {
    const lines = (this.partial + text).split('\n');
    this.partial = lines.pop()!;
    for (const line of lines) this.onLine(line.endsWith('\r') ? line.slice(0, -1) : line);
    while (this.partial.length > MAX_LINE_CHARS) {
      this.onLine(this.partial.slice(0, MAX_LINE_CHARS));
      this.partial = this.partial.slice(MAX_LINE_CHARS);
    }
  }

  private flushPartial(): void {
    const rest = this.partial + this.decoder.end();
    this.partial = '';
    this.decoder = new StringDecoder('utf8');
    if (rest.length > 0) this.onLine(rest);
  }
}
