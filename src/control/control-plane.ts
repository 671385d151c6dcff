// The control plane as one unit: store → registry → translator → snapshot
// cache → xDS server, plus the admin API. Every store or registry change
// rebuilds the mesh view and asks the cache to refresh the live node groups.
import * as path from 'node:path';
import { ApiServer, TypedBody } from '../api/api-server';
import { installDashboard } from '../observe/dashboard-api';
import { installPrometheusSd } from '../observe/prometheus-sd';
import { ControlMetrics } from './control-metrics';
import { jsonLogger, type Logger } from '../observe/log';
import type { MeshObserver } from '../observe/mesh-observer';
import { Registry } from '../registry/registry';
import { EmbeddedStore } from '../store/embedded-store';
import type { Store } from '../store/store';
import { translate } from '../translate/translate';
import type { MeshView, NodeInfo } from '../translate/types';
import { SnapshotCache } from '../xds/cache/snapshot-cache';
import { XdsServer } from '../xds/server/ads-server';
import { buildMeshView } from './mesh-view';
import { policyWarningsOf, type PolicyWarning } from '../translate/policy-warnings';
import { GlobalRateLimiter } from './rate-limit-service';
import * as grpc from '@grpc/grpc-js';
import { installCaApi } from '../ca/ca-api';
import { CertificateAuthority } from '../ca/certificate-authority';
import { JoinTokenStore } from '../ca/join-tokens';
import { TRUST_BUNDLE_SECRET_NAME, trustBundleSecret } from '../ca/sds-protocol';
import { sdsService } from '../ca/sds-service';
import { TYPE_URL } from '../xds/type-urls';
import * as fs from 'node:fs';
import { keyFromSecret } from '../ca/key-wrap';
import { ConfigDirectorySync } from '../store/etcd/config-sync';
import { openEtcdBackend } from '../store/etcd/etcd-backend';
import type { EtcdStoreOptions } from '../store/etcd/etcd-connection';
import { AuditLog, type AuditEntry } from '../api/audit-log';
import { BOOTSTRAP_ID, CredentialStore, type StoredCredential } from '../api/credentials';
import { installCredentialsApi } from '../api/credentials-api';
import { xdsAccess } from './xds-access';
import { ServingCertificate } from './serving-certificate';
import { FileDocumentSet } from '../store/document-set';
import { writeFileAtomic } from '../store/atomic-file';
import { MetricsIntake } from '../observe/telemetry/metrics-intake';
import { AdminRelay } from '../observe/telemetry/admin-relay';
import { MeshTelemetry } from '../observe/telemetry/mesh-telemetry';
import { ReplicaPeers } from '../observe/telemetry/replica-peers';
import * as os from 'node:os';

export interface ControlPlaneOptions {
  /** How long a change's removals wait for every stream to hold its new routes (make before break; default 1 s). */
  xdsRemovalGraceMs?: number;
  /** YAML config directory, loaded and watched. */
  configDir?: string;
  /** Persistent state (API-applied resources, registrations). */
  dataDir?: string;
  /** Port of the xDS server; 0 picks a free one. */
  xdsPort?: number;
  /** Port of the admin API; 0 picks a free one. */
  apiPort?: number;
  host?: string;
  log?: Logger;
  /** Interval of the registry's lease sweep. */
  sweepIntervalMs?: number;
  /** How often the dashboard's aggregator scrapes the sidecars' metrics (default 2 s). */
  observeIntervalMs?: number;
  /**
   * Development mode: xDS in plaintext and certificates issued without a join
   * token (for the identity a node declares). Otherwise xDS runs over TLS with
   * a certificate from the mesh CA, and issuance needs a token.
   */
  dev?: boolean;
  /** SPIFFE trust domain (default cluster.local). */
  trustDomain?: string;
  /** Lifetime of workload certificates in ms (default 24 h). */
  certTtlMs?: number;
  /** Bring your own root CA: certificate and key PEM files (weft makes its intermediate under it). */
  rootCertFile?: string;
  rootKeyFile?: string;
  /** This replica's name in node statuses, logs and elections (default <hostname>:<xDS port>). */
  replicaId?: string;
  /**
   * Replicas: every piece of control-plane state in etcd instead of the data directory (which then
   * holds only this replica's trust-bundle.pem and the config directory's last good files).
   */
  etcd?: EtcdStoreOptions;
  /** With etcd: a file whose content seals the CA's private keys in the store (the same on every replica). */
  caKeySecretFile?: string;
  /** The address the other replicas reach this one's API at (default: --host, or this host's first address when that is 0.0.0.0 / ::). */
  advertiseAddress?: string;
}

