// The control plane's certificate authority. A root (generated on first start
// and kept in <dataDir>/ca/, or brought by the user as cert + key files), an
// intermediate under it that signs every workload leaf, and the trust bundle
// sidecars verify peers with. Without a data directory everything lives in
// memory (tests, throwaway meshes).
//
// Root rotation makes a new root and intermediate; the old root stays in the
// bundle (so certificates it signed keep verifying) until it is retired, and
// new leaves come from the new intermediate at once. Sidecars renew as soon as
// their trust bundle names a new active root (certificate-agent.ts). Each
// issuance record names the root its certificate chains to, and retiring is
// refused while a live certificate chains to a root being retired: peers that
// no longer trust that root would refuse every new connection with it.
//
// Files in <dataDir>/ca/ (keys 0600, the directory 0700):
//   root-cert.pem, root-key.pem    the generated root (absent when brought)
//   ca-cert.pem, ca-key.pem        the intermediate
//   previous-roots.pem             roots still trusted after a rotation
//   trust-bundle.pem               every trusted root: what sidecars pass as --ca-file
import * as fs from 'node:fs';
import * as path from 'node:path';
import { silentLogger, type Logger } from '../observe/log';
import { writeFileAtomic } from '../store/atomic-file';
import { certificateInfo, isSignedBy, shortFingerprint, splitPemCertificates, type CertificateInfo } from './cert-info';
import { createIntermediate, createRoot, issueKeyedLeaf, issueLeaf, parseCsr, PkiError, spiffeId, type KeyedCertificate } from './pki';
import { DEFAULT_TRUST_DOMAIN } from './spiffe-id';
import { CaError, RootInUseError } from './ca-error';
import { seal, unseal } from './key-wrap';
import { FileDocumentSet, type DocumentSet } from '../store/document-set';


export const DEFAULT_LEAF_TTL_MS = 24 * 3_600_000;
/** Shortest leaf lifetime accepted (tests use seconds; the CLI asks for at least a minute). */
export const MIN_LEAF_TTL_MS = 1000;
const ROOT_TTL_MS = 10 * 365 * 24 * 3_600_000;
const INTERMEDIATE_TTL_MS = 365 * 24 * 3_600_000;
/** Issuance records kept for `weft certs`. */
const MAX_RECORDS = 10_000;

export interface CaOptions {
  /** Where the CA's files live (<dataDir>/ca/); in memory when absent. */
  dataDir?: string;
  /**
   * Replicas: the CA's material and issuance records live in the shared store (etcd) instead of
   * <dataDir>/ca/, so every replica signs with the same intermediate and trusts the same roots.
   * <dataDir>/ca/trust-bundle.pem is still written, for sidecars' --ca-file.
   */
  shared?: SharedCaState;
  trustDomain?: string;
  /** Lifetime of workload certificates (default 24 h). */
  leafTtlMs?: number;
  /** Bring your own root: its certificate and private key (PEM files). weft makes its intermediate under it. */
  rootCertFile?: string;
  rootKeyFile?: string;
  log?: Logger;
}

export { CaError, RootInUseError, type CaErrorCode } from './ca-error';

/** The CA as one document of the shared store. Private keys are sealed when the replicas have a key secret (key-wrap.ts). */
export interface CaMaterial {
  root: KeyedCertificate;
  intermediate: KeyedCertificate;
  previousRoots: string[];
  /** The root was brought from files: its key is not in the store (keyPem ''), every replica has the files. */
  broughtRoot: boolean;
}

export interface SharedCaState {
  material: DocumentSet<CaMaterial>;
  /** The latest issuance per node (id: node id), expiring with the certificate. */
  issued: DocumentSet<IssuanceRecord>;
  /** The key that seals private keys in the store (keyFromSecret); undefined: stored as PEM. */
  sealKey?: Buffer;
}

const MATERIAL = 'material';

/** The identity a caller has the right to: its token's, or (dev mode) the one its node declares. */
export interface WorkloadIdentity {
  namespace: string;
  service: string;
}

export interface IssuanceRecord {
  nodeId: string;
  spiffeId: string;
  serial: string;
  notBefore: string;
  notAfter: string;
  issuedAt: string;
  /** SHA-256 fingerprint of the root the certificate chains to (absent in records written before roots were recorded). */
  rootFingerprint256?: string;
}

