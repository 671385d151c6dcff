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
//
// The first registration keeps trying while no replica answers, or one
// answers 5xx or 429 (a control plane restarting, failing over, or too busy
// at the moment a unit starts), for as long as the unit waits for its app
// to listen; a 4xx (a wrong token, an unknown service) fails at once.
// Sending it again is safe: the registry takes one address and ports as one
// instance.
import { apiRequestAny } from '../api/api-request';
import type { Logger } from '../observe/log';
import type { PluginStatus } from '../registry/registry';
import type { AppHealth } from './plugins/unit-channel';
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
  /** Updates and renewals one after another: a health change never overtakes the one before it. */
  private queue: Promise<void> = Promise.resolve();
  /** The app's health as its plugins (the monitor) report it; `version` counts changes, `sent` the last one the API took. */
  private appHealth: { health: AppHealth; reason?: string; version: number; sent: number } = { health: 'healthy', version: 0, sent: 0 };
  private draining = false;
  private plugins: (() => PluginStatus[]) | undefined;
  /** The plugins' state as the control plane last took it (JSON), so a renewal sends it only when it changed. */
  private sentPlugins: string | undefined;
  /** Ends the wait between first-registration attempts (draining stops them). */
  private wakeRetry: (() => void) | undefined;

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

  /**
   * `plugins`: the unit's plugins' state, sent with the registration and with a renewal when it changed.
   * `retryForMs`: how long to keep trying while the control plane cannot answer (0: one attempt).
   */
  async register(
    request: { service: string; namespace: string; address: string; port: number; zone?: string },
    opts: { plugins?: () => PluginStatus[]; retryForMs?: number } = {},
  ): Promise<void> {
    this.request = { ...request, ttlSeconds: 15, sidecar: true }; // weft run always has its sidecar in front
    this.plugins = opts.plugins;
    this.registering = this.registerFirst(Date.now() + (opts.retryForMs ?? 0));
    await this.registering;
    this.timer = setInterval(() => void this.renew(), (this.current!.ttlSeconds * 1000) / 3);
    this.timer.unref();
  }

  /**
   * The app's health as a plugin sees it: sent at once when registered (and kept by renewals and
   * re-registrations), or with the first registration. A draining instance stays draining.
   */
  setHealth(health: AppHealth, reason?: string): Promise<void> {
    const version = this.appHealth.version + 1;
    this.appHealth = { health, ...(reason ? { reason } : {}), version, sent: this.appHealth.sent };
    if (!this.current && !this.registering) return Promise.resolve();
    return this.enqueue(async () => {
      await this.registering?.catch(() => {});
      // A renewal still sends it when this one fails.
      if (this.appHealth.sent < version) await this.sync(true);
    });
  }

  async markDraining(): Promise<void> {
    // A SIGTERM while the registration is on its way: the control plane may already list the
    // instance, so wait for its answer and drain it, rather than skip the draining step.
    this.draining = true;
    this.wakeRetry?.();
    await this.registering?.catch(() => {});
    if (!this.current) return;
    const id = this.current.id;
    await this.enqueue(() =>
      this.call('PUT', `/api/v1/registrations/${id}`, { health: 'draining' }).then(
        () => undefined,
        (err) => this.log('warn', 'could not mark the instance draining', { error: String(err) }),
      ),
    );
  }

  async deregister(): Promise<void> {
    clearInterval(this.timer);
    if (!this.current) return;
    const id = this.current.id;
    this.current = undefined;
    await this.call('DELETE', `/api/v1/registrations/${id}`).catch((err) => this.log('warn', 'could not deregister', { error: String(err) }));
  }

  /** What the lease timer runs: a renewal, with whatever changed. */
  private renew(): Promise<void> {
    return this.enqueue(() => this.sync());
  }

  private enqueue(fn: () => Promise<void>): Promise<void> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => {});
    return next;
  }

  /** The health the control plane should hold: draining wins over what a plugin says. */
  private healthBody(): { health: string; healthReason?: string } {
    if (this.draining) return { health: 'draining' };
    const { health, reason } = this.appHealth;
    return { health, ...(health === 'unhealthy' && reason ? { healthReason: reason.slice(0, 500) } : {}) };
  }

  /** The first registration, tried again until `deadline` (Date.now()) while the control plane cannot answer. */
  private async registerFirst(deadline: number): Promise<void> {
    for (let delayMs = 500; ; delayMs = Math.min(delayMs * 2, 5000)) {
      try {
        return await this.registerNow();
      } catch (err) {
        const status = (err as { status?: number }).status;
        const mayAnswerLater = status === undefined || status >= 500 || status === 429;
        if (!mayAnswerLater || this.draining || Date.now() + delayMs > deadline) throw err;
        this.log('warn', 'could not register the instance; retrying', { error: String(err), retryInMs: delayMs });
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, delayMs);
          this.wakeRetry = () => (clearTimeout(timer), resolve());
        });
        this.wakeRetry = undefined;
        if (this.draining) throw err;
      }
    }
  }

  private async registerNow(): Promise<void> {
    const version = this.appHealth.version;
    const plugins = this.plugins?.();
    this.current = (await this.call('POST', '/api/v1/registrations', { ...this.request, ...this.healthBody(), ...(plugins ? { plugins } : {}) })) as Registration;
    this.appHealth.sent = Math.max(this.appHealth.sent, version);
    if (plugins) this.sentPlugins = JSON.stringify(plugins);
    this.log('info', 'instance registered', { id: this.current.id, ...this.request, ...(this.appHealth.health !== 'healthy' ? this.healthBody() : {}) });
  }

  /**
   * Renews the lease, with what changed since the control plane last heard (health, plugins);
   * registers again if it forgot the instance. `update`: a health change, logged if it fails.
   */
  private async sync(update = false): Promise<void> {
    if (!this.current) return;
    const body: Record<string, unknown> = {};
    const version = this.appHealth.version;
    if (!this.draining && this.appHealth.sent < version) Object.assign(body, this.healthBody());
    const plugins = this.plugins?.();
    const pluginsJson = plugins && JSON.stringify(plugins);
    if (plugins && pluginsJson !== this.sentPlugins) body.plugins = plugins;
    try {
      await this.call('PUT', `/api/v1/registrations/${this.current.id}`, body);
      if ('health' in body) {
        this.appHealth.sent = Math.max(this.appHealth.sent, version);
        this.log('info', `instance marked ${String(body.health)}`, { id: this.current.id, ...(body.healthReason ? { reason: body.healthReason } : {}) });
      }
      if (body.plugins) this.sentPlugins = pluginsJson;
    } catch (err) {
      if ((err as { status?: number }).status === 404) {
        await this.registerNow().catch((e) => this.log('warn', 'could not register again', { error: String(e) }));
      } else {
        this.log('warn', update ? 'could not update the instance’s health; the next renewal will' : 'lease renewal failed; will retry', { error: String(err) });
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
