// The plugins of a `weft run` unit (the Plugin kind, config/plugin-config.ts).
// Init plugins run one after the other, each to completion, after the sidecar
// is ready and before the app: a failure stops the unit and the app never
// starts. General plugins run beside the app for as long as it runs, are
// restarted by their policy with exponential backoff (counted), and are
// stopped after the app. Each gets the app's environment, working directory
// and (transparent mode) network namespace, plus WEFT_PLUGIN_NAME,
// WEFT_PLUGIN_TYPE, WEFT_PLUGIN_CONFIG (and the same JSON in the file
// WEFT_PLUGIN_CONFIG_FILE) and WEFT_UNIT_SOCKET (unit-channel.ts). A command
// `[weft, …]` runs the same weft as weft run (the built-in plugins,
// src/plugins/). Their output goes to weft run's, each line tagged
// "[plugin <name>]".
//
// Each plugin is a process group of its own, watched by a UnitGuard: if weft
// run is SIGKILLed, the guard stops the plugin as it stops the app.
//
// A built-in general plugin says on the unit channel when it handles SIGTERM
// and SIGHUP (PUT /v1/plugins/ready); until then weft run sends it neither,
// for at most the stop grace. A node process killed by a signal it has no
// handler for yet loses its stop work: a unit stopped a moment after its
// start would otherwise end without the backup plugin's last backup.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';
import type { ResolvedPlugin } from '../../config/plugin-config';
import type { Logger } from '../../observe/log';
import type { PluginStatus } from '../../registry/registry';
import { UnitGuard } from '../unit-guard';
import { PluginCgroup, sweepStaleCgroups } from './plugin-cgroup';
import { installPackage, packageCommand, PluginPackageError } from './plugin-package';
import type { UnitChannel } from './unit-channel';
import { fetchPlugins, PluginFetchError, watchPlugins, type PluginQuery } from './plugin-client';
import { processAlive } from '../process-alive';

/** Stderr lines of a plugin kept for the error that names why it failed. */
const STDERR_TAIL = 10;
/** How long output a plugin wrote before it exited may still be read after it has. */
const OUTPUT_AFTER_EXIT_MS = 1000;
/** A run at least this long resets a plugin's backoff (a slow start under load is still a crash loop). */
const HEALTHY_RUN_MS = 10_000;

export interface PluginContext {
  /** The app's environment (proxy or transparent mode), which plugins share. */
  env: NodeJS.ProcessEnv;
  /** The app's working directory; a plugin's relative workingDir is relative to it. */
  cwd: string;
  /** Transparent mode: the prefix that runs a command inside the unit (TransparentUnit.command). */
  wrap?: (argv: string[]) => string[];
  /** The unit's channel for plugins (its socket and the directory of their config files). */
  channel?: UnitChannel;
  /** SIGTERM to SIGKILL when stopping a plugin. */
  stopGraceMs: number;
  log: Logger;
  /** Where tagged output goes (default weft run's stdout and stderr). */
  stdout?: NodeJS.WritableStream;
  stderr?: NodeJS.WritableStream;
}

export class PluginInitError extends Error {
  readonly code = 'E_PLUGIN_INIT';
}

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The program could not be started (ENOENT, EACCES). */
  error?: string;
  /** The kernel killed it at its cgroup's memory limit. */
  outOfMemory?: boolean;
  stderrTail: string[];
}

/** A general plugin: its current process and how often it was restarted. */
interface Running {
  plugin: ResolvedPlugin;
  cgroup?: PluginCgroup;
  child?: ChildProcess;
  exited?: Promise<Exit>;
  /** Resolves once the process handles SIGTERM and SIGHUP (absent for a program that does not say). */
  ready?: Promise<void>;
  restarts: number;
  timer?: NodeJS.Timeout;
  /** Stopped for good (removed from the mesh, or replaced by a changed one): not restarted. */
  retired?: boolean;
  state: PluginStatus['state'];
  lastExit?: string;
}

export class PluginSupervisor {
  private readonly running: Running[] = [];
  private stopping = false;
  private stopWatch: (() => void) | undefined;
  private updating: Promise<void> = Promise.resolve();
  /** The argv of plugins whose program comes from an npm package, once installed. */
  private readonly packaged = new Map<string, string[]>();

