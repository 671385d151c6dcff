// What the xDS convergence bench's processes say to each other, and the clock
// they share.
export interface SimClientsConfig {
  port: number;
  /** Index of the first client, for node ids. */
  first: number;
  count: number;
  /** Node groups: client i runs beside service `svc-${i % services}`. */
  services: number;
  /** Connections opened concurrently while ramping up. */
  rampBatch: number;
}

export type ToClients = { t: 'mark' } | { t: 'collect'; t0: number } | { t: 'stop' };

export type FromClients =
  | { t: 'ready'; synced: number; failed: number; connectMs: number }
  | { t: 'marked' }
  | { t: 'progress'; changed: number; lastChangeAt: number; acks: number }
  | { t: 'result'; latencies: number[]; typesChanged: number; cpuMs: number };

/** Monotonic milliseconds, the same clock in every process of the machine (CLOCK_MONOTONIC). */
export function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}
