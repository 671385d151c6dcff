// The app's stdout and stderr, read from the unit channel
// (GET /v1/app-output?after=<seq>, src/run/plugins/unit-channel.ts). The
// connection is kept: when it breaks it is opened again after the last line
// received, so nothing is read twice or skipped while weft run keeps it.
// The stream ends with {"end":true} once the app's output has closed.
import * as http from 'node:http';
import type { Logger } from '../../observe/log';
import type { OutputLine } from '../../run/plugins/app-output';

const RECONNECT_MIN_MS = 100;
const RECONNECT_MAX_MS = 5000;

export class AppOutputSource {
  private req: http.ClientRequest | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private ended = false;
  private endWaiters: (() => void)[] = [];
  private retryMs = 0;

  constructor(
    private readonly socketPath: string,
    /** The last line already handled (0: none): reading starts after it. */
    private lastSeq: number,
    private readonly onLine: (line: OutputLine) => void,
    /** Lines weft run dropped for this reader because it lagged. */
    private readonly onDropped: (n: number) => void,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.connect();
  }

  /** Resolves true once the app's output has ended and every line of it was read; false after `timeoutMs`. */
  waitEnd(timeoutMs: number): Promise<boolean> {
    if (this.ended) return Promise.resolve(true);
    // Do not sit out a reconnect delay now.
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
      this.connect();
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.endWaiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.req?.destroy();
  }

  private connect(): void {
    if (this.stopped || this.ended) return;
    let partial = '';
    let failed: string | undefined;
    const req = http.get({ socketPath: this.socketPath, path: `/v1/app-output?after=${this.lastSeq}` }, (res) => {
      if (res.statusCode !== 200) {
        failed = `the unit channel answered ${res.statusCode}`;
        res.resume();
        return;
      }
      this.retryMs = 0;
      res.setEncoding('utf8');
      res.on('data', (text: string) => {
        const lines = (partial + text).split('\n');
        partial = lines.pop()!;
        for (const l of lines) if (l) this.handle(l);
      });
    });
    this.req = req;
    req.on('error', (err) => (failed = err.message));
    req.on('close', () => {
      if (this.req === req) this.req = undefined;
      if (this.stopped || this.ended) return;
      this.retryMs = Math.min(RECONNECT_MAX_MS, this.retryMs ? this.retryMs * 2 : RECONNECT_MIN_MS);
      if (failed) this.log('warn', `cannot read the app's output (${failed}); again in ${this.retryMs} ms`);
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.connect();
      }, this.retryMs);
    });
  }

  private handle(text: string): void {
    let msg: Partial<OutputLine> & { dropped?: number; end?: boolean };
    try {
      msg = JSON.parse(text) as typeof msg;
    } catch {
      return;
    }
    if (msg.end) {
      this.ended = true;
      for (const fn of this.endWaiters.splice(0)) fn();
      return;
    }
    if (typeof msg.dropped === 'number') return this.onDropped(msg.dropped);
    if (typeof msg.seq !== 'number' || msg.seq <= this.lastSeq) return;
    this.lastSeq = msg.seq;
    this.onLine(msg as OutputLine);
  }
}
