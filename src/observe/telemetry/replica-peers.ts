// How one control plane replica answers for the whole mesh: each replica
// announces itself in the store (replicas/<id> on an etcd lease: its API
// URL) and keeps a viewer credential of its own (on a lease too, its token
// only in memory). Asked for the mesh's signals, nodes, endpoint health,
// recent requests or a tap, a replica adds what every other live replica
// answers for its own sidecars (`scope=replica` routes of dashboard-api.ts),
// over the API's TLS verified with the mesh's trust bundle. A replica that
// does not answer within the timeout is left out and named.
//
// With the embedded store there is one replica and no peers.
import * as http from 'node:http';
import * as https from 'node:https';
import type { CredentialStore } from '../../api/credentials';
import type { DocumentSet } from '../../store/document-set';
import type { Logger } from '../log';

export interface ReplicaRecord {
  id: string;
  /** Base URL of its API, as the other replicas reach it. */
  api: string;
  /** Its credential's id (the token itself never leaves the replica). */
  credential?: string;
}

const TTL_SECONDS = 30;
const KEEPALIVE_MS = 10_000;

export interface PeerOptions {
  documents: DocumentSet<ReplicaRecord>;
  credentials?: CredentialStore;
  /** The roots a peer's API certificate chains to (the mesh's trust bundle), current at each call. */
  ca: () => string;
  log: Logger;
  timeoutMs?: number;
}

export class ReplicaPeers {
  private token: string | undefined;
  private credentialId: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly timeoutMs: number;
  /** This replica, once its ports are bound (start()). */
  private self: ReplicaRecord | undefined;

  constructor(private readonly opts: PeerOptions) {
    this.timeoutMs = opts.timeoutMs ?? 2000;
  }

  async start(self: ReplicaRecord): Promise<void> {
    this.self = self;
    await this.makeCredential();
    await this.announce();
    this.timer = setInterval(() => void this.keepAlive(), KEEPALIVE_MS);
    this.timer.unref();
  }

  private async makeCredential(): Promise<void> {
    if (!this.opts.credentials) return;
    const name = `replica.${this.self!.id.replace(/[^A-Za-z0-9._@-]/g, '-')}`.slice(0, 63);
    const made = await this.opts.credentials.create({ name, role: 'viewer', ttlSeconds: TTL_SECONDS });
    this.token = made.token;
    this.credentialId = made.id;
  }

  private announce(): Promise<void> {
    const self = this.self!;
    return this.opts.documents.put(self.id, { ...self, ...(this.credentialId ? { credential: this.credentialId } : {}) }, { ttlSeconds: TTL_SECONDS });
  }

  private async keepAlive(): Promise<void> {
    try {
      // Expired while the store was away: a new credential, and the announcement again.
      if (this.credentialId && this.opts.credentials && !(await this.opts.credentials.keepAlive(this.credentialId))) {
        await this.makeCredential();
        await this.announce();
      } else if (!(await this.opts.documents.keepAlive(this.self!.id))) await this.announce();
    } catch (err) {
      this.opts.log('warn', 'could not keep this replica announced to its peers', { error: String(err) });
    }
  }

  /** The other live replicas (none before start()). */
  others(): ReplicaRecord[] {
    const self = this.self;
    if (!self) return [];
    return this.opts.documents.values().filter((r) => r.id !== self.id);
  }

  /** GET `path` (JSON) from every other replica; those that fail are in `failed`. */
  async gather<T>(path: string): Promise<{ answers: { replica: string; body: T }[]; failed: { replica: string; error: string }[] }> {
    const answers: { replica: string; body: T }[] = [];
    const failed: { replica: string; error: string }[] = [];
    await Promise.all(
      this.others().map(async (peer) => {
        try {
          answers.push({ replica: peer.id, body: JSON.parse(await this.getText(peer, path)) as T });
        } catch (err) {
          failed.push({ replica: peer.id, error: (err as Error).message });
        }
      }),
    );
    return { answers, failed };
  }

  /** GET `path` from one peer. */
  getText(peer: ReplicaRecord, path: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const req = this.request(peer, path, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => (res.statusCode === 200 ? resolve(text) : reject(new Error(`${peer.id}: HTTP ${res.statusCode} ${text.slice(0, 200)}`))));
        res.on('error', reject);
      });
      req.setTimeout(this.timeoutMs, () => req.destroy(new Error(`${peer.id}: no answer within ${this.timeoutMs} ms`)));
      req.on('error', reject);
    });
  }

  /** Streams NDJSON lines of `path` from one peer until it ends or `signal` aborts. */
  streamLines(peer: ReplicaRecord, path: string, onLine: (line: string) => void, signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal.aborted) return resolve();
      const req = this.request(peer, path, (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          return reject(new Error(`${peer.id}: HTTP ${res.statusCode}`));
        }
        let rest = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          const lines = (rest + chunk).split('\n');
          rest = lines.pop()!;
          for (const line of lines) if (line) onLine(line);
        });
        res.on('end', resolve);
        res.on('close', resolve);
      });
      const abort = () => req.destroy();
      signal.addEventListener('abort', abort, { once: true });
      req.on('close', () => signal.removeEventListener('abort', abort));
      req.on('error', (err) => (signal.aborted ? resolve() : reject(err)));
    });
  }

  private request(peer: ReplicaRecord, path: string, onResponse: (res: http.IncomingMessage) => void): http.ClientRequest {
    const url = new URL(path, peer.api);
    const headers: http.OutgoingHttpHeaders = this.token ? { authorization: `Bearer ${this.token}` } : {};
    const req = url.protocol === 'https:' ? https.get(url, { headers, agent: false, ca: this.opts.ca() }, onResponse) : http.get(url, { headers, agent: false }, onResponse);
    return req;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    if (this.self) await this.opts.documents.delete(this.self.id).catch(() => false);
    if (this.credentialId) await this.opts.credentials?.revoke(this.credentialId).catch(() => false);
  }
}
