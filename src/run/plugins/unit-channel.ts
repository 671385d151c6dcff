// How a unit's plugins talk to `weft run`: HTTP on a Unix socket in a
// directory only weft run's user can enter (WEFT_UNIT_SOCKET in a plugin's
// environment). A path socket, not a port: it works from inside a
// transparent unit's network namespace, and nothing on the network reaches it.
//
//   GET /v1/unit                      the unit: service, namespace, app port
//   GET /v1/app-output?after=<seq>    the app's output lines as NDJSON, kept lines after <seq>, then live;
//                                     once the app's output has ended, a last {"end":true} and the response ends
//   PUT /v1/health {"health":"healthy"|"unhealthy","reason"?}
//                                     the app's health as a plugin sees it (the monitor plugin):
//                                     an unhealthy instance leaves load balancing
//   PUT /v1/plugins/ready {"instance":"<WEFT_PLUGIN_INSTANCE>"}
//                                     a built-in plugin handles SIGTERM and SIGHUP from now on: weft run
//                                     sends it neither before (plugin-supervisor.ts)
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Logger } from '../../observe/log';
import type { AppOutput } from './app-output';

export type AppHealth = 'healthy' | 'unhealthy';

/** Bytes a slow reader of the app's output may have queued before lines are dropped for it. */
const MAX_QUEUED_BYTES = 1024 * 1024;
const MAX_BODY_BYTES = 64 * 1024;

export interface UnitInfo {
  service?: string;
  namespace: string;
  appPort?: number;
  /** Where the app listens, as the plugins see it (their network namespace is the app's). */
  appHost: string;
}

export class UnitChannel {
  /** The directory of the socket and of the plugins' config files (mode 0700). */
  readonly dir: string;
  readonly socketPath: string;
  private health: { health: AppHealth; reason?: string } = { health: 'healthy' };
  private healthListener: ((health: AppHealth, reason?: string) => void) | undefined;
  /** Plugin processes weft run waits to hear from (PUT /v1/plugins/ready), by the instance id it gave each. */
  private readonly readyWaiters = new Map<string, () => void>();
  private readonly server: http.Server;

  private constructor(
    private readonly unit: UnitInfo,
    private readonly output: AppOutput | undefined,
    private readonly log: Logger,
  ) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-unit-'));
    fs.chmodSync(this.dir, 0o700);
    this.socketPath = path.join(this.dir, 'unit.sock');
    this.server = http.createServer((req, res) => this.handle(req, res));
  }

  static async open(unit: UnitInfo, output: AppOutput | undefined, log: Logger): Promise<UnitChannel> {
    const channel = new UnitChannel(unit, output, log);
    await new Promise<void>((resolve, reject) => {
      channel.server.once('error', reject);
      channel.server.listen(channel.socketPath, () => resolve());
    });
    fs.chmodSync(channel.socketPath, 0o600);
    return channel;
  }

  /** The app's health as the plugins last reported it. */
  get appHealth(): AppHealth {
    return this.health.health;
  }

  /** Called on every change of the reported health (and at once with the current one). */
  onHealth(fn: (health: AppHealth, reason?: string) => void): void {
    this.healthListener = fn;
    fn(this.health.health, this.health.reason);
  }

  /**
   * Resolves when the plugin process started with WEFT_PLUGIN_INSTANCE=`instance`
   * says it is ready; `forget` drops the wait (the process has exited).
   */
  whenReady(instance: string): { ready: Promise<void>; forget: () => void } {
    const ready = new Promise<void>((resolve) => this.readyWaiters.set(instance, resolve));
    return { ready, forget: () => this.readyWaiters.delete(instance) };
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://unit');
    const route = `${req.method} ${url.pathname}`;
    if (route === 'GET /v1/unit') return json(res, 200, { ...this.unit, health: this.health.health });
    if (route === 'GET /v1/app-output') return this.streamOutput(url, res);
    if (route === 'PUT /v1/health') return void this.putHealth(req, res);
    if (route === 'PUT /v1/plugins/ready') return void this.putReady(req, res);
    json(res, 404, { error: `no ${route} here: GET /v1/unit, GET /v1/app-output?after=<seq>, PUT /v1/health, PUT /v1/plugins/ready` });
  }

  private streamOutput(url: URL, res: http.ServerResponse): void {
    if (!this.output) return json(res, 404, { error: 'the app output is not captured in this unit' });
    const after = Number(url.searchParams.get('after') ?? '0');
    if (!Number.isInteger(after) || after < 0) return json(res, 400, { error: 'after: the last line number read (a whole number)' });
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    let dropped = 0;
    const send = (line: object) => {
      // A reader that does not keep up loses lines rather than weft run's memory; it is told how many.
      if (res.writableLength > MAX_QUEUED_BYTES) {
        dropped++;
        return;
      }
      if (dropped > 0) {
        res.write(JSON.stringify({ dropped }) + '\n');
        dropped = 0;
      }
      res.write(JSON.stringify(line) + '\n');
    };
    for (const line of this.output.since(after)) send(line);
    const end = () => {
      if (dropped > 0) res.write(JSON.stringify({ dropped }) + '\n');
      res.end(JSON.stringify({ end: true }) + '\n');
    };
    if (this.output.ended) return end();
    const unsubscribe = this.output.subscribe(send);
    const unsubscribeEnd = this.output.onEnd(() => {
      unsubscribe();
      end();
    });
    res.once('close', () => {
      unsubscribe();
      unsubscribeEnd();
    });
  }

  private async putHealth(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    let body: { health?: unknown; reason?: unknown };
    try {
      body = JSON.parse(await readBody(req)) as typeof body;
    } catch (err) {
      return json(res, 400, { error: `a JSON body: ${(err as Error).message}` });
    }
    if (body.health !== 'healthy' && body.health !== 'unhealthy') return json(res, 400, { error: 'health: "healthy" or "unhealthy"' });
    const reason = typeof body.reason === 'string' ? body.reason.slice(0, 500) : undefined;
    const changed = body.health !== this.health.health;
    this.health = { health: body.health, ...(reason !== undefined ? { reason } : {}) };
    if (changed) {
      this.log(body.health === 'healthy' ? 'info' : 'warn', `app reported ${body.health}`, { ...(reason ? { reason } : {}) });
      this.healthListener?.(body.health, reason);
    }
    res.writeHead(204).end();
  }

  private async putReady(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    let body: { instance?: unknown };
    try {
      body = JSON.parse(await readBody(req)) as typeof body;
    } catch (err) {
      return json(res, 400, { error: `a JSON body: ${(err as Error).message}` });
    }
    const resolve = typeof body.instance === 'string' ? this.readyWaiters.get(body.instance) : undefined;
    if (!resolve) return json(res, 404, { error: 'instance: not a plugin process weft run is waiting for (its WEFT_PLUGIN_INSTANCE)' });
    this.readyWaiters.delete(body.instance as string);
    resolve();
    res.writeHead(204).end();
  }
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) return reject(new Error('body too large'));
      chunks.push(c);
    });
    req.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.once('error', reject);
  });
}