  constructor(private readonly ctx: PluginContext) {}

  /** Installs the npm packages of `plugins` (once per spec, cached on the host); throws PluginPackageError. */
  async prepare(plugins: readonly ResolvedPlugin[]): Promise<void> {
    for (const plugin of plugins) {
      if (plugin.npm === undefined) {
        this.packaged.delete(plugin.name);
        continue;
      }
      const dir = await installPackage(plugin.npm, this.ctx.log);
      this.packaged.set(plugin.name, packageCommand(dir, plugin.command, plugin.npm));
    }
  }

  /** Runs the init plugins in order (the list's order: the API sorts them); throws PluginInitError at the first failure. */
  async runInit(plugins: readonly ResolvedPlugin[]): Promise<void> {
    for (const plugin of plugins.filter((p) => p.type === 'init')) {
      if (this.stopping) throw new PluginInitError(`init plugin ${plugin.name} not run: the unit is stopping`);
      this.ctx.log('info', 'init plugin starting', { plugin: plugin.name, command: plugin.command.join(' ') });
      const started = Date.now();
      const cgroup = this.cgroupFor(plugin);
      const { exited } = this.spawnPlugin(plugin, cgroup);
      const exit = await exited;
      cgroup?.remove();
      if (exit.code !== 0) throw new PluginInitError(`init plugin ${plugin.name} failed (${describeExit(exit)})${exit.stderrTail.length ? `: ${exit.stderrTail.join('\n')}` : ''}`);
      this.ctx.log('info', 'init plugin done', { plugin: plugin.name, ms: Date.now() - started });
    }
  }

  /** Starts the general plugins beside the app. */
  startGeneral(plugins: readonly ResolvedPlugin[]): void {
    for (const plugin of plugins.filter((p) => p.type === 'general')) this.startOne(plugin);
  }

  /**
   * Brings the general plugins in line with the mesh's new list: new ones
   * start, removed ones stop, a changed one takes its new config by SIGHUP
   * (configReload Signal, when only its config changed) or is restarted.
   * Init plugins ran before the app; a change to them applies at the next start.
   */
  update(plugins: readonly ResolvedPlugin[]): Promise<void> {
    // One change at a time: a second answer waits until the first one's restarts are done.
    this.updating = this.updating.then(() => this.prepareAndApply(plugins));
    return this.updating;
  }

  private async applyUpdate(plugins: readonly ResolvedPlugin[]): Promise<void> {
    if (this.stopping) return;
    const next = new Map(plugins.filter((p) => p.type === 'general').map((p) => [p.name, p]));
    const work: Promise<void>[] = [];
    for (const r of [...this.running]) {
      const plugin = next.get(r.plugin.name);
      next.delete(r.plugin.name);
      if (!plugin) {
        this.ctx.log('info', 'plugin removed from the mesh; stopping it', { plugin: r.plugin.name });
        work.push(this.retire(r));
      } else if (JSON.stringify(plugin) === JSON.stringify(r.plugin)) {
        continue;
      } else if (plugin.configReload === 'Signal' && sameButConfig(plugin, r.plugin) && r.child && r.child.exitCode === null && r.child.signalCode === null) {
        r.plugin = plugin;
        this.writeConfig(plugin);
        this.ctx.log('info', 'plugin config changed; sent SIGHUP', { plugin: plugin.name });
        const child = r.child;
        work.push(this.untilReady(r).then(() => void child.kill('SIGHUP')));
      } else {
        this.ctx.log('info', 'plugin changed; restarting it', { plugin: plugin.name });
        work.push(this.retire(r).then(() => void (this.stopping || this.startOne(plugin, r.restarts))));
      }
    }
    for (const plugin of next.values()) this.startOne(plugin);
    await Promise.all(work);
  }

  /** applyUpdate, with the packages of new and changed plugins installed first (a failed install leaves the unit as it was). */
  private async prepareAndApply(plugins: readonly ResolvedPlugin[]): Promise<void> {
    try {
      await this.prepare(plugins.filter((p) => p.type === 'general'));
    } catch (err) {
      this.ctx.log('error', `plugin change not applied: ${(err as Error).message}`, { code: (err as PluginPackageError).code });
      return;
    }
    await this.applyUpdate(plugins);
  }

