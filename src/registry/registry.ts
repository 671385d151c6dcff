// Live endpoints of every service: the static `endpoints` of Service specs,
// plus instances registered through the API (by `weft run` and sidecars).
// A registration holds a lease: when it is not renewed within its TTL the
// instance leaves the mesh and proxies stop sending to it. The leases are
// the DocumentSet's: swept by this process on the embedded store, etcd
// leases with replicas (an instance's registration outlives the replica it
// registered with, and expires on every replica at once).
import * as crypto from 'node:crypto';
import * as net from 'node:net';
import * as path from 'node:path';
import { z } from 'zod';
import { name as nameSchema, port as portSchema, type Resource } from '../config/kinds';
import { silentLogger, type Logger } from '../observe/log';
import { FileDocumentSet, type DocumentSet } from '../store/document-set';
import type { Store } from '../store/store';
import type { Endpoint } from '../translate/types';

export type Health = Endpoint['health'];

export const DEFAULT_TTL_SECONDS = 15;
const MAX_TTL_SECONDS = 3600;

/** Plugins a registration may list, and the length of their strings: a registration is a small document. */
const MAX_PLUGINS = 32;
const MAX_REASON = 500;

/** A plugin of the instance as its `weft run` reports it (for `weft status` and the dashboard; not used for routing). */
const pluginStatusSchema = z.strictObject({
  name: z.string().min(1).max(63),
  type: z.string().min(1).max(32),
  state: z.enum(['running', 'restarting', 'exited', 'failed']),
  /** Restarts since the unit started. */
  restarts: z.number().int().min(0).max(1_000_000_000),
  /** How its last run ended ("exit code 1", "killed by SIGSEGV"). */
  lastExit: z.string().max(200).optional(),
});

export type PluginStatus = z.output<typeof pluginStatusSchema>;

const healthReasonSchema = z.string().max(MAX_REASON);
const pluginsSchema = z.array(pluginStatusSchema).max(MAX_PLUGINS);

/** What a renewal may change besides the lease. */
const renewalSchema = z.strictObject({
  health: z.enum(['healthy', 'unhealthy', 'draining']).optional(),
  /** Why the instance is unhealthy (the monitor plugin's last failed probe); dropped once it is not. */
  healthReason: healthReasonSchema.optional(),
  plugins: pluginsSchema.optional(),
});

export type RegistrationUpdate = z.input<typeof renewalSchema>;

const registrationRequestSchema = z.strictObject({
  service: nameSchema,
  namespace: nameSchema.optional(),
  address: z.string().refine((a) => net.isIP(a) !== 0, 'an IPv4 or IPv6 address'),
  /** One port for every service port, or ports by service port name. */
  port: portSchema.optional(),
  ports: z.record(z.string(), portSchema).optional(),
  labels: z.record(z.string(), z.string()).optional(),
  zone: z.string().optional(),
  weight: z.number().int().min(1).max(128).optional(),
  health: z.enum(['healthy', 'unhealthy', 'draining']).optional(),
  healthReason: healthReasonSchema.optional(),
  /** The instance's plugins and their restarts (`weft run`). */
  plugins: pluginsSchema.optional(),
  /** Lease length; the instance must renew before it runs out. */
  ttlSeconds: z.number().int().min(1).max(MAX_TTL_SECONDS).optional(),
  /** A weft sidecar fronts the instance (`weft run`): callers' sidecars speak mTLS to it. */
  sidecar: z.boolean().optional(),
});

export type RegistrationRequest = z.input<typeof registrationRequestSchema>;

export interface Registration {
  id: string;
  service: string;
  namespace: string;
  address: string;
  ports: Record<string, number>;
  labels: Record<string, string>;
  zone?: string;
  weight: number;
  health: Health;
  /** Why it is unhealthy, as its monitor said (only while unhealthy). */
  healthReason?: string;
  ttlSeconds: number;
  /** A weft sidecar fronts the instance (absent in registrations saved before mTLS: false). */
  sidecar?: boolean;
  /** Its plugins' state, reported by `weft run` (absent in older registrations and for other registrants). */
  plugins?: PluginStatus[];
  registeredAt: number;
  expiresAt: number;
}

