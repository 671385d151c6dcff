// One probe of the app, as the monitor plugin runs it every interval:
//
//   http(s)://host:port/path   GET; 2xx and 3xx are healthy (redirects are not followed)
//   /path                      the same on the app's own port (127.0.0.1:<--port>)
//   tcp:host:port              a TCP connect
//   exec:<sh command>          exit code 0 is healthy
//   (none)                     a TCP connect to the app's own port
//
// Each probe has the whole timeout to finish (connect, answer, exit); a
// command still running then is killed with its process group.
import { spawn } from 'node:child_process';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';

export type Probe = { kind: 'http'; url: URL } | { kind: 'tcp'; host: string; port: number } | { kind: 'exec'; command: string };

export interface ProbeResult {
  ok: boolean;
  /** What was seen: "HTTP 503", "connect ECONNREFUSED 127.0.0.1:8080", "exit code 1: disk full". */
  detail: string;
}

export class ProbeSpecError extends Error {
  readonly code = 'E_MONITOR_PROBE';
}

/** Stderr kept from an exec probe for its failure's reason. */
const STDERR_BYTES = 400;

/** The probe a `probe` setting names; `app` is where the app listens, for a path or no probe at all. */
export function parseProbe(spec: string | undefined, app: { host: string; port?: number }): Probe {
  const appPort = () => {
    if (app.port === undefined) throw new ProbeSpecError(`probe ${spec === undefined ? '(none)' : `"${spec}"`} means the app's port, but this unit has none (weft run without --port): give a full URL, tcp:<host>:<port> or exec:<command>`);
    return app.port;
  };
  if (spec === undefined || spec === '') return { kind: 'tcp', host: app.host, port: appPort() };
  if (spec.startsWith('exec:')) return { kind: 'exec', command: spec.slice('exec:'.length) };
  if (spec.startsWith('tcp:')) {
    const m = /^tcp:(.+):([0-9]{1,5})$/.exec(spec);
    const port = m ? Number(m[2]) : 0;
    if (!m || port < 1 || port > 65535) throw new ProbeSpecError(`probe "${spec}": tcp:<host>:<port>`);
    return { kind: 'tcp', host: m[1].replace(/^\[(.*)\]$/, '$1'), port };
  }
  if (spec.startsWith('/')) return { kind: 'http', url: new URL(`http://${app.host}:${appPort()}${spec}`) };
  let url: URL;
  try {
    url = new URL(spec);
  } catch {
    throw new ProbeSpecError(`probe "${spec}" is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ProbeSpecError(`probe "${spec}": http(s)://, /<path>, tcp:<host>:<port> or exec:<command>`);
  return { kind: 'http', url };
}

/** How a probe reads in a reason: "GET http://127.0.0.1:8080/healthz". */
export function describeProbe(p: Probe): string {
  if (p.kind === 'http') return `GET ${p.url.href}`;
  if (p.kind === 'tcp') return `tcp:${p.host}:${p.port}`;
  return `exec:${p.command}`;
}

export function runProbe(probe: Probe, timeoutMs: number, opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<ProbeResult> {
  if (probe.kind === 'http') return httpProbe(probe.url, timeoutMs);
  if (probe.kind === 'tcp') return tcpProbe(probe.host, probe.port, timeoutMs);
  return execProbe(probe.command, timeoutMs, opts);
}

function httpProbe(url: URL, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const client = url.protocol === 'https:' ? https : http;
    const req = client.request(url, {
      method: 'GET',
      // A connection of its own each time: not the app environment's proxying agent (weft run's preload), no pooled socket to a dead app.
      agent: false,
      headers: { 'user-agent': 'weft-monitor', connection: 'close' },
      // The app's own endpoint on its loopback: the probe asks whether it answers, not who it is (as Kubernetes' probes do).
      rejectUnauthorized: false,
    });
    const timer = setTimeout(() => req.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    req.once('response', (res) => {
      const status = res.statusCode ?? 0;
      res.resume();
      clearTimeout(timer);
      req.destroy();
      resolve({ ok: status >= 200 && status < 400, detail: `HTTP ${status}` });
    });
    req.once('error', (err) => {
      clearTimeout(timer);
      resolve({ ok: false, detail: err.message });
    });
    req.end();
  });
}

function tcpProbe(host: string, port: number, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (r: ProbeResult) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => done({ ok: false, detail: `connect to ${host}:${port}: no answer within ${timeoutMs} ms` }), timeoutMs);
    socket.once('connect', () => done({ ok: true, detail: `connected to ${host}:${port}` }));
    socket.once('error', (err) => done({ ok: false, detail: err.message }));
  });
}

function execProbe(command: string, timeoutMs: number, opts: { env?: NodeJS.ProcessEnv; cwd?: string }): Promise<ProbeResult> {
  return new Promise((resolve) => {
    // A process group of its own, so a timeout stops whatever the command started too.
    const child = spawn('sh', ['-c', command], { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString('utf8')).slice(-STDERR_BYTES)));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    }, timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      resolve({ ok: false, detail: `cannot run sh: ${err.message}` });
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const said = stderr.trim().split('\n').pop()?.trim();
      if (timedOut) return resolve({ ok: false, detail: `still running after ${timeoutMs} ms (killed)` });
      if (code === 0) return resolve({ ok: true, detail: 'exit code 0' });
      resolve({ ok: false, detail: `${signal ? `killed by ${signal}` : `exit code ${code}`}${said ? `: ${said}` : ''}` });
    });
  });
}
