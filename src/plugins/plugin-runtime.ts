// What a built-in plugin (`weft plugin <name>`) gets from `weft run`: its
// config (WEFT_PLUGIN_CONFIG, checked with the plugin's schema), a reload of
// it on SIGHUP (from WEFT_PLUGIN_CONFIG_FILE, which weft run rewrites when
// the mesh changes the plugin's config), and a client for the unit channel
// (WEFT_UNIT_SOCKET, src/run/plugins/unit-channel.ts).
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { z } from 'zod';
import type { ResolvedPlugin } from '../config/plugin-config';
import { jsonLogger, type Logger } from '../observe/log';
import type { BuiltinPluginName } from './builtin-plugins';

export class PluginConfigError extends Error {
  readonly code = 'E_PLUGIN_CONFIG';
}

export interface PluginRuntime<C> {
  name: string;
  type: ResolvedPlugin['type'];
  config: C;
  /** The whole resolved config (perPort, perDependency too). */
  resolved: ResolvedPlugin['config'];
  log: Logger;
  /** Called with the new config after a SIGHUP that changed it (an invalid one is logged and ignored). */
  onReload(fn: (config: C) => void): void;
  /** The unit channel's socket, when run by weft run. */
  unitSocket?: string;
  /**
   * Tells weft run the plugin handles SIGTERM and SIGHUP from now on; it
   * sends neither before (a signal with no handler yet kills a node process
   * and loses its stop work). Call it once both are handled.
   */
  ready(): void;
}

/**
 * The runtime of built-in `name` (its schema: BUILTIN_PLUGINS[name].config),
 * its config from the environment; throws PluginConfigError naming the field.
 */
export function pluginRuntime<C>(name: BuiltinPluginName, schema: z.ZodType<C>, env: NodeJS.ProcessEnv = process.env, log: Logger = jsonLogger('info')): PluginRuntime<C> {
  const resolved = readResolved(env.WEFT_PLUGIN_CONFIG, 'WEFT_PLUGIN_CONFIG');
  let reload: ((c: C) => void) | undefined;
  const rt: PluginRuntime<C> = {
    name: env.WEFT_PLUGIN_NAME ?? name,
    type: (env.WEFT_PLUGIN_TYPE as ResolvedPlugin['type']) ?? 'general',
    config: parseConfig(name, schema, resolved.global),
    resolved,
    log,
    onReload: (fn) => (reload = fn),
    unitSocket: env.WEFT_UNIT_SOCKET || undefined,
    ready: () => announceReady(env, log),
  };
  const file = env.WEFT_PLUGIN_CONFIG_FILE;
  if (file) {
    process.on('SIGHUP', () => {
      try {
        const next = readResolved(fs.readFileSync(file, 'utf8'), file);
        rt.config = parseConfig(name, schema, next.global);
        rt.resolved = next;
        log('info', 'config reloaded', { plugin: rt.name });
        reload?.(rt.config);
      } catch (err) {
        log('error', `config not reloaded, the last one stays: ${(err as Error).message}`, { plugin: rt.name });
      }
    });
  }
  return rt;
}

function announceReady(env: NodeJS.ProcessEnv, log: Logger): void {
  const socket = env.WEFT_UNIT_SOCKET;
  const instance = env.WEFT_PLUGIN_INSTANCE;
  if (!socket || !instance) return;
  // Not awaited: weft run signals the plugin anyway once its stop grace has passed.
  unitRequest(socket, 'PUT', '/v1/plugins/ready', { instance }).then(
    (res) => res.status !== 204 && log('warn', `weft run did not take the ready announcement: ${res.status} ${JSON.stringify(res.body)}`),
    (err: Error) => log('warn', `could not tell weft run the plugin is ready: ${err.message}`),
  );
}

function readResolved(text: string | undefined, from: string): ResolvedPlugin['config'] {
  if (!text) throw new PluginConfigError(`no ${from}: a built-in plugin runs under weft run (a Plugin with command [weft, plugin, …])`);
  try {
    const parsed = JSON.parse(text) as Partial<ResolvedPlugin['config']>;
    return { global: parsed.global ?? {}, perPort: parsed.perPort ?? [], perDependency: parsed.perDependency ?? [] };
  } catch (err) {
    throw new PluginConfigError(`${from} is not JSON: ${(err as Error).message}`);
  }
}

function parseConfig<T>(name: string, schema: z.ZodType<T>, global: Record<string, string>): T {
  const parsed = schema.safeParse(global);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const key = issue.code === 'unrecognized_keys' ? issue.keys[0] : issue.path.join('.');
  throw new PluginConfigError(`config.global.${key}: ${issue.code === 'unrecognized_keys' ? `the ${name} plugin has no such setting` : issue.message}`);
}

/** One request to the unit channel; the body parsed as JSON (undefined when empty). */
export function unitRequest(socketPath: string, method: string, path: string, body?: unknown, timeoutMs = 5000): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request({ socketPath, method, path, timeout: timeoutMs, headers: payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.once('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, body: text ? (JSON.parse(text) as unknown) : undefined });
      });
      res.once('error', reject);
    });
    req.once('timeout', () => req.destroy(new Error(`the unit channel did not answer ${method} ${path} within ${timeoutMs} ms`)));
    req.once('error', reject);
    req.end(payload);
  });
}

/**
 * Resolves with the signal once weft run stops the plugin (SIGTERM; SIGINT
 * by hand). It holds the process open meanwhile: a plugin with nothing
 * pending (its reads done, no timer) would otherwise exit at once, and weft
 * run would count that as a crash.
 */
export function untilStopped(): Promise<NodeJS.Signals> {
  const keepAlive = setInterval(() => {}, 1 << 30);
  return new Promise((resolve) => {
    const on = (signal: NodeJS.Signals) => {
      clearInterval(keepAlive);
      process.off('SIGTERM', on);
      process.off('SIGINT', on);
      resolve(signal);
    };
    process.on('SIGTERM', on);
    process.on('SIGINT', on);
  });
}
