import { formatPath } from './field-path';

// Configuration errors. Each one says where (file, document, resource, field)
// and what was expected, so a user can fix a file without reading our code,
// and a client of the API can act on the stable `code`.

export type ConfigErrorCode =
  /** A file or directory could not be read. */
  | 'E_IO'
  /** YAML syntax. */
  | 'E_YAML'
  /** `kind` is not one of the known kinds. */
  | 'E_UNKNOWN_KIND'
  /** `apiVersion` is not the one of the kind. */
  | 'E_API_VERSION'
  /** A field has the wrong type, range or format, is missing, or is unknown. */
  | 'E_SCHEMA'
  /** Fields of one resource are well-formed but contradict each other. */
  | 'E_INVALID'
  /** A reference to a Service (or one of its ports) that does not exist or does not fit. */
  | 'E_REFERENCE'
  /** Two resources, ports or port names with the same identity. */
  | 'E_DUPLICATE'
  /** Two resources that would each decide the same thing. */
  | 'E_CONFLICT'
  /** A deletion would leave another resource with a dangling reference. */
  | 'E_IN_USE';

/** The resource an error is about, as far as it is known. */
export interface ResourceRef {
  kind: string;
  namespace?: string;
  name?: string;
}

export interface ConfigErrorInit {
  file?: string;
  /** 0-based index of the YAML document in the file (empty documents count). */
  document?: number;
  resource?: ResourceRef;
  /** Field path, e.g. `spec.rules[0].backendRefs[1].weight`. */
  path?: string;
  /** What was expected there, e.g. `an integer >= 0`. */
  expected?: string;
  /** 1-based position in the file, when it is known. */
  line?: number;
  column?: number;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly code: ConfigErrorCode;
  /** The problem alone, without the location prefix of `message`. */
  readonly detail: string;
  readonly file?: string;
  readonly document?: number;
  readonly resource?: ResourceRef;
  readonly path?: string;
  readonly expected?: string;
  readonly line?: number;
  readonly column?: number;

  constructor(code: ConfigErrorCode, detail: string, init: ConfigErrorInit = {}) {
    super(formatMessage(detail, init));
    this.code = code;
    this.detail = detail;
    this.file = init.file;
    this.document = init.document;
    this.resource = init.resource;
    this.path = init.path;
    this.expected = init.expected;
    this.line = init.line;
    this.column = init.column;
  }

  /** The same error somewhere else (e.g. once the file of a resource is known). */
  with(init: ConfigErrorInit): ConfigError {
    return new ConfigError(this.code, this.detail, { ...this.init(), ...init });
  }

  toJSON(): Record<string, unknown> {
    const out: Record<string, unknown> = { code: this.code, message: this.message, detail: this.detail };
    for (const [k, v] of Object.entries(this.init())) if (v !== undefined) out[k] = v;
    return out;
  }

  private init(): ConfigErrorInit {
    const { file, document, resource, path, expected, line, column } = this;
    return { file, document, resource, path, expected, line, column };
  }
}

/** "HTTPRoute default/shop" (or less, when the document did not say). */
export function resourceLabel(r: ResourceRef): string {
  if (r.name === undefined) return r.kind;
  return `${r.kind} ${r.namespace ?? 'default'}/${r.name}`;
}

// `file: document 2 (HTTPRoute default/shop): spec.x: detail`; parts that are
// unknown are left out. Only syntax errors carry the line in the message: for
// them the line is all the location there is.
function formatMessage(detail: string, w: ConfigErrorInit): string {
  const where: string[] = [];
  if (w.file !== undefined) where.push(w.file);
  let doc = w.document !== undefined ? `document ${w.document}` : '';
  if (w.resource) doc += doc ? ` (${resourceLabel(w.resource)})` : resourceLabel(w.resource);
  if (doc) where.push(doc);
  if (w.path) where.push(w.path);
  return [...where, detail].join(': ');
}

/**
 * A problem found in one resource, before it is known where the resource came
 * from. `path` stays as segments so a YAML parser can find its line.
 */
export interface Problem {
  code: ConfigErrorCode;
  path?: readonly PropertyKey[];
  detail: string;
  expected?: string;
  /** The path ends at a key that should not be there: point at the key. */
  atKey?: boolean;
}

export function problemToError(p: Problem, where: ConfigErrorInit = {}): ConfigError {
  const path = p.path && p.path.length ? formatPath(p.path) : undefined;
  return new ConfigError(p.code, p.detail, { ...where, path, expected: p.expected });
}

/** Why a file could not be read, in words ("does not exist"), not a raw "ENOENT: …, stat '…'". */
export function ioErrorDetail(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  switch (e?.code) {
    case 'ENOENT':
      return 'does not exist';
    case 'EACCES':
    case 'EPERM':
      return 'cannot be read: permission denied';
    case 'EISDIR':
      return 'is a directory, not a file';
    case 'ENOTDIR':
      return 'does not exist (a part of its path is not a directory)';
    default:
      return `cannot be read: ${e?.message ?? String(err)}`;
  }
}
