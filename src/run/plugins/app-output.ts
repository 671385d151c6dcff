// The app's stdout and stderr as lines for plugins (the log plugin ships
// them). `weft run` pipes the app's output through here when the unit has
// general plugins: the bytes go on to weft run's own stdout/stderr as they
// came, and each line is numbered and kept in a bounded ring, so a plugin
// that connects late or restarts reads on from the last line it saw
// (`since`) instead of losing the app's first lines.
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

  constructor(private readonly capacity = 1000) {}

  /** Copies `from` to `to` unchanged and records its lines. */
  tee(from: NodeJS.ReadableStream, stream: OutputLine['stream'], to: NodeJS.WritableStream): void {
    const decoder = new StringDecoder('utf8');
    let partial = '';
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
    from.on('end', () => {
      const rest = partial + decoder.end();
      if (rest.length > 0) this.push(stream, rest);
      partial = '';
    });
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
