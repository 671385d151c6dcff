// weft.dev/filters.http.typescript: an http-filter Plugin's JS module run in
// the HTTP filter chain (what Envoy does with Lua and Wasm). The API a module
// implements is filter-plugin-api.ts.
//
// Config (an xds.type.v3.TypedStruct's Struct, see translate/filter-plugins.ts):
//   module   an absolute path, or a package name resolved from the sidecar's
//            working directory, then from weft's own install
//   config   string values handed to the module's factory
//   plugin   "namespace/name" of the Plugin (logs, metrics)
// Anything else is a NACK naming it.
//
// The module is loaded (require) and its factory called once per (plugin,
// module, config), when a config first uses it; the result is kept in the
// FilterState across config updates. Isolation: a module that cannot be
// loaded, a factory that throws, a hook that throws or returns something that
// is not a LocalResponse, a rejected or unsettled (10 s) promise each fail
// *that request* with 500 and response flag FE, counted in
// weft_http_filter_errors_total and logged (at most ERROR_LOGS_PER_SECOND a
// second). A module that cannot be loaded is not a NACK: that would hold
// every other config change of the node back. Its filter answers every
// request with 500 FE, and the load error is logged once.
// Not isolated: a module that loops forever, exits the process, or throws
// from a timer of its own (that reaches the last-resort guard).
import * as path from 'node:path';
import type { FieldPath } from '../config/nack';
import type { Obj } from '../config/read-proto';
import { MODULE_FILTER_TYPE_URL } from '../../xds/type-urls';
import { RateLimitedLog } from './rate-limited-log';
import type { FilterState, HttpFilterType } from './catalog';
import { filterEnv, type FilterEnv } from './filter-env';
import type { FilterHeaders, FilterPluginRequest, FilterPluginResponse, HttpFilterPlugin, HttpFilterPluginFactory, LocalResponse } from './filter-plugin-api';
import type { FilterRequest, FilterResponseHead, FilterVerdict, HttpFilter, LocalReplySpec } from './http-filter';

/** The response flag of a request a filter module failed. */
export const FILTER_ERROR_FLAG = 'FE';
/** The default response flag of a module's own local response. */
export const FILTER_LOCAL_FLAG = 'FL';
/** How long a promise from decodeHeaders may hold a request. */
export const ASYNC_DECODE_LIMIT_MS = 10_000;
export const ERROR_LOGS_PER_SECOND = 10;

export interface ModuleFilterConfig {
  plugin: string;
  module: string;
  config: Record<string, string>;
}

export function decodeModuleFilter(at: FieldPath, json: Obj): ModuleFilterConfig {
  for (const key of Object.keys(json)) if (key !== 'plugin' && key !== 'module' && key !== 'config') at.field(key).unsupported(`is not a field of ${MODULE_FILTER_TYPE_URL} (plugin, module, config)`);
  if (typeof json.module !== 'string' || json.module === '') at.field('module').invalid('must be a non-empty string');
  if (json.plugin !== undefined && typeof json.plugin !== 'string') at.field('plugin').invalid('must be a string');
  const config: Record<string, string> = {};
  if (json.config !== undefined) {
    if (typeof json.config !== 'object' || json.config === null || Array.isArray(json.config)) at.field('config').invalid('must be a Struct of strings');
    for (const [key, value] of Object.entries(json.config as Obj)) {
      if (typeof value !== 'string') at.field('config').field(key).invalid(`must be a string, got ${JSON.stringify(value)}`);
      config[key] = value;
    }
  }
  return { plugin: json.plugin ?? json.module, module: json.module, config };
}

// ---- loading ----

/** A module's hooks, or why there are none. */
interface Loaded {
  plugin: string;
  hooks?: HttpFilterPlugin;
  error?: string;
}

/** Finds the module: an absolute path as it is; a package name from the sidecar's working directory, then from weft's install. */
function resolveModule(spec: string): string {
  if (path.isAbsolute(spec)) return spec;
  try {
    return require.resolve(spec, { paths: [process.cwd()] });
  } catch {
    return require.resolve(spec);
  }
}

function factoryOf(exported: unknown): HttpFilterPluginFactory {
  const m = exported as { default?: unknown; createFilter?: unknown } | undefined;
  const candidate = typeof m === 'function' ? m : typeof m?.default === 'function' ? m.default : m?.createFilter;
  if (typeof candidate !== 'function') throw new TypeError('the module exports no factory (module.exports, default or createFilter must be a function)');
  return candidate as HttpFilterPluginFactory;
}

