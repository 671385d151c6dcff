// The connection to etcd shared by every etcd-backed part of one control
// plane replica: the --store URL parsed, TLS and auth applied, calls given a
// deadline (a replica that lost etcd must refuse a write within seconds, not
// hang), and a check at start that names the endpoints it could not reach.
import * as fs from 'node:fs';
import { Etcd3, isRecoverableError, type IOptions, type Namespace } from 'etcd3';
import { BrokenCircuitError, circuitBreaker, ConsecutiveBreaker, handleWhen, retry } from 'cockatiel';
import { StoreUnavailableError } from '../store';

export interface EtcdStoreOptions {
  /** `etcd://host:port[,host:port…]` (`etcds://` for TLS). */
  url: string;
  /** Key prefix every weft key lives under (default /weft/). */
  prefix?: string;
  /** TLS: the CA bundle that signed etcd's server certificates, and a client certificate when etcd asks for one. */
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  /** etcd's own authentication. */
  username?: string;
  password?: string;
  /** Deadline of one attempt of a unary call (default 2 s; a call makes up to 3 attempts, on different members). */
  callTimeoutMs?: number;
}

/** A problem with --store or its options, or etcd unreachable at start; names what to fix. */
export class StoreConfigError extends Error {
  readonly code = 'E_STORE_CONFIG';
}

export { StoreUnavailableError } from '../store';

export const DEFAULT_PREFIX = '/weft/';

export interface EtcdConnection {
  readonly client: Etcd3;
  /** The client scoped to the key prefix: every key below is relative to it. */
  readonly kv: Namespace;
  readonly endpoints: string[];
  readonly prefix: string;
  /** Deadline of one call, for streams used as one call (a lease keep-alive). */
  readonly callTimeoutMs: number;
  /** Wraps an etcd error as StoreUnavailableError with the endpoints named (other errors pass through). */
  unavailable(err: unknown, doing: string): Error;
  close(): void;
}

export function parseStoreUrl(url: string): { tls: boolean; endpoints: string[] } {
  const m = /^(etcds?):\/\/(.+)$/.exec(url);
  if (!m) throw new StoreConfigError(`--store: expected etcd://host:port[,host:port…] (or etcds:// for TLS), got "${url}"`);
  const endpoints = m[2].split(',').map((e) => e.trim());
  for (const e of endpoints) {
    if (!/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(e)) throw new StoreConfigError(`--store: "${e}" is not host:port`);
  }
  return { tls: m[1] === 'etcds', endpoints };
}

/** Connects and checks that etcd answers; throws StoreConfigError naming the endpoints otherwise. */
export async function connectEtcd(opts: EtcdStoreOptions): Promise<EtcdConnection> {
  const { tls, endpoints } = parseStoreUrl(opts.url);
  const prefix = opts.prefix ?? DEFAULT_PREFIX;
  if (!prefix.startsWith('/') || !prefix.endsWith('/')) throw new StoreConfigError(`--store-prefix: must start and end with "/", got "${prefix}"`);
  const read = (file: string | undefined, what: string) => {
    if (!file) return undefined;
    try {
      return fs.readFileSync(file);
    } catch (err) {
      throw new StoreConfigError(`${what} ${file}: ${(err as Error).message}`);
    }
  };
  const scheme = tls || opts.caFile ? 'https' : 'http';
  const timeout = opts.callTimeoutMs ?? 2000;
  const options: IOptions = {
    hosts: endpoints.map((e) => `${scheme}://${e}`),
    dialTimeout: timeout,
    // Unary calls get a deadline; watches and lease keep-alives are streams and live on. A call to a
    // member that just died waits out its deadline (gRPC still holds the connection): the next attempt
    // goes to another member, and two failures in a row keep a member out for 2 s.
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeout }),
    faultHandling: {
      host: () => circuitBreaker(handleWhen(isRecoverableError), { halfOpenAfter: 2000, breaker: new ConsecutiveBreaker(2) }),
      global: retry(handleWhen(isRecoverableError), { maxAttempts: 2 }),
    },
  };
  if (scheme === 'https') {
    options.credentials = { rootCertificate: read(opts.caFile, '--store-ca-file') ?? Buffer.alloc(0), certChain: read(opts.certFile, '--store-cert-file'), privateKey: read(opts.keyFile, '--store-key-file') };
    if (!opts.caFile) delete (options.credentials as { rootCertificate?: Buffer }).rootCertificate;
  }
  if (opts.username) options.auth = { username: opts.username, password: opts.password ?? '' };
  const client = new Etcd3(options);
  const kv = client.namespace(prefix);
  const named = endpoints.join(', ');
  try {
    await client.maintenance.status();
  } catch (err) {
    client.close();
    throw new StoreConfigError(`cannot reach etcd at ${named}: ${(err as Error).message}`);
  }
  return {
    client,
    kv,
    endpoints,
    prefix,
    callTimeoutMs: timeout,
    unavailable: (err, doing) => {
      const e = err as Error;
      if (e instanceof StoreUnavailableError) return e;
      // Errors of etcd's own (a failed compare, a key that is too large) are answers, not outages.
      if (e instanceof BrokenCircuitError || isRecoverableError(e) || /deadline|unavailable|connect|ECONN|No connection|timed out/i.test(`${e.name} ${e.message}`)) {
        return new StoreUnavailableError(`the store is unreachable (etcd at ${named}) while ${doing}: ${e.message}; this replica serves its last good config and refuses changes until etcd answers`);
      }
      return e;
    },
    close: () => client.close(),
  };
}
