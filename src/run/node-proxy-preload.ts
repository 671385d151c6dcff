// Preloaded into the Node programs `weft run` starts (NODE_OPTIONS=--require):
// Node's http client and fetch ignore HTTP_PROXY (before NODE_USE_ENV_PROXY,
// Node 24 and late 22), so `http.get('http://hello/')` would look "hello" up in
// DNS and fail ENOTFOUND. This makes both honour HTTP_PROXY and NO_PROXY the
// way curl does: a plain-http request to a host NO_PROXY does not name goes to
// the proxy (the sidecar) in absolute form. https:// is left alone (weft run
// sets no HTTPS_PROXY: the sidecar does the mesh's TLS). Self-contained and
// cheap at start-up: it runs in every Node process of the app.
// The module object itself (not an import-star copy): http.globalAgent is assigned below.
import http = require('node:http');
import * as net from 'node:net';
import { bypassesProxy, proxyFromEnv, type ProxyTarget } from './http-proxy-env';

const INSTALLED = Symbol.for('weft.nodeProxyPreload');
// Where Node's bundled undici (and the undici package) keep the dispatcher global fetch uses.
const UNDICI_DISPATCHER = Symbol.for('undici.globalDispatcher.1');

/** Installs the proxying http.globalAgent and fetch dispatcher once per process; a no-op without an HTTP proxy. */
function install(env: NodeJS.ProcessEnv = process.env): void {
  const g = globalThis as Record<symbol, unknown>;
  const proxy = proxyFromEnv(env);
  if (!proxy || g[INSTALLED]) return;
  g[INSTALLED] = true;
  const proxied = (host: string, port: number) => !bypassesProxy(host, port, env.no_proxy ?? env.NO_PROXY);
  // Without Node's own proxyEnv (Node 24 with NODE_USE_ENV_PROXY): one of the two proxies each request, not both.
  const { proxyEnv: _native, ...options } = (http.globalAgent as unknown as { options: http.AgentOptions & { proxyEnv?: unknown } }).options;
  http.globalAgent = new ProxyingAgent(proxy, proxied, options);
  proxyFetch(proxy, proxied);
}

/**
 * The default agent of http.get/http.request: a request whose host is proxied
 * is written in absolute form (GET http://hello/ HTTP/1.1) on a connection to
 * the proxy; the pools stay per target host, so keep-alive works as before.
 */
class ProxyingAgent extends http.Agent {
  constructor(
    private readonly proxy: ProxyTarget,
    private readonly proxied: (host: string, port: number) => boolean,
    options: http.AgentOptions,
  ) {
    super(options);
  }

  addRequest(req: http.ClientRequest, options: http.RequestOptions): void {
    const host = options.host ?? options.hostname ?? 'localhost';
    const port = Number(options.port ?? 80);
    // The request line is written later, unless the caller gave headers as an array or Expect
    // (then it goes out in origin form, which the sidecar routes by Host just as well).
    const written = (req as unknown as { _header: unknown })._header;
    if (!options.socketPath && this.proxied(host, port) && !written && req.path.startsWith('/')) {
      const authority = String(req.getHeader('host') ?? (port === 80 ? host : `${net.isIPv6(host) ? `[${host}]` : host}:${port}`));
      req.path = `http://${authority}${req.path}`;
    }
    (http.Agent.prototype as unknown as { addRequest(r: unknown, o: unknown): void }).addRequest.call(this, req, options);
  }

  override createConnection(options: ConnectOptions, callback?: (err: Error | null, socket: net.Socket) => void): net.Socket {
    const host = options.host ?? 'localhost';
    if (options.socketPath || !this.proxied(host, Number(options.port ?? 80))) {
      return (http.Agent.prototype as unknown as { createConnection: (o: ConnectOptions, cb?: unknown) => net.Socket }).createConnection.call(this, options, callback);
    }
    // Explicit fields only: the request options carry `path`, which net would take for a Unix socket.
    const socket = net.createConnection({ host: this.proxy.host, port: this.proxy.port, noDelay: true, keepAlive: options.keepAlive });
    if (callback) socket.once('connect', () => callback(null, socket));
    return socket;
  }
}

type ConnectOptions = { host?: string; port?: number | string; socketPath?: string; keepAlive?: boolean };
type Dispatcher = { dispatch(opts: DispatchOptions, handler: unknown): boolean };
type DispatchOptions = { origin?: string | URL; path: string; headers?: unknown; [k: string]: unknown };

/**
 * Global fetch: its dispatcher is wrapped on first use (Node loads undici only
 * then), so that a proxied origin becomes the proxy's, with an absolute path
 * and the target's Host. Everything else of fetch (redirects, bodies,
 * decompression, abort) stays undici's own.
 */
function proxyFetch(proxy: ProxyTarget, proxied: (host: string, port: number) => boolean): void {
  const g = globalThis as unknown as Record<string | symbol, unknown>;
  const original = g.fetch as ((input: unknown, init?: unknown) => Promise<unknown>) | undefined;
  if (typeof original !== 'function') return;
  const proxyOrigin = `http://${net.isIPv6(proxy.host) ? `[${proxy.host}]` : proxy.host}:${proxy.port}`;
  let wrapped = false;
  const wrapDispatcher = () => {
    wrapped = true;
    void g.Headers; // loads Node's bundled undici, which sets its global dispatcher
    const inner = g[UNDICI_DISPATCHER] as Dispatcher | undefined;
    if (!inner || typeof inner.dispatch !== 'function') return;
    const dispatch = (opts: DispatchOptions, handler: unknown) => {
      if (opts.origin !== undefined && opts.path.startsWith('/')) {
        const origin = new URL(String(opts.origin));
        if (origin.protocol === 'http:' && proxied(origin.hostname, Number(origin.port || 80))) {
          opts = { ...opts, origin: proxyOrigin, path: `${origin.origin}${opts.path}`, headers: withHost(opts.headers, origin.host) };
        }
      }
      return inner.dispatch(opts, handler);
    };
    g[UNDICI_DISPATCHER] = new Proxy(inner, {
      get(target, prop) {
        if (prop === 'dispatch') return dispatch;
        const value = Reflect.get(target, prop, target);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
  };
  Object.defineProperty(globalThis, 'fetch', {
    configurable: true,
    enumerable: false,
    writable: true,
    value: function fetch(input: unknown, init?: unknown) {
      if (!wrapped) wrapDispatcher();
      return original(input, init);
    },
  });
}

/** undici's headers (a flat [name, value, …] array, an object, or nothing) with Host set unless present. */
function withHost(headers: unknown, host: string): unknown {
  if (headers == null) return { host };
  if (Array.isArray(headers)) {
    for (let i = 0; i < headers.length; i += 2) if (String(headers[i]).toLowerCase() === 'host') return headers;
    return [...headers, 'host', host];
  }
  if (typeof headers === 'object') {
    if (Object.keys(headers).some((k) => k.toLowerCase() === 'host')) return headers;
    return { ...(headers as object), host };
  }
  return headers;
}

install();
