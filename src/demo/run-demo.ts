// The demo mesh behind `npm start`: the control plane on the embedded store
// (config from examples/mesh), the e-commerce services each under
// `weft run`, and a small load generator. Ctrl-C stops it all, apps first.
// Only the ports a user opens are fixed (--port, --api-port, --xds-port);
// the apps listen on free ones, so a second demo beside the first comes up too.
// Each unit runs in a directory of its own under the data directory, where
// its plugins (examples/mesh/plugins.yaml) keep its shipped log and, for
// order, its orders and their backups.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { startControlPlane } from '../control/control-plane';
import type { Logger } from '../observe/log';
import { portHolders } from '../run/listening-ports';
import { freePort } from '../run/free-port';
import { TransparentUnavailableError, transparentUnavailable, unitName } from '../run/transparent/unit-network';

export interface DemoOptions {
  root: string;
  dataDir: string;
  apiPort: number;
  xdsPort: number;
  storefrontPort: number;
  /** Requests per second of the load generator; 0 turns it off. */
  loadRate: number;
  log: Logger;
  /** Where the apps' and sidecars' output goes (prefixed by service). */
  out: NodeJS.WritableStream;
  /** The config directory (default: examples/mesh; a test passes a copy it may break). */
  configDir?: string;
  /** Ports of the apps other than the storefront, by service (default: free ports). */
  appPorts?: Partial<Record<'payment' | 'product' | 'product-v2' | 'order', number>>;
  /**
   * The services behind the storefront as transparent units (`weft run --transparent --egress mesh-only`):
   * each app in a network namespace of its own, calling the others by name with no proxy setting.
   * The storefront stays in HTTP_PROXY mode: it is the edge people's browsers reach on 127.0.0.1.
   */
  transparent?: boolean;
}

interface DemoApp {
  service: string;
  port: number;
  command: string[];
  env?: Record<string, string>;
}

/** A unit's ports: its program's, and its sidecar's for the program's calls and for callers. */
export interface DemoUnitPorts {
  service: string;
  appPort: number;
  outboundPort: number;
  inboundPort: number;
}

export interface Demo {
  apiPort: number;
  /** The units' working directories: <data dir>/units/<service> (app-log.ndjson, order's orders.json and backups/). */
  unitsDir: string;
  storefrontUrl: string;
  /** The ports the demo chose for each unit. */
  units: DemoUnitPorts[];
  /** Resolves once every unit (weft run + app) has exited, with how each ended ("payment: code 1"). */
  allExited: Promise<string[]>;
  stop(): Promise<void>;
}

/** A port the demo must open is taken; the message names it and, where /proc tells, who holds it. */
export class DemoPortInUseError extends Error {
  readonly code = 'E_DEMO_PORT_IN_USE';
}

