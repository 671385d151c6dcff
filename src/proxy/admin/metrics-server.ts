// The sidecar's metrics listener (`--metrics-address`): GET /stats/prometheus
// and nothing else, bound where asked, so a Prometheus on another host can
// scrape it while the admin port (config dumps, tap, recent requests) stays
// on loopback. Beyond loopback and outside dev mode it needs a bearer token
// (`--metrics-token-file`): Prometheus sends it with `authorization:
// { credentials_file: … }`.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import { isLoopbackHost, parseMetricsAddress, type MetricsAddress } from '../../xds/metrics-address';

export class MetricsListenerError extends Error {
  readonly code = 'E_METRICS_LISTENER';
}

export interface MetricsServerOptions {
  /** host:port; port 0 picks a free one. */
  address: string;
  /** The bearer token a scrape must present; absent: none asked (loopback or dev mode only). */
  token?: string;
  /** Dev mode (the sidecar runs without --ca-file): a non-loopback listener may go without a token. */
  dev: boolean;
  /** The Prometheus text, the same the admin port's /stats/prometheus serves (a promise under --concurrency: the workers' sum). */
  render(): string | Promise<string>;
}

/** Longer than any token worth having, by far: a bigger header is refused before it is compared. */
const MAX_AUTHORIZATION = 1024;

/** The token in `file` (surrounding whitespace dropped, as Prometheus's credentials_file does). */
export function readMetricsToken(file: string): string {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new MetricsListenerError(`--metrics-token-file ${file}: ${(err as Error).message}`);
  }
  const token = text.trim();
  if (token === '') throw new MetricsListenerError(`--metrics-token-file ${file} is empty`);
  if (!/^[!-~]+$/.test(token)) throw new MetricsListenerError(`--metrics-token-file ${file}: the token must be one line of printable ASCII without spaces`);
  if (token.length > MAX_AUTHORIZATION - 'Bearer '.length) throw new MetricsListenerError(`--metrics-token-file ${file}: the token is longer than ${MAX_AUTHORIZATION - 7} bytes`);
  return token;
}

/** Checks the options before anything starts: a listener beyond loopback outside dev mode must have a token. */
export function checkMetricsListener(opts: Pick<MetricsServerOptions, 'address' | 'token' | 'dev'>): MetricsAddress {
  const address = parseMetricsAddress(opts.address, true);
  if (opts.token === undefined && !opts.dev && !isLoopbackHost(address.host)) {
    throw new MetricsListenerError(
      `--metrics-address ${opts.address} is reachable from other hosts, so scrapes must authenticate: pass --metrics-token-file <file> (or set WEFT_METRICS_TOKEN_FILE) holding the bearer token Prometheus sends (its authorization.credentials_file), or bind 127.0.0.1`,
    );
  }
  return address;
}

/** Constant-time: hashes of equal length are compared, so neither the token's bytes nor its length leak through timing. */
function bearerMatches(header: string | undefined, token: string): boolean {
  if (header === undefined || header.length > MAX_AUTHORIZATION) return false;
  const m = /^Bearer ([!-~]+)$/.exec(header);
  const given = crypto.createHash('sha256').update(m ? m[1] : '').digest();
  const wanted = crypto.createHash('sha256').update(token).digest();
  return crypto.timingSafeEqual(given, wanted) && m !== null;
}

export async function startMetricsServer(opts: MetricsServerOptions): Promise<http.Server> {
  const { host, port } = checkMetricsListener(opts);
  const server = http.createServer((req, res) => {
    const send = (status: number, body: string, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), ...headers }).end(body);
    };
    // Authentication first: without the token nothing, not even which paths exist, is told.
    if (opts.token !== undefined && !bearerMatches(req.headers.authorization, opts.token)) {
      return send(401, 'this metrics endpoint needs "Authorization: Bearer <token>" (the token of the sidecar\'s --metrics-token-file)\n', { 'www-authenticate': 'Bearer realm="weft-metrics"' });
    }
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/stats/prometheus') return send(404, 'this listener serves only GET /stats/prometheus\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'only GET /stats/prometheus\n', { allow: 'GET, HEAD' });
    const failed = (err: unknown) => send(500, `metrics error: ${(err as Error).message}\n`);
    const ok = (text: string) => send(200, text, { 'content-type': 'text/plain; version=0.0.4' });
    try {
      const text = opts.render();
      if (typeof text === 'string') ok(text);
      else text.then(ok, failed);
    } catch (err) {
      failed(err);
    }
  });
  return new Promise<http.Server>((resolve, reject) => {
    const failed = (err: Error) => reject(new MetricsListenerError(`--metrics-address ${opts.address}: ${err.message}`));
    server.once('error', failed);
    server.listen(port, host, () => {
      server.off('error', failed);
      resolve(server);
    });
  });
}
