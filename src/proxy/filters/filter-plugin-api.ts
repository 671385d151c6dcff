// The API of an http-filter Plugin: what a module the sidecar loads exports
// and what it is handed. Types only, no runtime code, so a filter package can
// `import type { HttpFilterPluginFactory } from 'weft/src/proxy/filters/filter-plugin-api'`
// (or copy these few lines). module-filter.ts implements it.
//
// A module exports its factory as `module.exports`, as `default` (TypeScript's
// `export default`) or as `createFilter`. The sidecar calls the factory once
// per (module, config) and keeps what it returns across config updates; the
// returned hooks run for every request through the filter:
//
//   import type { HttpFilterPluginFactory } from '…/filter-plugin-api';
//   const factory: HttpFilterPluginFactory = (config) => ({
//     decodeHeaders(req) {
//       if (req.path.startsWith('/admin')) return { status: 403, body: 'no admin here' };
//       req.headers.set('x-tenant', config.tenant ?? 'none');
//     },
//     encodeHeaders(res) { res.headers.set('x-filtered-by', 'tenant'); },
//   });
//   export default factory;

/** Header fields of a request or response: names are case-insensitive. */
export interface FilterHeaders {
  /** The first value of field `name`, or undefined. */
  get(name: string): string | undefined;
  /** Replaces every field `name` with one holding `value`. */
  set(name: string, value: string): void;
  /** Adds a field, keeping those of the same name. */
  add(name: string, value: string): void;
  /** Removes every field `name`. */
  remove(name: string): void;
}

/**
 * A request as a filter sees it. Header changes apply to what is sent
 * upstream (the route was chosen already). Framing and connection fields
 * (content-length, transfer-encoding, connection, host, te, upgrade, …) and
 * pseudo-headers cannot be changed: the call throws.
 */
export interface FilterPluginRequest {
  readonly method: string;
  /** The path with its query, as received. */
  readonly path: string;
  /** Host / :authority. */
  readonly authority: string;
  /** The caller's SPIFFE ID from its mTLS certificate; undefined over plaintext. */
  readonly peerPrincipal: string | undefined;
  /** The downstream peer's IP address. */
  readonly sourceAddress: string | undefined;
  /** A gRPC request (content-type application/grpc…): a local response goes out as a grpc-status. */
  readonly grpc: boolean;
  readonly headers: FilterHeaders;
}

/** The upstream's response head on its way back, before it goes downstream. */
export interface FilterPluginResponse {
  readonly status: number;
  readonly headers: FilterHeaders;
}

/** An answer the filter gives instead of the upstream (e.g. a deny). */
export interface LocalResponse {
  /** 200-599. */
  status: number;
  /** Plain text (default empty). */
  body?: string;
  headers?: Record<string, string>;
  /** The response flag for logs, metrics and x-weft-response-flags (A-Z, up to 8; default FL, "filter local reply"). */
  flag?: string;
}

/** What decodeHeaders returns: nothing to let the request go on, or a local response. */
export type DecodeResult = LocalResponse | undefined | void;

/** Handed to the factory. */
export interface FilterPluginContext {
  /** "namespace/name" of the Plugin. */
  readonly plugin: string;
  /** Writes to the sidecar's log, tagged with the plugin. */
  log(level: 'debug' | 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>): void;
}

/** The hooks a factory returns; both optional. */
export interface HttpFilterPlugin {
  /**
   * Runs on every request's head, after the route matched and after weft's
   * own guards (jwt_authn, RBAC, rate limits) let it through. A returned
   * Promise holds the request until it settles (at most 10 s).
   */
  decodeHeaders?(req: FilterPluginRequest): DecodeResult | Promise<DecodeResult>;
  /** Runs on the upstream's response head (not on local replies). `req` is the request's view, as decodeHeaders saw it. */
  encodeHeaders?(res: FilterPluginResponse, req: FilterPluginRequest): void;
}

/** The factory a module exports: `config` is the Plugin's config.global, ${service} and ${namespace} resolved. */
export type HttpFilterPluginFactory = (config: Readonly<Record<string, string>>, ctx: FilterPluginContext) => HttpFilterPlugin;
