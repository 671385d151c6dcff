// Checks configuration the way Envoy does before it uses it, with Envoy's own
// protos (shipped in @grpc/grpc-js-xds, never copied here):
//   1. a bootstrap in Envoy's JSON mapping (proto3 JSON: snake_case or
//      lowerCamel names, Any as {"@type", …}, Duration "5s", Struct as JSON)
//      converted field by field: a key the type lacks is an error, as Envoy
//      rejects it (protobufjs's fromObject would drop it silently);
//   2. protoc-gen-validate: the `(validate.rules)` and `(validate.required)`
//      options of the loaded descriptors, checked on a decoded message tree,
//      Anys decoded by type URL and checked too (Envoy validates a typed
//      config when it unpacks it).
// A problem names the field path ("static_resources.clusters[0].name").
import * as protobuf from 'protobufjs';
import { includeDirResolver, protoIncludeDirs } from './protos';

export interface ValidationProblem {
  path: string;
  message: string;
}

export class EnvoyValidationError extends Error {
  readonly code = 'E_ENVOY_VALIDATION';
  constructor(readonly problems: ValidationProblem[]) {
    super(problems.map((p) => `${p.path || '(root)'}: ${p.message}`).join('; '));
  }
}

const BOOTSTRAP_TYPE = 'envoy.config.bootstrap.v3.Bootstrap';
/** The bootstrap and the extensions a weft bootstrap puts in Anys. */
const BOOTSTRAP_PROTOS = [
  'envoy/config/bootstrap/v3/bootstrap.proto',
  'envoy/extensions/upstreams/http/v3/http_protocol_options.proto',
  'envoy/extensions/transport_sockets/tls/v3/tls.proto',
];

let bootstrapRoot: protobuf.Root | undefined;

/** A Root of Envoy's bootstrap proto (its own: weft's shared Root does not need it), loaded once. */
export function envoyBootstrapRoot(): protobuf.Root {
  if (bootstrapRoot) return bootstrapRoot;
  const r = new protobuf.Root();
  r.resolvePath = includeDirResolver(protoIncludeDirs());
  r.loadSync(BOOTSTRAP_PROTOS, { keepCase: true });
  r.resolveAll();
  bootstrapRoot = r;
  return r;
}

// ---------------------------------------------------------------------------
// 1. Envoy's JSON mapping → protobufjs plain object (snake_case, Any as bytes)

type Obj = Record<string, any>;

const WRAPPERS = new Set(
  ['Double', 'Float', 'Int64', 'UInt64', 'Int32', 'UInt32', 'Bool', 'String', 'Bytes'].map((t) => `google.protobuf.${t}Value`),
);
const INTEGER = new Set(['int32', 'uint32', 'sint32', 'fixed32', 'sfixed32', 'int64', 'uint64', 'sint64', 'fixed64', 'sfixed64']);

function typeName(type: protobuf.Type): string {
  return type.fullName.replace(/^\./, '');
}

/** A field by its proto name or its JSON (lowerCamel) name. */
function fieldByJsonKey(type: protobuf.Type, key: string): protobuf.Field | undefined {
  return type.fields[key] ?? type.fieldsArray.find((f) => (f.options?.json_name ?? protobuf.util.camelCase(f.name)) === key);
}

/** The protobufjs field of a well-known type, whichever case protobufjs gave it. */
function wktField(type: protobuf.Type, snake: string): string {
  return type.fields[snake] ? snake : protobuf.util.camelCase(snake);
}

class JsonProblem extends Error {
  constructor(
    readonly where: string,
    message: string,
  ) {
    super(message);
  }
}

function join(where: string, key: string | number): string {
  return typeof key === 'number' ? `${where}[${key}]` : where ? `${where}.${key}` : key;
}

