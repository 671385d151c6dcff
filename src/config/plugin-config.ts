// A Plugin's config groups and how they resolve for one Service: `global`
// once, `perPort` for each of the service's own ports, `perDependency` for
// each Service in its dependsOn. Values may hold ${name} placeholders; which
// names a group may use is fixed here, so a typo is a config error rather
// than a literal "${prot}" reaching the plugin.
import { builtinOf } from '../plugins/builtin-plugins';
import { durationToMs } from './duration';
import { PLUGIN_BACKOFF_DEFAULTS, type PluginSpec, type Resource } from './kinds';

export type ConfigGroup = 'global' | 'perPort' | 'perDependency';

export const GROUP_PLACEHOLDERS: Record<ConfigGroup, readonly string[]> = {
  global: ['service', 'namespace'],
  perPort: ['service', 'namespace', 'port', 'portName', 'protocol'],
  perDependency: ['service', 'namespace', 'dependency', 'dependencyNamespace'],
};

const PLACEHOLDER = /\$\{([^}]*)\}/g;

/** The placeholder names in a value, in order ("${port}" → "port"). */
export function placeholdersIn(value: string): string[] {
  return [...value.matchAll(PLACEHOLDER)].map((m) => m[1]);
}

function substitute(value: string, vars: Record<string, string>): string {
  return value.replace(PLACEHOLDER, (whole, key: string) => vars[key] ?? whole);
}

function resolveGroup(group: Record<string, string>, vars: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(group).map(([k, v]) => [k, substitute(v, vars)]));
}

/** What `weft run` gets for one plugin of one service (GET /api/v1/plugins): the process plugins, not http-filter ones. */
export interface ResolvedPlugin {
  name: string;
  namespace: string;
  type: 'init' | 'general';
  command: string[];
  /** The npm package command[0] comes from (installed by weft run). */
  npm?: string;
  env: Record<string, string>;
  workingDir?: string;
  /** init plugins: run by order, then name. */
  order: number;
  /** general plugins: Always by default; init plugins: Never (they run once). */
  restartPolicy: 'Always' | 'OnFailure' | 'Never';
  restartBackoffMs: { min: number; max: number };
  /** cgroup limits (run/plugins/plugin-cgroup.ts); absent: none. */
  resources?: PluginLimits;
  /** How a running general plugin takes a config change (the API's next answer). */
  configReload: 'Restart' | 'Signal';
  config: {
    global: Record<string, string>;
    perPort: { name: string; port: number; protocol: string; values: Record<string, string> }[];
    perDependency: { service: string; namespace: string; values: Record<string, string> }[];
  };
}

export interface PluginLimits {
  memoryBytes?: number;
  /** Thousandths of a core. */
  cpuMillis?: number;
  pids?: number;
}

const BYTES: Record<string, number> = { '': 1, K: 1e3, M: 1e6, G: 1e9, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3 };

/** The spec's quantities as numbers (the schema has checked their form). */
export function pluginLimits(r: NonNullable<PluginSpec['resources']>): PluginLimits {
  const out: PluginLimits = {};
  if (r.memory !== undefined) {
    const [, n, unit] = /^([0-9]+)([A-Za-z]*)$/.exec(r.memory)!;
    out.memoryBytes = Number(n) * BYTES[unit];
  }
  if (r.cpu !== undefined) out.cpuMillis = r.cpu.endsWith('m') ? Number(r.cpu.slice(0, -1)) : Math.round(Number(r.cpu) * 1000);
  if (r.pids !== undefined) out.pids = r.pids;
  return out;
}

/** Whether `plugin` attaches to `service`: named in targetRefs, or its labels match the selector. */
export function attachesTo(plugin: Resource<'Plugin'>, service: Resource<'Service'>): boolean {
  if (plugin.metadata.namespace !== service.metadata.namespace) return false;
  const { targetRefs, selector } = plugin.spec;
  if (targetRefs?.some((t) => t.name === service.metadata.name)) return true;
  if (!selector) return false;
  const labels = service.metadata.labels ?? {};
  return Object.entries(selector.matchLabels).every(([k, v]) => labels[k] === v);
}

