// `weft validate`: a file means little alone, since its routes and policies
// name Services that other files declare. So a file is validated together
// with what it will meet: the other YAML files of its directory (what `weft
// control --config <dir>` or `weft apply -f <dir>` loads with it), or the
// resources of a running mesh (what `weft apply -f <file>` meets). Errors
// are reported for the file's own documents, and for other resources only
// when the file causes them; the result says which context was used.
import { readdir, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { ConfigError, ioErrorDetail } from './errors';
import { resourceKey, type Resource } from './kinds';
import { readConfigFiles, yamlFilesUnder } from './parse';
import { validateSet, type Where } from './validate';

/** What a file is validated with. */
export type ValidationContext =
  /** The other YAML files of its directory (not of subdirectories); a directory: its files as one set. */
  | { kind: 'directory' }
  /** Nothing else: references to other files are errors. */
  | { kind: 'alone' }
  /** A running mesh's resources; the file's replace those of the same kind, namespace and name. */
  | { kind: 'mesh'; resources: Resource[]; label: string };

export interface ContextResult {
  /** The file, or the YAML files of the directory, being validated. */
  files: string[];
  /** Their resources that parsed (valid only when `errors` is empty). */
  resources: Resource[];
  /** Errors of the files' documents, and those they cause in the context. */
  errors: ConfigError[];
  /** Every valid resource of the context with the file's (what warnings are worked out on). */
  set: Resource[];
  /** Where a resource of the set came from (file and document); mesh resources: nowhere. */
  where: Where;
  /** A sentence naming what the files were validated with. */
  context: string;
  /** Files of the directory context that have errors of their own (their documents left out). */
  brokenSiblings: string[];
}

/** The other `*.yaml` / `*.yml` files beside `file` (dotfiles skipped), sorted. */
async function yamlFilesBeside(file: string): Promise<string[]> {
  const dir = dirname(file);
  const self = resolve(file);
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.name.startsWith('.') || !/\.ya?ml$/.test(entry.name)) continue;
    const path = join(dir, entry.name);
    if (resolve(path) === self) continue;
    if (entry.isFile() || (entry.isSymbolicLink() && (await stat(path).then((s) => s.isFile(), () => false)))) out.push(path);
  }
  return out.sort();
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** Errors of `after` not already in `before` (by message, counting repeats). */
function newErrors(before: readonly ConfigError[], after: readonly ConfigError[]): ConfigError[] {
  const seen = new Map<string, number>();
  for (const e of before) seen.set(e.message, (seen.get(e.message) ?? 0) + 1);
  return after.filter((e) => {
    const n = seen.get(e.message) ?? 0;
    if (n > 0) seen.set(e.message, n - 1);
    return n === 0;
  });
}

/** Validates a file (or a directory of them) in a context; see ValidationContext. */
export async function validateInContext(path: string, context: ValidationContext): Promise<ContextResult> {
  let isDir: boolean;
  try {
    isDir = (await stat(path)).isDirectory();
  } catch (e) {
    const error = new ConfigError('E_IO', ioErrorDetail(e), { file: path });
    return { files: [], resources: [], errors: [error], set: [], where: () => ({}), context: `could not read ${path}`, brokenSiblings: [] };
  }
  const files = isDir ? await yamlFilesUnder(path) : [path];
  const own = await readConfigFiles(files);
  const siblings = !isDir && context.kind === 'directory' ? await yamlFilesBeside(path) : [];
  const other = await readConfigFiles(siblings);

  const origin = new Map<Resource, { file: string; document: number }>();
  for (const e of [...own.entries, ...other.entries]) origin.set(e.resource, { file: e.file, document: e.document });
  const where: Where = (r) => origin.get(r) ?? {};
  const mine = own.entries.map((e) => e.resource);
  const ownFiles = new Set(files);
  const isMine = (e: ConfigError) => e.file !== undefined && ownFiles.has(e.file);

  // The file's resources come last: a duplicate or a second policy for one Service is reported on them.
  let base: Resource[];
  let text: string;
  const shown = isDir ? `the ${plural(files.length, 'file')} of ${path}` : path;
  if (context.kind === 'mesh') {
    const replaced = new Set(mine.map(resourceKey));
    base = context.resources.filter((r) => !replaced.has(resourceKey(r)));
    text = `validated ${shown} against the mesh at ${context.label} (${plural(context.resources.length, 'resource')} there)`;
  } else if (context.kind === 'directory' && !isDir) {
    base = other.entries.map((e) => e.resource);
    const dir = dirname(path) === '.' ? './' : `${dirname(path)}/`;
    text = siblings.length
      ? `validated ${path} with the ${plural(siblings.length, 'other file')} of ${dir} (${siblings.map((f) => basename(f)).join(', ')})`
      : `validated ${path}: no other YAML files in ${dir}`;
  } else {
    base = [];
    text = isDir ? `validated ${shown} as one set` : `validated ${path} alone: references to resources of other files are errors`;
  }

  const set = [...base, ...mine];
  const setErrors = validateSet(set, where);
  // Mesh: what the file causes anywhere (a route left without its port), not what the mesh already had.
  const caused = context.kind === 'mesh' ? newErrors(validateSet(context.resources, where), setErrors.filter((e) => !isMine(e))) : [];
  const errors = [...own.errors, ...setErrors.filter(isMine), ...caused];

  const bad = new Set(setErrors.map((e) => `${e.file}\0${e.document}`));
  const brokenSiblings = [...new Set([...other.errors, ...setErrors.filter((e) => !isMine(e))].map((e) => e.file).filter((f): f is string => f !== undefined && !ownFiles.has(f)))];
  const valid = set.filter((r) => {
    const w = origin.get(r);
    return !w || !bad.has(`${w.file}\0${w.document}`);
  });
  return { files, resources: mine, errors, set: valid, where, context: text, brokenSiblings };
}