export interface ControlPlane {
  xdsPort: number;
  apiPort: number;
  /** Where clients reach the API: https (http in --dev), at the advertised address (not 0.0.0.0). */
  apiUrl: string;
  store: Store;
  registry: Registry;
  cache: SnapshotCache;
  xds: XdsServer;
  api: ApiServer;
  rateLimiter: GlobalRateLimiter;
  observer: MeshObserver;
  /** Sidecars' metrics reports and relay streams, and the whole mesh's live state (with the other replicas). */
  intake: MetricsIntake;
  relay: AdminRelay;
  telemetry: MeshTelemetry;
  ca: CertificateAuthority;
  tokens: JoinTokenStore;
  credentials: CredentialStore;
  /** Outside --dev, where this replica wrote the first admin token (undefined: it existed already). */
  adminTokenFile: string | undefined;
  /** With etcd and a config directory: the sync, and whether this replica is its elected writer. */
  readonly configSync: ConfigDirectorySync | undefined;
  close(): Promise<void>;
}

/**
 * Outside --dev, the mesh's first admin credential, made once (whichever replica gets there first):
 * its token goes to <data-dir>/admin.token (0600) and nowhere else. Returns that file's path when
 * this replica wrote it.
 */
async function bootstrapAdminCredential(credentials: CredentialStore, dataDir: string, log: Logger): Promise<string | undefined> {
  if (credentials.has(BOOTSTRAP_ID)) return undefined;
  let made;
  try {
    made = await credentials.create({ name: 'admin', role: 'admin', id: BOOTSTRAP_ID });
  } catch {
    return undefined; // another replica made it first
  }
  const file = path.join(dataDir, 'admin.token');
  await fs.promises.mkdir(dataDir, { recursive: true, mode: 0o700 });
  await writeFileAtomic(file, made.token + '\n', 0o600);
  log('info', 'admin credential created; its token is in the file (mode 0600): export WEFT_TOKEN=$(cat <file>)', { file });
  return file;
}

function readSecretFile(file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new Error(`--ca-key-secret-file ${file}: ${(err as Error).message}`);
  }
}