export interface IssuedCertificate {
  /** Leaf then intermediate, PEM. */
  chainPem: string;
  record: IssuanceRecord;
}

export interface RootView extends Omit<CertificateInfo, 'notBefore' | 'notAfter'> {
  notBefore: string;
  notAfter: string;
  /** The root new leaves chain to. */
  active: boolean;
  /** The fingerprint's first 8 hex digits: how `weft certs` names the root. */
  id: string;
}

export class CertificateAuthority {
  readonly trustDomain: string;
  readonly leafTtlMs: number;
  private readonly dir: string | undefined;
  private readonly log: Logger;
  private readonly records: IssuanceRecord[] = [];
  private readonly listeners = new Set<() => void>();

  private constructor(
    opts: CaOptions,
    private root: KeyedCertificate,
    private intermediate: KeyedCertificate,
    private previousRoots: string[],
    private readonly broughtRoot: boolean,
    private readonly shared?: SharedCaState,
  ) {
    this.trustDomain = opts.trustDomain ?? DEFAULT_TRUST_DOMAIN;
    this.leafTtlMs = opts.leafTtlMs ?? DEFAULT_LEAF_TTL_MS;
    this.dir = opts.dataDir ? caDir(opts.dataDir) : undefined;
    this.log = opts.log ?? silentLogger;
    if (shared) {
      this.issued = shared.issued;
    } else {
      const local = new FileDocumentSet<IssuanceRecord>({ file: this.dir ? path.join(this.dir, 'issued.json') : undefined, field: 'issued', idOf: (r) => (r as IssuanceRecord).nodeId, sweepIntervalMs: 60_000 });
      // A record leaves with its certificate: a node that stopped renewing is not listed forever.
      local.restoreTtl((r) => Math.max(1, Math.ceil((Date.parse(r.notAfter) - Date.now()) / 1000)));
      this.issued = local;
    }
  }

  /** The latest issuance per node (id: node id), expiring with the certificate: shared by the replicas, or <dataDir>/ca/issued.json. */
  private readonly issued: DocumentSet<IssuanceRecord>;

  static async open(opts: CaOptions = {}): Promise<CertificateAuthority> {
    validateOptions(opts);
    if (opts.shared) return CertificateAuthority.openShared(opts, opts.shared);
    const td = opts.trustDomain ?? DEFAULT_TRUST_DOMAIN;
    const log = opts.log ?? silentLogger;
    const dir = opts.dataDir ? caDir(opts.dataDir) : undefined;
    if (dir) await fs.promises.mkdir(dir, { recursive: true, mode: 0o700 });
    const broughtRoot = Boolean(opts.rootCertFile);
    let root: KeyedCertificate | undefined;
    if (opts.rootCertFile && opts.rootKeyFile) {
      root = { certPem: readPem(opts.rootCertFile, 'root certificate'), keyPem: readPem(opts.rootKeyFile, 'root key') };
    } else if (dir) {
      root = readPair(dir, 'root');
    }
    if (!root) {
      root = await createRoot({ commonName: 'weft root CA', organization: td, ttlMs: ROOT_TTL_MS });
      if (dir) await writePair(dir, 'root', root);
      log('info', 'ca root created', { trustDomain: td, dir: dir ?? '(memory)' });
    }
    let intermediate = dir ? readPair(dir, 'ca') : undefined;
    if (intermediate && !isSignedBy(intermediate.certPem, root.certPem)) {
      log('warn', 'ca intermediate is not signed by the root; making a new one', { dir });
      intermediate = undefined;
    }
    if (!intermediate) {
      intermediate = await makeIntermediate(root, td, opts);
      if (dir) await writePair(dir, 'ca', intermediate);
    }
    const previous = dir ? splitPemCertificates(readOptional(path.join(dir, 'previous-roots.pem')) ?? '') : [];
    const ca = new CertificateAuthority(opts, root, intermediate, previous, broughtRoot);
    await ca.writeBundle();
    return ca;
  }

