// The app's stdout and stderr as lines for plugins (the log plugin ships
// them). `weft run` pipes the app's output through here when the unit has
// general plugins: the bytes go on to weft run's own stdout/stderr as they
// came, and each line is numbered and kept in a bounded ring, so a plugin
// that connects late or restarts reads on from the last line it saw
// (`since`) instead of losing the app's first lines. Once every stream it
// copies has ended (the app exited and its pipes closed), readers are told
// so: a plugin stopped after the app knows it has read the app's last line.
import { StringDecoder } from 'node:string_decoder';

export interface OutputLine {
  seq: number;
  time: string;
  stream: 'stdout' | 'stderr';
  line: string;
}

/** A longer line is cut into pieces of this many characters (a runaway line must not hold memory). */
const MAX_LINE_CHARS = 16 * 1024;

export class AppOutput {
  private readonly ring: OutputLine[] = [];
  private seq = 0;
  private readonly subscribers = new Set<(line: OutputLine) => void>();
  private readonly endListeners = new Set<() => void>();
  private teed = 0;
  private closed = 0;

  constructor(private readonly capacity = 1000) {}

  /** Copies `from` to `to` unchanged and records its lines. */
  tee(from: NodeJS.ReadableStream, stream: OutputLine['stream'], to: NodeJS.WritableStream): void {
    const decoder = new StringDecoder('utf8');
    let partial = '';
    let done = false;
    this.teed++;
    from.on('data', (chunk: Buffer) => {
      to.write(chunk);
      const text = partial + decoder.write(chunk);
      const lines = text.split('\n');
      partial = lines.pop()!;
      for (const line of lines) this.push(stream, line.endsWith('\r') ? line.slice(0, -1) : line);
      while (partial.length > MAX_LINE_CHARS) {
        this.push(stream, partial.slice(0, MAX_LINE_CHARS));
        partial = partial.slice(MAX_LINE_CHARS);
      }
    });
    const finish = () => {
      if (done) return;
      done = true;
      const rest = partial + decoder.end();
      if (rest.length > 0) this.push(stream, rest);
      partial = '';
      if (++this.closed === this.teed) for (const fn of [...this.endListeners]) fn();
    };
    from.on('end', finish);
    from.on('close', finish);
  }

  /** Whether every stream copied here has ended (false while none has been copied yet). */
  get ended(): boolean {
    return this.teed > 0 && this.closed === this.teed;
  }

  /** Calls `fn` once the output has ended, until the returned function is called. */
  onEnd(fn: () => void): () => void {
    this.endListeners.add(fn);
    return () => this.endListeners.delete(fn);
  }

  push(stream: OutputLine['stream'], line: string): void {
    const entry: OutputLine = { seq: ++this.seq, time: new Date().toISOString(), stream, line };
    this.ring.push(entry);
    if (this.ring.length > this.capacity) this.ring.shift();
    for (const fn of this.subscribers) fn(entry);
  }

  /** The kept lines after `seq` (0: every kept line). */
  since(seq: number): OutputLine[] {
    return this.ring.filter((l) => l.seq > seq);
  }

  /** Calls `fn` with every new line until the returned function is called. */
  subscribe(fn: (line: OutputLine) => void): () => void {
    this.subscribers.add(fn);
    return () => this.subscribers.delete(fn);
  }

  get lastSeq(): number {
    return this.seq;
  }
}