  private startOne(plugin: ResolvedPlugin, restarts = 0): void {
    const r: Running = { plugin, restarts, state: 'running' };
    this.running.push(r);
    this.ctx.log('info', 'plugin starting', { plugin: plugin.name, command: plugin.command.join(' '), restartPolicy: plugin.restartPolicy });
    this.keep(r, 0);
  }

  /** Stops `r` for good and forgets it. */
  private async retire(r: Running): Promise<void> {
    r.retired = true;
    this.running.splice(this.running.indexOf(r), 1);
    await this.stopOne(r);
  }

  /** Whether general plugins run beside the app. */
  get hasGeneral(): boolean {
    return this.running.length > 0;
  }

  /** Hands over the stop function of the watch that feeds update(): stop() ends it. */
  follow(stopWatch: () => void): void {
    this.stopWatch = stopWatch;
  }

  /** The general plugins' state, as the instance's registration reports it (`weft status`, the dashboard). */
  states(): PluginStatus[] {
    return this.running.map((r) => ({
      name: r.plugin.name,
      type: r.plugin.type,
      state: r.state,
      restarts: r.restarts,
      ...(r.lastExit !== undefined ? { lastExit: r.lastExit } : {}),
    }));
  }

  /** Stops every plugin (SIGTERM to its process group, SIGKILL after the grace) and waits until they have exited. Idempotent. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.stopWatch?.();
    await Promise.all(this.running.map((r) => this.stopOne(r)));
  }

  private async stopOne(r: Running): Promise<void> {
    clearTimeout(r.timer);
    if (!r.child || !r.exited) return;
    if (r.child.exitCode === null && r.child.signalCode === null) this.ctx.log('info', 'plugin stopping', { plugin: r.plugin.name });
    await this.untilReady(r);
    signalGroup(r.child, 'SIGTERM');
    const timer = setTimeout(() => signalGroup(r.child!, 'SIGKILL'), this.ctx.stopGraceMs);
    await r.exited;
    clearTimeout(timer);
    r.cgroup?.remove();
  }

  /** Until `r`'s process is ready for signals, has exited, or the stop grace has passed. */
  private async untilReady(r: Running): Promise<void> {
    if (!r.ready || !r.exited) return;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), this.ctx.stopGraceMs)));
    const outcome = await Promise.race([r.ready, r.exited, late]);
    clearTimeout(timer);
    if (outcome === 'late') this.ctx.log('warn', `plugin ${r.plugin.name} did not say it was ready within ${this.ctx.stopGraceMs} ms; signalling it anyway`, { plugin: r.plugin.name });
  }

  /** Runs `r` and, by its policy, runs it again when it exits. `backoffStep`: failed runs in a row before this one. */
  private keep(r: Running, backoffStep: number): void {
    const { plugin } = r;
    const started = Date.now();
    r.cgroup ??= this.cgroupFor(plugin);
    const { child, exited, ready } = this.spawnPlugin(plugin, r.cgroup);
    r.child = child;
    r.exited = exited;
    r.ready = ready;
    r.state = 'running';
    void exited.then((exit) => {
      if (this.stopping || r.retired) return;
      const failed = exit.code !== 0;
      const again = plugin.restartPolicy === 'Always' || (plugin.restartPolicy === 'OnFailure' && failed);
      r.lastExit = describeExit(exit).slice(0, 200);
      r.state = again ? 'restarting' : failed ? 'failed' : 'exited';
      if (!again) {
        this.ctx.log(failed ? 'warn' : 'info', 'plugin exited; not restarted', { plugin: plugin.name, exit: describeExit(exit), restartPolicy: plugin.restartPolicy });
        return;
      }
      // A plugin that ran a while (the longest wait, at least HEALTHY_RUN_MS) was healthy: its backoff starts over.
      const step = Date.now() - started >= Math.max(plugin.restartBackoffMs.max, HEALTHY_RUN_MS) ? 0 : backoffStep;
      const delayMs = Math.min(plugin.restartBackoffMs.max, plugin.restartBackoffMs.min * 2 ** Math.min(step, 30));
      r.restarts += 1;
      this.ctx.log('warn', `plugin ${plugin.name} exited (${describeExit(exit)}); restart ${r.restarts} in ${delayMs} ms`, {
        plugin: plugin.name,
        restarts: r.restarts,
        delayMs,
        ...(exit.stderrTail.length ? { stderr: exit.stderrTail.slice(-3).join('\n') } : {}),
      });
      r.timer = setTimeout(() => {
        if (!this.stopping && !r.retired) this.keep(r, step + 1);
      }, delayMs);
    });
  }

  /** Writes the plugin's config where WEFT_PLUGIN_CONFIG_FILE points (atomically: a reload never reads half a file). */
  private writeConfig(plugin: ResolvedPlugin): string | undefined {
    if (!this.ctx.channel) return undefined;
    const file = path.join(this.ctx.channel.dir, `${plugin.name}.config.json`);
    fs.writeFileSync(file + '.tmp', JSON.stringify(plugin.config), { mode: 0o600 });
    fs.renameSync(file + '.tmp', file);
    return file;
  }

  /** The plugin's cgroup when it has limits (undefined, with a warning, where the host gives none). */
  private cgroupFor(plugin: ResolvedPlugin): PluginCgroup | undefined {
    return plugin.resources ? PluginCgroup.create(`${process.pid}-${plugin.name}`, plugin.resources, this.ctx.log, plugin.name) : undefined;
  }

  private spawnPlugin(plugin: ResolvedPlugin, cgroup?: PluginCgroup): { child: ChildProcess; exited: Promise<Exit>; ready?: Promise<void> } {
    const { ctx } = this;
    const command = this.packaged.get(plugin.name) ?? resolveWeft(plugin.command);
    const inUnit = ctx.wrap ? ctx.wrap(command) : command;
    const argv = cgroup ? cgroup.wrap(inUnit) : inUnit;
    const oomBefore = cgroup?.oomKills() ?? 0;
    const config = JSON.stringify(plugin.config);
    const env: NodeJS.ProcessEnv = {
      ...ctx.env,
      ...plugin.env,
      WEFT_PLUGIN_NAME: plugin.name,
      WEFT_PLUGIN_TYPE: plugin.type,
      WEFT_PLUGIN_CONFIG: config,
    };
    const file = this.writeConfig(plugin);
    let readiness: ReturnType<UnitChannel['whenReady']> | undefined;
    if (file && ctx.channel) {
      env.WEFT_PLUGIN_CONFIG_FILE = file;
      env.WEFT_UNIT_SOCKET = ctx.channel.socketPath;
      if (plugin.type === 'general' && saysWhenReady(command)) {
        env.WEFT_PLUGIN_INSTANCE = randomUUID();
        readiness = ctx.channel.whenReady(env.WEFT_PLUGIN_INSTANCE);
      }
    }
    const child = spawn(argv[0], argv.slice(1), {
      cwd: plugin.workingDir ? path.resolve(ctx.cwd, plugin.workingDir) : ctx.cwd,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group, so stop() reaches what it starts too, and a guard to stop it if weft run dies.
      detached: true,
    });
    const guard = child.pid !== undefined ? UnitGuard.start({ processGroup: child.pid, graceMs: ctx.stopGraceMs }) : undefined;
    const tail: string[] = [];
    const tag = `[plugin ${plugin.name}] `;
    const pipe = (from: NodeJS.ReadableStream, to: NodeJS.WritableStream, keep: boolean) =>
      new Promise<void>((resolve) => {
        const lines = readline.createInterface({ input: from, crlfDelay: Infinity });
        lines.on('line', (line) => {
          to.write(tag + line + '\n');
          if (keep) {
            tail.push(line);
            if (tail.length > STDERR_TAIL) tail.shift();
          }
        });
        lines.once('close', resolve);
      });
    const drained = Promise.all([pipe(child.stdout!, ctx.stdout ?? process.stdout, false), pipe(child.stderr!, ctx.stderr ?? process.stderr, true)]);
    const exited = new Promise<Exit>((resolve) => {
      child.once('error', (err) => resolve({ code: null, signal: null, error: err.message, stderrTail: tail }));
      child.once('exit', (code, signal) => resolve({ code, signal, stderrTail: tail, ...(cgroup && cgroup.oomKills() > oomBefore ? { outOfMemory: true } : {}) }));
    }).then(async (exit) => {
      // Its last lines, for the tail; not forever: something it started may hold the pipes open.
      if (exit.error === undefined) await Promise.race([drained, new Promise((r) => setTimeout(r, OUTPUT_AFTER_EXIT_MS).unref())]);
      await guard?.release();
      readiness?.forget();
      return exit;
    });
    return { child, exited, ...(readiness ? { ready: readiness.ready } : {}) };
  }
}

