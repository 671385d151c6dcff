// The one check of a JSON Web Key Set both the config (an inline JWKS) and
// the sidecar (a JWKS from a file or a server) make before using it.

/** Why `text` is not a JSON Web Key Set, or undefined when it is one. */
export function jwksProblem(text: string): string | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    return `invalid JSON (${(e as Error).message})`;
  }
  const keys = (doc as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys)) return 'no "keys" array';
  const bad = keys.findIndex((k) => typeof k !== 'object' || k === null || typeof (k as { kty?: unknown }).kty !== 'string');
  if (bad >= 0) return `keys[${bad}] is not a JSON Web Key (no "kty")`;
  return undefined;
}
