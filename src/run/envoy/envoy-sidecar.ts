// `weft run --proxy envoy`: Envoy as the unit's sidecar instead of weft proxy.
// weft run writes Envoy's bootstrap (envoy-bootstrap.ts, with the ports it
// chose and a local SDS socket) into a private directory, runs the workload
// certificate's agent and the local SDS server (local-sds.ts) in its own
// process, and starts `envoy -c <file>` in a process group of its own,
// guarded like the app (unit-guard.ts): if weft run is SIGKILLed, the guard
// stops Envoy and removes the directory with the key's socket.
//
// Not yet: `--transparent` (the unit's VIP sockets hand connections to weft
// proxy's listeners in-process), the trust bundle's root rotation trigger (no
// ADS client here watches ROOTCA: the agent renews at half life instead), and
// `weft status`'s /clusters view (Envoy's format differs).
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { DEFAULT_TRUST_DOMAIN, spiffeId } from '../../ca/spiffe-id';
import type { Logger } from '../../observe/log';
import { controlPlaneCredentials } from '../../proxy/proxy';
import { CertificateAgent } from '../../proxy/tls/certificate-agent';
import { SecretStore } from '../../proxy/tls/secret-store';
import { envoyBootstrap } from '../../xds/envoy-bootstrap';
import { NODE_METADATA } from '../../xds/node-info';
import { UnitGuard } from '../unit-guard';
import { LocalSdsServer } from './local-sds';

/** What run-app uses of its sidecar, weft proxy's or Envoy. */
export interface Sidecar {
  waitReady(timeoutMs: number): Promise<void>;
  close(): Promise<void>;
  readonly adminPort: number;
  readonly metricsAddress: string | undefined;
}

export interface EnvoySidecarOptions {
  /** The envoy executable (found on PATH by findEnvoyBinary). */
  binary: string;
  xds: string;
  nodeId: string;
  service?: string;
  namespace: string;
  zone?: string;
  outboundPort: number;
  inboundPort?: number;
  appPort?: number;
  adminPort: number;
  caFile?: string;
  joinToken?: string;
  trustDomain?: string;
  /** SIGTERM to SIGKILL when Envoy is stopped. */
  stopGraceMs?: number;
  log: Logger;
}

export const NO_ENVOY_MESSAGE = '--proxy envoy needs an envoy binary on PATH or --envoy-binary (none found); weft proxy (the default) needs none';