/** A registration the registry refuses; `field` names what is wrong. */
export class RegistrationError extends Error {
  constructor(
    readonly code: 'E_REGISTRATION_INVALID' | 'E_UNKNOWN_SERVICE' | 'E_UNKNOWN_REGISTRATION',
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

export interface RegistryOptions {
  store: Store;
  /** Registrations survive a control-plane restart here (they still have to renew). */
  dataDir?: string;
  /** Where registrations live instead (etcd); `dataDir` and `sweepIntervalMs` then do not apply. */
  documents?: DocumentSet<Registration>;
  log?: Logger;
  now?: () => number;
  /** How often expired leases are swept; 0 disables the timer (tests call sweep()). */
  sweepIntervalMs?: number;
}

export class Registry {
  private readonly registrations: DocumentSet<Registration>;
  private readonly file: FileDocumentSet<Registration> | undefined;
  private readonly listeners = new Set<() => void>();
  private readonly store: Store;
  private readonly log: Logger;
  private readonly now: () => number;

  constructor(opts: RegistryOptions) {
    this.store = opts.store;
    this.log = opts.log ?? silentLogger;
    this.now = opts.now ?? Date.now;
    if (opts.documents) {
      this.registrations = opts.documents;
    } else {
      this.file = new FileDocumentSet<Registration>({
        file: opts.dataDir ? path.join(opts.dataDir, 'registrations.json') : undefined,
        field: 'registrations',
        idOf: (r) => (r as Registration).id,
        sweepIntervalMs: opts.sweepIntervalMs ?? 1000,
        now: this.now,
      });
      // Restored registrations get a fresh lease: their instances had no control plane to renew with.
      this.file.restoreTtl((r) => r.ttlSeconds);
      this.registrations = this.file;
    }
    this.registrations.onChange((id, reg, expired) => {
      if (expired) this.log('warn', 'registration lease expired', { id });
      this.changed();
    });
  }

  async register(input: unknown): Promise<Registration> {
    const parsed = registrationRequestSchema.safeParse(input);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const field = issue.path.join('.');
      throw new RegistrationError('E_REGISTRATION_INVALID', `${field || 'body'}: ${issue.message}`, field || undefined);
    }
    const req = parsed.data;
    const namespace = req.namespace ?? 'default';
    const service = this.store.get('Service', namespace, req.service);
    if (!service) {
      throw new RegistrationError('E_UNKNOWN_SERVICE', `no Service ${namespace}/${req.service}`, 'service');
    }
    const ports = resolvePorts(service.resource, req);
    const ttlSeconds = req.ttlSeconds ?? DEFAULT_TTL_SECONDS;
    const weight = req.weight ?? 1;
    const health = req.health ?? 'healthy';
    const now = this.now();
    // One address and ports are one instance: registering it again (a replayed request, a `weft run`
    // that restarted before its lease ran out) updates that registration instead of adding a twin.
    const same = this.registrations.values().find((r) => r.namespace === namespace && r.service === req.service && r.address === req.address && samePorts(r.ports, ports));
    const reg: Registration = {
      id: same?.id ?? crypto.randomUUID(),
      service: req.service,
      namespace,
      address: req.address,
      ports,
      labels: { ...req.labels },
      zone: req.zone,
      weight,
      health,
      ttlSeconds,
      ...(health === 'unhealthy' && req.healthReason ? { healthReason: req.healthReason } : {}),
      ...(req.sidecar ? { sidecar: true } : {}),
      ...(req.plugins ? { plugins: req.plugins } : {}),
      registeredAt: same?.registeredAt ?? now,
      expiresAt: now + ttlSeconds * 1000,
    };
    await this.registrations.put(reg.id, reg, { ttlSeconds });
    this.log('info', same ? 'instance registered again' : 'instance registered', { id: reg.id, service: `${namespace}/${req.service}`, address: req.address });
    return reg;
  }

  /**
   * Extends the lease; may also change the instance's health (e.g. draining before exit, unhealthy
   * from its monitor) and its plugins' state. A health or a reason the body does not give stays.
   */
  async renew(id: string, update: Health | RegistrationUpdate = {}): Promise<Registration> {
    const parsed = renewalSchema.safeParse(typeof update === 'string' ? { health: update } : update);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const field = issue.path.join('.');
      throw new RegistrationError('E_REGISTRATION_INVALID', `${field || 'body'}: ${issue.message}`, field || undefined);
    }
    const u = parsed.data;
    const reg = this.registrations.get(id);
    const gone = () => new RegistrationError('E_UNKNOWN_REGISTRATION', `no registration ${id} (expired or never made)`, 'id');
    if (!reg) throw gone();
    if (!(await this.registrations.keepAlive(id))) throw gone();
    const health = u.health ?? reg.health;
    const reason = health !== 'unhealthy' ? undefined : u.health ? u.healthReason : (u.healthReason ?? reg.healthReason);
    const { healthReason: _old, ...rest } = reg;
    const next: Registration = {
      ...rest,
      health,
      ...(reason ? { healthReason: reason } : {}),
      ...(u.plugins ? { plugins: u.plugins } : {}),
      expiresAt: this.now() + reg.ttlSeconds * 1000,
    };
    // The document changes only with what it says: a renewal alone is one keep-alive, not a write.
    const changed = health !== reg.health || reason !== reg.healthReason || (u.plugins !== undefined && JSON.stringify(u.plugins) !== JSON.stringify(reg.plugins ?? []));
    if (changed) {
      await this.registrations.put(id, next, { ttlSeconds: reg.ttlSeconds });
      if (health !== reg.health) this.log('info', `instance ${health}`, { id, service: `${reg.namespace}/${reg.service}`, ...(reason ? { reason } : {}) });
    }
    return next;
  }

