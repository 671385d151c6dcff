// Where jwt_authn's signing keys come from: an inline JWKS, a JWKS file
// (looked at again at most every second while tokens arrive, reloaded when it
// changed), or a JWKS served by a mesh service and fetched through an
// endpoint of its cluster (kept for cache_duration, fetched again at once for
// a kid it lacks, at most every second). A failed load keeps the last keys.
// File and remote sources live in the FilterState, so a config change keeps
// their keys.
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { createLocalJWKSet, JSONWebKeySet } from 'jose';
import { jose } from './jose-lazy';
import { jwksProblem } from '../../config/jwks';
import type { FilterState } from './catalog';
import { filterEnv } from './filter-env';

export type KeySet = ReturnType<typeof createLocalJWKSet>;

export type JwksConfig =
  | { kind: 'inline'; text: string }
  | { kind: 'file'; path: string }
  /** `host` and `path` from http_uri.uri; `cluster` whose endpoints serve it. */
  | { kind: 'remote'; cluster: string; host: string; path: string; timeoutMs: number; cacheMs: number };

/** Keys cannot be had (never loaded, or none): the token cannot be verified. */
export class JwksUnavailableError extends Error {}

/** How often a file is looked at, and how soon an unknown kid or a failed fetch may fetch again. */
const RECHECK_MS = 1000;
const MAX_JWKS_BYTES = 1 << 20;

export interface JwksSource {
  /** The keys now; rejects with JwksUnavailableError when there are none. */
  keys(): Promise<KeySet>;
  /** A token names a kid the keys lack: fetch again if allowed; true when keys changed. */
  refreshForUnknownKid(): Promise<boolean>;
}

function keySetOf(text: string): KeySet {
  const problem = jwksProblem(text);
  if (problem) throw new JwksUnavailableError(`not a JWKS: ${problem}`);
  return jose().createLocalJWKSet(JSON.parse(text) as JSONWebKeySet);
}

class InlineJwks implements JwksSource {
  private readonly set: KeySet | undefined;
  private readonly problem: string = '';

  constructor(text: string) {
    try {
      this.set = keySetOf(text);
    } catch (err) {
      this.problem = (err as Error).message;
    }
  }

  async keys(): Promise<KeySet> {
    if (!this.set) throw new JwksUnavailableError(`inline JWKS: ${this.problem}`);
    return this.set;
  }

  async refreshForUnknownKid(): Promise<boolean> {
    return false;
  }
}

/** Shared behaviour of the sources that load: one load at a time, the last good keys kept. */
abstract class LoadingJwks implements JwksSource {
  protected set: KeySet | undefined;
  protected problem = 'not loaded yet';
  protected attemptedAt = -Infinity;
  private loading: Promise<boolean> | undefined;

  constructor(protected readonly state: FilterState) {}

  /** Loads; resolves true when the keys changed. Throws with the reason on a failure. */
  protected abstract load(): Promise<boolean>;
  protected abstract what(): string;
  /** Whether the keys should be loaded (again) now, before answering. */
  protected abstract due(now: number): boolean;

  async keys(): Promise<KeySet> {
    if (this.due(Date.now())) await this.reload();
    if (!this.set) throw new JwksUnavailableError(`${this.what()}: ${this.problem}`);
    return this.set;
  }

  async refreshForUnknownKid(): Promise<boolean> {
    if (Date.now() - this.attemptedAt < RECHECK_MS) return this.loading ? this.loading : false;
    return this.reload();
  }

  protected reload(): Promise<boolean> {
    this.loading ??= this.attempt().finally(() => (this.loading = undefined));
    return this.loading;
  }

  private async attempt(): Promise<boolean> {
    this.attemptedAt = Date.now();
    try {
      return await this.load();
    } catch (err) {
      this.problem = (err as Error).message;
      filterEnv(this.state).log?.('warn', 'JWKS load failed; keeping the last keys', { source: this.what(), error: this.problem, haveKeys: !!this.set });
      return false;
    }
  }
}

class FileJwks extends LoadingJwks {
  private stamp = '';

  constructor(
    state: FilterState,
    private readonly path: string,
  ) {
    super(state);
  }

  protected what(): string {
    return `JWKS file ${this.path}`;
  }

  protected due(now: number): boolean {
    return now - this.attemptedAt >= RECHECK_MS;
  }

  protected async load(): Promise<boolean> {
    const st = await fs.promises.stat(this.path);
    const stamp = `${st.ino}:${st.size}:${st.mtimeMs}`;
    if (stamp === this.stamp && this.set) return false;
    const set = keySetOf(await fs.promises.readFile(this.path, 'utf8'));
    this.set = set;
    this.stamp = stamp;
    return true;
  }
}

class RemoteJwks extends LoadingJwks {
  private fetchedAt = -Infinity;

  constructor(
    state: FilterState,
    public config: Extract<JwksConfig, { kind: 'remote' }>,
  ) {
    super(state);
  }

  protected what(): string {
    return `JWKS http://${this.config.host}${this.config.path} (cluster ${this.config.cluster})`;
  }

  protected due(now: number): boolean {
    if (now - this.attemptedAt < RECHECK_MS) return false;
    return !this.set || now - this.fetchedAt >= this.config.cacheMs;
  }

  override async keys(): Promise<KeySet> {
    // Stale keys still verify while fresh ones are fetched in the background.
    if (this.set && this.due(Date.now())) {
      void this.reload();
      return this.set;
    }
    return super.keys();
  }

  protected async load(): Promise<boolean> {
    const { cluster } = this.config;
    const endpoint = filterEnv(this.state).clusterEndpoint?.(cluster);
    if (!endpoint) throw new Error(`no endpoint of cluster ${cluster}`);
    const text = await httpGet(endpoint.address, endpoint.port, this.config.host, this.config.path, this.config.timeoutMs);
    this.set = keySetOf(text);
    this.fetchedAt = Date.now();
    return true;
  }
}

/** GET of a JWKS document: 200 and at most 1 MiB, within `timeoutMs`. */
function httpGet(address: string, port: number, host: string, path: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: address, port, path, headers: { host, accept: 'application/json' }, agent: false, timeout: timeoutMs });
    req.on('timeout', () => req.destroy(new Error(`timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.on('response', (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        return reject(new Error(`HTTP ${res.statusCode} from ${address}:${port}`));
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_JWKS_BYTES) return req.destroy(new Error(`JWKS larger than ${MAX_JWKS_BYTES} bytes`));
        chunks.push(c);
      });
      res.on('error', reject);
      res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    });
  });
}

/** The source for a provider's JWKS config; file and remote ones are shared through `state`. */
export function jwksSource(state: FilterState, config: JwksConfig): JwksSource {
  if (config.kind === 'inline') return new InlineJwks(config.text);
  const key = config.kind === 'file' ? `jwt_authn|jwks|file|${config.path}` : `jwt_authn|jwks|remote|${config.cluster}|${config.host}${config.path}`;
  const existing = state.get(key) as JwksSource | undefined;
  if (existing instanceof RemoteJwks && config.kind === 'remote') existing.config = config;
  if (existing) return existing;
  const made = config.kind === 'file' ? new FileJwks(state, config.path) : new RemoteJwks(state, config);
  state.set(key, made);
  return made;
}

export const isNoMatchingKey = (err: unknown): boolean => err instanceof jose().errors.JWKSNoMatchingKey;
