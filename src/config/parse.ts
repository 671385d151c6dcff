// From text (or an already-decoded object) to validated resources. A document
// with any problem yields no resource; every problem becomes one ConfigError
// naming file, document, resource and field.
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseAllDocuments, type Document, type Node } from 'yaml';
import { ConfigError, ioErrorDetail, problemToError, type ConfigErrorInit, type Problem, type ResourceRef } from './errors';
import { describeValue } from './field-path';
import { KIND_NAMES, KINDS, metadataSchema, type Kind, type Resource } from './kinds';
import { resourceRules } from './resource-rules';
import { validateSet, type Where } from './validate';
import { issuesToProblems } from './zod-issues';

const TOP_LEVEL = ['apiVersion', 'kind', 'metadata', 'spec'] as const;

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isKind(k: unknown): k is Kind {
  return typeof k === 'string' && Object.prototype.hasOwnProperty.call(KINDS, k);
}

/** What a document says it is, as far as it says it; for error messages. */
function refOf(obj: unknown): ResourceRef | undefined {
  if (!isPlainObject(obj) || typeof obj.kind !== 'string') return undefined;
  const meta = isPlainObject(obj.metadata) ? obj.metadata : {};
  return {
    kind: obj.kind,
    namespace: typeof meta.namespace === 'string' ? meta.namespace : 'default',
    name: typeof meta.name === 'string' ? meta.name : undefined,
  };
}

/** Every check that needs only the document itself. */
function checkDocument(obj: unknown): { resource?: Resource; problems: Problem[] } {
  if (!isPlainObject(obj)) {
    const detail = `expected a mapping with fields ${TOP_LEVEL.join(', ')}, got ${describeValue(obj)}`;
    return { problems: [{ code: 'E_SCHEMA', detail, expected: 'a mapping' }] };
  }
  const problems: Problem[] = [];
  for (const key of Object.keys(obj)) {
    if (!(TOP_LEVEL as readonly string[]).includes(key)) {
      const expected = `one of the fields ${TOP_LEVEL.join(', ')}`;
      problems.push({ code: 'E_SCHEMA', path: [key], detail: `unknown field '${key}' (expected ${expected})`, expected, atKey: true });
    }
  }
  const { kind, apiVersion } = obj;
  const missing: Record<(typeof TOP_LEVEL)[number], string> = {
    apiVersion: isKind(kind) ? JSON.stringify(KINDS[kind].apiVersion) : 'an apiVersion such as "weft.dev/v1"',
    kind: `one of ${KIND_NAMES.join(', ')}`,
    metadata: 'a mapping with fields name, namespace, labels, annotations',
    spec: 'a mapping',
  };
  for (const key of TOP_LEVEL) {
    if (obj[key] === undefined) {
      problems.push({ code: 'E_SCHEMA', path: [key], detail: `expected ${missing[key]}, but the field is missing`, expected: missing[key] });
    }
  }

  if (kind !== undefined && !isKind(kind)) {
    const expected = `one of ${KIND_NAMES.join(', ')}`;
    problems.push({ code: 'E_UNKNOWN_KIND', path: ['kind'], detail: `unknown kind ${describeValue(kind)} (expected ${expected})`, expected });
  }
  if (isKind(kind) && apiVersion !== undefined && apiVersion !== KINDS[kind].apiVersion) {
    const expected = KINDS[kind].apiVersion;
    const detail = `expected apiVersion ${JSON.stringify(expected)} for kind ${kind}, got ${describeValue(apiVersion)}`;
    problems.push({ code: 'E_API_VERSION', path: ['apiVersion'], detail, expected });
  }

  const meta = obj.metadata === undefined ? undefined : metadataSchema.safeParse(obj.metadata);
  if (meta && !meta.success) problems.push(...issuesToProblems(meta.error.issues, metadataSchema, obj.metadata, ['metadata']));
  const specSchema = isKind(kind) ? KINDS[kind].spec : undefined;
  const spec = specSchema && obj.spec !== undefined ? specSchema.safeParse(obj.spec) : undefined;
  if (specSchema && spec && !spec.success) problems.push(...issuesToProblems(spec.error.issues, specSchema, obj.spec, ['spec']));

  if (problems.length || !meta?.success || !spec?.success || !isKind(kind)) return { problems };
  const resource = { apiVersion: KINDS[kind].apiVersion, kind, metadata: meta.data, spec: spec.data } as Resource;
  const rules = resourceRules(resource);
  return rules.length ? { problems: rules } : { resource, problems: [] };
}

/** Checks an already-decoded document (e.g. JSON received by the API). */
export function parseResource(
  obj: unknown,
  where: { file?: string; document?: number } = {},
): { resource?: Resource; errors: ConfigError[] } {
  const { resource, problems } = checkDocument(obj);
  const at: ConfigErrorInit = { ...where, resource: refOf(obj) };
  return { resource, errors: problems.map((p) => problemToError(p, at)) };
}

/** Line and column (1-based) of the node a problem's path points at, or of its nearest present parent. */
function positionOf(doc: Document, lines: LineCounter, p: Problem): { line?: number; column?: number } {
  let node: unknown = doc.contents;
  let offset = (node as Node | null)?.range?.[0];
  const path = p.path ?? [];
  for (const [i, seg] of path.entries()) {
    if (isAlias(node)) node = node.resolve(doc);
    let next: unknown;
    if (isMap(node)) {
      const pair = node.items.find((it) => isScalar(it.key) && String(it.key.value) === String(seg));
      if (pair && p.atKey && i === path.length - 1 && isScalar(pair.key)) {
        offset = pair.key.range?.[0] ?? offset;
        break;
      }
      next = pair?.value;
    } else if (isSeq(node) && typeof seg === 'number') {
      next = node.items[seg];
    }
    const range = (next as Node | null | undefined)?.range;
    if (!range) break;
    node = next;
    offset = range[0];
  }
  if (offset === undefined) return {};
  const { line, col } = lines.linePos(offset);
  return { line, column: col };
}

