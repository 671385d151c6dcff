// The workers of `weft proxy --concurrency N` (node:cluster): forks them,
// hands each the current config and secrets (a worker started late or
// restarted gets the current set first), asks them for reports and admin
// views, and replaces one that dies, with backoff, while the others serve.
//
// Sockets: cluster.SCHED_NONE, set before the first fork, so every worker
// accepts on the shared listening socket itself and the kernel spreads the
// connections; the default round-robin policy has the primary accept each
// connection and pass it over IPC, a cost per connection. (Node 20 has no
// reusePort for one socket per worker.)
import cluster, { type Worker } from 'node:cluster';
import * as path from 'node:path';
import type { Logger } from '../../observe/log';
import type { RequestRecord } from '../../observe/request-record';
import type { RawResourceSet } from '../../xds/client/config-assembly';
import { Backoff } from '../../xds/client/backoff';
import type { SecretStore } from '../tls/secret-store';
import type { FromWorker, ToWorker, WorkerInit, WorkerState } from './worker-protocol';

/** A worker that answers slower than this is left out of that answer (its next one counts again). */
const ASK_TIMEOUT_MS = 2000;
/** A worker that ran this long before dying is restarted at once (backoff only for crash loops). */
const STABLE_MS = 10_000;

export interface PoolSlot {
  slot: number;
  worker: Worker | undefined;
  /** The pid of the running worker (undefined while one is being replaced). */
  pid: number | undefined;
  startedAt: number;
  /** Workers that died in this slot and were replaced. */
  restarts: number;
  state: WorkerState;
  readonly backoff: Backoff;
  timer?: NodeJS.Timeout;
}

export interface WorkerPoolOptions {
  count: number;
  init: Omit<WorkerInit, 'slot' | 'workers'>;
  secrets: SecretStore;
  log: Logger;
  /** A worker died: what it had counted (its last report) must stay in the totals. */
  onExit(pid: number): void;
  /** Records a worker sent while the primary is tapped. */
  onRecords(records: RequestRecord[]): void;
}

export class WorkerPool {
  readonly slots: PoolSlot[];
  private raw: RawResourceSet | undefined;
  private tapping = false;
  private stopping = false;
  private nextId = 1;
  private readonly pending = new Map<number, { worker: Worker; resolve: (v: { body?: unknown; error?: string } | undefined) => void }>();
  private readonly unsubscribe: () => void;

  constructor(private readonly opts: WorkerPoolOptions) {
    this.slots = Array.from({ length: opts.count }, (_, i) => ({
      slot: i + 1,
      worker: undefined,
      pid: undefined,
      startedAt: 0,
      restarts: 0,
      state: { ready: false, reason: 'starting', versions: undefined },
      backoff: new Backoff({ initialMs: 100, maxMs: 10_000 }),
    }));
    // The certificate agent renews, SDS rotates roots: every worker gets each change.
    this.unsubscribe = opts.secrets.onChange((name) => {
      for (const s of this.slots) if (s.worker) this.sendSecret(s.worker, name);
    });
  }

  start(): void {
    cluster.schedulingPolicy = cluster.SCHED_NONE;
    cluster.setupPrimary({ exec: path.join(__dirname, 'worker-main.js'), args: [], serialization: 'advanced' });
    for (const s of this.slots) this.fork(s);
  }

  private fork(s: PoolSlot): void {
    s.timer = undefined;
    if (this.stopping) return;
    const worker = cluster.fork();
    s.worker = worker;
    s.pid = worker.process.pid;
    s.startedAt = Date.now();
    s.state = { ready: false, reason: 'starting', versions: undefined };
    const send = (msg: ToWorker) => worker.send(msg);
    send({ t: 'init', init: { ...this.opts.init, slot: s.slot, workers: this.opts.count } });
    // Secrets before the config: an inbound mTLS listener has its certificate when it binds.
    for (const name of this.secretNames()) this.sendSecret(worker, name);
    if (this.raw) send({ t: 'config', raw: this.raw });
    if (this.tapping) send({ t: 'tap', on: true });
    worker.on('message', (msg: FromWorker) => {
      if (msg.t === 'state') s.state = { ready: msg.ready, reason: msg.reason, versions: msg.versions };
      else if (msg.t === 'records') this.opts.onRecords(msg.records);
      else if (msg.t === 'answer') {
        const p = this.pending.get(msg.id);
        this.pending.delete(msg.id);
        p?.resolve(msg);
      }
    });
    worker.on('error', (err) => this.opts.log('warn', 'proxy worker IPC error', { worker: s.slot, pid: s.pid, error: err.message }));
    worker.once('exit', (code, signal) => this.exited(s, worker, code, signal));
  }

