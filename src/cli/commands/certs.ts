// `weft certs`, `weft token …`, `weft ca …`: the CA over the admin API. `weft
// certs` lists per node the certificate its sidecar holds (its admin /certs,
// which the control plane reads over the sidecar's relay stream, on any host)
// or, for a node whose sidecar cannot be asked, the CA's latest issuance
// record, with the root each certificate chains to; then the trust bundle.
// `weft ca retire-roots` is refused while live certificates chain to a root
// it would retire: it names their nodes, connected or not.
import { apiRequest, ApiError, connectedNodes } from '../api-client';
import { shortFingerprint } from '../../ca/cert-info';
import { table } from '../format';
import type { NodeStatus } from '../../xds/server/node-status';
import type { IssuanceRecord, RootView } from '../../ca/certificate-authority';
import type { JoinTokenInfo } from '../../ca/join-tokens';
import type { CertsView } from '../../proxy/tls/certs-view';

type Out = { write(text: string): unknown };

/** Certificates issued to nodes not connected now are listed for this long after issuance (the rest: one line, or --all). */
export const RECENT_ISSUANCE_MS = 10 * 60_000;

export async function runCerts(opts: { api: string; out?: Out; now?: number; all?: boolean }): Promise<void> {
  const out = opts.out ?? process.stdout;
  const now = opts.now ?? Date.now();
  const [certs, nodeItems] = await Promise.all([apiRequest(opts.api, 'GET', '/api/v1/certs'), connectedNodes(opts.api)]);
  const nodes = { items: nodeItems };
  const issued = new Map<string, IssuanceRecord>((certs.issued as IssuanceRecord[]).map((r) => [r.nodeId, r]));
  const rows: string[][] = [];
  const notes: string[] = [];
  const bundleRoots = new Set((certs.roots as RootView[]).map((r) => r.fingerprint256));
  const activeRoot = (certs.roots as RootView[]).find((r) => r.active)?.fingerprint256;
  // The root a certificate chains to, by short fingerprint (the ids in the trust bundle list below), marked when not the active one.
  const rootOf = (fp: string | undefined): string => {
    if (!fp) return '?';
    const id = shortFingerprint(fp);
    return fp === activeRoot ? id : bundleRoots.has(fp) ? `${id} (previous)` : `${id} (not trusted)`;
  };
  const seen = new Set<string>();
  for (const n of nodes.items as NodeStatus[]) {
    seen.add(n.nodeId);
    const view = await sidecarCerts(opts.api, n);
    const cert = view && typeof view !== 'string' ? view.certificates.find((c) => c.name === 'default') : undefined;
    if (typeof view === 'string') notes.push(view);
    if (view && typeof view !== 'string') {
      const held = view.trustBundles.find((b) => b.name === 'ROOTCA');
      const stale = held && (held.roots.length !== bundleRoots.size || held.roots.some((r) => !bundleRoots.has(r.fingerprint256)));
      if (stale) notes.push(`${n.nodeId}: its trust bundle (${held.roots.length} root(s)) differs from the CA's (${bundleRoots.size}); it has not received the latest yet`);
      if (!cert && view.agent?.lastError) notes.push(`${n.nodeId}: no certificate: ${view.agent.lastError}`);
    }
    if (cert) {
      // A sidecar older than the ROOT column does not say; its latest issuance record does, when it is the same certificate.
      const record = issued.get(n.nodeId);
      const root = cert.rootFingerprint256 ?? (record?.serial === cert.serial ? record.rootFingerprint256 : undefined);
      rows.push([n.nodeId, cert.spiffeId, cert.serial, rootOf(root), cert.notAfter, remaining(Date.parse(cert.notAfter) - now), 'sidecar']);
      continue;
    }
    const r = issued.get(n.nodeId);
    if (r) rows.push([n.nodeId, r.spiffeId, r.serial, rootOf(r.rootFingerprint256), r.notAfter, remaining(Date.parse(r.notAfter) - now), 'issued']);
    else rows.push([n.nodeId, n.node.role === 'proxyless' ? '- (proxyless)' : n.node.service ? '- (none yet)' : '- (no service)', '', '', '', '', '']);
  }
  // Certificates issued to nodes that are not connected now: a node that just left (or is
  // reconnecting) is worth a row; one gone for long is a record until its certificate expires.
  const older: IssuanceRecord[] = [];
  for (const r of issued.values()) {
    if (seen.has(r.nodeId)) continue;
    if (!opts.all && now - Date.parse(r.issuedAt) > RECENT_ISSUANCE_MS) {
      older.push(r);
      continue;
    }
    rows.push([r.nodeId || '-', r.spiffeId, r.serial, rootOf(r.rootFingerprint256), r.notAfter, remaining(Date.parse(r.notAfter) - now), 'issued (not connected)']);
  }
  if (older.length) {
    const latest = Math.max(...older.map((r) => Date.parse(r.issuedAt)));
    notes.unshift(`${older.length} more certificate(s) issued to nodes not connected now, more than ${duration(RECENT_ISSUANCE_MS)} ago (the latest ${duration(now - latest)} ago); weft certs --all lists them`);
  }
  out.write(`Trust domain ${certs.trustDomain}; workload certificates live ${duration(certs.leafTtlSeconds * 1000)}${certs.dev ? ' (dev mode: issued without join tokens)' : ''}\n\n`);
  out.write(table(['NODE', 'IDENTITY', 'SERIAL', 'ROOT', 'NOT AFTER', 'REMAINING', 'SOURCE'], rows));
  out.write(`\nTrust bundle (${certs.roots.length} root${certs.roots.length === 1 ? '' : 's'}):\n`);
  for (const root of certs.roots as RootView[]) {
    out.write(`  ${root.active ? '*' : ' '} root ${shortFingerprint(root.fingerprint256)}  ${root.subject}  serial ${root.serial}  expires ${root.notAfter}${root.active ? '  (active: signs new certificates)' : '  (previous: trusted until retired)'}\n`);
  }
  const previous = rows.filter((r) => / \((previous|not trusted)\)$|^\?$/.test(r[3])).length;
  if ((certs.roots as RootView[]).length > 1) {
    notes.push(
      previous > 0
        ? `${previous} certificate(s) do not chain to the active root yet; \`weft ca retire-roots\` is refused until they do`
        : 'every certificate chains to the active root: `weft ca retire-roots` can drop the previous roots',
    );
  }
  if (notes.length > 0) {
    out.write('\n');
    for (const n of notes) out.write(`  ${n}\n`);
  }
}

