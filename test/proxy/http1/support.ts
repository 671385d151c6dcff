// Shared by the HTTP/1.1 parser tests: run a parse and describe its outcome
// as plain data, so tables and split-feeding compare outcomes with deepEqual.
import { HttpParseError } from '../../../src/proxy/http1/errors';

export type Outcome<T> = { ok: T } | { error: string; status: number } | { incomplete: true };

export function outcome<T>(fn: () => T | null): Outcome<T> {
  try {
    const r = fn();
    return r === null ? { incomplete: true } : { ok: r };
  } catch (err) {
    if (err instanceof HttpParseError) return { error: err.code, status: err.status };
    throw err;
  }
}

/** Bytes from a test string: each char is one byte (latin1), so '\x00' or '\xff' mean those bytes. */
export const bytes = (s: string): Buffer => Buffer.from(s, 'latin1');

/** Picks `keys` of an object, for comparing a parse result with a table row's expectation. */
export function pick<T extends object>(obj: T, keys: string[]): Partial<T> {
  const out: Record<string, unknown> = {};
  for (const k of keys) out[k] = (obj as Record<string, unknown>)[k];
  return out as Partial<T>;
}
