// The sidecar's certificate agent: it makes an ECDSA P-256 key in this
// process (the key never leaves it), sends a CSR for the sidecar's SPIFFE ID
// to the control plane's CA (unary SDS FetchSecrets, with the join token when
// there is one) and puts the answer in the SecretStore as "default".
//
// Renewal at about half life, drawn in [45%, 50%] of the lifetime so a fleet
// started together does not renew in lockstep. The lifetime is counted from
// when the certificate arrived (or its notBefore, if later): the CA backdates
// notBefore a few minutes for clock skew, which would otherwise eat a
// short-lived certificate's first half. Each renewal makes a new key. When the
// control plane cannot be reached (or refuses), the agent retries with
// jittered exponential backoff and the current certificate keeps serving.
// With several control plane replicas (`--xds a,b`), one request tries them
// in turn, the replica the ADS stream uses first, until one answers (see
// control-plane-addresses.ts); the backoff waits only once all have failed.
//
// After a root rotation the agent does not wait for half life: when the trust
// bundle (ROOTCA over ADS) names an active root (its first) that does not sign
// the held chain, it renews within a short random spread, so every sidecar
// chains to the new root within seconds and the old one can be retired. A
// certificate that comes back under another root than the bundle's active one
// (a replica that has not seen the rotation yet) is asked for again with
// backoff.
import * as grpc from '@grpc/grpc-js';
import { createPublicKey, X509Certificate } from 'node:crypto';
import type { Logger } from '../../observe/log';
import { decodeMessage } from '../../xds/protos';
import { Backoff, type BackoffOptions } from '../../xds/client/backoff';
import { ControlPlaneAddresses, grpcUnreachable } from '../../xds/client/control-plane-addresses';
import {
  CSR_METADATA,
  decodeDiscoveryResponse,
  encodeDiscoveryRequest,
  FETCH_SECRETS_PATH,
  SECRET_TYPE_URL,
  WORKLOAD_SECRET_NAME,
} from '../../ca/sds-protocol';
import { isSignedBy, splitPemCertificates } from '../../ca/cert-info';
import { createCsrPem, generateEcKeyPem } from '../../ca/csr';
import { TRUST_BUNDLE_SECRET, WORKLOAD_CERT_SECRET, type SecretStore } from './secret-store';

export interface CertificateAgentOptions {
  /** The control plane's xDS address (host:port), a comma-separated list of replicas', or the list the sidecar's xDS client shares. */
  server: string | ControlPlaneAddresses;
  /** TLS to the control plane; plaintext (dev mode) when absent. */
  credentials?: grpc.ChannelCredentials;
  nodeId: string;
  /** The node metadata the sidecar's xDS client sends (WEFT_SERVICE, WEFT_NAMESPACE…): dev mode issues for it. */
  metadata: Record<string, string>;
  /** The SPIFFE ID the CSR asks for. */
  spiffeId: string;
  joinToken?: string;
  secrets: SecretStore;
  log: Logger;
  /** Retry backoff after a failed request (default 500 ms doubling to 30 s, jittered). */
  backoff?: BackoffOptions;
  /** Deadline of one request (default 10 s). */
  requestTimeoutMs?: number;
  /** When the trust bundle gains a new active root, renew within this many ms, drawn at random so a fleet does not ask at once (default 2 s). */
  rotationSpreadMs?: number;
  random?: () => number;
}

export interface CertificateAgentStatus {
  spiffeId: string;
  state: 'starting' | 'ready' | 'retrying' | 'stopped';
  issued: number;
  failures: number;
  lastError?: string;
  nextRenewalAt?: string;
}

const DEFAULT_RETRY: BackoffOptions = { initialMs: 500, maxMs: 30_000 };
const DEFAULT_ROTATION_SPREAD_MS = 2000;

export class CertificateAgent {
  private readonly addresses: ControlPlaneAddresses;
  /** One channel per replica, made when first used. */
  private readonly clients = new Map<string, grpc.Client>();
  private readonly backoff: Backoff;
  private readonly random: () => number;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private state: CertificateAgentStatus['state'] = 'starting';
  private issued = 0;
  private failures = 0;
  private lastError: string | undefined;
  private nextRenewalAt: Date | undefined;
  private readonly waiters: (() => void)[] = [];
  private renewing = false;
  private readonly stopBundleWatch: () => void;

