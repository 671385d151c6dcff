// `weft run` as a child process against a test's control plane: the real
// CLI, its output collected, its exit awaited. Every child is kept in
// `children` so the test's after() can SIGKILL what is left.
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { waitFor } from './tmp';

const BIN = path.resolve(__dirname, '../../../bin/weft.js');

export interface WeftRunChild {
  child: ChildProcess;
  /** The exit code (null after a signal). */
  exited: Promise<number | null>;
  stdout(): string;
  stderr(): string;
  /** stdout and stderr as they interleaved. */
  out(): string;
}

export const children: ChildProcess[] = [];

/**
 * `weft run --xds … --api … --drain-seconds <drain> <args> -- <command>` in
 * `cwd`, with `env` over the test's environment.
 */
export function spawnWeftRun(cp: { xdsPort: number; apiPort: number }, args: string[], command: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; drainSeconds?: number } = {}): WeftRunChild {
  const child = spawn(process.execPath, [BIN, 'run', '--xds', `127.0.0.1:${cp.xdsPort}`, '--api', `http://127.0.0.1:${cp.apiPort}`, '--drain-seconds', String(opts.drainSeconds ?? 0.1), ...args, '--', ...command], {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let stdout = '';
  let stderr = '';
  let out = '';
  child.stdout!.on('data', (d) => ((stdout += d), (out += d)));
  child.stderr!.on('data', (d) => ((stderr += d), (out += d)));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, exited, stdout: () => stdout, stderr: () => stderr, out: () => out };
}

/** SIGKILLs every weft run a test started that is still running. */
export function killWeftRuns(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}

/**
 * Waits until `check(run)` holds. A unit that exits first, or a wait that
 * times out, fails with the unit's last output: a unit that died at startup
 * (a port taken, a plugin that failed) says why instead of a bare timeout.
 */
export async function waitForUnit(run: WeftRunChild, check: (run: WeftRunChild) => boolean, timeoutMs: number, what: string): Promise<void> {
  const exited = () => run.child.exitCode ?? run.child.signalCode;
  await waitFor(() => {
    if (check(run)) return true;
    if (exited() !== null) throw new Error(`the unit exited (${exited()}) before ${what}`);
    return false;
  }, timeoutMs, what).catch((err: Error) => {
    throw new Error(`${err.message}; its last output:\n${run.out().slice(-3000)}`);
  });
}
