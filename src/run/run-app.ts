// `weft run`: a program and its sidecar as one unit. The sidecar starts
// first and the app only once it is ready; the instance registers once the
// app accepts connections, and holds its lease while it runs. The unit exits
// with the app's exit code (so batch jobs finish), and SIGTERM drains:
// deregister-as-draining, wait, stop the app, then the sidecar.
import * as fs from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';
import * as net from 'node:net';
import * as path from 'node:path';
import type { Logger, LogLevel } from '../observe/log';
import type { TracingOptions } from '../observe/tracing/proxy-tracer';
import { startProxy, type Proxy, type ProxyOptions } from '../proxy/proxy';
import { freePort } from './free-port';
import { listeningAddresses } from './listening-ports';
import { AppOutput } from './plugins/app-output';
import { pluginQuery, startPlugins, type PluginSupervisor } from './plugins/plugin-supervisor';
import { UnitChannel } from './plugins/unit-channel';
import { RegistrationClient } from './registration-client';
import { TransparentUnit } from './transparent/transparent-unit';
import { TransparentUnavailableError, transparentUnavailable, type EgressMode } from './transparent/unit-network';
import { UnitGuard } from './unit-guard';
import { findEnvoyBinary, startEnvoySidecar, type Sidecar } from './envoy/envoy-sidecar';

/** How often `weft run` says what it is waiting for while the app has not yet listened on --port. */
const READY_PROGRESS_MS = 5000;

export interface RunOptions {
  service?: string;
  namespace: string;
  /** Where the app listens; absent for a client-only program (no registration). */
  port?: number;
  xds: string;
  api: string;
  /** The address other instances reach this one at. */
  address: string;
  zone?: string;
  outboundPort?: number;
  inboundPort?: number;
  adminPort?: number;
  /** The sidecar's metrics listener for other hosts and its bearer token file (see ProxyOptions); the file defaults to $WEFT_METRICS_TOKEN_FILE. */
  metricsAddress?: string;
  metricsTokenFile?: string;
  /** How long a draining instance keeps serving before its app is stopped. */
  drainMs: number;
  /** How long the app may take to exit after SIGTERM before SIGKILL. */
  stopGraceMs: number;
  /** How long to wait for the app to listen on --port before stopping it (default 60 s; 0: no limit). */
  readyTimeoutMs?: number;
  command: string[];
  log: Logger;
  /** The sidecar's tracing (weft run --otlp-endpoint / --trace-sample). */
  tracing?: TracingOptions;
  /** Called once the sidecar is ready (weft run lets its young generation follow traffic from then on). */
  onSidecarReady?: () => void;
  /** The sidecar's access log (a path, or '-' for stdout) and its sampling. */
  accessLog?: string;
  accessLogSample?: number;
  /** xDS over TLS verified with this root bundle; the join token for the service's certificate (see ProxyOptions). */
  caFile?: string;
  joinToken?: string;
  trustDomain?: string;
  /** The program in a network namespace of its own, its calls to services captured by name (transparent/). */
  transparent?: boolean;
  /** Transparent mode's other destinations: through the host (default) or refused. */
  egress?: EgressMode;
  /** The sidecar: weft proxy (default) or Envoy (envoy/envoy-sidecar.ts), its binary from --envoy-binary or PATH. */
  proxy?: 'weft' | 'envoy';
  envoyBinary?: string;
  /** weft proxy --concurrency: worker processes of the sidecar (default 1: the proxy runs in this process). */
  proxyConcurrency?: number;
  /** The log level of the sidecar's workers (they log on their own). */
  logLevel?: LogLevel;
}

export async function runApp(opts: RunOptions): Promise<number> {
  const { log } = opts;
  // Checked before anything starts: without a binary there is no sidecar to wait for.
  if (opts.proxy === 'envoy') {
    if (opts.transparent) throw new Error('--proxy envoy with --transparent is not supported yet (the unit\'s captured connections are handed to weft proxy\'s listeners in-process); use one or the other');
    const weftOnly = (['metricsAddress', 'tracing', 'accessLog'] as const).filter((k) => opts[k] !== undefined);
    if (weftOnly.length) throw new Error(`--proxy envoy: ${weftOnly.map((k) => ({ metricsAddress: '--metrics-address', tracing: '--otlp-endpoint', accessLog: '--access-log' })[k]).join(', ')} configure weft proxy, not Envoy (Envoy serves /stats/prometheus on its admin port)`);
    opts = { ...opts, envoyBinary: findEnvoyBinary(opts.envoyBinary) };
  }
  if ((opts.proxyConcurrency ?? 1) > 1 && (opts.transparent || opts.proxy === 'envoy')) {
    throw new Error(`--proxy-concurrency applies to weft proxy in HTTP_PROXY mode only (${opts.transparent ? '--transparent hands captured connections to listeners in this process' : 'Envoy has its own --concurrency'})`);
  }
  let unit: TransparentUnit | undefined;
  if (opts.transparent) {
    const why = transparentUnavailable();
    if (why) throw new TransparentUnavailableError(why);
    unit = TransparentUnit.create({ namespace: opts.namespace, egress: opts.egress ?? 'passthrough', log });
  }
  try {
    return await runUnit(opts, unit);
  } finally {
    await unit?.close();
  }
}

