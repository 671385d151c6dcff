// Zod issues turned into problems a user can act on: a field path, what was
// expected there in words, and what was found. Zod's own messages ("Too small:
// expected number to be >=0") do not say integer vs number nor which fields
// exist, so we look at the schema at the issue's path for that.
import type { z } from 'zod';
import type { Problem } from './errors';
import { describeValue, valueAt } from './field-path';

type Issue = z.core.$ZodIssue;

// The parts of zod's (internal but stable in v4) schema definitions we read.
interface LooseSchema {
  _zod: { def: LooseDef };
  isInt?: boolean;
  minValue?: number | null;
  maxValue?: number | null;
}
interface LooseDef {
  type: string;
  shape?: Record<string, LooseSchema>;
  element?: LooseSchema;
  valueType?: LooseSchema;
  innerType?: LooseSchema;
  options?: LooseSchema[];
  discriminator?: string;
  values?: unknown[];
}

const WRAPPERS = new Set(['optional', 'default', 'prefault', 'nullable', 'readonly', 'catch', 'nonoptional']);

function unwrap(s: LooseSchema): LooseSchema {
  while (WRAPPERS.has(s._zod.def.type) && s._zod.def.innerType) s = s._zod.def.innerType;
  return s;
}

/** The option of a discriminated union that the input selects. */
function pickOption(def: LooseDef, input: unknown): LooseSchema | undefined {
  if (!def.discriminator || !def.options) return undefined;
  const tag = valueAt(input, [def.discriminator]);
  return def.options.find((o) => unwrap(o)._zod.def.shape?.[def.discriminator!]?._zod.def.values?.includes(tag));
}

/** The schema that applies at `path` of `input`, when it can be told. */
function schemaAt(root: LooseSchema, path: readonly PropertyKey[], input: unknown): LooseSchema | undefined {
  let s: LooseSchema | undefined = unwrap(root);
  let v = input;
  for (const seg of path) {
    const def: LooseDef = s._zod.def;
    if (def.type === 'object') s = def.shape?.[String(seg)];
    else if (def.type === 'array') s = def.element;
    else if (def.type === 'record') s = def.valueType;
    else if (def.type === 'union') s = pickOption(def, v)?._zod.def.shape?.[String(seg)];
    else s = undefined;
    if (!s) return undefined;
    s = unwrap(s);
    v = valueAt(v, [seg]);
  }
  return s;
}

const BOUND = Number.MAX_SAFE_INTEGER;

function numberText(s: LooseSchema | undefined, fallbackInt: boolean): string {
  const noun = s?.isInt || fallbackInt ? 'an integer' : 'a number';
  const min = s?.minValue ?? -Infinity;
  const max = s?.maxValue ?? Infinity;
  const hasMin = Number.isFinite(min) && min > -BOUND;
  const hasMax = Number.isFinite(max) && max < BOUND;
  if (hasMin && hasMax) return `${noun} from ${min} to ${max}`;
  if (hasMin) return `${noun} >= ${min}`;
  if (hasMax) return `${noun} <= ${max}`;
  return noun;
}

function fieldsOf(s: LooseSchema | undefined): string[] {
  const shape = s && unwrap(s)._zod.def.shape;
  return shape ? Object.keys(shape) : [];
}

function literalList(values: readonly unknown[]): string {
  const shown = values.map((v) => JSON.stringify(v));
  return shown.length === 1 ? shown[0] : `one of ${shown.join(', ')}`;
}

function typeText(issue: Issue & { code: 'invalid_type' }, s: LooseSchema | undefined): string {
  switch (issue.expected) {
    case 'int':
      return numberText(s, true);
    case 'number':
      return numberText(s, false);
    case 'string':
      return 'a string';
    case 'boolean':
      return 'true or false';
    case 'array':
      return 'a list';
    case 'object':
    case 'record': {
      const fields = fieldsOf(s);
      return fields.length ? `a mapping with fields ${fields.join(', ')}` : 'a mapping';
    }
    default:
      return `a value of type ${issue.expected}`;
  }
}

function sizeText(origin: string, bound: number | bigint, op: '>=' | '>' | '<=' | '<', s: LooseSchema | undefined): string {
  const atLeast = op === '>=' || op === '>';
  if (origin === 'string') {
    if (op === '>=' && bound === 1) return 'a non-empty string';
    return `a string of ${atLeast ? 'at least' : 'at most'} ${bound} characters`;
  }
  if (origin === 'array') {
    if (op === '>=' && bound === 1) return 'a non-empty list';
    return `a list of ${atLeast ? 'at least' : 'at most'} ${bound} items`;
  }
  const noun = s?.isInt || origin === 'int' ? 'an integer' : 'a number';
  return `${noun} ${op} ${bound}`;
}