/** The envoy binary to run: --envoy-binary (checked), else `envoy` on PATH; throws a message that says what to do. */
export function findEnvoyBinary(explicit: string | undefined, envPath = process.env.PATH ?? ''): string {
  if (explicit !== undefined) {
    try {
      fs.accessSync(explicit, fs.constants.X_OK);
      if (!fs.statSync(explicit).isFile()) throw new Error('not a file');
    } catch (err) {
      throw new Error(`--envoy-binary ${explicit}: not an executable file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
    return path.resolve(explicit);
  }
  for (const dir of envPath.split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, 'envoy');
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      if (fs.statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  throw new Error(NO_ENVOY_MESSAGE);
}

class EnvoySidecar implements Sidecar {
  readonly metricsAddress = undefined;
  private exited: Promise<void>;
  private exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private closing: Promise<void> | undefined;

  constructor(
    private readonly child: ChildProcess,
    readonly adminPort: number,
    private readonly dir: string,
    private readonly guard: UnitGuard | undefined,
    private readonly sds: LocalSdsServer,
    private readonly agent: CertificateAgent | undefined,
    private readonly opts: EnvoySidecarOptions,
  ) {
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        if (!this.closing) opts.log('error', 'envoy exited', { code, signal });
        resolve();
      });
      child.once('error', (err) => {
        this.exit ??= { code: 127, signal: null };
        opts.log('error', 'cannot start envoy', { binary: opts.binary, error: err.message });
        resolve();
      });
    });
  }

  /** Resolves once Envoy's admin /ready answers LIVE (its first listeners and secrets are in place). */
  async waitReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = 'no answer yet';
    for (;;) {
      if (this.exit) throw new Error(`envoy exited before it was ready (code ${this.exit.code}, signal ${this.exit.signal}); its log is above`);
      const state = await readyState(this.adminPort).catch((err: Error) => `(${err.message})`);
      if (state === 'LIVE') return;
      last = state;
      if (Date.now() > deadline) {
        const cert = this.agent?.status();
        const why = cert && cert.state !== 'ready' ? `; the workload certificate: ${cert.state}${cert.lastError ? ` (${cert.lastError})` : ''}` : '';
        throw new Error(`envoy not ready after ${timeoutMs} ms: admin /ready says ${last}${why}`);
      }
      // Polled: Envoy tells no one else when it turns LIVE. Ended early by its exit.
      await Promise.race([new Promise((r) => setTimeout(r, 100)), this.exited]);
    }
  }

  close(): Promise<void> {
    this.closing ??= this.stop();
    return this.closing;
  }

  private async stop(): Promise<void> {
    if (!this.exit && this.child.pid !== undefined) {
      signalGroup(this.child.pid, 'SIGTERM');
      const grace = this.opts.stopGraceMs ?? 10_000;
      const timer = setTimeout(() => signalGroup(this.child.pid!, 'SIGKILL'), grace);
      await this.exited;
      clearTimeout(timer);
    }
    this.agent?.stop();
    await this.sds.close();
    await this.guard?.release(); // removes the directory
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

function readyState(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/ready', timeout: 2000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve(body.trim() || `HTTP ${res.statusCode}`));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });
}

export async function startEnvoySidecar(opts: EnvoySidecarOptions): Promise<Sidecar> {
  if (!opts.service) throw new Error('--proxy envoy: add --service <name>: the Envoy sidecar joins the mesh as an instance of a service');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-envoy-'));
  const cleanUp: (() => Promise<unknown> | unknown)[] = [() => fs.rmSync(dir, { recursive: true, force: true })];
  try {
    const secrets = new SecretStore();
    const sds = await LocalSdsServer.start({ dir: path.join(dir, 'sds'), secrets, log: opts.log });
    cleanUp.push(() => sds.close());
    const joinToken = opts.joinToken || undefined;
    const metadata: Record<string, string> = {
      [NODE_METADATA.role]: 'sidecar',
      [NODE_METADATA.service]: opts.service,
      [NODE_METADATA.namespace]: opts.namespace,
      [NODE_METADATA.localSds]: 'true',
    };
    const agent = new CertificateAgent({
      server: opts.xds,
      credentials: controlPlaneCredentials(opts.caFile),
      nodeId: opts.nodeId,
      metadata,
      spiffeId: spiffeId(opts.trustDomain ?? DEFAULT_TRUST_DOMAIN, opts.namespace, opts.service),
      joinToken,
      secrets,
      log: opts.log,
    });
    cleanUp.push(() => agent.stop());
    const bootstrap = envoyBootstrap({
      xds: opts.xds,
      service: opts.service,
      namespace: opts.namespace,
      nodeId: opts.nodeId,
      zone: opts.zone,
      caFile: opts.caFile,
      joinToken,
      adminPort: opts.adminPort,
      outboundPort: opts.outboundPort,
      inboundPort: opts.inboundPort,
      appPort: opts.appPort,
      sdsSocket: sds.socketPath,
    });
    const file = path.join(dir, 'envoy.json');
    // It holds the join token: readable by this user only (the directory is 0700 too).
    fs.writeFileSync(file, JSON.stringify(bootstrap, null, 2), { mode: 0o600 });
    agent.start();
    // Envoy's shared memory is keyed by --base-id: weft run's pid keeps several units on one host apart.
    const child = spawn(opts.binary, ['-c', file, '--base-id', String(process.pid), '--log-level', 'warn'], { detached: true, stdio: ['ignore', 'inherit', 'inherit'] });
    const guard = child.pid !== undefined ? UnitGuard.start({ processGroup: child.pid, graceMs: opts.stopGraceMs ?? 10_000, paths: [dir] }) : undefined;
    opts.log('info', 'envoy started', { binary: opts.binary, pid: child.pid, bootstrap: file, admin: opts.adminPort, sdsSocket: sds.socketPath });
    return new EnvoySidecar(child, opts.adminPort, dir, guard, sds, agent, opts);
  } catch (err) {
    for (const c of cleanUp.reverse()) await c();
    throw err;
  }
}