/** A sidecar's /certs through the control plane, a note when it cannot be read, or undefined for a node that is not a sidecar. */
async function sidecarCerts(api: string, n: NodeStatus): Promise<CertsView | string | undefined> {
  if (n.node.role !== 'sidecar') return undefined;
  try {
    return (await apiRequest(api, 'GET', `/api/v1/nodes/${encodeURIComponent(n.nodeId)}/admin/certs`)) as CertsView;
  } catch (err) {
    return `${n.nodeId}: its sidecar's certificates could not be read (${(err as Error).message})`;
  }
}

function remaining(ms: number): string {
  return ms <= 0 ? 'EXPIRED' : duration(ms);
}

function duration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s}s`;
  if (s < 2 * 3600) return `${Math.floor(s / 60)}m${s % 60 ? `${s % 60}s` : ''}`;
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return `${h}h${m ? `${m}m` : ''}`;
}

export async function runTokenCreate(opts: { service: string; namespace: string; ttl?: number; api: string; out?: Out }): Promise<void> {
  const out = opts.out ?? process.stdout;
  const t = await apiRequest(opts.api, 'POST', '/api/v1/tokens', JSON.stringify({ service: opts.service, namespace: opts.namespace, ttlSeconds: opts.ttl }), 'application/json');
  out.write(`${t.token}\n`);
  process.stderr.write(`join token ${t.id} for ${t.service}.${t.namespace}${t.expiresAt ? `, expires ${t.expiresAt}` : ', valid until revoked'}; shown once (only its hash is kept)\n`);
}

export async function runTokenList(opts: { api: string; out?: Out }): Promise<void> {
  const out = opts.out ?? process.stdout;
  const res = await apiRequest(opts.api, 'GET', '/api/v1/tokens');
  const rows = (res.items as JoinTokenInfo[]).map((t) => [t.id, t.namespace, t.service, t.createdAt, t.expiresAt ?? 'never']);
  out.write(table(['ID', 'NAMESPACE', 'SERVICE', 'CREATED', 'EXPIRES'], rows));
}

export async function runTokenRevoke(id: string, opts: { api: string; out?: Out }): Promise<void> {
  const out = opts.out ?? process.stdout;
  await apiRequest(opts.api, 'DELETE', `/api/v1/tokens/${encodeURIComponent(id)}`);
  out.write(`join token ${id} revoked\n`);
}

export async function runRotateRoot(opts: { api: string; out?: Out }): Promise<void> {
  const out = opts.out ?? process.stdout;
  const res = await apiRequest(opts.api, 'POST', '/api/v1/ca/rotate-root');
  const active = (res.roots as RootView[]).find((r) => r.active);
  out.write(
    `root rotated; the trust bundle holds ${res.roots.length} roots, the active one ${active ? shortFingerprint(active.fingerprint256) : '?'}.\n` +
      'Connected sidecars renew their certificates under it within seconds; `weft certs` shows the ROOT of each.\n' +
      'Then run `weft ca retire-roots` (it is refused while a live certificate chains to a previous root).\n',
  );
}

interface RootInUse {
  nodeId: string;
  spiffeId: string;
  notAfter: string;
  root: string;
}

export async function runRetireRoots(opts: { api: string; force?: boolean; out?: Out }): Promise<void> {
  const out = opts.out ?? process.stdout;
  let res;
  try {
    res = await apiRequest(opts.api, 'POST', '/api/v1/ca/retire-roots', JSON.stringify(opts.force ? { force: true } : {}), 'application/json');
  } catch (err) {
    if (err instanceof ApiError && err.status === 409 && err.body?.code === 'CA_ROOT_IN_USE') throw new Error(await rootInUseMessage(opts.api, err.body.nodes as RootInUse[]));
    throw err;
  }
  out.write(`the trust bundle holds ${res.roots.length} root(s)\n`);
  const cutOff = (res.cutOff ?? []) as RootInUse[];
  if (cutOff.length > 0) {
    out.write(`forced: ${cutOff.map((n) => `${n.nodeId} (root ${n.root})`).join(', ')} still chained to a retired root; their new connections fail until they renew\n`);
  }
}

/** The refusal, node by node: connected ones renew by themselves; the others hold their certificate until it expires. */
async function rootInUseMessage(api: string, nodes: RootInUse[]): Promise<string> {
  const connected = new Set((await connectedNodes(api).catch(() => [] as NodeStatus[])).map((n) => n.nodeId));
  const lines = nodes.map(
    (n) =>
      `  ${n.nodeId || '-'} (${n.spiffeId}, root ${n.root}): ${connected.has(n.nodeId) ? 'connected; renews under the active root by itself' : `not connected; its certificate is valid until ${n.notAfter}`}`,
  );
  return (
    `refused: ${nodes.length} node(s) hold live certificates that chain to a root being retired; once it is gone, their new connections fail ("unable to get local issuer certificate"):\n` +
    `${lines.join('\n')}\n` +
    'Retry once `weft certs` shows every certificate on the active root, or retire anyway with `weft ca retire-roots --force`.'
  );
}