function convertMessage(type: protobuf.Type, json: unknown, where: string): Obj {
  const name = typeName(type);
  if (name === 'google.protobuf.Any') return convertAny(type, json, where);
  if (name === 'google.protobuf.Duration') return convertDuration(json, where);
  if (name === 'google.protobuf.Struct') return convertStruct(type, json, where);
  if (name === 'google.protobuf.Value') return convertValue(type, json, where);
  if (name === 'google.protobuf.ListValue') return convertList(type, json, where);
  if (WRAPPERS.has(name)) return { value: convertScalar(type.fields.value, json, join(where, 'value')) };
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new JsonProblem(where, `must be an object (${name})`);
  const out: Obj = {};
  const oneofSet = new Map<string, string>();
  for (const [key, value] of Object.entries(json)) {
    const field = fieldByJsonKey(type, key);
    const at = join(where, key);
    if (!field) throw new JsonProblem(at, `unknown field: ${name} has no field "${key}"`);
    if (value === null) continue;
    if (field.partOf) {
      const other = oneofSet.get(field.partOf.name);
      if (other) throw new JsonProblem(at, `oneof ${field.partOf.name}: "${other}" is set already`);
      oneofSet.set(field.partOf.name, field.name);
    }
    out[field.name] = convertField(field, value, at);
  }
  return out;
}

function convertField(field: protobuf.Field, value: unknown, where: string): unknown {
  if (field.map) {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new JsonProblem(where, 'must be an object (a map)');
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, convertOne(field, v, join(where, k))]));
  }
  if (field.repeated) {
    if (!Array.isArray(value)) throw new JsonProblem(where, 'must be an array');
    return value.map((v, i) => convertOne(field, v, join(where, i)));
  }
  return convertOne(field, value, where);
}

function convertOne(field: protobuf.Field, value: unknown, where: string): unknown {
  const resolved = field.resolve().resolvedType;
  if (resolved instanceof protobuf.Type) return convertMessage(resolved, value, where);
  if (resolved instanceof protobuf.Enum) {
    if (typeof value === 'string' && value in resolved.values) return resolved.values[value];
    if (typeof value === 'number' && Number.isInteger(value)) return value;
    throw new JsonProblem(where, `must be one of ${Object.keys(resolved.values).join(', ')}`);
  }
  return convertScalar(field, value, where);
}

function convertScalar(field: protobuf.Field, value: unknown, where: string): unknown {
  const t = field.type;
  if (t === 'string') {
    if (typeof value !== 'string') throw new JsonProblem(where, 'must be a string');
    return value;
  }
  if (t === 'bool') {
    if (typeof value !== 'boolean') throw new JsonProblem(where, 'must be a boolean');
    return value;
  }
  if (t === 'bytes') {
    if (typeof value !== 'string' || !/^[A-Za-z0-9+/_-]*={0,2}$/.test(value)) throw new JsonProblem(where, 'must be base64');
    return Buffer.from(value, 'base64');
  }
  // Numbers: JSON numbers or numeric strings (64-bit integers are usually strings).
  const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  if (typeof n !== 'number' || Number.isNaN(n)) throw new JsonProblem(where, `must be a number (${t})`);
  if (INTEGER.has(t) && !Number.isInteger(n)) throw new JsonProblem(where, `must be an integer (${t})`);
  if (t.startsWith('u') && n < 0) throw new JsonProblem(where, `must not be negative (${t})`);
  return n;
}

function convertAny(type: protobuf.Type, json: unknown, where: string): Obj {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new JsonProblem(where, 'must be an object with "@type"');
  const { '@type': url, ...rest } = json as Obj;
  if (typeof url !== 'string' || !url.includes('/')) throw new JsonProblem(where, 'an Any needs "@type": "type.googleapis.com/<message>"');
  const inner = lookupType(type.root, url);
  if (!inner) throw new JsonProblem(join(where, '@type'), `unknown type ${url}`);
  const innerName = typeName(inner);
  // Well-known types with a JSON form of their own sit in "value".
  const special = innerName.startsWith('google.protobuf.') && innerName !== 'google.protobuf.Empty';
  const converted = convertMessage(inner, special ? rest.value : rest, where);
  return { type_url: url, value: Buffer.from(inner.encode(inner.fromObject(converted)).finish()) };
}

function convertDuration(json: unknown, where: string): Obj {
  const m = typeof json === 'string' ? /^(-)?(\d+)(?:\.(\d{1,9}))?s$/.exec(json) : null;
  if (!m) throw new JsonProblem(where, `must be a duration like "5s" or "0.250s", got ${JSON.stringify(json)}`);
  const sign = m[1] ? -1 : 1;
  return { seconds: sign * Number(m[2]), nanos: sign * Number((m[3] ?? '').padEnd(9, '0')) };
}

function convertStruct(type: protobuf.Type, json: unknown, where: string): Obj {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new JsonProblem(where, 'must be an object (Struct)');
  const valueType = type.fields.fields.resolve().resolvedType as protobuf.Type;
  return { fields: Object.fromEntries(Object.entries(json).map(([k, v]) => [k, convertValue(valueType, v, join(where, k))])) };
}