  /**
   * The CA of a replica: the store's material when there is some (refused when this replica was
   * given another root, or cannot unseal the keys), else new material, created only if no other
   * replica created it first. Rotations and retirements by any replica reach this one.
   */
  private static async openShared(opts: CaOptions, shared: SharedCaState): Promise<CertificateAuthority> {
    const td = opts.trustDomain ?? DEFAULT_TRUST_DOMAIN;
    const log = opts.log ?? silentLogger;
    const brought = opts.rootCertFile && opts.rootKeyFile ? { certPem: readPem(opts.rootCertFile, 'root certificate'), keyPem: readPem(opts.rootKeyFile, 'root key') } : undefined;
    let material = shared.material.get(MATERIAL);
    if (!material) {
      const root = brought ?? (await createRoot({ commonName: 'weft root CA', organization: td, ttlMs: ROOT_TTL_MS }));
      const intermediate = await makeIntermediate(root, td, opts);
      const made: CaMaterial = { root, intermediate, previousRoots: [], broughtRoot: Boolean(brought) };
      if (await shared.material.create(MATERIAL, sealMaterial(made, shared.sealKey))) {
        log('info', 'ca created in the store', { trustDomain: td, brought: Boolean(brought) });
      }
      material = shared.material.get(MATERIAL); // ours, or the one another replica created first
      if (!material) throw new CaError('CA_FILES', 'the CA material written to the store did not come back from it');
    }
    const open = unsealMaterial(material, shared.sealKey, brought);
    if (brought && open.root.certPem.trim() !== brought.certPem.trim()) {
      throw new CaError('CA_FILES', `the store already holds a CA whose root differs from ${opts.rootCertFile}: every replica must be started with the same root (or none, to share the store's)`);
    }
    if (!isSignedBy(open.intermediate.certPem, open.root.certPem)) throw new CaError('CA_FILES', 'the intermediate in the store is not signed by its root');
    const ca = new CertificateAuthority({ ...opts, dataDir: opts.dataDir }, open.root, open.intermediate, open.previousRoots, open.broughtRoot, shared);
    shared.material.onChange((id, doc) => {
      if (id !== MATERIAL || !doc) return;
      try {
        ca.adopt(unsealMaterial(doc, shared.sealKey, brought));
      } catch (err) {
        log('error', 'the CA material in the store changed but cannot be used; signing with the previous material', { error: (err as Error).message });
      }
    });
    if (ca.dir) await fs.promises.mkdir(ca.dir, { recursive: true, mode: 0o700 });
    await ca.writeBundle();
    return ca;
  }

  /** Material another replica wrote (a rotation or retirement): used from now on. */
  private adopt(m: CaMaterial): void {
    if (m.root.certPem === this.root.certPem && m.intermediate.certPem === this.intermediate.certPem && m.previousRoots.join('') === this.previousRoots.join('')) return;
    this.root = m.root;
    this.intermediate = m.intermediate;
    this.previousRoots = m.previousRoots;
    void this.writeBundle().catch(() => {});
    this.log('info', 'ca material changed in the store', { trustedRoots: m.previousRoots.length + 1 });
    this.changed();
  }

  /** Writes the material to the shared store (replicas), or returns false (embedded: files are written by the caller). */
  private async saveShared(): Promise<boolean> {
    if (!this.shared) return false;
    const m: CaMaterial = { root: this.broughtRoot ? { certPem: this.root.certPem, keyPem: '' } : this.root, intermediate: this.intermediate, previousRoots: this.previousRoots, broughtRoot: this.broughtRoot };
    await this.shared.material.put(MATERIAL, sealMaterial(m, this.shared.sealKey));
    return true;
  }

  spiffeIdOf(identity: WorkloadIdentity): string {
    return spiffeId(this.trustDomain, identity.namespace, identity.service);
  }

  /** Every trusted root, PEM, the active one first: what sidecars verify peers with. */
  bundlePem(): string {
    return [this.root.certPem, ...this.previousRoots].join('');
  }

  roots(): RootView[] {
    return [this.root.certPem, ...this.previousRoots].map((pem, i) => {
      const info = certificateInfo(pem);
      return { ...info, notBefore: info.notBefore.toISOString(), notAfter: info.notAfter.toISOString(), active: i === 0, id: shortFingerprint(info.fingerprint256) };
    });
  }

