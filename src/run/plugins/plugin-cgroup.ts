// A plugin's resource limits (spec.resources) as a cgroup of its own, where
// the host gives weft one: cgroup v2 (memory.max, cpu.max, pids.max in a
// `weft` group at the root of the unified hierarchy) or v1 (memory, cpu and
// pids hierarchies, nested under weft run's own cgroup so a container's limits
// still hold). The plugin enters its cgroup before it runs: a shell writes
// its own pid into the group and execs the plugin, so nothing it starts
// escapes. Without a writable cgroup filesystem the plugin runs unlimited,
// with a warning naming why.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { PluginLimits } from '../../config/plugin-config';
import type { Logger } from '../../observe/log';

const CGROUP_ROOT = '/sys/fs/cgroup';
/** cpu.max / cfs period: 100 ms, the kernel's default. */
const CPU_PERIOD_US = 100_000;

type Layout = { version: 2; parent: string } | { version: 1; parents: Partial<Record<'memory' | 'cpu' | 'pids', string>> };

/** Where this host lets weft make plugin cgroups, or why it does not. */
export function cgroupLayout(): Layout | { unavailable: string } {
  try {
    if (fs.existsSync(path.join(CGROUP_ROOT, 'cgroup.controllers'))) {
      const parent = path.join(CGROUP_ROOT, 'weft');
      fs.mkdirSync(parent, { recursive: true });
      // Children may limit only what their parent hands down (and the root has no processes rule of its own).
      enableControllers(CGROUP_ROOT);
      enableControllers(parent);
      return { version: 2, parent };
    }
    const own = ownV1Paths();
    const parents: Partial<Record<'memory' | 'cpu' | 'pids', string>> = {};
    for (const controller of ['memory', 'cpu', 'pids'] as const) {
      const mount = (controller === 'cpu' ? ['cpu', 'cpu,cpuacct'] : [controller]).map((m) => path.join(CGROUP_ROOT, m)).find((m) => fs.existsSync(path.join(m, 'cgroup.procs')));
      if (!mount) continue;
      const dir = path.join(mount, own[controller] ?? '/');
      fs.accessSync(dir, fs.constants.W_OK);
      parents[controller] = dir;
    }
    if (Object.keys(parents).length === 0) return { unavailable: `no cgroup filesystem at ${CGROUP_ROOT}` };
    return { version: 1, parents };
  } catch (err) {
    return { unavailable: `cgroups are not writable here (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); weft run needs root for plugin limits` };
  }
}

function enableControllers(dir: string): void {
  const available = fs.readFileSync(path.join(dir, 'cgroup.controllers'), 'utf8').split(/\s+/);
  const wanted = ['memory', 'cpu', 'pids'].filter((c) => available.includes(c));
  const enabled = fs.readFileSync(path.join(dir, 'cgroup.subtree_control'), 'utf8').split(/\s+/);
  const missing = wanted.filter((c) => !enabled.includes(c));
  if (missing.length > 0) fs.writeFileSync(path.join(dir, 'cgroup.subtree_control'), missing.map((c) => `+${c}`).join(' '));
}

/** weft run's own cgroup in each v1 hierarchy (/proc/self/cgroup: "4:memory:/a/b"). */
function ownV1Paths(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of fs.readFileSync('/proc/self/cgroup', 'utf8').split('\n')) {
    const [, controllers, p] = line.split(':');
    if (!controllers || p === undefined) continue;
    for (const c of controllers.split(',')) out[c] = p;
  }
  return out;
}

export class PluginCgroup {
  private constructor(
    /** The directories made for the plugin (one per v1 hierarchy, one with v2). */
    readonly dirs: string[],
  ) {}