async function runUnit(opts: RunOptions, unit: TransparentUnit | undefined): Promise<number> {
  const { log } = opts;
  const appPorts = opts.port !== undefined ? [opts.port] : [];
  const outboundPort = opts.outboundPort ?? (await freePort(appPorts));
  // A client-only program of a service gets an inbound listener too (the service's); a port of its own, so several share a host.
  const inboundPort = opts.port !== undefined || opts.service ? (opts.inboundPort ?? (await freePort([...appPorts, outboundPort]))) : undefined;
  const workers = opts.proxyConcurrency ?? 1;
  const start = (o: ProxyOptions): Promise<Sidecar> =>
    workers > 1 ? (require('../proxy/workers/proxy-primary') as typeof import('../proxy/workers/proxy-primary')).startProxyWorkers(o, workers, opts.logLevel ?? 'info') : startProxy(o);
  const proxy: Sidecar = opts.proxy === 'envoy' ? await startEnvoy(opts, outboundPort, inboundPort) : await start({
    xds: opts.xds,
    nodeId: `${opts.service ?? 'client'}~${opts.address}~${process.pid}`,
    service: opts.service,
    namespace: opts.namespace,
    zone: opts.zone,
    outboundPort,
    inboundPort,
    appPort: opts.port,
    appAddress: unit?.appAddress,
    transparent: unit !== undefined,
    adminPort: opts.adminPort ?? 0,
    metricsAddress: opts.metricsAddress,
    metricsTokenFile: opts.metricsTokenFile ?? (process.env.WEFT_METRICS_TOKEN_FILE || undefined),
    log,
    tracing: opts.tracing,
    accessLog: opts.accessLog,
    accessLogSample: opts.accessLogSample,
    caFile: opts.caFile,
    joinToken: opts.joinToken ?? process.env.WEFT_JOIN_TOKEN,
    trustDomain: opts.trustDomain,
  });
  try {
    await proxy.waitReady(30_000);
    if (unit) await unit.attach(proxy as Proxy); // never an Envoy: refused with --transparent
  } catch (err) {
    await proxy.close();
    throw err;
  }
  opts.onSidecarReady?.();
  log('info', 'sidecar ready', {
    outbound: outboundPort,
    inbound: inboundPort,
    admin: proxy.adminPort,
    ...(proxy.metricsAddress ? { metrics: proxy.metricsAddress } : {}),
    ...(unit ? { unit: unit.network.name, appAddress: unit.appAddress, vips: unit.network.vipBlock, dns: unit.network.hostAddress } : {}),
  });

  const proxyUrl = `http://127.0.0.1:${outboundPort}`;
  const command = unit ? unit.command(opts.command) : opts.command;
  const env = unit ? transparentEnv(opts) : proxyEnv(opts, proxyUrl);
  // Init plugins run to completion first; general ones start beside the app (plugins/plugin-supervisor.ts).
  // They reach weft run on the unit channel, which also hands them the app's output.
  const output = opts.service ? new AppOutput() : undefined;
  const channel = opts.service ? await UnitChannel.open({ service: opts.service, namespace: opts.namespace, appPort: opts.port, appHost: '127.0.0.1' }, output, log) : undefined;
  try {
    return await runWithPlugins(opts, unit, proxy, { command, env, inboundPort, output, channel });
  } finally {
    await channel?.close();
  }
}