  /**
   * Signs a workload's CSR for `identity`. Refused (CaError) unless the CSR
   * verifies, holds an ECDSA P-256 key and asks for exactly one SAN: the URI
   * of `identity`.
   */
  async sign(csrPem: string, identity: WorkloadIdentity, nodeId = ''): Promise<IssuedCertificate> {
    if (typeof csrPem !== 'string' || !csrPem.includes('-----BEGIN CERTIFICATE REQUEST-----')) {
      throw new CaError('CSR_MALFORMED', 'CSR is missing or not a PEM "CERTIFICATE REQUEST"');
    }
    let csr;
    try {
      csr = await parseCsr(csrPem);
    } catch (err) {
      if (err instanceof PkiError) throw new CaError(err.code === 'PEM_MALFORMED' || err.code === 'CSR_IDENTITY' ? 'CSR_MALFORMED' : err.code, err.message);
      throw new CaError('CSR_MALFORMED', `CSR does not parse: ${(err as Error).message}`);
    }
    if (csr.otherNames.length > 0) throw new CaError('CSR_SANS', `CSR may carry only a URI SAN; it also asks for ${csr.otherNames.join(', ')}`);
    if (csr.uris.length !== 1) throw new CaError('CSR_SANS', `CSR must ask for exactly one URI SAN (the SPIFFE ID), it asks for ${csr.uris.length}`);
    const allowed = this.spiffeIdOf(identity);
    if (csr.uris[0] !== allowed) throw new CaError('CSR_IDENTITY', `CSR asks for ${csr.uris[0]}, but this caller may only obtain ${allowed}`);
    // Read together: a rotation between the two would record the wrong root.
    const intermediate = this.intermediate;
    const root = this.root;
    const leafPem = await issueLeaf(intermediate, csr.publicKey, { uri: allowed, ttlMs: this.leafTtlMs });
    const info = certificateInfo(leafPem);
    const record: IssuanceRecord = {
      nodeId,
      spiffeId: allowed,
      serial: info.serial,
      notBefore: info.notBefore.toISOString(),
      notAfter: info.notAfter.toISOString(),
      issuedAt: new Date().toISOString(),
      rootFingerprint256: certificateInfo(root.certPem).fingerprint256,
    };
    this.records.push(record);
    if (this.records.length > MAX_RECORDS) this.records.splice(0, this.records.length - MAX_RECORDS);
    this.log('info', 'certificate issued', { ...record });
    if (nodeId) {
      // The latest per node, for `weft certs` (on any replica); it leaves when the certificate expires.
      const ttlSeconds = Math.max(1, Math.ceil((info.notAfter.getTime() - Date.now()) / 1000));
      this.issued.put(nodeId, record, { ttlSeconds }).catch((err) => this.log('warn', 'could not record the issuance in the store', { nodeId, error: (err as Error).message }));
    }
    return { chainPem: leafPem + intermediate.certPem, record };
  }

  /** Every issuance of this process, oldest first (the last MAX_RECORDS). */
  issuances(): IssuanceRecord[] {
    return [...this.records];
  }

  /** The latest issuance per node (every replica's with etcd), surviving restarts. */
  latestIssuances(): IssuanceRecord[] {
    return this.issued.values().sort((a, b) => a.issuedAt.localeCompare(b.issuedAt));
  }

  /** Stops the record set's expiry timer and flushes it. */
  close(): Promise<void> {
    return this.shared ? Promise.resolve() : this.issued.close();
  }

  /** The xDS server's certificate: the control plane's SPIFFE ID plus the names sidecars dial it by. */
  async serverCertificate(hosts: string[], ttlMs = INTERMEDIATE_TTL_MS): Promise<{ chainPem: string; keyPem: string }> {
    const ips = new Set(['127.0.0.1']);
    const dns = new Set(['localhost']);
    for (const h of hosts) {
      if (h === '0.0.0.0' || h === '::' || h === '') continue;
      if (/^[\d.]+$/.test(h) || h.includes(':')) ips.add(h);
      else dns.add(h);
    }
    const leaf = await issueKeyedLeaf(this.intermediate, {
      uri: spiffeId(this.trustDomain, 'weft-system', 'control-plane'),
      ttlMs,
      dnsNames: [...dns],
      ipAddresses: [...ips],
    });
    return { chainPem: leaf.certPem + this.intermediate.certPem, keyPem: leaf.keyPem };
  }