  /**
   * A cgroup named `name` with `limits`, or undefined (with a warning) where
   * the host has none to give. `name` must be unique on the host: weft run's
   * pid and the plugin's name.
   */
  static create(name: string, limits: PluginLimits, log: Logger, plugin: string): PluginCgroup | undefined {
    const layout = cgroupLayout();
    if ('unavailable' in layout) {
      log('warn', `plugin ${plugin} runs without its resource limits: ${layout.unavailable}`, { plugin, limits });
      return undefined;
    }
    const dirs: string[] = [];
    const files: [string, string][] = [];
    if (layout.version === 2) {
      const dir = path.join(layout.parent, name);
      dirs.push(dir);
      if (limits.memoryBytes !== undefined) files.push([path.join(dir, 'memory.max'), String(limits.memoryBytes)]);
      if (limits.cpuMillis !== undefined) files.push([path.join(dir, 'cpu.max'), `${Math.round((limits.cpuMillis / 1000) * CPU_PERIOD_US)} ${CPU_PERIOD_US}`]);
      if (limits.pids !== undefined) files.push([path.join(dir, 'pids.max'), String(limits.pids)]);
    } else {
      const want = (c: 'memory' | 'cpu' | 'pids', set: boolean) => {
        if (!set) return undefined;
        const parent = layout.parents[c];
        if (!parent) log('warn', `plugin ${plugin}: no ${c} cgroup hierarchy on this host; its ${c} limit is not applied`, { plugin });
        return parent ? path.join(parent, `weft-${name}`) : undefined;
      };
      const memory = want('memory', limits.memoryBytes !== undefined);
      const cpu = want('cpu', limits.cpuMillis !== undefined);
      const pids = want('pids', limits.pids !== undefined);
      if (memory) dirs.push(memory), files.push([path.join(memory, 'memory.limit_in_bytes'), String(limits.memoryBytes)]);
      if (cpu) {
        dirs.push(cpu);
        files.push([path.join(cpu, 'cpu.cfs_period_us'), String(CPU_PERIOD_US)], [path.join(cpu, 'cpu.cfs_quota_us'), String(Math.round((limits.cpuMillis! / 1000) * CPU_PERIOD_US))]);
      }
      if (pids) dirs.push(pids), files.push([path.join(pids, 'pids.max'), String(limits.pids)]);
    }
    try {
      for (const dir of dirs) fs.mkdirSync(dir, { recursive: true });
      for (const [file, value] of files) fs.writeFileSync(file, value);
    } catch (err) {
      new PluginCgroup(dirs).remove();
      log('warn', `plugin ${plugin} runs without its resource limits: ${(err as Error).message}`, { plugin, limits });
      return undefined;
    }
    log('info', 'plugin cgroup', { plugin, cgroups: dirs, limits });
    return new PluginCgroup(dirs);
  }

  /** `argv` entering the cgroup first: a shell that moves itself in, then execs the plugin (same pid). */
  wrap(argv: readonly string[]): string[] {
    const join = this.dirs.map((d) => `echo $$ > '${path.join(d, 'cgroup.procs')}' || exit 125`).join('; ');
    return ['sh', '-c', `${join}; exec "$@"`, 'weft-plugin', ...argv];
  }

  /** OOM kills in the cgroup so far (v2 memory.events, v1 memory.oom_control). */
  oomKills(): number {
    for (const dir of this.dirs) {
      for (const file of ['memory.events', 'memory.oom_control']) {
        try {
          const m = /^oom_kill (\d+)$/m.exec(fs.readFileSync(path.join(dir, file), 'utf8'));
          if (m) return Number(m[1]);
        } catch {
          // Not this hierarchy's file.
        }
      }
    }
    return 0;
  }

  /** Removes the cgroups (they must be empty: call once the plugin's processes are gone). */
  remove(): void {
    for (const dir of this.dirs) {
      try {
        fs.rmdirSync(dir);
      } catch {
        // Busy (a process it started lives on) or gone: the next unit's sweep takes it.
      }
    }
  }
}

/** Removes empty plugin cgroups that dead weft runs left (named `<pid>-<plugin>`). */
export function sweepStaleCgroups(alive: (pid: number) => boolean): void {
  const layout = cgroupLayout();
  if ('unavailable' in layout) return;
  const parents = layout.version === 2 ? [layout.parent] : Object.values(layout.parents);
  for (const parent of parents) {
    let entries: string[];
    try {
      entries = fs.readdirSync(parent);
    } catch {
      continue;
    }
    for (const entry of entries) {
      const m = /^(?:weft-)?([0-9]+)-[a-z0-9-]+$/.exec(entry);
      if (!m || (layout.version === 1 && !entry.startsWith('weft-')) || alive(Number(m[1]))) continue;
      try {
        fs.rmdirSync(path.join(parent, entry));
      } catch {
        // Not empty: a process of it still runs.
      }
    }
  }
}