function convertList(type: protobuf.Type, json: unknown, where: string): Obj {
  if (!Array.isArray(json)) throw new JsonProblem(where, 'must be an array (ListValue)');
  const valueType = type.fields.values.resolve().resolvedType as protobuf.Type;
  return { values: json.map((v, i) => convertValue(valueType, v, join(where, i))) };
}

function convertValue(type: protobuf.Type, json: unknown, where: string): Obj {
  const f = (snake: string) => wktField(type, snake);
  if (json === null) return { [f('null_value')]: 0 };
  if (typeof json === 'number') return { [f('number_value')]: json };
  if (typeof json === 'string') return { [f('string_value')]: json };
  if (typeof json === 'boolean') return { [f('bool_value')]: json };
  const struct = type.root.lookupType('google.protobuf.Struct');
  const list = type.root.lookupType('google.protobuf.ListValue');
  if (Array.isArray(json)) return { [f('list_value')]: convertList(list, json, where) };
  return { [f('struct_value')]: convertStruct(struct, json, where) };
}

function lookupType(root: protobuf.Root, url: string): protobuf.Type | undefined {
  try {
    return root.lookupType(url.slice(url.lastIndexOf('/') + 1));
  } catch {
    return undefined;
  }
}

/**
 * Converts `json` (Envoy's JSON mapping) into a message of `typeName`:
 * throws an EnvoyValidationError naming the first field that does not fit.
 */
export function messageFromEnvoyJson(root: protobuf.Root, name: string, json: unknown): protobuf.Message {
  const type = root.lookupType(name);
  try {
    return type.fromObject(convertMessage(type, json, ''));
  } catch (err) {
    if (err instanceof JsonProblem) throw new EnvoyValidationError([{ path: err.where, message: err.message }]);
    throw err;
  }
}

// ---------------------------------------------------------------------------
// 2. protoc-gen-validate

const TO_OBJECT: protobuf.IConversionOptions = { enums: String, longs: Number, defaults: false, oneofs: false };

/** A decoded message as a plain tree (enums as names, longs as numbers, absent fields absent). */
export function decodedTree(type: protobuf.Type, message: protobuf.Message | Uint8Array): Obj {
  const m = message instanceof Uint8Array ? type.decode(message) : message;
  return type.toObject(m, TO_OBJECT);
}

/** Every protoc-gen-validate violation in a decoded tree of `type`, Anys included. */
export function pgvProblems(type: protobuf.Type, tree: Obj, where = ''): ValidationProblem[] {
  const problems: ValidationProblem[] = [];
  checkMessage(type, tree, where, problems);
  return problems;
}

/** An option of a descriptor's parsedOptions (protobufjs types them loosely). */
function option(parsed: unknown, key: string): any {
  return (parsed as Obj[] | undefined)?.find((o) => key in o)?.[key];
}

function checkMessage(type: protobuf.Type, tree: Obj, where: string, out: ValidationProblem[]): void {
  const name = typeName(type);
  if (name === 'google.protobuf.Any') return checkAnyContent(type, tree, where, out);
  if (name.startsWith('google.protobuf.')) return;
  for (const oneof of type.oneofsArray) {
    if (option(oneof.parsedOptions, '(validate.required)') !== true) continue;
    if (!oneof.oneof.some((f) => tree[f] !== undefined && tree[f] !== null)) {
      out.push({ path: join(where, oneof.name), message: `one of ${oneof.oneof.join(', ')} is required` });
    }
  }
  for (const field of type.fieldsArray) checkField(field, tree[field.name], join(where, field.name), out);
}

