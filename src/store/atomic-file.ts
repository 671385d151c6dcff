// Crash-safe file replacement: write a temporary file beside the target,
// fsync it, rename it over the target, then fsync the directory. A reader
// sees the old content or the new, never a torn file.
import * as fs from 'node:fs';
import * as path from 'node:path';

export async function writeFileAtomic(file: string, data: string | Buffer, mode = 0o644): Promise<void> {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${Date.now()}.tmp`);
  const handle = await fs.promises.open(tmp, 'w', mode);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await fs.promises.rename(tmp, file);
  } catch (err) {
    await fs.promises.rm(tmp, { force: true });
    throw err;
  }
  const dirHandle = await fs.promises.open(dir, 'r');
  try {
    await dirHandle.sync();
  } finally {
    await dirHandle.close();
  }
}

/** Reads a JSON file written by writeFileAtomic; undefined when it does not exist. */
export function readJsonFile<T>(file: string): T | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new Error(`${file}: not valid JSON (${(err as Error).message})`);
  }
}

/** Serialises writes to one file so the last state always wins. */
export class SerialWriter {
  private chain: Promise<void> = Promise.resolve();
  constructor(
    private readonly file: string,
    private readonly mode?: number,
  ) {}
  write(data: string): Promise<void> {
    const next = this.chain.then(() => writeFileAtomic(this.file, data, this.mode));
    this.chain = next.catch(() => {});
    return next;
  }
}
