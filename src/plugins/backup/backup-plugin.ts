// `weft plugin backup` (a general plugin): a backup every `every`, and one
// more when weft run stops it, which is after the app has exited, so the
// last archive holds the app's final state. It keeps the newest `keep`
// archives. A failed backup is logged and tried again at the next turn; it
// never ends the plugin.
//
// `weft plugin backup restore` (an init plugin): restores the newest archive
// into the working directory before the app starts. No archive yet is fine
// (a first start); an archive that cannot be restored fails the plugin, so
// weft run does not start the app on the wrong data.
import * as path from 'node:path';
import { jsonLogger, type Logger, type LogLevel } from '../../observe/log';
import { backupConfigSchema, type BackupConfig } from '../builtin-plugins';
import { PluginConfigError, pluginRuntime, unitRequest, untilStopped, type PluginRuntime } from '../plugin-runtime';
import { BackupError, listArchives, prune, restoreArchive, writeArchive } from './archives';

export async function runPlugin(args: string[]): Promise<number> {
  const mode = args[0] ?? 'backup';
  if (args.length > 1 || (mode !== 'backup' && mode !== 'restore')) throw new PluginConfigError(`weft plugin backup [restore]: unexpected ${args.join(' ')}`);
  const log = jsonLogger((process.env.WEFT_LOG_LEVEL as LogLevel | undefined) ?? 'info');
  const rt = pluginRuntime('backup', backupConfigSchema, process.env, log);
  checkConfig(rt.config, mode);
  // From the start: a stop that comes early still gets its last backup.
  const stopped = mode === 'backup' ? untilStopped() : Promise.resolve<NodeJS.Signals>('SIGTERM');
  if (mode === 'backup') rt.ready();
  const service = await serviceName(rt);
  if (mode === 'restore') return restore(rt.config, service, log);
  return backupLoop(rt, service, log, stopped);
}

/** What the apply-time rules check too (resource-rules.ts), for a plugin run by hand. */
function checkConfig(c: BackupConfig, mode: 'backup' | 'restore'): void {
  const needs = mode === 'restore' ? 'restoreCommand' : 'command';
  if (!c.paths && !(mode === 'restore' ? c.restoreCommand : c.command)) throw new PluginConfigError(`config.global: the backup plugin needs paths (archived with tar) or ${needs}`);
}

async function restore(c: BackupConfig, service: string, log: Logger): Promise<number> {
  const dir = path.resolve(c.dir);
  const newest = listArchives(dir, service).at(-1);
  if (!newest) {
    log('info', `no backup of ${service} in ${dir} yet: nothing to restore`, { dir });
    return 0;
  }
  const started = Date.now();
  try {
    await restoreArchive(newest, process.cwd(), process.env, c.restoreCommand);
  } catch (err) {
    if (!(err instanceof BackupError)) throw err;
    // On stderr as a plain line: weft run quotes a failed init plugin's last stderr lines in its error.
    process.stderr.write(`cannot restore the newest backup ${newest}: ${err.message}; move it away to start from an older backup (or none)\n`);
    return 1;
  }
  log('info', 'restored', { file: newest, ms: Date.now() - started });
  return 0;
}

async function backupLoop(rt: PluginRuntime<BackupConfig>, service: string, log: Logger, stopped: Promise<NodeJS.Signals>): Promise<number> {
  let running: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let stopping = false;
  const backup = async (why: 'schedule' | 'stop') => {
    const c = rt.config;
    const dir = path.resolve(c.dir);
    const started = Date.now();
    try {
      const written = await writeArchive(dir, service, { paths: c.paths, command: c.command, cwd: process.cwd(), env: process.env });
      if (!written) {
        log('info', `nothing to back up yet: none of ${(c.paths ?? []).join(', ')} exists`, { why });
        return;
      }
      const removed = prune(dir, service, c.keep);
      log('info', 'backup written', { why, file: written.file, bytes: written.bytes, ms: Date.now() - started, removed: removed.length, ...(written.missing.length ? { missing: written.missing } : {}) });
    } catch (err) {
      // Whatever went wrong (tar, the command, the disk), the next turn tries again.
      log('error', `backup failed${why === 'stop' ? ' at stop' : `; the next try in ${c.every} ms`}: ${(err as Error).message}`, { why, dir });
    }
  };
  const schedule = () => {
    clearTimeout(timer);
    if (stopping) return;
    timer = setTimeout(() => {
      running = backup('schedule').finally(() => {
        running = undefined;
        schedule();
      });
    }, rt.config.every);
  };
  rt.onReload(() => schedule());
  schedule();
  const signal = await stopped;
  stopping = true;
  clearTimeout(timer);
  await running;
  log('info', 'a last backup before stopping', { signal });
  await backup('stop');
  return 0;
}

async function serviceName(rt: PluginRuntime<BackupConfig>): Promise<string> {
  if (rt.unitSocket) {
    try {
      const unit = (await unitRequest(rt.unitSocket, 'GET', '/v1/unit')).body as { service?: string };
      if (unit.service) return unit.service;
    } catch {
      // The environment names the app's service too.
    }
  }
  const service = process.env.WEFT_SERVICE;
  if (!service) throw new PluginConfigError('the backup plugin names archives after the service: run it under weft run --service (no WEFT_SERVICE, no unit channel)');
  return service;
}