/** What to ask the control plane for a unit: nothing for a program that is no service's. */
export function pluginQuery(opts: { service?: string; namespace: string; api: string; joinToken?: string; caFile?: string; log: Logger }): PluginQuery | undefined {
  if (!opts.service) return undefined;
  const token = opts.joinToken ?? process.env.WEFT_JOIN_TOKEN;
  return { api: opts.api, service: opts.service, namespace: opts.namespace, token, ca: opts.caFile ? fs.readFileSync(opts.caFile, 'utf8') : undefined, log: opts.log };
}

/**
 * Fetches the plugins of the unit's service, runs its init plugins and starts
 * its general ones. Undefined when the unit must not start (the error is
 * logged): the plugins could not be fetched, or an init plugin failed.
 */
export async function startPlugins(query: PluginQuery | undefined, ctx: PluginContext): Promise<PluginSupervisor | undefined> {
  const supervisor = new PluginSupervisor(ctx);
  if (!query) return supervisor;
  try {
    const set = await fetchPlugins(query);
    const plugins = set.items;
    if (plugins.some((p) => p.resources)) sweepStaleCgroups(processAlive);
    if (plugins.length > 0) ctx.log('info', 'plugins', { init: plugins.filter((p) => p.type === 'init').map((p) => p.name), general: plugins.filter((p) => p.type === 'general').map((p) => p.name) });
    await supervisor.prepare(plugins);
    await supervisor.runInit(plugins);
    supervisor.startGeneral(plugins);
    supervisor.follow(watchPlugins(query, set.version, (next) => void supervisor.update(next.items)));
    return supervisor;
  } catch (err) {
    if (!(err instanceof PluginInitError || err instanceof PluginFetchError || err instanceof PluginPackageError)) throw err;
    ctx.log('error', `${err.message}; the app is not started`, { code: err.code });
    await supervisor.stop();
    return undefined;
  }
}


