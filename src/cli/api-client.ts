// The CLI's client of the admin API. `--api` (or WEFT_API) may list the
// control plane's replicas, comma-separated: a request that cannot reach one
// goes to the next (src/api/api-request.ts); the URLs that failed are named
// only when all did, or on stderr with WEFT_DEBUG=1.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as path from 'node:path';
import { ApiUnreachableError, apiRequestAny } from '../api/api-request';
import { ControlPlaneAddresses } from '../xds/client/control-plane-addresses';
import type { NodeStatus } from '../xds/server/node-status';

export const DEFAULT_API = process.env.WEFT_API ?? 'http://127.0.0.1:15000';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: any,
  ) {
    super(body?.error ?? `HTTP ${status}`);
  }
}

/** One list (and preference) per --api value, so the requests of one command skip a replica found dead. */
const lists = new Map<string, ControlPlaneAddresses>();

function urlsOf(spec: string): ControlPlaneAddresses {
  let urls = lists.get(spec);
  if (!urls) {
    try {
      urls = ControlPlaneAddresses.api(spec);
    } catch (err) {
      throw new Error(`--api / WEFT_API "${spec}": ${(err as Error).message}`);
    }
    lists.set(spec, urls);
  }
  return urls;
}

function debugEnabled(): boolean {
  const v = process.env.WEFT_DEBUG;
  return v !== undefined && v !== '' && v !== '0';
}

/**
 * The xDS nodes connected to the control plane. Each replica knows the
 * streams it serves (NodeStatus.replica says which one it is), so with
 * several URLs every one is asked and the answers are merged, each stream
 * once; a replica that cannot be reached is skipped (named on stderr with
 * WEFT_DEBUG=1), and when none can, the error names them all.
 */
export async function connectedNodes(api: string): Promise<NodeStatus[]> {
  const urls = urlsOf(api).list;
  if (urls.length === 1) return (await apiRequest(api, 'GET', '/api/v1/nodes')).items;
  const answers = await Promise.all(
    urls.map((url) =>
      apiRequest(url, 'GET', '/api/v1/nodes').then(
        (body) => body.items as NodeStatus[],
        (err: Error) => {
          if (debugEnabled()) process.stderr.write(`weft: GET /api/v1/nodes: ${err.message}\n`);
          return undefined;
        },
      ),
    ),
  );
  // None answered: once more through the failover list, for the error that names every URL.
  if (answers.every((a) => a === undefined)) return (await apiRequest(api, 'GET', '/api/v1/nodes')).items;
  const seen = new Set<string>();
  return answers.flatMap((a) => a ?? []).filter((n) => {
    const key = `${n.replica}|${n.streamId}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/**
 * The CLI's API credential: --token (which sets WEFT_TOKEN), WEFT_TOKEN, the file WEFT_TOKEN_FILE
 * names, or .weft/admin.token in the working directory (where `weft control` writes the first admin
 * token by default). None against a --dev control plane.
 */
export function cliToken(): string | undefined {
  if (process.env.WEFT_TOKEN) return process.env.WEFT_TOKEN.trim();
  const file = process.env.WEFT_TOKEN_FILE ?? path.join('.weft', 'admin.token');
  try {
    return fs.readFileSync(file, 'utf8').trim() || undefined;
  } catch (err) {
    if (process.env.WEFT_TOKEN_FILE) throw new Error(`WEFT_TOKEN_FILE ${file}: ${(err as Error).message}`);
    return undefined;
  }
}

/**
 * The roots the CLI verifies an https:// control plane with: WEFT_CA_FILE, or the trust bundle of
 * .weft in the working directory (the control plane's own host); else the system's.
 */
export function cliCaFile(): string | undefined {
  const file = process.env.WEFT_CA_FILE ?? path.join('.weft', 'ca', 'trust-bundle.pem');
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    if (process.env.WEFT_CA_FILE) throw new Error(`WEFT_CA_FILE ${file}: ${(err as Error).message}`);
    return undefined;
  }
}

/** `base`: one admin API URL or several, comma-separated. */
export async function apiRequest(base: string, method: string, path: string, body?: string, contentType?: string): Promise<any> {
  let text: string;
  let status: number;
  try {
    ({ text, status } = await apiRequestAny(urlsOf(base), method, path, {
      body,
      contentType,
      token: cliToken(),
      ca: cliCaFile(),
      onFailover: (failed, error, next) => {
        if (debugEnabled()) process.stderr.write(`weft: ${method} ${path}: ${failed} unreachable (${error}); trying ${next}\n`);
      },
    }));
  } catch (err) {
    if (err instanceof ApiUnreachableError) {
      const tls = /certificate|self[- ]signed|issuer/i.test(err.message) ? '; the control plane speaks TLS: set WEFT_CA_FILE to its trust bundle (<data-dir>/ca/trust-bundle.pem)' : '';
      throw new Error(`${err.message}${tls}; is \`weft control\` running? (--api or WEFT_API)`);
    }
    throw err;
  }
  let parsed: any;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = { error: text };
  }
  if (status === 401 || status === 403) throw new ApiError(status, { ...parsed, error: credentialHint(status, parsed?.error) });
  if (status < 200 || status >= 300) throw new ApiError(status, parsed);
  return parsed;
}

