// The admin API as its clients call it (the CLI, `weft run`'s registration):
// one request to a list of base URLs, the control plane's replicas
// (`--api http://a:15000,http://b:15000`, WEFT_API likewise), with the
// failover policy of control-plane-addresses.ts. A request that could not
// reach a replica goes to the next one: a refused connection, an unknown or
// unreachable host, no connection within `connectTimeoutMs`; and, for
// methods that may be repeated (GET, PUT, DELETE), also a connection cut or
// no answer within `timeoutMs` (a POST that may have been applied is not
// sent twice). An HTTP status, even 5xx, is the replica's answer and is
// returned as is. When none answers, the error names every URL tried.
import * as http from 'node:http';
import * as https from 'node:https';
import { ControlPlaneAddresses, UnreachableError } from '../xds/client/control-plane-addresses';

export interface ApiAnswer {
  status: number;
  text: string;
  /** The base URL that answered. */
  url: string;
}

export interface ApiRequestOptions {
  body?: string;
  contentType?: string;
  /** Sent as `Authorization: Bearer <token>`: an API credential, or a workload's join token. */
  token?: string;
  /** PEM roots an https:// replica's certificate must chain to (the mesh's trust bundle); default: the system's. */
  ca?: string | Buffer;
  /** No TCP (and TLS) connection within this: the next URL (default 3 s). */
  connectTimeoutMs?: number;
  /** No complete answer within this: an error, and the next URL for a method that may be repeated (default 30 s). */
  timeoutMs?: number;
  /** A URL failed and the next one is tried (a debug log's hook). */
  onFailover?: (failed: string, error: string, next: string) => void;
}

/** No replica answered: `message` names each URL and why. */
export class ApiUnreachableError extends Error {
  readonly code = 'E_API_UNREACHABLE';
  constructor(readonly attempts: readonly { address: string; error: string }[]) {
    super(`cannot reach the control plane at ${attempts.map((a) => `${a.address} (${a.error})`).join(', ')}`);
  }
}

/** Errors of a connection that never opened: safe to send elsewhere, whatever the method. */
const NOT_CONNECTED = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENOTFOUND', 'EAI_AGAIN', 'EADDRNOTAVAIL', 'ETIMEDOUT', 'E_API_CONNECT_TIMEOUT']);
/** Errors after the request may have reached the replica: sent elsewhere only when repeating it is harmless. */
const CUT = new Set(['ECONNRESET', 'EPIPE', 'E_API_TIMEOUT']);
const REPEATABLE = new Set(['GET', 'HEAD', 'PUT', 'DELETE', 'OPTIONS']);

/** Whether `err` (from one attempt of `method`) means: try the next replica. */
export function unreachable(err: unknown, method: string): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  if (typeof code !== 'string') return false;
  return NOT_CONNECTED.has(code) || (CUT.has(code) && REPEATABLE.has(method.toUpperCase()));
}

function codedError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

/** One attempt against one base URL. */
export function requestOnce(base: string, method: string, path: string, opts: ApiRequestOptions = {}): Promise<ApiAnswer> {
  const url = new URL(path, base);
  const connectTimeoutMs = opts.connectTimeoutMs ?? 3000;
  const timeoutMs = opts.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    const headers: http.OutgoingHttpHeaders = {};
    if (opts.contentType) headers['content-type'] = opts.contentType;
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    if (opts.body !== undefined) headers['content-length'] = Buffer.byteLength(opts.body);
    const req = url.protocol === 'https:' ? https.request(url, { method, headers, agent: false, ca: opts.ca }) : http.request(url, { method, headers, agent: false });
    let connectTimer: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => req.destroy(codedError('E_API_TIMEOUT', `no answer within ${timeoutMs} ms`)), timeoutMs);
    const done = () => {
      clearTimeout(timer);
      clearTimeout(connectTimer);
    };
    req.on('socket', (socket) => {
      if (!socket.connecting) return;
      connectTimer = setTimeout(() => req.destroy(codedError('E_API_CONNECT_TIMEOUT', `no connection within ${connectTimeoutMs} ms`)), connectTimeoutMs);
      socket.once('connect', () => clearTimeout(connectTimer));
    });
    req.on('error', (err) => {
      done();
      reject(err);
    });
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('error', (err) => {
        done();
        reject(err);
      });
      res.on('end', () => {
        done();
        // Given http:// for a control plane whose API speaks TLS: the same request over https://.
        if (res.headers['x-weft-tls'] === 'required' && url.protocol === 'http:') {
          resolve(requestOnce(base.replace(/^http:/, 'https:'), method, path, opts));
          return;
        }
        resolve({ status: res.statusCode ?? 0, text, url: base });
      });
    });
    req.end(opts.body);
  });
}

/** Sends the request to the first replica of `urls` that answers (see the top of this file). */
export async function apiRequestAny(urls: ControlPlaneAddresses, method: string, path: string, opts: ApiRequestOptions = {}): Promise<ApiAnswer> {
  try {
    return await urls.call((base) => requestOnce(base, method, path, opts), {
      what: `${method} ${path}`,
      unreachable: (err) => unreachable(err, method),
      onFailover: opts.onFailover,
    });
  } catch (err) {
    if (err instanceof UnreachableError) throw new ApiUnreachableError(err.attempts.map((a) => ({ address: a.address, error: a.error })));
    throw err;
  }
}