function formatText(issue: Issue & { code: 'invalid_format' }): string {
  if (issue.format === 'starts_with' && 'prefix' in issue) return `a string starting with ${JSON.stringify(issue.prefix)}`;
  // kinds.ts names its patterns in words ("a lowercase DNS label ..."); zod's
  // default message starts with "Invalid".
  if (issue.format === 'regex') return issue.message.startsWith('Invalid') ? `a string matching ${issue.pattern}` : issue.message;
  return `a valid ${issue.format}`;
}

/** "expected X, got Y", or a missing-field text when there is nothing. */
function mismatch(path: readonly PropertyKey[], expected: string, got: unknown): Problem {
  const detail = got === undefined ? `expected ${expected}, but the field is missing` : `expected ${expected}, got ${describeValue(got)}`;
  return { code: 'E_SCHEMA', path, detail, expected };
}

/** Unions without a discriminator: report the option the input came closest to. */
function unionProblems(
  issue: Issue & { code: 'invalid_union' },
  path: readonly PropertyKey[],
  s: LooseSchema | undefined,
  got: unknown,
): Problem[] {
  const branches = issue.errors;
  // A union of literals (e.g. statusCode 301 | 302 | ...): one list of values.
  if (branches.length && branches.every((b) => b.length === 1 && b[0].code === 'invalid_value' && b[0].path.length === 0)) {
    return [mismatch(path, literalList(branches.flatMap((b) => (b[0] as Issue & { code: 'invalid_value' }).values)), got)];
  }
  const options = s?._zod.def.options ?? [];
  // An option whose top level matched (no unknown or missing shape at its
  // root) and that has the fewest issues is what the user meant.
  let best = -1;
  branches.forEach((b, i) => {
    if (b.some((x) => x.path.length === 0)) return;
    if (best < 0 || b.length < branches[best].length) best = i;
  });
  if (best >= 0 && options[best]) return problemsFor(branches[best], options[best], got, path);
  const shapes = options.map((o) => {
    const fields = fieldsOf(o);
    return fields.length ? `{${fields.join(', ')}}` : 'a value';
  });
  return [mismatch(path, shapes.length ? `one of ${shapes.join(', ')}` : 'one of the allowed shapes', got)];
}

/**
 * Problems for the issues of `schema.safeParse(input)`. `prefix` is the path
 * of `input` inside the document (e.g. ['spec']).
 */
export function issuesToProblems(
  issues: readonly Issue[],
  schema: z.core.$ZodType,
  input: unknown,
  prefix: readonly PropertyKey[] = [],
): Problem[] {
  return problemsFor(issues, schema as unknown as LooseSchema, input, prefix);
}

function problemsFor(issues: readonly Issue[], root: LooseSchema, input: unknown, prefix: readonly PropertyKey[]): Problem[] {
  const out: Problem[] = [];
  for (const issue of issues) {
    const path = [...prefix, ...issue.path];
    const got = valueAt(input, issue.path);
    const s = schemaAt(root, issue.path, input);
    switch (issue.code) {
      case 'invalid_type':
        out.push(mismatch(path, typeText(issue, s), got));
        break;
      case 'too_small':
        out.push(mismatch(path, sizeText(issue.origin, issue.minimum, issue.inclusive ? '>=' : '>', s), got));
        break;
      case 'too_big':
        out.push(mismatch(path, sizeText(issue.origin, issue.maximum, issue.inclusive ? '<=' : '<', s), got));
        break;
      case 'invalid_format':
        out.push(mismatch(path, formatText(issue), got));
        break;
      case 'not_multiple_of':
        out.push(mismatch(path, `a multiple of ${issue.divisor}`, got));
        break;
      case 'invalid_value':
        out.push(mismatch(path, literalList(issue.values), got));
        break;
      case 'unrecognized_keys': {
        const known = fieldsOf(s);
        const expected = known.length ? `one of the fields ${known.join(', ')}` : undefined;
        for (const key of issue.keys) {
          const detail = `unknown field '${key}'` + (expected ? ` (expected ${expected})` : '');
          out.push({ code: 'E_SCHEMA', path: [...path, key], detail, expected, atKey: true });
        }
        break;
      }
      case 'invalid_union':
        if (issue.discriminator !== undefined) {
          // zod puts the discriminator in the path already.
          const options = 'options' in issue && issue.options ? issue.options : [];
          out.push(mismatch(path, literalList(options), got));
        } else {
          out.push(...unionProblems(issue, path, s, got));
        }
        break;
      default:
        out.push({ code: 'E_SCHEMA', path, detail: issue.message });
    }
  }
  return out;
}