function load(c: ModuleFilterConfig, env: FilterEnv): Loaded {
  const log = env.log;
  try {
    const factory = factoryOf(require(resolveModule(c.module)));
    const hooks = factory(Object.freeze({ ...c.config }), {
      plugin: c.plugin,
      log: (level, message, fields) => log?.(level, message, { ...fields, plugin: c.plugin }),
    });
    if (typeof hooks !== 'object' || hooks === null) throw new TypeError(`the factory returned ${hooks === null ? 'null' : typeof hooks}, not an object of hooks`);
    for (const hook of ['decodeHeaders', 'encodeHeaders'] as const) {
      if (hooks[hook] !== undefined && typeof hooks[hook] !== 'function') throw new TypeError(`${hook} must be a function`);
    }
    log?.('info', 'http-filter plugin loaded', { plugin: c.plugin, module: c.module });
    return { plugin: c.plugin, hooks };
  } catch (err) {
    const error = messageOf(err);
    log?.('error', 'http-filter plugin failed to load: every request through it gets 500 FE', { plugin: c.plugin, module: c.module, error });
    return { plugin: c.plugin, error };
  }
}

/** Loaded modules by (plugin, module, config), kept across config updates. */
function loaded(state: FilterState, c: ModuleFilterConfig, env: FilterEnv): Loaded {
  let cache = state.get('module-filter.loaded') as Map<string, Loaded> | undefined;
  if (!cache) state.set('module-filter.loaded', (cache = new Map()));
  const key = JSON.stringify([c.plugin, c.module, Object.entries(c.config).sort()]);
  let l = cache.get(key);
  if (!l) cache.set(key, (l = load(c, env)));
  return l;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

// ---- the views a module gets ----

/** Field names a module may not change: framing, connection handling, the authority the route was chosen by. */
const PROTECTED = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'host']);
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// eslint-disable-next-line no-control-regex
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

function checkName(name: unknown): string {
  if (typeof name !== 'string' || !TOKEN.test(name)) throw new TypeError(`not a header field name: ${JSON.stringify(name)}`);
  const lower = name.toLowerCase();
  if (PROTECTED.has(lower)) throw new TypeError(`header ${lower} cannot be changed by a filter`);
  return lower;
}

function checkValue(value: unknown): string {
  if (typeof value !== 'string' || !FIELD_VALUE.test(value)) throw new TypeError(`not a header field value (a string without CR, LF or NUL): ${JSON.stringify(value)}`);
  return value;
}

/** The request as a module sees it: one object per request, its own header view. */
class PluginRequest implements FilterPluginRequest, FilterHeaders {
  constructor(private readonly req: FilterRequest) {}

  get method(): string {
    return this.req.method;
  }
  get path(): string {
    return this.req.path;
  }
  get authority(): string {
    return this.req.host;
  }
  get peerPrincipal(): string | undefined {
    return this.req.peerPrincipal;
  }
  get sourceAddress(): string | undefined {
    return this.req.sourceAddress;
  }
  get grpc(): boolean {
    return this.req.grpc;
  }
  get headers(): FilterHeaders {
    return this;
  }

  get(name: string): string | undefined {
    return this.req.header(String(name).toLowerCase());
  }
  set(name: string, value: string): void {
    checkName(name);
    this.req.setRequestHeader!(name, checkValue(value));
  }
  add(name: string, value: string): void {
    checkName(name);
    this.req.addRequestHeader!(name, checkValue(value));
  }
  remove(name: string): void {
    this.req.removeRequestHeader!(checkName(name));
  }
}

class PluginResponse implements FilterPluginResponse, FilterHeaders {
  constructor(private readonly res: FilterResponseHead) {}

  get status(): number {
    return this.res.status;
  }
  get headers(): FilterHeaders {
    return this;
  }

  get(name: string): string | undefined {
    return this.res.header(String(name).toLowerCase());
  }
  set(name: string, value: string): void {
    checkName(name);
    this.res.setHeader(name, checkValue(value));
  }
  add(name: string, value: string): void {
    checkName(name);
    this.res.addHeader(name, checkValue(value));
  }
  remove(name: string): void {
    this.res.removeHeader(checkName(name));
  }
}

