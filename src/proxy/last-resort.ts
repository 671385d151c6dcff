// The sidecar's last line of defence. Every socket, session and stream has its
// own error handler; an error that still escapes them (an 'error' event with no
// listener, a throw in a callback, a rejected promise nobody awaited) would end
// the process, and with it every connection of every app on the host. Here it
// is logged and counted (weft_proxy_uncaught_errors_total) and the proxy goes
// on serving. It is a bug each time it fires: the test harness fails a run in
// which it did.
import type { Logger } from '../observe/log';

let fired = 0;
let installed = false;
let log: Logger | undefined;

/** How often the guard caught an error in this process. */
export function uncaughtErrors(): number {
  return fired;
}

/** Installs the guard once per process; later calls only change where it logs. */
export function installLastResortGuard(logger: Logger): void {
  log = logger;
  if (installed) return;
  installed = true;
  process.on('uncaughtException', (err) => caught('uncaught exception', err));
  process.on('unhandledRejection', (reason) => caught('unhandled promise rejection', reason));
}

function caught(kind: string, err: unknown): void {
  fired++;
  const e = err instanceof Error ? err : new Error(String(err));
  log?.('error', `${kind} caught by the last-resort guard; the proxy keeps serving`, { error: e.message, code: (e as NodeJS.ErrnoException).code, stack: e.stack });
}
