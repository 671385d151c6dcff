// `weft dashboard`: the dashboard through an authenticated local proxy, the
// way `kubectl proxy` and `linkerd viz dashboard` do it. The proxy listens on
// loopback and adds the CLI's credential (WEFT_TOKEN, --token, …: a viewer
// token is enough) to every request it forwards to the control plane, so the
// browser never holds the secret and no URL carries it (nothing for logs or
// shell history). Requests go to the first replica that answers; the event
// stream is passed through as it flows.
import * as http from 'node:http';
import * as https from 'node:https';
import { apiRequest, cliCaFile, cliToken } from '../api-client';
import { ControlPlaneAddresses } from '../../xds/client/control-plane-addresses';

export async function runDashboard(opts: { api: string; port: number; address: string }): Promise<void> {
  const token = cliToken();
  // Fails here, with the reason and what to set, rather than in the browser.
  await apiRequest(opts.api, 'GET', '/api/v1/status');
  const urls = await Promise.all(ControlPlaneAddresses.api(opts.api).list.map(async (u) => (u.startsWith('http:') && (await isTls(u)) ? u.replace(/^http:/, 'https:') : u)));
  const ca = cliCaFile();
  const server = http.createServer((req, res) => forward(urls, 0, token, ca, req, res));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.address, () => resolve());
  });
  const { port } = server.address() as { port: number };
  process.stdout.write(`weft dashboard: http://${opts.address}:${port}/ (proxying ${urls.join(', ')}${token ? ' with your credential' : ''}; Ctrl-C stops it)\n`);
  await new Promise<void>((resolve) => process.once('SIGINT', () => server.close(() => resolve())));
}

function forward(urls: readonly string[], i: number, token: string | undefined, ca: string | undefined, req: http.IncomingMessage, res: http.ServerResponse): void {
  // Only reads: the dashboard never changes anything, and a page of another site cannot make it.
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { 'content-type': 'text/plain' }).end('the dashboard proxy forwards reads only\n');
    return;
  }
  const target = new URL(req.url ?? '/', urls[i]);
  const headers: http.OutgoingHttpHeaders = { accept: req.headers.accept ?? '*/*' };
  if (token) headers.authorization = `Bearer ${token}`;
  const onAnswer = (answer: http.IncomingMessage) => {
    res.writeHead(answer.statusCode ?? 502, { 'content-type': answer.headers['content-type'] ?? 'application/octet-stream', 'cache-control': 'no-store' });
    answer.pipe(res);
  };
  const upstream = target.protocol === 'https:' ? https.request(target, { method: req.method, headers, agent: false, ca }, onAnswer) : http.request(target, { method: req.method, headers, agent: false }, onAnswer);
  upstream.on('error', (err) => {
    if (!res.headersSent && i + 1 < urls.length) return forward(urls, i + 1, token, ca, req, res);
    if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' }).end(`the control plane did not answer: ${err.message}\n`);
    else res.destroy();
  });
  req.on('close', () => upstream.destroy());
  upstream.end();
}

/** Whether a replica given as http:// speaks TLS (it says so in x-weft-tls). */
function isTls(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get(new URL('/healthz', url), { agent: false }, (res) => {
      res.resume();
      resolve(res.headers['x-weft-tls'] === 'required');
    });
    req.on('error', () => resolve(false));
  });
}