/** First line of a yaml error message, without its own " at line L, column C:". */
function yamlReason(message: string): string {
  return message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '');
}

/** A resource with the 0-based index of the document it came from. */
export interface ParsedEntry {
  resource: Resource;
  document: number;
}

interface Parsed {
  entries: ParsedEntry[];
  errors: ConfigError[];
}

/**
 * Every document of a multi-document YAML text. Documents are numbered from 0
 * in file order; empty ones are skipped but keep their number.
 */
export function parseDocuments(text: string, file: string): { resources: Resource[]; errors: ConfigError[] } {
  const { entries, errors } = parseConfigFile(text, file);
  return { resources: entries.map((e) => e.resource), errors };
}

/** Like parseDocuments, keeping each resource's document index (the store and CLI name it). */
export function parseConfigFile(text: string, file: string): Parsed {
  const lines = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lines, prettyErrors: true });
  const entries: ParsedEntry[] = [];
  const errors: ConfigError[] = [];
  const yamlError = (document: number, message: string, pos?: number): ConfigError => {
    const at = pos === undefined ? undefined : lines.linePos(pos);
    const detail = at ? `line ${at.line}, column ${at.col}: ${yamlReason(message)}` : yamlReason(message);
    return new ConfigError('E_YAML', detail, { file, document, line: at?.line, column: at?.col });
  };
  // A stream with no documents can still carry errors (a bad directive).
  if ('empty' in docs) {
    for (const e of docs.errors) errors.push(yamlError(0, e.message, e.pos[0]));
    return { entries, errors };
  }
  docs.forEach((doc, document) => {
    if (doc.errors.length) {
      for (const e of doc.errors) errors.push(yamlError(document, e.message, e.pos[0]));
      return;
    }
    let obj: unknown;
    try {
      // The alias limit stops "billion laughs" documents.
      obj = doc.toJS({ maxAliasCount: 100 });
    } catch (e) {
      errors.push(yamlError(document, (e as Error).message));
      return;
    }
    if (obj === null || obj === undefined) return;
    const { resource, problems } = checkDocument(obj);
    const located = problems.map((p) => problemToError(p, { file, document, resource: refOf(obj), ...positionOf(doc, lines, p) }));
    // In file order, as a reader goes through the document (the sort is stable).
    errors.push(...located.sort((a, b) => (a.line ?? 0) - (b.line ?? 0)));
    if (resource) entries.push({ resource, document });
  });
  return { entries, errors };
}

/** `*.yaml` and `*.yml` files under `dir`, recursively, sorted; dotfiles and dot-directories skipped. */
export async function yamlFilesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.name.startsWith('.')) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await yamlFilesUnder(path)));
    // Symlinked files count; symlinked directories are not followed (no cycles).
    else if (/\.ya?ml$/.test(entry.name) && (entry.isFile() || (entry.isSymbolicLink() && (await stat(path)).isFile()))) {
      out.push(path);
    }
  }
  return out.sort();
}

/** Each file read and parsed (not validated as a set): its documents, with the file they came from, and the errors. */
export async function readConfigFiles(files: string[]): Promise<{ entries: { resource: Resource; file: string; document: number }[]; errors: ConfigError[] }> {
  const entries: { resource: Resource; file: string; document: number }[] = [];
  const errors: ConfigError[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      errors.push(new ConfigError('E_IO', ioErrorDetail(e), { file }));
      continue;
    }
    const parsed = parseConfigFile(text, file);
    errors.push(...parsed.errors);
    entries.push(...parsed.entries.map((e) => ({ ...e, file })));
  }
  return { entries, errors };
}

/**
 * A YAML file, or every YAML file under a directory, parsed and validated as
 * one set. `resources` holds the documents without errors; the set is
 * consistent only when `errors` is empty.
 */
export async function loadConfigPath(
  fileOrDir: string,
): Promise<{ resources: Resource[]; errors: ConfigError[]; files: string[] }> {
  const errors: ConfigError[] = [];
  let files: string[];
  try {
    files = (await stat(fileOrDir)).isDirectory() ? await yamlFilesUnder(fileOrDir) : [fileOrDir];
  } catch (e) {
    return { resources: [], errors: [new ConfigError('E_IO', ioErrorDetail(e), { file: fileOrDir })], files: [] };
  }

  const read = await readConfigFiles(files);
  errors.push(...read.errors);
  const parsed = read.entries.map((e) => e.resource);
  const origin = new Map<Resource, { file: string; document: number }>(read.entries.map((e) => [e.resource, { file: e.file, document: e.document }]));

  const where: Where = (r) => origin.get(r) ?? {};
  const setErrors = validateSet(parsed, where);
  // Like a parse error, a set error takes its document out.
  const bad = new Set(setErrors.map((e) => `${e.file}\0${e.document}`));
  const resources = parsed.filter((r) => {
    const w = origin.get(r);
    return !w || !bad.has(`${w.file}\0${w.document}`);
  });
  return { resources, errors: [...errors, ...setErrors], files };
}
