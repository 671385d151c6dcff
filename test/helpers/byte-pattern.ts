// Bodies whose every byte is a function of its offset, for tests that must
// notice a byte out of place (a read buffer reused too early, a chunk written
// twice or lost), and a writer that fills its peer until it pushes back.

/** The byte at `offset` of a pattern body. */
export const patternAt = (offset: number): number => (offset * 131 + (offset >> 11)) & 0xff;

/** `n` bytes of the pattern from `from` on. */
export function pattern(from: number, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = patternAt(from + i);
  return b;
}

/** The offset of the first byte of `body` that is not the pattern's, or -1. */
export function firstMismatch(body: Buffer): number {
  for (let i = 0; i < body.length; i++) if (body[i] !== patternAt(i)) return i;
  return -1;
}

export interface DrainingWriter {
  write(chunk: Buffer): boolean;
  once(event: 'drain', listener: () => void): unknown;
}

/**
 * Writes `frame(piece)` for 4 KiB pieces of the pattern, each in a turn of
 * its own so a proxy reads them one by one, until the writer pushes back
 * (whoever reads it stopped reading), calls `pushedBack`, writes 64 pieces
 * more and calls `done` with the pattern bytes sent. Small pieces matter: a
 * proxy's write of a read below its socket's high-water mark can be pending
 * while it goes on reading.
 */
export function writeUntilPushedBack(writer: DrainingWriter, frame: (piece: Buffer) => Buffer, pushedBack: () => void, done: (sent: number) => void): void {
  const PIECE = 4096;
  let sent = 0;
  let more = -1;
  const step = (): void => {
    if (more === 0) return done(sent);
    const ok = writer.write(frame(pattern(sent, PIECE)));
    sent += PIECE;
    if (more > 0) more--;
    if (ok) {
      setImmediate(step);
      return;
    }
    if (more < 0) {
      more = 64;
      pushedBack();
    }
    writer.once('drain', step);
  };
  step();
}