function checkField(field: protobuf.Field, value: unknown, where: string, out: ValidationProblem[]): void {
  const rules = option(field.parsedOptions, '(validate.rules)') as Obj | undefined;
  const present = value !== undefined && value !== null;
  // A oneof member's rules apply only when it is the one set.
  if (field.partOf && !present) return;
  const resolved = field.resolve().resolvedType;
  if (field.map) {
    const entries = present ? Object.entries(value as Obj) : [];
    if (rules?.map) checkMapRules(rules.map, entries, field, where, out);
    for (const [k, v] of entries) checkItem(field, resolved, undefined, v, join(where, k), out);
    return;
  }
  if (field.repeated) {
    const items = present ? (value as unknown[]) : [];
    const r = rules?.repeated as Obj | undefined;
    if (r) {
      if (r.min_items !== undefined && items.length < Number(r.min_items)) out.push({ path: where, message: `needs at least ${r.min_items} item(s), has ${items.length}` });
      if (r.max_items !== undefined && items.length > Number(r.max_items)) out.push({ path: where, message: `allows at most ${r.max_items} item(s), has ${items.length}` });
      if (r.unique && new Set(items.map((i) => JSON.stringify(i))).size !== items.length) out.push({ path: where, message: 'items must be unique' });
    }
    items.forEach((v, i) => checkItem(field, resolved, r?.items, v, join(where, i), out));
    return;
  }
  checkItem(field, resolved, rules, value, where, out);
}

/** One value (a singular field, a repeated item, a map value) against its rules. */
function checkItem(field: protobuf.Field, resolved: protobuf.Type | protobuf.Enum | null, rules: Obj | undefined, value: unknown, where: string, out: ValidationProblem[]): void {
  const present = value !== undefined && value !== null;
  if (resolved instanceof protobuf.Type) {
    const name = typeName(resolved);
    if (rules?.message?.required && !present) out.push({ path: where, message: 'is required' });
    if (name === 'google.protobuf.Duration') {
      if (rules?.duration) checkDuration(rules.duration, present ? (value as Obj) : undefined, where, out);
      return;
    }
    if (name === 'google.protobuf.Any') {
      if (rules?.any?.required && !present) out.push({ path: where, message: 'is required' });
      if (present && rules?.any?.in?.length && !rules.any.in.includes((value as Obj).type_url)) out.push({ path: where, message: `type must be one of ${rules.any.in.join(', ')}` });
      if (present) checkAnyContent(resolved, value as Obj, where, out);
      return;
    }
    if (WRAPPERS.has(name)) {
      // Rules on a wrapper are the inner scalar's, applied when it is set.
      if (present && rules) checkScalar(resolved.fields.value.type, rules, (value as Obj).value ?? defaultOf(resolved.fields.value.type), join(where, 'value'), out);
      return;
    }
    if (present && !rules?.message?.skip) checkMessage(resolved, value as Obj, where, out);
    return;
  }
  if (resolved instanceof protobuf.Enum) {
    const r = rules?.enum as Obj | undefined;
    if (!r) return;
    const v = present ? value : Object.keys(resolved.values).find((k) => resolved.values[k] === 0);
    const num = typeof v === 'string' ? resolved.values[v] : (v as number);
    if (r.defined_only && (typeof v !== 'string' || !(v in resolved.values))) out.push({ path: where, message: `${JSON.stringify(v)} is not a value of ${typeName(resolved as unknown as protobuf.Type)}` });
    checkNumberRules(r, num, where, out);
    return;
  }
  if (rules) checkScalar(field.type, rules, present ? value : defaultOf(field.type), where, out);
}

function defaultOf(type: string): unknown {
  if (type === 'string') return '';
  if (type === 'bytes') return new Uint8Array();
  if (type === 'bool') return false;
  return 0;
}

function checkAnyContent(anyType: protobuf.Type, any: Obj, where: string, out: ValidationProblem[]): void {
  const url = any.type_url as string | undefined;
  if (!url) return;
  const inner = lookupType(anyType.root, url);
  if (!inner) {
    out.push({ path: where, message: `Any of a type the loaded protos do not have: ${url}` });
    return;
  }
  checkMessage(inner, decodedTree(inner, any.value as Uint8Array), `${where}(${typeName(inner)})`, out);
}

const RULE_TYPE: Record<string, string> = {
  string: 'string', bytes: 'bytes', bool: 'bool', double: 'double', float: 'float',
  int32: 'int32', int64: 'int64', uint32: 'uint32', uint64: 'uint64', sint32: 'sint32', sint64: 'sint64',
  fixed32: 'fixed32', fixed64: 'fixed64', sfixed32: 'sfixed32', sfixed64: 'sfixed64',
};