  /**
   * A new root and intermediate: new leaves chain to them at once, the old
   * root stays in the bundle until retireRoots(). A root brought from files is
   * rotated by restarting with the new files instead.
   */
  async rotateRoot(): Promise<RootView[]> {
    if (this.broughtRoot) throw new CaError('CA_ROTATION', 'this CA uses a root brought from files: rotate it by restarting with the new root files');
    const root = await createRoot({ commonName: 'weft root CA', organization: this.trustDomain, ttlMs: ROOT_TTL_MS });
    const intermediate = await createIntermediate(root, { commonName: 'weft intermediate CA', organization: this.trustDomain, ttlMs: INTERMEDIATE_TTL_MS });
    const previous = [this.root.certPem, ...this.previousRoots];
    if (this.shared) {
      const was = { root: this.root, intermediate: this.intermediate, previousRoots: this.previousRoots };
      Object.assign(this, { root, intermediate, previousRoots: previous });
      try {
        await this.saveShared();
      } catch (err) {
        Object.assign(this, was);
        throw err;
      }
    } else if (this.dir) {
      // Previous roots first: a crash between writes leaves the old root trusted.
      await writeFileAtomic(path.join(this.dir, 'previous-roots.pem'), previous.join(''), 0o644);
      await writePair(this.dir, 'root', root);
      await writePair(this.dir, 'ca', intermediate);
    }
    this.root = root;
    this.intermediate = intermediate;
    this.previousRoots = previous;
    await this.writeBundle();
    this.log('info', 'ca root rotated', { trustedRoots: previous.length + 1 });
    this.changed();
    return this.roots();
  }

  /**
   * The live certificates (the latest per node, not expired) that do not chain
   * to the active root: what retiring the previous roots would cut off. A
   * record that does not name its root counts too.
   */
  certificatesOffActiveRoot(now = Date.now()): IssuanceRecord[] {
    const active = certificateInfo(this.root.certPem).fingerprint256;
    return this.latestIssuances().filter((r) => Date.parse(r.notAfter) > now && r.rootFingerprint256 !== active);
  }

  /**
   * Drops every root but the active one from the trust bundle. Refused
   * (RootInUseError, naming the nodes) while a live certificate chains to a
   * root being retired, unless `force`: their sidecars' new connections would
   * fail until they renew.
   */
  async retireRoots(opts: { force?: boolean } = {}): Promise<RootView[]> {
    if (this.previousRoots.length === 0) return this.roots();
    const inUse = this.certificatesOffActiveRoot();
    if (inUse.length > 0 && !opts.force) {
      const nodes = inUse.map((r) => ({ nodeId: r.nodeId, spiffeId: r.spiffeId, serial: r.serial, notAfter: r.notAfter, root: r.rootFingerprint256 ? shortFingerprint(r.rootFingerprint256) : 'unknown' }));
      throw new RootInUseError(
        `${inUse.length} node(s) hold live certificates that chain to a root being retired: ${nodes.map((n) => `${n.nodeId} (root ${n.root}, valid until ${n.notAfter})`).join(', ')}. ` +
          'Their new connections would fail ("unable to get local issuer certificate") once the root is gone. Connected sidecars renew under the new root within seconds of a rotation; ' +
          'retire once `weft certs` shows every certificate on the active root, or pass --force to retire anyway.',
        nodes,
      );
    }
    if (inUse.length > 0) this.log('warn', 'ca previous roots retired by force while live certificates chain to them', { nodes: inUse.map((r) => r.nodeId) });
    const was = this.previousRoots;
    this.previousRoots = [];
    try {
      if (!(await this.saveShared()) && this.dir) await fs.promises.rm(path.join(this.dir, 'previous-roots.pem'), { force: true });
    } catch (err) {
      this.previousRoots = was;
      throw err;
    }
    await this.writeBundle();
    this.log('info', 'ca previous roots retired', {});
    this.changed();
    return this.roots();
  }