  private exited(s: PoolSlot, worker: Worker, code: number | null, signal: string | null): void {
    if (s.worker !== worker) return;
    for (const [id, p] of this.pending) {
      if (p.worker !== worker) continue;
      this.pending.delete(id);
      p.resolve(undefined);
    }
    s.worker = undefined;
    s.pid = undefined;
    s.state = { ready: false, reason: 'restarting', versions: undefined };
    if (this.stopping) return;
    if (worker.process.pid !== undefined) this.opts.onExit(worker.process.pid);
    s.restarts++;
    if (Date.now() - s.startedAt >= STABLE_MS) s.backoff.reset();
    const delay = s.backoff.next();
    this.opts.log('warn', 'proxy worker exited; starting a replacement', { worker: s.slot, pid: worker.process.pid, code, signal, inMs: delay });
    s.timer = setTimeout(() => this.fork(s), delay);
  }

  private secretNames(): string[] {
    const { certificates, bundles } = this.opts.secrets.entries();
    return [...certificates.map(([n]) => n), ...bundles.map(([n]) => n)];
  }

  private sendSecret(worker: Worker, name: string): void {
    // The workload key crosses only to this process's own children, over their IPC channel.
    const cert = this.opts.secrets.certificate(name);
    if (cert) worker.send({ t: 'certificate', name, secret: cert } satisfies ToWorker);
    const bundle = this.opts.secrets.trustBundle(name);
    if (bundle) worker.send({ t: 'bundle', name, secret: bundle } satisfies ToWorker);
  }

  /** The config the primary applied (ACKed): to every worker now, and to each one started later. */
  config(raw: RawResourceSet): void {
    this.raw = raw;
    for (const s of this.slots) s.worker?.send({ t: 'config', raw } satisfies ToWorker);
  }

  /** Whether workers send finished requests (someone taps the primary). */
  tap(on: boolean): void {
    if (on === this.tapping) return;
    this.tapping = on;
    for (const s of this.slots) s.worker?.send({ t: 'tap', on } satisfies ToWorker);
  }

  /** Asks every running worker; a worker that does not answer in time (or dies) is left out. */
  async ask<T>(msg: { what: 'report' } | { what: 'view'; path: string; query: string }): Promise<{ slot: PoolSlot; pid: number; body: T }[]> {
    const asks = this.slots.map(async (slot) => {
      const worker = slot.worker;
      if (!worker || !worker.isConnected()) return undefined;
      const id = this.nextId++;
      const answer = await new Promise<{ body?: unknown; error?: string } | undefined>((resolve) => {
        const timer = setTimeout(() => {
          this.pending.delete(id);
          resolve(undefined);
        }, ASK_TIMEOUT_MS);
        this.pending.set(id, { worker, resolve: (v) => (clearTimeout(timer), resolve(v)) });
        worker.send({ t: 'ask', id, ...msg } as ToWorker);
      });
      if (answer?.error) throw new Error(`worker ${slot.slot}: ${answer.error}`);
      return answer ? { slot, pid: worker.process.pid!, body: answer.body as T } : undefined;
    });
    return (await Promise.all(asks)).filter((a) => a !== undefined);
  }

  /** Tells every worker to drain and exit; resolves when all have (the stragglers killed after `timeoutMs`). */
  async stop(timeoutMs: number): Promise<void> {
    this.stopping = true;
    this.unsubscribe();
    const running: Promise<void>[] = [];
    for (const s of this.slots) {
      clearTimeout(s.timer);
      const w = s.worker;
      if (!w) continue;
      running.push(new Promise((resolve) => (w.isDead() ? resolve() : w.once('exit', () => resolve()))));
      if (w.isConnected()) w.send({ t: 'stop' } satisfies ToWorker);
      else w.process.kill('SIGTERM');
    }
    const timer = setTimeout(() => {
      for (const s of this.slots) s.worker?.process.kill('SIGKILL');
    }, timeoutMs);
    await Promise.all(running);
    clearTimeout(timer);
  }
}
