// `weft plugin monitor`: probes the app every `interval` (probe.ts) and tells
// weft run its health over the unit channel (PUT /v1/health) when the verdict
// changes (health-thresholds.ts). weft run puts that health in the
// instance's registration, and an unhealthy endpoint is UNHEALTHY in the
// callers' EDS: their sidecars stop picking it before requests fail on it.
// A report the channel did not take is sent again at the next probe. SIGHUP
// reloads the config; SIGTERM ends the plugin with exit code 0.
import { monitorConfigSchema, type MonitorConfig } from '../builtin-plugins';
import { PluginConfigError, pluginRuntime, unitRequest } from '../plugin-runtime';
import type { Logger } from '../../observe/log';
import { HealthThresholds, type Verdict } from './health-thresholds';
import { describeProbe, parseProbe, ProbeSpecError, runProbe, type Probe, type ProbeResult } from './probe';

export interface MonitorOptions {
  config: MonitorConfig;
  /** Where the app listens (the unit channel's GET /v1/unit), for a probe that is a path or none. */
  app: { host: string; port?: number };
  /** Sends a verdict; a rejection means it was not taken and is sent again after the next probe. */
  report: (health: Verdict, reason: string) => Promise<void>;
  log: Logger;
  /** For exec probes: the app's environment and working directory (the plugin's). */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/** The probe loop: one probe at a time, the next `interval` after the last one started. */
export class Monitor {
  private probe: Probe;
  private readonly thresholds: HealthThresholds;
  private config: MonitorConfig;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** A verdict the channel has not taken yet. */
  private unsent: { health: Verdict; reason: string } | undefined;
  private running: Promise<void> | undefined;

  constructor(private readonly opts: MonitorOptions) {
    this.config = opts.config;
    this.probe = parseProbe(opts.config.probe, opts.app);
    this.thresholds = new HealthThresholds(opts.config);
  }

  start(): void {
    this.opts.log('info', 'monitor started', { probe: describeProbe(this.probe), interval: this.config.interval, timeout: this.config.timeout, failureThreshold: this.config.failureThreshold, successThreshold: this.config.successThreshold });
    this.schedule(0);
  }

  /** The verdict so far (undefined until a streak reached its threshold). */
  get verdict(): Verdict | undefined {
    return this.thresholds.verdict;
  }

  /** A new config: the probe and thresholds apply from the next probe (a bad probe is refused and the old one stays). */
  reload(config: MonitorConfig): void {
    const probe = parseProbe(config.probe, this.opts.app);
    this.config = config;
    this.probe = probe;
    this.thresholds.update(config);
    this.opts.log('info', 'monitor reloaded', { probe: describeProbe(probe), interval: config.interval });
    if (this.timer) {
      clearTimeout(this.timer);
      this.schedule(0);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.running = this.tick();
    }, delayMs);
  }

  private async tick(): Promise<void> {
    const started = Date.now();
    const probe = this.probe;
    const result = await runProbe(probe, this.config.timeout, { env: this.opts.env, cwd: this.opts.cwd });
    if (this.stopped) return;
    if (probe === this.probe) {
      const changed = this.thresholds.observe(result.ok);
      if (changed) this.unsent = { health: changed, reason: this.reason(changed, probe, result) };
    }
    if (this.unsent) await this.send(this.unsent);
    this.schedule(Math.max(0, this.config.interval - (Date.now() - started)));
  }

  private reason(verdict: Verdict, probe: Probe, result: ProbeResult): string {
    if (verdict === 'healthy') return `${describeProbe(probe)}: ${result.detail}`;
    return `${describeProbe(probe)}: ${result.detail} (${this.thresholds.failuresInARow} failed in a row)`;
  }

  private async send(v: { health: Verdict; reason: string }): Promise<void> {
    try {
      await this.opts.report(v.health, v.reason);
      if (this.unsent === v) this.unsent = undefined;
      this.opts.log(v.health === 'healthy' ? 'info' : 'warn', `app ${v.health}`, { reason: v.reason });
    } catch (err) {
      this.opts.log('warn', `could not report the app ${v.health}; will again after the next probe`, { error: (err as Error).message });
    }
  }
}

export async function runPlugin(_args: string[]): Promise<number> {
  const rt = pluginRuntime('monitor', monitorConfigSchema);
  // SIGHUP is handled from here; SIGTERM ends it by Node's default (it has nothing to save at stop).
  rt.ready();
  const socket = rt.unitSocket;
  if (!socket) throw new PluginConfigError('the monitor reports to weft run over its unit channel (WEFT_UNIT_SOCKET): run it as a Plugin of a service under weft run');
  const unit = (await unitRequest(socket, 'GET', '/v1/unit')).body as { appHost?: string; appPort?: number };
  const report = async (health: Verdict, reason: string) => {
    const res = await unitRequest(socket, 'PUT', '/v1/health', { health, reason });
    if (res.status !== 204) throw new Error(`the unit channel answered ${res.status}: ${JSON.stringify(res.body)}`);
  };
  let monitor: Monitor;
  try {
    monitor = new Monitor({ config: rt.config, app: { host: unit.appHost ?? '127.0.0.1', port: unit.appPort }, report, log: rt.log, env: process.env, cwd: process.cwd() });
  } catch (err) {
    if (err instanceof ProbeSpecError) throw new PluginConfigError(`config.global.probe: ${err.message}`);
    throw err;
  }
  rt.onReload((config) => {
    try {
      monitor.reload(config);
    } catch (err) {
      rt.log('error', `config not reloaded, the last one stays: ${(err as Error).message}`, { plugin: rt.name });
    }
  });
  monitor.start();
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', () => resolve());
    process.once('SIGINT', () => resolve());
  });
  await monitor.stop();
  return 0;
}