async function runWithPlugins(
  opts: RunOptions,
  unit: TransparentUnit | undefined,
  proxy: Sidecar,
  a: { command: string[]; env: NodeJS.ProcessEnv; inboundPort: number | undefined; output: AppOutput | undefined; channel: UnitChannel | undefined },
): Promise<number> {
  const { log } = opts;
  const { command, env, inboundPort } = a;
  const plugins = await startPlugins(pluginQuery(opts), { env, cwd: process.cwd(), wrap: unit && ((argv) => unit.command(argv)), channel: a.channel, stopGraceMs: opts.stopGraceMs, log });
  if (!plugins) return (await proxy.close(), 1);
  // The app's output is piped (and passed on unchanged) only when a plugin runs beside it to read it.
  const capture = a.output !== undefined && plugins.hasGeneral;
  const app = spawn(command[0], command.slice(1), {
    stdio: capture ? ['inherit', 'pipe', 'pipe'] : 'inherit',
    // Its own process group: a Ctrl-C at the terminal reaches weft run, which drains before stopping the app.
    detached: true,
    env,
  });
  if (capture) {
    a.output!.tee(app.stdout!, 'stdout', process.stdout);
    a.output!.tee(app.stderr!, 'stderr', process.stderr);
  }
  // From here the app's end is guarded: a SIGKILL of weft run stops it and removes the unit's network.
  const guard = app.pid !== undefined ? UnitGuard.start({ processGroup: app.pid, graceMs: opts.stopGraceMs, ...unit?.cleanup() }) : undefined;
  const result = await superviseApp(opts, app, proxy, inboundPort, unit?.appAddress ?? '127.0.0.1', plugins, a.channel);
  await plugins.stop();
  await unit?.close();
  await guard?.release();
  return result;
}

/** Envoy as the sidecar, on the ports weft run chose and an admin port of its own. */
async function startEnvoy(opts: RunOptions, outboundPort: number, inboundPort: number | undefined): Promise<Sidecar> {
  const taken = [opts.port, outboundPort, inboundPort].filter((p): p is number => p !== undefined);
  return startEnvoySidecar({
    ...opts,
    binary: opts.envoyBinary!,
    nodeId: `${opts.service ?? 'client'}~${opts.address}~${process.pid}`,
    outboundPort,
    inboundPort,
    appPort: opts.port,
    adminPort: opts.adminPort ?? (await freePort(taken)),
    joinToken: opts.joinToken ?? process.env.WEFT_JOIN_TOKEN,
  });
}

/** The environment of an app in HTTP_PROXY mode: its calls to the mesh go to the sidecar as an HTTP proxy. */
function proxyEnv(opts: RunOptions, proxyUrl: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    HTTP_PROXY: proxyUrl,
    http_proxy: proxyUrl,
    // Calls to the mesh go through the sidecar, local ones do not.
    NO_PROXY: 'localhost,127.0.0.1',
    no_proxy: 'localhost,127.0.0.1',
    // Node's http client and fetch ignore HTTP_PROXY: Node 24 (and late 22) follow it with
    // NODE_USE_ENV_PROXY, and every Node line with weft's preload (node-proxy-preload.ts).
    NODE_USE_ENV_PROXY: '1',
    NODE_OPTIONS: withPreload(process.env.NODE_OPTIONS, path.join(__dirname, 'node-proxy-preload.js')),
    WEFT_SERVICE: opts.service ?? '',
    WEFT_OUTBOUND: proxyUrl,
    ...(opts.port !== undefined ? { PORT: String(opts.port) } : {}),
  };
}

/** The environment of a transparent unit's app: no proxy settings (a proxy on the host's loopback is not the unit's). */
function transparentEnv(opts: RunOptions): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, WEFT_SERVICE: opts.service ?? '', ...(opts.port !== undefined ? { PORT: String(opts.port) } : {}) };
  for (const k of ['HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy', 'ALL_PROXY', 'all_proxy', 'NO_PROXY', 'no_proxy', 'NODE_USE_ENV_PROXY']) delete env[k];
  return env;
}

