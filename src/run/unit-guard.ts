// The app must never outlive its unit. `weft run` starts the app in a process
// group of its own (so a Ctrl-C reaches weft run, which drains first); if weft
// run is SIGKILLed, nothing would stop that group, and a transparent unit's
// namespace and host rules would stay. So each unit has a guard: a small
// shell, in a session of its own, blocked reading a pipe that only weft run
// holds open. The pipe ends when weft run ends, however it ends (the kernel
// closes a killed process's descriptors), and the guard then stops the app's
// process group (SIGTERM, then SIGKILL after the grace period) and runs the
// unit's clean-up commands. A shell and `cat`, not a second Node process:
// about 1 MB beside every unit instead of 40.
import { spawn, type ChildProcess } from 'node:child_process';

export interface GuardDuty {
  /** The app's process group, stopped first. */
  processGroup: number;
  /** SIGTERM to SIGKILL. */
  graceMs: number;
  /** Commands run after the app is gone, in order, failures ignored (already-removed things). */
  commands?: string[][];
  /** Paths removed last. */
  paths?: string[];
}

/** Single-quotes a word for sh. */
function quote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** The guard's script: wait for the pipe to end, then do its duty. */
export function guardScript(duty: GuardDuty): string {
  const group = `-${duty.processGroup}`;
  const tenths = Math.max(1, Math.ceil(duty.graceMs / 100));
  return [
    // Signals that reach a terminal's jobs are not for the guard: it ends when weft run does.
    "trap '' INT TERM HUP",
    'cat >/dev/null',
    // dash's kill takes no `--`: `-TERM -123` signals process group 123.
    `kill -TERM ${group} 2>/dev/null`,
    `i=0; while kill -0 ${group} 2>/dev/null && [ $i -lt ${tenths} ]; do sleep 0.1; i=$((i+1)); done`,
    `kill -KILL ${group} 2>/dev/null`,
    ...(duty.commands ?? []).map((argv) => `${argv.map(quote).join(' ')} >/dev/null 2>&1`),
    ...(duty.paths ?? []).map((p) => `rm -rf -- ${quote(p)}`),
    'exit 0',
  ].join('\n');
}

export class UnitGuard {
  private constructor(private readonly child: ChildProcess) {}

  /** Starts the guard of `duty`; from now on, the end of this process ends the app and cleans up. */
  static start(duty: GuardDuty): UnitGuard {
    const child = spawn('sh', ['-c', guardScript(duty)], { detached: true, stdio: ['pipe', 'ignore', 'ignore'] });
    child.stdin!.on('error', () => {}); // the guard gone first (killed by hand): weft run cleans up itself anyway
    // Neither the guard nor its pipe keeps weft run alive; release() waits for it.
    child.unref();
    (child.stdin as unknown as { unref?: () => void }).unref?.();
    return new UnitGuard(child);
  }

  /** Lets the guard do its duty now and waits until it has (weft run's normal end). */
  release(): Promise<void> {
    return new Promise((resolve) => {
      if (this.child.exitCode !== null || this.child.signalCode !== null) return resolve();
      this.child.ref();
      this.child.once('exit', () => resolve());
      this.child.stdin!.end();
    });
  }
}