/** What to set, said with the control plane's reason. */
function credentialHint(status: number, reason: string | undefined): string {
  const given = process.env.WEFT_TOKEN ? 'WEFT_TOKEN' : process.env.WEFT_TOKEN_FILE ? `WEFT_TOKEN_FILE (${process.env.WEFT_TOKEN_FILE})` : fs.existsSync(path.join('.weft', 'admin.token')) ? '.weft/admin.token' : undefined;
  if (status === 401 && !given) return `${reason ?? 'a credential is needed'}`;
  if (status === 401) return `the credential from ${given} was refused: ${reason ?? 'unknown or revoked'}; set WEFT_TOKEN (or --token) to a valid API token`;
  return `${reason ?? 'forbidden'}; the credential from ${given ?? 'WEFT_TOKEN'} lacks the role for this (\`weft admin-token create --role admin\` makes one that has it)`;
}

/**
 * GET a streaming NDJSON route: each line to `onLine` until the stream ends
 * or `signal` aborts. Tries the URLs of `base` in order until one answers.
 */
export async function apiStream(base: string, path: string, onLine: (line: string) => void, signal: AbortSignal): Promise<void> {
  const errors: string[] = [];
  for (const url of urlsOf(base).list) {
    try {
      await streamOnce(url, path, onLine, signal);
      return;
    } catch (err) {
      if (err instanceof ApiError) throw err;
      errors.push(`${url} (${(err as Error).message})`);
    }
  }
  throw new Error(`cannot reach the control plane at ${errors.join(', ')}; is \`weft control\` running? (--api or WEFT_API)`);
}

function streamOnce(base: string, path: string, onLine: (line: string) => void, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return resolve();
    const url = new URL(path, base);
    const token = cliToken();
    const headers: http.OutgoingHttpHeaders = token ? { authorization: `Bearer ${token}` } : {};
    const onResponse = (res: http.IncomingMessage) => {
      if (res.headers['x-weft-tls'] === 'required' && url.protocol === 'http:') {
        res.resume();
        return void streamOnce(base.replace(/^http:/, 'https:'), path, onLine, signal).then(resolve, reject);
      }
      if (res.statusCode !== 200) {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          let body: any;
          try {
            body = JSON.parse(text);
          } catch {
            body = { error: text };
          }
          reject(new ApiError(res.statusCode ?? 0, body));
        });
        return;
      }
      let rest = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        const lines = (rest + chunk).split('\n');
        rest = lines.pop()!;
        for (const line of lines) if (line) onLine(line);
      });
      res.on('end', () => resolve());
      res.on('close', () => resolve());
    };
    const req = url.protocol === 'https:' ? https.get(url, { headers, agent: false, ca: cliCaFile() }, onResponse) : http.get(url, { headers, agent: false }, onResponse);
    const abort = () => req.destroy();
    signal.addEventListener('abort', abort, { once: true });
    req.on('close', () => signal.removeEventListener('abort', abort));
    req.on('error', (err) => (signal.aborted ? resolve() : reject(err)));
  });
}
