/** Whether a process with this pid exists (EPERM: it does, owned by another user). For sweeping what dead units left. */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