/** Whether two versions of a plugin differ in their config groups only. */
function sameButConfig(a: ResolvedPlugin, b: ResolvedPlugin): boolean {
  return JSON.stringify({ ...a, config: undefined }) === JSON.stringify({ ...b, config: undefined });
}

/** The weft that runs this code: bin/weft.js of the same checkout or package. */
const WEFT_BIN = path.resolve(__dirname, '../../../../bin/weft.js');

/** `[weft, …]` runs this weft with this node (weft need not be on PATH, and is the same version); other commands as given. */
export function resolveWeft(command: readonly string[]): string[] {
  return command[0] === 'weft' ? [process.execPath, WEFT_BIN, ...command.slice(1)] : [...command];
}

/** The built-in plugins (`weft plugin …`, PluginRuntime.ready) say when they handle signals; other programs are signalled at once. */
function saysWhenReady(command: readonly string[]): boolean {
  return command[0] === process.execPath && command[1] === WEFT_BIN && command[2] === 'plugin';
}

function describeExit(exit: Exit): string {
  if (exit.error !== undefined) return `could not start: ${exit.error}`;
  if (exit.outOfMemory) return `killed by ${exit.signal ?? 'the kernel'}: out of memory at its resources.memory limit`;
  return exit.signal ? `killed by ${exit.signal}` : `exit code ${exit.code}`;
}

function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    child.kill(signal);
  }
}