  async deregister(id: string): Promise<boolean> {
    const reg = this.registrations.get(id);
    if (!reg || !(await this.registrations.delete(id))) return false;
    this.log('info', 'instance deregistered', { id, service: `${reg.namespace}/${reg.service}` });
    return true;
  }

  /** Removes registrations whose lease ran out (the embedded store's sweep; etcd expires leases itself). */
  sweep(): void {
    this.file?.sweep();
  }

  list(): Registration[] {
    return this.registrations.values().sort((a, b) => a.registeredAt - b.registeredAt || a.id.localeCompare(b.id));
  }

  /** Every service's endpoints, static first, keyed "namespace/name". */
  endpoints(): Map<string, Endpoint[]> {
    const out = new Map<string, Endpoint[]>();
    for (const { resource } of this.store.list('Service')) {
      const key = `${resource.metadata.namespace}/${resource.metadata.name}`;
      out.set(key, staticEndpoints(resource));
    }
    for (const reg of this.list()) {
      const list = out.get(`${reg.namespace}/${reg.service}`);
      if (!list) continue; // its Service was deleted; the lease will run out
      list.push({
        address: reg.address,
        ports: reg.ports,
        labels: reg.labels,
        zone: reg.zone,
        weight: reg.weight,
        health: reg.health,
        origin: reg.id,
        ...(reg.sidecar ? { sidecar: true } : {}),
      });
    }
    return out;
  }

  onChange(cb: () => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  async close(): Promise<void> {
    await this.registrations.close();
  }

  private changed(): void {
    for (const cb of this.listeners) {
      try {
        cb();
      } catch (err) {
        this.log('error', 'registry listener threw', { error: String(err) });
      }
    }
  }
}

function samePorts(a: Record<string, number>, b: Record<string, number>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k]);
}

function resolvePorts(service: Resource<'Service'>, req: RegistrationRequest): Record<string, number> {
  const ports: Record<string, number> = {};
  for (const p of service.spec.ports) {
    ports[p.name] = req.ports?.[p.name] ?? req.port ?? p.targetPort ?? p.port;
  }
  for (const name of Object.keys(req.ports ?? {})) {
    if (!service.spec.ports.some((p) => p.name === name)) {
      throw new RegistrationError('E_REGISTRATION_INVALID', `service has no port named "${name}"`, `ports.${name}`);
    }
  }
  return ports;
}

function staticEndpoints(service: Resource<'Service'>): Endpoint[] {
  return (service.spec.endpoints ?? []).map((e) => ({
    address: e.address,
    ports: Object.fromEntries(service.spec.ports.map((p) => [p.name, e.ports?.[p.name] ?? e.port ?? p.targetPort ?? p.port])),
    labels: { ...e.labels },
    zone: e.zone,
    weight: e.weight ?? 1,
    health: 'healthy' as const,
    origin: 'static',
  }));
}
