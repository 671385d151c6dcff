// A plugin obtained from npm (spec.npm: a package spec, "name@version" or a
// tarball path or URL npm accepts): installed once per spec into weft's
// cache (~/.cache/weft/plugins/<hash>, or $WEFT_PLUGIN_CACHE), and its
// command's program looked up among the package's bins. Installed with the
// npm on PATH and its registry config, so a private registry or an offline
// mirror works as it does for npm itself; a failed install is an error that
// stops the unit, like a failed init plugin (a plugin silently missing would
// be worse).
import { spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Logger } from '../../observe/log';

/** How long an install may take. */
const INSTALL_TIMEOUT_MS = 5 * 60_000;

export class PluginPackageError extends Error {
  readonly code = 'E_PLUGIN_PACKAGE';
}

function cacheRoot(): string {
  return process.env.WEFT_PLUGIN_CACHE || path.join(os.homedir(), '.cache', 'weft', 'plugins');
}

/** Installs in flight in this process, by spec: two plugins of one package install it once. */
const installing = new Map<string, Promise<string>>();

/** The directory `spec` is installed in (installing it first if it is not). */
export function installPackage(spec: string, log: Logger): Promise<string> {
  let pending = installing.get(spec);
  if (!pending) {
    pending = install(spec, log);
    installing.set(spec, pending);
    pending.catch(() => installing.delete(spec));
  }
  return pending;
}

async function install(spec: string, log: Logger): Promise<string> {
  const dir = path.join(cacheRoot(), crypto.createHash('sha256').update(spec).digest('hex').slice(0, 16));
  if (fs.existsSync(path.join(dir, '.weft-installed'))) return dir;
  // Into a fresh directory, renamed into place when complete: a unit killed mid-install leaves no half package.
  fs.mkdirSync(cacheRoot(), { recursive: true });
  const work = fs.mkdtempSync(path.join(cacheRoot(), '.install-'));
  log('info', 'installing plugin package', { npm: spec, into: dir });
  const started = Date.now();
  try {
    fs.writeFileSync(path.join(work, 'package.json'), JSON.stringify({ name: 'weft-plugin-install', private: true }));
    const { code, output } = await run('npm', ['install', '--no-audit', '--no-fund', '--omit=dev', '--prefix', work, spec], INSTALL_TIMEOUT_MS);
    if (code !== 0) throw new PluginPackageError(`npm install ${spec} failed (exit ${code}): ${output.trim().split('\n').slice(-5).join('\n')}`);
    fs.writeFileSync(path.join(work, '.weft-installed'), spec);
    try {
      fs.renameSync(work, dir);
    } catch (err) {
      // Another unit installed it meanwhile: theirs serves.
      if (!fs.existsSync(path.join(dir, '.weft-installed'))) throw err;
      fs.rmSync(work, { recursive: true, force: true });
    }
  } catch (err) {
    fs.rmSync(work, { recursive: true, force: true });
    throw err instanceof PluginPackageError ? err : new PluginPackageError(`cannot install plugin package ${spec}: ${(err as Error).message}`);
  }
  log('info', 'plugin package installed', { npm: spec, ms: Date.now() - started });
  return dir;
}

/** The command with its program resolved among the installed package's bins (node_modules/.bin). */
export function packageCommand(dir: string, command: readonly string[], spec: string): string[] {
  const bin = path.join(dir, 'node_modules', '.bin', command[0]);
  if (!fs.existsSync(bin)) {
    const bins = fs.existsSync(path.join(dir, 'node_modules', '.bin')) ? fs.readdirSync(path.join(dir, 'node_modules', '.bin')) : [];
    throw new PluginPackageError(`the package ${spec} has no program "${command[0]}" (its programs: ${bins.join(', ') || 'none'})`);
  }
  return [bin, ...command.slice(1)];
}

function run(cmd: string, args: string[], timeoutMs: number): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs });
    let output = '';
    child.stdout!.on('data', (d) => (output += d));
    child.stderr!.on('data', (d) => (output += d));
    child.once('error', (err) => resolve({ code: null, output: err.message }));
    child.once('close', (code) => resolve({ code, output }));
  });
}