export async function startControlPlane(opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const log = opts.log ?? jsonLogger();
  const host = opts.host ?? '127.0.0.1';
  const dataDir = path.resolve(opts.dataDir ?? '.weft');
  const etcd = opts.etcd ? await openEtcdBackend(opts.etcd, log) : undefined;
  const store: Store = etcd ? etcd.store : await EmbeddedStore.open({ configDir: opts.configDir, dataDir, log });
  const registry = new Registry({ store, dataDir, documents: etcd?.registrations, log, sweepIntervalMs: opts.sweepIntervalMs });
  const dev = opts.dev ?? false;
  let ca: CertificateAuthority;
  try {
    const sealKey = opts.caKeySecretFile ? keyFromSecret(readSecretFile(opts.caKeySecretFile)) : undefined;
    const shared = etcd && { material: etcd.caMaterial, issued: etcd.issued, sealKey };
    ca = await CertificateAuthority.open({ dataDir, shared, trustDomain: opts.trustDomain, leafTtlMs: opts.certTtlMs, rootCertFile: opts.rootCertFile, rootKeyFile: opts.rootKeyFile, log });
  } catch (err) {
    await registry.close();
    await (etcd ? etcd.close() : store.close());
    throw err;
  }
  const tokens = new JoinTokenStore(etcd?.tokens ?? dataDir);
  let configSync: ConfigDirectorySync | undefined;

  // The view is rebuilt at most once per change burst and shared by every node group.
  let view: MeshView | undefined;
  const currentView = () => (view ??= buildMeshView(store, registry));
  const metrics = new ControlMetrics();
  // Every node's snapshot carries the trust bundle (SDS Secret "ROOTCA"); a client that does not subscribe to Secrets never sees it.
  const generate = (node: NodeInfo) => {
    const set = translate(currentView(), node, { trustDomain: ca.trustDomain });
    set.get(TYPE_URL.Secret)?.set(TRUST_BUNDLE_SECRET_NAME, { name: TRUST_BUNDLE_SECRET_NAME, resource: trustBundleSecret(TRUST_BUNDLE_SECRET_NAME, ca.bundlePem()) });
    return set;
  };
  const cache = new SnapshotCache({ generate: metrics.timed(generate), log, removalGraceMs: opts.xdsRemovalGraceMs });
  // Accepted but not in effect (a backend's retries a route does not apply): worked out once per view.
  let warned: { view: MeshView; list: PolicyWarning[] } | undefined;
  const configWarnings = (): PolicyWarning[] => {
    const v = currentView();
    if (warned?.view !== v) warned = { view: v, list: policyWarningsOf(v) };
    return warned.list;
  };
  const invalidate = () => {
    view = undefined;
    cache.refresh();
  };
  const stopWatch = store.watch('*', invalidate);
  const stopRegistry = registry.onChange(invalidate);
  const stopCa = ca.onChange(invalidate);

  // Outside --dev the xDS port speaks TLS with a certificate that renews itself (and follows root rotations).
  const advertised = opts.advertiseAddress ?? advertisedHost(host);
  const serving = dev ? undefined : await ServingCertificate.start(ca, [...new Set([host, advertised])], log);
  const credentials = serving?.serverCredentials();
  // Who may use the API (outside --dev): operators' credentials and workloads' join tokens.
  const apiCredentials = new CredentialStore(etcd?.credentials ?? new FileDocumentSet<StoredCredential>({ file: path.join(dataDir, 'api-credentials.json'), field: 'credentials', mode: 0o600, idOf: (c) => (c as StoredCredential).id, sweepIntervalMs: 0 }));
  const audit = new AuditLog(etcd?.audit ?? new FileDocumentSet<AuditEntry>({ file: path.join(dataDir, 'audit.json'), field: 'entries', mode: 0o600, idOf: (e) => (e as AuditEntry).id, sweepIntervalMs: 3_600_000 }), (err) =>
    log('warn', 'could not write the audit log', { error: String(err) }),
  );
  const xds = new XdsServer({ cache, log, onStatusChange: metrics.statusChanged, onNack: metrics.nacked, credentials, replicaId: opts.replicaId, authorize: dev ? undefined : xdsAccess(tokens, apiCredentials) });
  const sds = sdsService({ ca, tokens, dev, log });
  xds.addService(sds.definition, sds.handlers);
  // Global rate limits: sidecars ask here, on the port they already reach for xDS.
  const rateLimiter = new GlobalRateLimiter(() => currentView().trafficPolicies, undefined, undefined, etcd?.counters);
  const rls = rateLimiter.service();
  xds.addService(rls.definition, rls.handlers);
  // Telemetry: each sidecar streams its metrics and keeps an admin relay open, on the port it reaches for xDS.
  const streamAccess = dev ? undefined : xdsAccess(tokens, apiCredentials);
  const intake = new MetricsIntake({ authorize: streamAccess, log });
  const relay = new AdminRelay({ authorize: streamAccess, log });
  for (const svc of [intake.service(), relay.service()]) xds.addService(svc.definition, svc.handlers);
  // With etcd, any replica answers for the whole mesh by asking the others (announced in the store).
  const peers = etcd ? new ReplicaPeers({ documents: etcd.replicas, credentials: dev ? undefined : apiCredentials, ca: () => ca.bundlePem(), log }) : undefined;
  const replicaName = () => xds.replicaId;
  const telemetry = new MeshTelemetry({ replica: replicaName, nodes: () => xds.status(), intake, relay, peers });
  const adminTokenFile = dev ? undefined : await bootstrapAdminCredential(apiCredentials, dataDir, log);
  const api = new ApiServer({
    store,
    registry,
    auth: dev ? undefined : { dev, credentials: apiCredentials, tokens },
    audit,
    nodes: () => xds.status(),
    meshNodes: () => telemetry.nodes(),
    snapshotErrors: () => cache.errors(),
    configWarnings,
    log,
  });
  installCredentialsApi(api, { credentials: apiCredentials, audit });
  const observer = installDashboard(api, {
    store,
    registry,
    nodes: () => xds.status(),
    errors: () => ({ config: store.configErrors().map((e) => e.toJSON()), snapshots: cache.errors(), warnings: configWarnings() }),
    view: currentView,
    telemetry,
    intake,
    peers,
    replica: replicaName,
    intervalMs: opts.observeIntervalMs,
  });
  installCaApi(api, { ca, tokens, dev });
  installPrometheusSd(api, { nodes: async () => (await telemetry.nodes()).items });
  api.route('GET', /^\/metrics$/, 'viewer', () => new TypedBody('text/plain; version=0.0.4; charset=utf-8', metrics.render({ nodes: xds.status(), store, cache })));
  let xdsPort: number;
  let apiPort: number;
  try {
    xdsPort = await xds.listen(opts.xdsPort ?? 15010, host);
    apiPort = await api.listen(opts.apiPort ?? 15000, host, serving);
  } catch (err) {
    observer.stop();
    await xds.close().catch(() => {});
    await configSync?.close();
    await registry.close();
    await (etcd ? etcd.close() : store.close());
    throw err;
  }
  const replica = xds.replicaId;
  const apiUrl = `${serving ? 'https' : 'http'}://${urlHost(advertised)}:${apiPort}`;
  try {
    await peers?.start({ id: replica, api: apiUrl });
  } catch (err) {
    log('warn', 'could not announce this replica to its peers; it answers for its own sidecars only', { error: String(err) });
  }
  // With etcd, a config directory is synced into the store by one elected replica (config-sync.ts).
  if (etcd && opts.configDir) configSync = new ConfigDirectorySync(etcd.conn, etcd.store, { configDir: path.resolve(opts.configDir), dataDir, replica, log });
  log('info', 'control plane started', { replica, store: etcd ? `etcd ${etcd.conn.endpoints.join(',')}` : 'embedded', xds: `${host}:${xdsPort}`, xdsTls: !dev, api: `${serving ? 'https' : 'http'}://${host}:${apiPort}`, configDir: opts.configDir, dataDir, trustDomain: ca.trustDomain });

  return {
    xdsPort,
    apiPort,
    apiUrl,
    store,
    registry,
    cache,
    xds,
    api,
    rateLimiter,
    observer,
    intake,
    relay,
    telemetry,
    ca,
    tokens,
    credentials: apiCredentials,
    adminTokenFile,
    get configSync() {
      return configSync;
    },
    async close() {
      observer.stop();
      await peers?.close();
      intake.close();
      relay.close();
      stopWatch();
      stopRegistry();
      stopCa();
      await Promise.all([api.close(), xds.close()]);
      await configSync?.close();
      serving?.close();
      await ca.close();
      await tokens.close();
      await apiCredentials.close();
      await audit.close();
      await registry.close();
      await (etcd ? etcd.close() : store.close());
    },
  };
}

/** The address other replicas reach this one at: the bound one, or this host's first non-loopback address when bound to all. */
function advertisedHost(host: string): string {
  if (host !== '0.0.0.0' && host !== '::') return host;
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) if (!a.internal && a.family === 'IPv4') return a.address;
  }
  return '127.0.0.1';
}

function urlHost(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}