/** Registers the app once it listens, drains on SIGTERM, and returns its exit code once it and the sidecar have stopped. */
async function superviseApp(
  opts: RunOptions,
  app: ChildProcess,
  proxy: Sidecar,
  inboundPort: number | undefined,
  appHost: string,
  plugins: PluginSupervisor,
  channel: UnitChannel | undefined,
): Promise<number> {
  const { log } = opts;
  // If weft run itself goes away (an uncaught error, process.exit), the app goes too:
  // in its own process group it would otherwise outlive its sidecar.
  const killOrphan = () => {
    if (app.exitCode === null && app.signalCode === null) app.kill('SIGKILL');
  };
  process.once('exit', killOrphan);
  const exited = new Promise<number>((resolve) => {
    app.once('exit', (code, signal) => resolve(code ?? (signal ? 128 + signalNumber(signal) : 1)));
    app.once('error', (err) => {
      log('error', 'cannot start the app', { command: opts.command.join(' '), error: err.message });
      resolve(127);
    });
  });

  // Signals are ours from the moment the app exists: a SIGTERM during start-up must not orphan it.
  let registration: RegistrationClient | undefined;
  let draining = false;
  const drain = async (signal: NodeJS.Signals) => {
    if (draining) return;
    draining = true;
    log('info', 'draining', { signal, drainMs: opts.drainMs });
    await registration?.markDraining();
    await sleep(opts.drainMs);
    stopApp(app, opts.stopGraceMs);
  };
  const onSignal = (signal: NodeJS.Signals) => void drain(signal);
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  if (opts.port !== undefined && opts.service) {
    const port = opts.port;
    const timeoutMs = opts.readyTimeoutMs ?? 60_000;
    let appExited = false;
    void exited.then(() => (appExited = true));
    const progress = (waitedMs: number) => log('info', `waiting for ${opts.command[0]} to listen on ${appHost}:${port} (${Math.round(waitedMs / 1000)} s)`);
    const reachable = await waitForPort(appHost, port, timeoutMs, () => appExited || draining, progress);
    if (!reachable && !appExited && !draining) {
      // A wrong --port would otherwise leave an instance that never joins the mesh: stop it and say what it listens on instead.
      const actual = app.pid !== undefined ? listeningAddresses(app.pid) : undefined;
      const hint = actual === undefined ? '' : actual.length ? ` (it listens on: ${actual.join(', ')})` : ' (it listens on no TCP port)';
      log('error', `${opts.command[0]} did not listen on ${appHost === '127.0.0.1' ? appHost : '127.0.0.1 or 0.0.0.0 in its unit'}:${port} within ${formatDuration(timeoutMs)}: is --port the port your program listens on?${hint}`, {
        readyTimeout: formatDuration(timeoutMs),
      });
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      stopApp(app, opts.stopGraceMs);
      await exited;
      await proxy.close();
      return 1;
    }
    if (reachable && !draining) {
      registration = new RegistrationClient(opts.api, log, opts.joinToken ?? process.env.WEFT_JOIN_TOKEN, opts.caFile ? fs.readFileSync(opts.caFile, 'utf8') : undefined);
      // The app's health as a plugin (the monitor) reports it: an unhealthy instance leaves load balancing.
      const client = registration;
      channel?.onHealth((health, reason) => void client.setHealth(health, reason));
      try {
        // As long as the app may take to listen, the control plane may take to answer (0: no limit).
        const retryForMs = timeoutMs === 0 ? Infinity : timeoutMs;
        await registration.register({ service: opts.service, namespace: opts.namespace, address: opts.address, port: inboundPort!, zone: opts.zone }, { plugins: () => plugins.states(), retryForMs });
      } catch (err) {
        registration = undefined;
        // Stopping anyway (a SIGTERM while it was still trying): the drain stops the app.
        if (!draining) {
          // An instance that cannot join the mesh should not pretend to: stop it and say why.
          log('error', 'registration failed; stopping the app', { error: String(err) });
          stopApp(app, opts.stopGraceMs);
          await exited;
          await proxy.close();
          return 1;
        }
      }
    }
  }

  const code = await exited;
  process.off('SIGTERM', onSignal);
  process.off('SIGINT', onSignal);
  log('info', 'app exited', { code });
  await registration?.deregister();
  await plugins.stop(); // after the app, while the sidecar still carries what they send
  await proxy.close();
  return code;
}

/** NODE_OPTIONS with `--require <file>` added (quoted: NODE_OPTIONS splits on spaces). */
export function withPreload(nodeOptions: string | undefined, file: string): string {
  const arg = `--require "${file.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
  return nodeOptions ? `${nodeOptions} ${arg}` : arg;
}

function stopApp(app: ChildProcess, graceMs: number): void {
  if (app.exitCode !== null || app.signalCode !== null) return;
  app.kill('SIGTERM');
  const timer = setTimeout(() => app.kill('SIGKILL'), graceMs);
  timer.unref();
  app.once('exit', () => clearTimeout(timer));
}


/**
 * True once something accepts connections on host:port; false after
 * timeoutMs (0: never) or once `cancelled()`. Calls `progress` every READY_PROGRESS_MS.
 */
async function waitForPort(host: string, port: number, timeoutMs: number, cancelled: () => boolean, progress: (waitedMs: number) => void): Promise<boolean> {
  const start = Date.now();
  let nextProgress = start + READY_PROGRESS_MS;
  while (!cancelled() && (timeoutMs === 0 || Date.now() - start < timeoutMs)) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host, port }, () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return true;
    if (Date.now() >= nextProgress) {
      progress(Date.now() - start);
      nextProgress += READY_PROGRESS_MS;
    }
    await sleep(50);
  }
  return false;
}

/** 60000 → "60s", 120000 → "2m", 1500 → "1500ms": a duration as --ready-timeout takes it. */
export function formatDuration(ms: number): string {
  if (ms % 1000 !== 0) return `${ms}ms`;
  const s = ms / 1000;
  if (s % 3600 === 0) return `${s / 3600}h`;
  if (s % 60 === 0 && s >= 120) return `${s / 60}m`;
  return `${s}s`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function signalNumber(signal: NodeJS.Signals): number {
  return ({ SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 } as Record<string, number>)[signal] ?? 1;
}