  /** Called when the trust bundle changes; returns a function that stops the calls. */
  onChange(cb: () => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  /** Where sidecars find the trust bundle (--ca-file), when the CA has a directory. */
  bundleFile(): string | undefined {
    return this.dir ? path.join(this.dir, 'trust-bundle.pem') : undefined;
  }

  private async writeBundle(): Promise<void> {
    const file = this.bundleFile();
    if (file) await writeFileAtomic(file, this.bundlePem(), 0o644);
  }

  private changed(): void {
    for (const cb of this.listeners) cb();
  }
}

async function makeIntermediate(root: KeyedCertificate, td: string, opts: CaOptions): Promise<KeyedCertificate> {
  let intermediate: KeyedCertificate;
  try {
    intermediate = await createIntermediate(root, { commonName: 'weft intermediate CA', organization: td, ttlMs: INTERMEDIATE_TTL_MS });
  } catch (err) {
    throw new CaError('CA_FILES', `cannot sign with the root key: ${(err as Error).message}`);
  }
  if (!isSignedBy(intermediate.certPem, root.certPem)) {
    throw new CaError('CA_FILES', `the root key ${opts.rootKeyFile ?? ''} does not belong to the root certificate ${opts.rootCertFile ?? ''}`.replace(/ +/g, ' '));
  }
  return intermediate;
}

/** The material as stored: private keys sealed, a brought root's key left out. */
function sealMaterial(m: CaMaterial, key: Buffer | undefined): CaMaterial {
  return {
    root: { certPem: m.root.certPem, keyPem: m.broughtRoot ? '' : seal(m.root.keyPem, key) },
    intermediate: { certPem: m.intermediate.certPem, keyPem: seal(m.intermediate.keyPem, key) },
    previousRoots: m.previousRoots,
    broughtRoot: m.broughtRoot,
  };
}

function unsealMaterial(m: CaMaterial, key: Buffer | undefined, brought: KeyedCertificate | undefined): CaMaterial {
  return {
    root: { certPem: m.root.certPem, keyPem: m.broughtRoot ? (brought?.keyPem ?? '') : unseal(m.root.keyPem, key) },
    intermediate: { certPem: m.intermediate.certPem, keyPem: unseal(m.intermediate.keyPem, key) },
    previousRoots: m.previousRoots,
    broughtRoot: m.broughtRoot,
  };
}

export function caDir(dataDir: string): string {
  return path.join(dataDir, 'ca');
}

function validateOptions(opts: CaOptions): void {
  const ttl = opts.leafTtlMs;
  if (ttl !== undefined && !(Number.isInteger(ttl) && ttl >= MIN_LEAF_TTL_MS && ttl <= INTERMEDIATE_TTL_MS)) {
    throw new CaError('CA_OPTIONS', `leaf TTL must be between ${MIN_LEAF_TTL_MS} ms and 365 days, got ${ttl}`);
  }
  if (opts.trustDomain !== undefined && !/^[a-z0-9._-]+$/.test(opts.trustDomain)) {
    throw new CaError('CA_OPTIONS', `trust domain "${opts.trustDomain}" must be lower-case letters, digits, ".", "_" or "-"`);
  }
  if (Boolean(opts.rootCertFile) !== Boolean(opts.rootKeyFile)) {
    throw new CaError('CA_OPTIONS', 'a brought root needs both its certificate and its key file');
  }
}

function readPem(file: string, what: string): string {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new CaError('CA_FILES', `cannot read the ${what} ${file}: ${(err as Error).message}`);
  }
  if (!/-----BEGIN [A-Z ]+-----/.test(text)) throw new CaError('CA_FILES', `${file}: the ${what} is not PEM`);
  return text;
}

function readOptional(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

function readPair(dir: string, name: string): KeyedCertificate | undefined {
  const certPem = readOptional(path.join(dir, `${name}-cert.pem`));
  const keyPem = readOptional(path.join(dir, `${name}-key.pem`));
  return certPem && keyPem ? { certPem, keyPem } : undefined;
}

async function writePair(dir: string, name: string, pair: KeyedCertificate): Promise<void> {
  await writeFileAtomic(path.join(dir, `${name}-key.pem`), pair.keyPem, 0o600);
  await writeFileAtomic(path.join(dir, `${name}-cert.pem`), pair.certPem, 0o644);
}