function checkScalar(type: string, rules: Obj, value: unknown, where: string, out: ValidationProblem[]): void {
  const kind = RULE_TYPE[type];
  const r = kind ? (rules[kind] as Obj | undefined) : undefined;
  if (!r) return;
  if (type === 'string') return checkString(r, value as string, where, out);
  if (type === 'bytes') {
    const len = (value as Uint8Array).length;
    if (r.min_len !== undefined && len < Number(r.min_len)) out.push({ path: where, message: `needs at least ${r.min_len} byte(s), has ${len}` });
    if (r.max_len !== undefined && len > Number(r.max_len)) out.push({ path: where, message: `allows at most ${r.max_len} byte(s), has ${len}` });
    return;
  }
  if (type === 'bool') {
    if (r.const !== undefined && value !== r.const) out.push({ path: where, message: `must be ${r.const}` });
    return;
  }
  checkNumberRules(r, Number(value), where, out);
}

/** const, in, not_in, and the range of gt/gte/lt/lte (an lt below gt means outside the range, as PGV reads it). */
function checkNumberRules(r: Obj, v: number, where: string, out: ValidationProblem[]): void {
  if (r.const !== undefined && v !== Number(r.const)) out.push({ path: where, message: `must be ${r.const}, is ${v}` });
  if (Array.isArray(r.in) && r.in.length && !r.in.map(Number).includes(v)) out.push({ path: where, message: `must be one of ${r.in.join(', ')}, is ${v}` });
  if (Array.isArray(r.not_in) && r.not_in.map(Number).includes(v)) out.push({ path: where, message: `must not be ${v}` });
  checkRange(r, v, (x) => Number(x), String(v), where, out);
}

function checkRange(r: Obj, v: number, num: (bound: unknown) => number, shown: string, where: string, out: ValidationProblem[]): void {
  const lower = r.gt !== undefined ? { bound: num(r.gt), strict: true, text: `> ${fmt(r.gt)}` } : r.gte !== undefined ? { bound: num(r.gte), strict: false, text: `>= ${fmt(r.gte)}` } : undefined;
  const upper = r.lt !== undefined ? { bound: num(r.lt), strict: true, text: `< ${fmt(r.lt)}` } : r.lte !== undefined ? { bound: num(r.lte), strict: false, text: `<= ${fmt(r.lte)}` } : undefined;
  const above = (b: NonNullable<typeof lower>) => (b.strict ? v > b.bound : v >= b.bound);
  const below = (b: NonNullable<typeof upper>) => (b.strict ? v < b.bound : v <= b.bound);
  let ok: boolean;
  let text: string;
  if (lower && upper && upper.bound < lower.bound) {
    ok = above(lower) || below(upper);
    text = `${lower.text} or ${upper.text}`;
  } else {
    ok = (!lower || above(lower)) && (!upper || below(upper));
    text = [lower?.text, upper?.text].filter(Boolean).join(' and ');
  }
  if (!ok) out.push({ path: where, message: `must be ${text}, is ${shown}` });
}

function fmt(bound: unknown): string {
  if (bound && typeof bound === 'object') {
    const d = bound as Obj;
    return `${Number(d.seconds ?? 0) + Number(d.nanos ?? 0) / 1e9}s`;
  }
  return String(bound);
}

function seconds(d: unknown): number {
  const o = (d ?? {}) as Obj;
  return Number(o.seconds ?? 0) + Number(o.nanos ?? 0) / 1e9;
}

function checkDuration(r: Obj, value: Obj | undefined, where: string, out: ValidationProblem[]): void {
  if (r.required && !value) out.push({ path: where, message: 'is required' });
  if (!value) return;
  const v = seconds(value);
  if (r.const !== undefined && v !== seconds(r.const)) out.push({ path: where, message: `must be ${fmt(r.const)}` });
  checkRange(r, v, seconds, `${v}s`, where, out);
}

function checkMapRules(r: Obj, entries: [string, unknown][], field: protobuf.Field, where: string, out: ValidationProblem[]): void {
  if (r.min_pairs !== undefined && entries.length < Number(r.min_pairs)) out.push({ path: where, message: `needs at least ${r.min_pairs} entries, has ${entries.length}` });
  if (r.max_pairs !== undefined && entries.length > Number(r.max_pairs)) out.push({ path: where, message: `allows at most ${r.max_pairs} entries, has ${entries.length}` });
  if (r.keys) for (const [k] of entries) checkScalar((field as unknown as protobuf.MapField).keyType, r.keys, k, `${where}[${JSON.stringify(k)}]`, out);
}

