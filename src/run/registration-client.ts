// The instance's registration with the control plane: register, renew the
// lease at a third of its TTL (re-registering if the control plane forgot
// it, e.g. after a restart with a lost data directory), mark draining,
// deregister.
//
// `api` may list the control plane's replicas, comma-separated: each call
// goes to the replica that answered last, and to the next ones when it
// cannot be reached (src/api/api-request.ts). A replica that does not know
// the registration (a replica with its own store) answers 404 to a renewal,
// and the instance registers again there.
import { apiRequestAny } from '../api/api-request';
import type { Logger } from '../observe/log';
import { ControlPlaneAddresses } from '../xds/client/control-plane-addresses';

interface Registration {
  id: string;
  ttlSeconds: number;
}

export class RegistrationClient {
  private current: Registration | undefined;
  private request: Record<string, unknown> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly urls: ControlPlaneAddresses;
  /** The first registration while it is on its way. */
  private registering: Promise<void> | undefined;

  /** `api`: the admin API's URL, or the replicas' URLs comma-separated. */
  constructor(
    api: string,
    private readonly log: Logger,
    /** The service's join token: the API lets it register, renew and deregister instances of that service only. */
    private readonly token?: string,
    /** The mesh's trust bundle (PEM): the API's certificate must chain to it (outside --dev the API speaks TLS). */
    private readonly ca?: string,
  ) {
    this.urls = ControlPlaneAddresses.api(api);
  }

  async register(request: { service: string; namespace: string; address: string; port: number; zone?: string }): Promise<void> {
    this.request = { ...request, ttlSeconds: 15, sidecar: true }; // weft run always has its sidecar in front
    this.registering = this.registerNow();
    await this.registering;
    this.timer = setInterval(() => void this.renew(), (this.current!.ttlSeconds * 1000) / 3);
    this.timer.unref();
  }

  async markDraining(): Promise<void> {
    // A SIGTERM while the registration is on its way: the control plane may already list the
    // instance, so wait for its answer and drain it, rather than skip the draining step.
    await this.registering?.catch(() => {});
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
    const res = await apiRequestAny(this.urls, method, path, {
      body: body === undefined ? undefined : JSON.stringify(body),
      contentType: 'application/json',
      token: this.token,
      ca: this.ca,
      timeoutMs: 5000,
      onFailover: (failed, error, next) => this.log('info', 'control plane API unreachable; trying the next replica', { failed, error, next, request: `${method} ${path}` }),
    });
    if (res.status < 200 || res.status >= 300) throw Object.assign(new Error(`${method} ${path}: HTTP ${res.status} ${res.text}`), { status: res.status });
    return res.text ? JSON.parse(res.text) : undefined;
  }
}