  constructor(private readonly opts: CertificateAgentOptions) {
    this.addresses = opts.server instanceof ControlPlaneAddresses ? opts.server : ControlPlaneAddresses.xds(opts.server);
    this.random = opts.random ?? Math.random;
    this.backoff = new Backoff(opts.backoff ?? DEFAULT_RETRY, this.random);
    this.stopBundleWatch = opts.secrets.onChange((name) => {
      if (name === TRUST_BUNDLE_SECRET) this.bundleChanged();
    });
  }

  start(): void {
    this.schedule(0);
  }

  stop(): void {
    this.stopped = true;
    this.state = 'stopped';
    this.stopBundleWatch();
    clearTimeout(this.timer);
    for (const client of this.clients.values()) client.close();
    this.clients.clear();
  }

  status(): CertificateAgentStatus {
    return {
      spiffeId: this.opts.spiffeId,
      state: this.state,
      issued: this.issued,
      failures: this.failures,
      ...(this.lastError ? { lastError: this.lastError } : {}),
      ...(this.nextRenewalAt ? { nextRenewalAt: this.nextRenewalAt.toISOString() } : {}),
    };
  }

  /** Resolves once a certificate is held (for tests and readiness); rejects after timeoutMs. */
  waitForCertificate(timeoutMs: number): Promise<void> {
    if (this.opts.secrets.certificate(WORKLOAD_CERT_SECRET)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no certificate after ${timeoutMs} ms${this.lastError ? `: ${this.lastError}` : ''}`)), timeoutMs);
      this.waiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.nextRenewalAt = new Date(Date.now() + delayMs);
    this.timer = setTimeout(() => void this.renew(), delayMs);
    this.timer.unref();
  }

  /**
   * The trust bundle changed: a rotation (a new active root) or a retirement.
   * When its active root does not sign the held chain, renew now rather than at
   * half life. A renewal in flight is checked when it lands (see renew()).
   */
  private bundleChanged(): void {
    if (this.stopped || this.renewing || this.onActiveRoot() !== false) return;
    const delay = Math.round(this.random() * (this.opts.rotationSpreadMs ?? DEFAULT_ROTATION_SPREAD_MS));
    if (this.nextRenewalAt && this.nextRenewalAt.getTime() <= Date.now() + delay) return; // due sooner anyway
    this.opts.log('info', 'the trust bundle has a new active root; renewing the workload certificate under it', { spiffeId: this.opts.spiffeId, renewInMs: delay });
    this.schedule(delay);
  }

  /** Whether the held certificate chains to the trust bundle's active root (its first); undefined while either is missing. */
  private onActiveRoot(): boolean | undefined {
    const held = this.opts.secrets.certificate(WORKLOAD_CERT_SECRET);
    const bundle = this.opts.secrets.trustBundle(TRUST_BUNDLE_SECRET);
    const active = bundle && splitPemCertificates(bundle.trustedCaPem)[0];
    const top = held && splitPemCertificates(held.certificateChainPem).at(-1);
    if (!active || !top) return undefined;
    return isSignedBy(top, active);
  }

  private async renew(): Promise<void> {
    if (this.stopped) return;
    this.renewing = true;
    try {
      const keyPem = await generateEcKeyPem();
      const csr = createCsrPem(keyPem, this.opts.spiffeId);
      const chainPem = await this.fetch(csr);
      if (this.stopped) return;
      const leaf = new X509Certificate(chainPem);
      checkLeaf(leaf, keyPem, this.opts.spiffeId);
      const receivedAt = Date.now();
      const notBefore = new Date(leaf.validFrom);
      const notAfter = new Date(leaf.validTo);
      this.opts.secrets.setCertificate(WORKLOAD_CERT_SECRET, { certificateChainPem: chainPem, privateKeyPem: keyPem, spiffeId: this.opts.spiffeId, notBefore, notAfter });
      this.issued++;
      this.state = 'ready';
      for (const w of this.waiters.splice(0)) w();
      const start = Math.max(receivedAt, notBefore.getTime());
      const fraction = 0.5 - 0.05 * this.random();
      const delay = Math.max(0, start + (notAfter.getTime() - start) * fraction - receivedAt);
      if (this.onActiveRoot() === false) {
        // Issued under another root than the bundle's active one: a replica behind the rotation, or a bundle behind the CA (its push re-checks).
        // Asked again with backoff, but never later than this certificate's own half life: it is the one serving meanwhile.
        this.lastError = `the certificate issued (serial ${leaf.serialNumber}) does not chain to the active root of the trust bundle; asking again`;
        const retry = Math.min(this.backoff.next(), delay);
        this.opts.log('debug', 'workload certificate not under the active root; renewing again', { spiffeId: this.opts.spiffeId, retryInMs: retry });
        this.schedule(retry);
        return;
      }
      this.lastError = undefined;
      this.backoff.reset();
      this.opts.log('info', 'workload certificate issued', { spiffeId: this.opts.spiffeId, serial: leaf.serialNumber, notAfter: notAfter.toISOString(), renewInMs: Math.round(delay) });
      this.schedule(delay);
    } catch (err) {
      if (this.stopped) return;
      this.failures++;
      this.state = 'retrying';
      this.lastError = err instanceof Error ? err.message : String(err);
      const delay = this.backoff.next();
      const held = this.opts.secrets.certificate(WORKLOAD_CERT_SECRET);
      // Loud on the first failure of a run; the retries after it are debug.
      this.opts.log(this.backoff.attempts === 1 ? 'warn' : 'debug', 'workload certificate not obtained; retrying', {
        spiffeId: this.opts.spiffeId,
        error: this.lastError,
        retryInMs: delay,
        serving: held ? `certificate valid until ${held.notAfter.toISOString()}` : 'no certificate yet',
      });
      this.schedule(delay);
    } finally {
      this.renewing = false;
    }
  }

  private client(address: string): grpc.Client {
    let client = this.clients.get(address);
    if (!client) {
      client = new grpc.Client(address, this.opts.credentials ?? grpc.credentials.createInsecure(), { 'grpc.enable_channelz': 0 });
      this.clients.set(address, client);
    }
    return client;
  }

  /** The chain for `csrPem` from the first replica that answers. */
  private async fetch(csrPem: string): Promise<string> {
    return this.addresses.call((address) => this.fetchFrom(address, csrPem), {
      what: 'FetchSecrets',
      unreachable: grpcUnreachable,
      onFailover: (failed, error, next) => this.opts.log('debug', 'control plane replica unreachable for FetchSecrets; trying the next', { server: failed, error, next }),
    });
  }

  private fetchFrom(address: string, csrPem: string): Promise<string> {
    const metadata = { ...this.opts.metadata, [CSR_METADATA]: csrPem };
    const request = {
      type_url: SECRET_TYPE_URL,
      resource_names: [WORKLOAD_SECRET_NAME],
      node: { id: this.opts.nodeId, user_agent_name: 'weft-proxy', metadata: { fields: Object.fromEntries(Object.entries(metadata).map(([k, v]) => [k, { stringValue: v }])) } },
    };
    const md = new grpc.Metadata();
    if (this.opts.joinToken) md.set('authorization', `Bearer ${this.opts.joinToken}`);
    const deadline = Date.now() + (this.opts.requestTimeoutMs ?? 10_000);
    return new Promise((resolve, reject) => {
      this.client(address).makeUnaryRequest(FETCH_SECRETS_PATH, encodeDiscoveryRequest, decodeDiscoveryResponse, request, md, { deadline }, (err, res) => {
        if (err) return reject(Object.assign(new Error(`FetchSecrets ${grpc.status[err.code] ?? err.code}: ${err.details || err.message}`), { code: err.code }));
        try {
          resolve(chainOf(res));
        } catch (e) {
          reject(e);
        }
      });
    });
  }
}

/** The certificate chain of the "default" Secret in a FetchSecrets answer. */
function chainOf(res: Record<string, any> | undefined): string {
  const any = (res?.resources ?? [])[0];
  if (!any || any.type_url !== SECRET_TYPE_URL) throw new Error('FetchSecrets answered without a Secret');
  const secret = decodeMessage(SECRET_TYPE_URL, any.value);
  const chain = secret.tls_certificate?.certificate_chain?.inline_string;
  if (secret.name !== WORKLOAD_SECRET_NAME || typeof chain !== 'string' || !chain) throw new Error(`FetchSecrets answered a Secret "${secret.name}" without a certificate chain`);
  return chain;
}

/** The leaf must carry our key and the identity we asked for. */
function checkLeaf(leaf: X509Certificate, keyPem: string, spiffeId: string): void {
  const ours = createPublicKey(keyPem).export({ type: 'spki', format: 'der' });
  const theirs = leaf.publicKey.export({ type: 'spki', format: 'der' });
  if (!ours.equals(theirs)) throw new Error('the issued certificate does not hold the key this sidecar made');
  if (!(leaf.subjectAltName ?? '').split(/,\s*/).includes(`URI:${spiffeId}`)) throw new Error(`the issued certificate is not for ${spiffeId}`);
}