/** A module's LocalResponse as the proxy's local reply; throws on one that is malformed. */
function localReplyOf(r: LocalResponse): LocalReplySpec {
  if (typeof r !== 'object' || r === null) throw new TypeError(`decodeHeaders returned ${JSON.stringify(r)}: expected undefined or { status, body?, headers?, flag? }`);
  const { status, body, headers, flag } = r;
  if (!Number.isInteger(status) || status < 200 || status > 599) throw new TypeError(`a local response needs a status 200-599, got ${JSON.stringify(status)}`);
  if (body !== undefined && typeof body !== 'string') throw new TypeError('a local response body must be a string');
  if (flag !== undefined && (typeof flag !== 'string' || !/^[A-Z]{1,8}$/.test(flag))) throw new TypeError(`a response flag is 1-8 capital letters, got ${JSON.stringify(flag)}`);
  const extra: string[] = [];
  for (const [name, value] of Object.entries(headers ?? {})) {
    const lower = checkName(name);
    if (lower === 'content-type' || lower === 'x-weft-response-flags') throw new TypeError(`header ${lower} of a local response is set by the proxy`);
    extra.push(name, checkValue(value));
  }
  return { status, flag: flag ?? FILTER_LOCAL_FLAG, detail: body ?? '', headers: extra };
}

// ---- the filter ----

class ModuleFilter implements HttpFilter {
  private readonly env: FilterEnv;
  private readonly errors: RateLimitedLog;
  /** The one answer of a filter whose module is not loaded. */
  private readonly notLoaded: FilterVerdict;

  constructor(
    readonly name: string,
    private readonly loaded: Loaded,
    state: FilterState,
  ) {
    this.env = filterEnv(state);
    this.errors = RateLimitedLog.of(state, 'module-filter.error-log', 'warn', 'http-filter plugin failed a request (500 FE)', ERROR_LOGS_PER_SECOND);
    this.notLoaded = Object.freeze({ kind: 'reply', reply: Object.freeze({ status: 500, flag: FILTER_ERROR_FLAG, detail: `http-filter plugin ${loaded.plugin} is not loaded (see the sidecar log)` }) });
  }

  decodeHeaders(req: FilterRequest): FilterVerdict {
    const hooks = this.loaded.hooks;
    if (hooks === undefined) {
      this.env.stats?.filterError(this.loaded.plugin, 'load');
      return this.notLoaded;
    }
    const view = new PluginRequest(req);
    if (hooks.encodeHeaders !== undefined && req.onResponseHeaders !== undefined) req.onResponseHeaders((res) => this.encode(hooks, res, view));
    if (hooks.decodeHeaders === undefined) return undefined;
    let result: unknown;
    try {
      result = hooks.decodeHeaders(view);
      if (result === undefined || result === null) return undefined;
      if (typeof (result as Promise<unknown>).then !== 'function') return { kind: 'reply', reply: localReplyOf(result as LocalResponse) };
    } catch (err) {
      return { kind: 'reply', reply: this.failed('decode', err, req) };
    }
    return { kind: 'wait', until: this.settle(result as Promise<LocalResponse | undefined>, req) };
  }

  /** A promise from decodeHeaders as the runner's `wait`: never rejects, settles within ASYNC_DECODE_LIMIT_MS. */
  private settle(result: Promise<LocalResponse | undefined>, req: FilterRequest): Promise<LocalReplySpec | undefined> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(this.failed('timeout', new Error(`decodeHeaders did not settle within ${ASYNC_DECODE_LIMIT_MS} ms`), req)), ASYNC_DECODE_LIMIT_MS);
      timer.unref();
      Promise.resolve(result).then(
        (r) => {
          clearTimeout(timer);
          try {
            resolve(r === undefined || r === null ? undefined : localReplyOf(r));
          } catch (err) {
            resolve(this.failed('decode', err, req));
          }
        },
        (err) => {
          clearTimeout(timer);
          resolve(this.failed('decode', err, req));
        },
      );
    });
  }

  private encode(hooks: HttpFilterPlugin, res: FilterResponseHead, view: PluginRequest): LocalReplySpec | undefined {
    try {
      hooks.encodeHeaders!(new PluginResponse(res), view);
      return undefined;
    } catch (err) {
      return this.failed('encode', err, view);
    }
  }

  /** Counts and logs a failed request; its answer: 500 FE. */
  private failed(stage: string, err: unknown, req: { method: string; path: string }): LocalReplySpec {
    const plugin = this.loaded.plugin;
    this.env.stats?.filterError(plugin, stage);
    this.errors.write(this.env, { plugin, stage, error: messageOf(err), method: req.method, path: req.path });
    return { status: 500, flag: FILTER_ERROR_FLAG, detail: `http-filter plugin ${plugin} failed (see the sidecar log)` };
  }
}

export const MODULE_FILTER_TYPE: HttpFilterType = {
  typeUrl: MODULE_FILTER_TYPE_URL,
  decode: decodeModuleFilter,
  create: (name, config, state) => new ModuleFilter(name, loaded(state, config as ModuleFilterConfig, filterEnv(state)), state),
};
