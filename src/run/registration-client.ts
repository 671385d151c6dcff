// The instance's registration with the control plane: register, renew the
// lease at a third of its TTL (re-registering if the control plane forgot
// it, e.g. after a restart with a lost data directory), mark draining,
// deregister.
import type { Logger } from '../observe/log';

interface Registration {
  id: string;
  ttlSeconds: number;
}

export class RegistrationClient {
  private current: Registration | undefined;
  private request: Record<string, unknown> | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly api: string,
    private readonly log: Logger,
  ) {}

  async register(request: { service: string; namespace: string; address: string; port: number; zone?: string }): Promise<void> {
    this.request = { ...request, ttlSeconds: 15, sidecar: true }; // weft run always has its sidecar in front
    await this.registerNow();
    this.timer = setInterval(() => void this.renew(), (this.current!.ttlSeconds * 1000) / 3);
    this.timer.unref();
  }

  async markDraining(): Promise<void> {
    if (!this.current) return;
    await this.call('PUT', `/api/v1/registrations/${this.current.id}`, { health: 'draining' }).catch((err) =>
      this.log('warn', 'could not mark the instance draining', { error: String(err) }),
    );
  }

  async deregister(): Promise<void> {
    clearInterval(this.timer);
    if (!this.current) return;
    const id = this.current.id;
    this.current = undefined;
    await this.call('DELETE', `/api/v1/registrations/${id}`).catch((err) => this.log('warn', 'could not deregister', { error: String(err) }));
  }

  private async registerNow(): Promise<void> {
    this.current = (await this.call('POST', '/api/v1/registrations', this.request)) as Registration;
    this.log('info', 'instance registered', { id: this.current.id, ...this.request });
  }

  private async renew(): Promise<void> {
    if (!this.current) return;
    try {
      await this.call('PUT', `/api/v1/registrations/${this.current.id}`, {});
    } catch (err) {
      if ((err as { status?: number }).status === 404) {
        await this.registerNow().catch((e) => this.log('warn', 'could not register again', { error: String(e) }));
      } else {
        this.log('warn', 'lease renewal failed; will retry', { error: String(err) });
      }
    }
  }

  private async call(method: string, path: string, body?: unknown): Promise<unknown> {
    const res = await fetch(new URL(path, this.api), {
      method,
      body: body === undefined ? undefined : JSON.stringify(body),
      headers: { 'content-type': 'application/json' },
      signal: AbortSignal.timeout(5000),
    });
    const text = await res.text();
    if (!res.ok) throw Object.assign(new Error(`${method} ${path}: HTTP ${res.status} ${text}`), { status: res.status });
    return text ? JSON.parse(text) : undefined;
  }
}