/**
 * The process plugins of `service` (what `weft run` starts), init plugins
 * first in their run order, config resolved for it. http-filter plugins are
 * not among them: the sidecar gets those over xDS (resolveFilterPlugins).
 */
export function resolvePlugins(plugins: readonly Resource<'Plugin'>[], service: Resource<'Service'>): ResolvedPlugin[] {
  const svc = service.metadata.name;
  const ns = service.metadata.namespace;
  const base = { service: svc, namespace: ns };
  const resolved = plugins
    .filter((p) => p.spec.type !== 'http-filter' && attachesTo(p, service))
    .map((p): ResolvedPlugin => {
      const { spec } = p;
      return {
        name: p.metadata.name,
        namespace: p.metadata.namespace,
        type: spec.type as ResolvedPlugin['type'],
        command: spec.command ?? [],
        ...(spec.npm !== undefined ? { npm: spec.npm } : {}),
        env: spec.env ?? {},
        ...(spec.workingDir !== undefined ? { workingDir: spec.workingDir } : {}),
        order: spec.order ?? 0,
        restartPolicy: spec.type === 'init' ? 'Never' : (spec.restartPolicy ?? 'Always'),
        restartBackoffMs: {
          min: durationToMs(spec.restartBackoff?.min ?? PLUGIN_BACKOFF_DEFAULTS.min),
          max: durationToMs(spec.restartBackoff?.max ?? PLUGIN_BACKOFF_DEFAULTS.max),
        },
        ...(spec.resources && Object.keys(spec.resources).length > 0 ? { resources: pluginLimits(spec.resources) } : {}),
        configReload: spec.configReload ?? (builtinOf(spec.command ?? []) !== undefined ? 'Signal' : 'Restart'),
        config: {
          global: resolveGroup(spec.config.global, base),
          perPort: service.spec.ports.map((port) => ({
            name: port.name,
            port: port.port,
            protocol: port.protocol,
            values: resolveGroup(spec.config.perPort, { ...base, port: String(port.port), portName: port.name, protocol: port.protocol }),
          })),
          perDependency: (service.spec.dependsOn ?? []).map((d) => {
            const dns = d.namespace ?? ns;
            return { service: d.name, namespace: dns, values: resolveGroup(spec.config.perDependency, { ...base, dependency: d.name, dependencyNamespace: dns }) };
          }),
        },
      };
    });
  const rank = (p: ResolvedPlugin) => (p.type === 'init' ? 0 : 1);
  return resolved.sort((a, b) => rank(a) - rank(b) || (a.type === 'init' ? a.order - b.order : 0) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** An http-filter plugin of one service, as its sidecar runs it. */
export interface ResolvedFilterPlugin {
  name: string;
  namespace: string;
  /** An absolute path or an npm package name. */
  module: string;
  direction: 'inbound' | 'outbound';
  order: number;
  /** config.global, ${service} and ${namespace} resolved for the service. */
  config: Record<string, string>;
}

/** The http-filter plugins of `service` for one direction, in chain order: by order, then namespace/name. */
export function resolveFilterPlugins(plugins: readonly Resource<'Plugin'>[], service: Resource<'Service'>, direction: 'inbound' | 'outbound'): ResolvedFilterPlugin[] {
  const base = { service: service.metadata.name, namespace: service.metadata.namespace };
  return plugins
    .filter((p) => p.spec.type === 'http-filter' && p.spec.module !== undefined && (p.spec.direction ?? 'inbound') === direction && attachesTo(p, service))
    .map((p) => ({
      name: p.metadata.name,
      namespace: p.metadata.namespace,
      module: p.spec.module!,
      direction,
      order: p.spec.order ?? 0,
      config: resolveGroup(p.spec.config.global, base),
    }))
    .sort((a, b) => a.order - b.order || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