export async function startDemo(opts: DemoOptions): Promise<Demo> {
  // Said before anything starts: otherwise a taken port shows as five units failing one by one.
  await assertPortFree(opts.storefrontPort, 'the shop, --port');
  await assertPortFree(opts.apiPort, 'the admin API, --api-port');
  await assertPortFree(opts.xdsPort, 'xDS, --xds-port');
  const cannot = opts.transparent ? transparentUnavailable() : undefined;
  if (cannot) throw new TransparentUnavailableError(`weft demo --transparent: ${cannot}`);
  const cp = await startControlPlane({
    configDir: opts.configDir ?? path.join(opts.root, 'examples/mesh'),
    dataDir: opts.dataDir,
    apiPort: opts.apiPort,
    xdsPort: opts.xdsPort,
    log: opts.log,
    // The demo runs on one laptop: plaintext xDS and token-less certificates.
    dev: true,
  });
  const apps = path.join(opts.root, 'examples/apps');
  const demoApps: DemoApp[] = [
    { service: 'payment', port: opts.appPorts?.['payment'] ?? (await freePort()), command: ['python3', path.join(apps, 'payment.py')] },
    { service: 'product', port: opts.appPorts?.['product'] ?? (await freePort()), command: [process.execPath, path.join(apps, 'product.js')], env: { VERSION: 'v1' } },
    { service: 'product-v2', port: opts.appPorts?.['product-v2'] ?? (await freePort()), command: [process.execPath, path.join(apps, 'product.js')], env: { VERSION: 'v2' } },
    { service: 'order', port: opts.appPorts?.['order'] ?? (await freePort()), command: [process.execPath, path.join(apps, 'order.js')], env: { ORDERS_FILE: 'orders.json' } },
    { service: 'storefront', port: opts.storefrontPort, command: [process.execPath, path.join(apps, 'storefront.js')] },
  ];
  const appPorts = demoApps.map((app) => app.port);
  const units: DemoUnitPorts[] = [];
  const transparentUnit = (app: DemoApp) => opts.transparent === true && app.service !== 'storefront';
  const children: ChildProcess[] = [];
  const endings: Promise<string>[] = [];
  const bin = path.join(opts.root, 'bin/weft.js');
  const unitsDir = path.resolve(opts.dataDir, 'units');
  for (const app of demoApps) {
    const cwd = path.join(unitsDir, app.service);
    // The unit's sidecar ports are chosen here too, by the chooser that chose the apps' ports (which
    // never hands a port out twice), and never the shop's. Each `weft run` choosing its own, at the same
    // moment in its own process, could take another unit's app port before that app had bound it: the
    // app then failed with EADDRINUSE.
    const ports: DemoUnitPorts = { service: app.service, appPort: app.port, outboundPort: await freePort(appPorts), inboundPort: await freePort(appPorts) };
    units.push(ports);
    const sidecarPorts = ['--outbound-port', String(ports.outboundPort), '--inbound-port', String(ports.inboundPort)];
    fs.mkdirSync(cwd, { recursive: true });
    const child = spawn(
      process.execPath,
      [bin, 'run', ...(transparentUnit(app) ? ['--transparent', '--egress', 'mesh-only'] : []), '--service', app.service, '--port', String(app.port), ...sidecarPorts, '--xds', `127.0.0.1:${cp.xdsPort}`, '--api', `http://127.0.0.1:${cp.apiPort}`, '--log-level', 'warn', '--', ...app.command],
      // Own process groups: Ctrl-C reaches the demo only, which stops each unit in order.
      { cwd, env: { ...process.env, ...app.env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true },
    );
    prefixLines(child.stdout!, `[${app.service}] `, opts.out);
    prefixLines(child.stderr!, `[${app.service}] `, opts.out);
    // Said here because the demo keeps weft run's info lines (its 'sidecar ready' names the unit) quiet.
    if (transparentUnit(app) && child.pid !== undefined) {
      const unit = unitName(child.pid);
      opts.out.write(`[${app.service}] transparent unit ${unit} (look inside: sudo ip netns exec ${unit} sh)\n`);
    }
    const ended = new Promise<string>((resolve) =>
      child.on('exit', (code, signal) => {
        const how = signal ? `on ${signal}` : `with code ${code}`;
        opts.out.write(`[${app.service}] exited ${how}\n`);
        resolve(`${app.service} ${how}`);
      }),
    );
    endings.push(ended);
    children.push(child);
  }
  const storefrontUrl = `http://127.0.0.1:${opts.storefrontPort}/`;
  const load = opts.loadRate > 0 ? startLoad(storefrontUrl, opts.loadRate) : undefined;

  return {
    apiPort: cp.apiPort,
    unitsDir,
    storefrontUrl,
    units,
    allExited: Promise.all(endings),
    async stop() {
      load?.stop();
      await Promise.all(
        children.map(
          (c) =>
            new Promise<void>((resolve) => {
              if (c.exitCode !== null || c.signalCode !== null) return resolve();
              c.once('exit', () => resolve());
              c.kill('SIGTERM');
              setTimeout(() => c.kill('SIGKILL'), 15_000).unref();
            }),
        ),
      );
      await cp.close();
    },
  };
}

/** Fails with the port, its purpose and who holds it when the demo cannot listen there (0: any port, not checked). */
async function assertPortFree(port: number, what: string): Promise<void> {
  if (port === 0) return;
  const err = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
    const probe = net.createServer();
    probe.once('error', resolve);
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(undefined)));
  });
  if (!err) return;
  if (err.code !== 'EADDRINUSE') throw new DemoPortInUseError(`cannot listen on 127.0.0.1:${port} (${what}): ${err.message}`);
  const holders = portHolders(port);
  const by = holders?.length ? ` by ${holders.join(', ')}` : '';
  throw new DemoPortInUseError(`port ${port} (${what}) is already in use${by}: stop it, or choose another port (weft demo --help)`);
}

/** Browses and buys at a steady rate; failures are expected while the mesh starts. */
function startLoad(storefrontUrl: string, rate: number): { stop(): void } {
  let i = 0;
  const timer = setInterval(() => {
    i++;
    const url = i % 10 === 0 ? `${storefrontUrl}buy?id=${1 + (i % 4)}&amount=${10 + (i % 50)}` : storefrontUrl;
    fetch(url, { redirect: 'manual', signal: AbortSignal.timeout(5000) })
      .then((r) => r.arrayBuffer())
      .catch(() => {});
  }, 1000 / rate);
  return { stop: () => clearInterval(timer) };
}

function prefixLines(stream: NodeJS.ReadableStream, prefix: string, out: NodeJS.WritableStream): void {
  let partial = '';
  stream.setEncoding('utf8');
  stream.on('data', (text: string) => {
    const lines = (partial + text).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) out.write(prefix + line + '\n');
  });
}
