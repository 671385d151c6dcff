// The backup plugin's archives: `<dir>/<service>-<UTC timestamp>.tar.gz`,
// named so that name order is time order. An archive is written under a
// temporary name and renamed once complete (and synced), so a crash mid-way
// never leaves a half archive that a restore would pick as the newest.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export class BackupError extends Error {}

/** 2024-05-01T12:30:00.123Z → 20240501T123000.123Z */
function stamp(date: Date): string {
  return date.toISOString().replace(/[-:]/g, '');
}

function archivePattern(service: string): RegExp {
  return new RegExp(`^${service.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}-[0-9]{8}T[0-9]{6}\\.[0-9]{3}Z\\.tar\\.gz$`);
}

/** The service's archives in `dir`, oldest first (none when `dir` does not exist). */
export function listArchives(dir: string, service: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const pattern = archivePattern(service);
  return names
    .filter((n) => pattern.test(n))
    .sort()
    .map((n) => path.join(dir, n));
}

/** Removes all but the newest `keep` archives; returns the ones removed. */
export function prune(dir: string, service: string, keep: number): string[] {
  const archives = listArchives(dir, service);
  const old = archives.slice(0, Math.max(0, archives.length - keep));
  for (const file of old) fs.rmSync(file, { force: true });
  return old;
}

export interface ArchiveSource {
  /** Paths to archive with tar, relative to `cwd`. */
  paths?: readonly string[];
  /** Or an sh command that writes the archive to $WEFT_BACKUP_FILE. */
  command?: string;
  cwd: string;
  env: NodeJS.ProcessEnv;
}

export interface Written {
  file: string;
  bytes: number;
  /** Paths named in `paths` that did not exist (not archived). */
  missing: string[];
}

/**
 * Writes a new archive of `source` into `dir`. Undefined when there is
 * nothing to archive yet (none of the paths exists); throws BackupError
 * naming what failed.
 */
export async function writeArchive(dir: string, service: string, source: ArchiveSource, now = new Date()): Promise<Written | undefined> {
  fs.mkdirSync(dir, { recursive: true });
  // Two backups in the same millisecond (a stop right after a scheduled one) get distinct names.
  let at = now.getTime();
  const newest = listArchives(dir, service).at(-1);
  let file = path.join(dir, `${service}-${stamp(new Date(at))}.tar.gz`);
  while (fs.existsSync(file) || (newest !== undefined && path.basename(file) <= path.basename(newest))) file = path.join(dir, `${service}-${stamp(new Date(++at))}.tar.gz`);
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.tmp`);
  let missing: string[] = [];
  try {
    if (source.command) {
      await run('sh', ['-c', source.command], source.cwd, { ...source.env, WEFT_BACKUP_FILE: tmp }, 'the backup command');
      if (!fs.existsSync(tmp)) throw new BackupError(`the backup command exited 0 but wrote nothing to $WEFT_BACKUP_FILE (${tmp})`);
    } else {
      const paths = source.paths ?? [];
      missing = paths.filter((p) => !fs.existsSync(path.resolve(source.cwd, p)));
      const present = paths.filter((p) => !missing.includes(p));
      if (present.length === 0) return undefined;
      await run('tar', ['-czf', tmp, '-C', source.cwd, '--', ...present], source.cwd, source.env, 'tar');
    }
    const fd = fs.openSync(tmp, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
    return { file, bytes: fs.statSync(file).size, missing };
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

/**
 * Restores `file` into `cwd`: with tar (checked whole before anything is
 * extracted, so a corrupt archive changes nothing) or with `restoreCommand`.
 */
export async function restoreArchive(file: string, cwd: string, env: NodeJS.ProcessEnv, restoreCommand?: string): Promise<void> {
  if (restoreCommand) return run('sh', ['-c', restoreCommand], cwd, { ...env, WEFT_BACKUP_FILE: file }, 'the restore command');
  try {
    await run('tar', ['-tzf', file], cwd, env, 'tar');
  } catch (err) {
    throw new BackupError(`${file} is corrupt or not a tar.gz archive (${(err as Error).message})`);
  }
  await run('tar', ['-xzf', file, '-C', cwd], cwd, env, 'tar');
}

/** Runs a program to completion; throws BackupError with its exit and the end of its stderr. */
function run(program: string, args: string[], cwd: string, env: NodeJS.ProcessEnv, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, { cwd, env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => (stderr = (stderr + d).slice(-2000)));
    child.once('error', (err) => reject(new BackupError(`${what} could not start: ${err.message}`)));
    child.once('close', (code, signal) => {
      if (code === 0) return resolve();
      const how = signal ? `killed by ${signal}` : `exit code ${code}`;
      const said = stderr.trim().split('\n').slice(-3).join('; ');
      reject(new BackupError(`${what} failed (${how})${said ? `: ${said}` : ''}`));
    });
  });
}