// HTTP header names and values as PGV's well_known_regex checks them (strict: RFC 7230 tokens; not strict: no NUL, CR, LF).
const HEADER_NAME_STRICT = /^:?[0-9a-zA-Z!#$%&'*+\-.^_|~`]+$/;
const HEADER_VALUE_STRICT = /^[^\u0000-\u0008\u000A-\u001F\u007F]*$/;
const HEADER_LOOSE = /^[^\u0000\u000A\u000D]*$/;

function checkString(r: Obj, v: string, where: string, out: ValidationProblem[]): void {
  if (r.ignore_empty && v === '') return;
  const chars = [...v].length;
  const bytes = Buffer.byteLength(v);
  const need = (ok: boolean, message: string) => ok || out.push({ path: where, message: `${message}, got ${JSON.stringify(v.length > 60 ? v.slice(0, 60) + '…' : v)}` });
  if (r.const !== undefined) need(v === r.const, `must be ${JSON.stringify(r.const)}`);
  if (r.len !== undefined) need(chars === Number(r.len), `must be ${r.len} characters`);
  if (r.min_len !== undefined) need(chars >= Number(r.min_len), `needs at least ${r.min_len} character(s)`);
  if (r.max_len !== undefined) need(chars <= Number(r.max_len), `allows at most ${r.max_len} characters`);
  if (r.min_bytes !== undefined) need(bytes >= Number(r.min_bytes), `needs at least ${r.min_bytes} byte(s)`);
  if (r.max_bytes !== undefined) need(bytes <= Number(r.max_bytes), `allows at most ${r.max_bytes} bytes`);
  if (r.prefix !== undefined) need(v.startsWith(r.prefix), `must start with ${JSON.stringify(r.prefix)}`);
  if (r.suffix !== undefined) need(v.endsWith(r.suffix), `must end with ${JSON.stringify(r.suffix)}`);
  if (r.contains !== undefined) need(v.includes(r.contains), `must contain ${JSON.stringify(r.contains)}`);
  if (Array.isArray(r.in) && r.in.length) need(r.in.includes(v), `must be one of ${r.in.join(', ')}`);
  if (Array.isArray(r.not_in)) need(!r.not_in.includes(v), 'is a value not allowed here');
  if (r.pattern !== undefined) {
    // Envoy's patterns are RE2; the few in the v3 API are also valid JavaScript.
    let re: RegExp | undefined;
    try {
      re = new RegExp(r.pattern, 'u');
    } catch {
      re = undefined;
    }
    if (re) need(re.test(v), `must match ${r.pattern}`);
  }
  if (r.well_known_regex === 'HTTP_HEADER_NAME' && v !== '') {
    need((r.strict === false ? HEADER_LOOSE : HEADER_NAME_STRICT).test(v), 'is not a valid HTTP header name');
  } else if (r.well_known_regex === 'HTTP_HEADER_VALUE') {
    need((r.strict === false ? HEADER_LOOSE : HEADER_VALUE_STRICT).test(v), 'is not a valid HTTP header value');
  }
}

// ---------------------------------------------------------------------------
// The bootstrap as Envoy reads it

/**
 * Problems Envoy would refuse a bootstrap for: its JSON mapping (unknown
 * fields, wrong types), PGV rules, and what Envoy checks in code for ADS
 * (a node id and cluster: "ads: node 'id' and 'cluster' are required").
 */
export function envoyBootstrapProblems(json: unknown): ValidationProblem[] {
  const root = envoyBootstrapRoot();
  const type = root.lookupType(BOOTSTRAP_TYPE);
  let message: protobuf.Message;
  try {
    message = messageFromEnvoyJson(root, BOOTSTRAP_TYPE, json);
  } catch (err) {
    if (err instanceof EnvoyValidationError) return err.problems;
    throw err;
  }
  const tree = decodedTree(type, type.encode(message).finish());
  const problems = pgvProblems(type, tree);
  if (tree.dynamic_resources?.ads_config) {
    if (!tree.node?.id) problems.push({ path: 'node.id', message: 'is required when ADS is used (Envoy: node id and cluster are required)' });
    if (!tree.node?.cluster) problems.push({ path: 'node.cluster', message: 'is required when ADS is used (Envoy: node id and cluster are required)' });
  }
  return problems;
}

/** Throws an EnvoyValidationError listing every problem of the bootstrap. */
export function assertValidEnvoyBootstrap(json: unknown): void {
  const problems = envoyBootstrapProblems(json);
  if (problems.length) throw new EnvoyValidationError(problems);
}
