// The workload certificate for an Envoy sidecar, served the way istio-agent
// serves it: an SDS server on a unix socket beside the Envoy (its bootstrap's
// static cluster weft_sds dials it). The control plane never holds a
// sidecar's key, so it cannot send Envoy the Secret "default"; weft run's
// CertificateAgent makes the key here, gets it signed (CSR over FetchSecrets)
// and this server hands chain and key to Envoy inline.
//
// envoy.service.secret.v3.SecretDiscoveryService/StreamSecrets, state of the
// world: Envoy asks for resource names, each response carries every asked
// name this server holds. A renewal (SecretStore change) is pushed at once. A
// name the agent will hold but does not yet (before the first issuance) gets
// no answer, so Envoy keeps the listener warming until it does; a name it
// never holds (anything but "default") gets an empty response. The socket is
// the guard: mode 0600 in a 0700 directory, no TLS on it.
import * as grpc from '@grpc/grpc-js';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from '../../observe/log';
import { anyOf } from '../../xds/protos';
import { MalformedRequest, SECRET_TYPE_URL, sdsMethod } from '../../ca/sds-protocol';
import { WORKLOAD_CERT_SECRET, type CertificateSecret, type SecretStore } from '../../proxy/tls/secret-store';

export const STREAM_SECRETS_PATH = sdsMethod('StreamSecrets').path;
/** The socket's name inside its directory. */
export const LOCAL_SDS_SOCKET = 'sds.sock';

type Obj = Record<string, any>;

/** The service definition, shared by the server and the tests' client. */
export const streamSecretsDefinition = {
  StreamSecrets: sdsMethod('StreamSecrets'),
} as grpc.ServiceDefinition;

/** The Secret Envoy reads a certificate and its key from (inline: they live only in this process and Envoy's). */
export function workloadSecret(name: string, cert: CertificateSecret): Obj {
  return { name, tls_certificate: { certificate_chain: { inline_string: cert.certificateChainPem }, private_key: { inline_string: cert.privateKeyPem } } };
}

export interface LocalSdsOptions {
  /** A directory of its own for the socket; made (0700) if missing, refused if others can enter it. */
  dir: string;
  secrets: SecretStore;
  log: Logger;
}

export class LocalSdsServer {
  /** Open streams, each with the names it asked for and a push function. */
  private readonly streams = new Set<{ names: Set<string>; push: () => void }>();
  private readonly stopWatch: () => void;
  /** Bumped on every change of a held secret: the version Envoy ACKs. */
  private version = 0;
  private nacks = 0;

  private constructor(
    private readonly server: grpc.Server,
    readonly socketPath: string,
    private readonly opts: LocalSdsOptions,
  ) {
    if (opts.secrets.certificate(WORKLOAD_CERT_SECRET)) this.version = 1;
    this.stopWatch = opts.secrets.onChange((name) => {
      if (name !== WORKLOAD_CERT_SECRET) return;
      this.version++;
      for (const s of this.streams) if (s.names.has(name)) s.push();
    });
  }

  static async start(opts: LocalSdsOptions): Promise<LocalSdsServer> {
    fs.mkdirSync(opts.dir, { recursive: true, mode: 0o700 });
    const st = fs.statSync(opts.dir);
    if ((st.mode & 0o077) !== 0) throw new Error(`local SDS: ${opts.dir} is open to other users (mode ${(st.mode & 0o777).toString(8)}); the workload key is served there, it must be 0700`);
    const socketPath = path.join(path.resolve(opts.dir), LOCAL_SDS_SOCKET);
    fs.rmSync(socketPath, { force: true }); // a stale socket of a killed run
    const server = new grpc.Server();
    const sds = new LocalSdsServer(server, socketPath, opts);
    server.addService(streamSecretsDefinition, { StreamSecrets: (call: grpc.ServerDuplexStream<Obj | MalformedRequest, Obj>) => sds.stream(call) });
    try {
      await new Promise<void>((resolve, reject) => server.bindAsync(`unix:${socketPath}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
    } catch (err) {
      server.forceShutdown();
      throw new Error(`local SDS: cannot listen on ${socketPath}: ${(err as Error).message}`);
    }
    // The 0700 directory already keeps others out (no umask games: they would touch every file this process makes meanwhile).
    fs.chmodSync(socketPath, 0o600);
    return sds;
  }

  /** NACKs received (Envoy refused a secret), for tests and logs. */
  get nackCount(): number {
    return this.nacks;
  }

  async close(): Promise<void> {
    this.stopWatch();
    this.streams.clear();
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => (this.server.forceShutdown(), resolve()), 1000);
      this.server.tryShutdown(() => (clearTimeout(t), resolve()));
    });
    fs.rmSync(this.socketPath, { force: true });
  }

  private stream(call: grpc.ServerDuplexStream<Obj | MalformedRequest, Obj>): void {
    const { log, secrets } = this.opts;
    let nonce = 0;
    let sentVersion: string | undefined;
    const state = { names: new Set<string>(), push: () => send() };
    const send = () => {
      const held = [...state.names].filter((n) => n === WORKLOAD_CERT_SECRET && secrets.certificate(n));
      const never = [...state.names].filter((n) => n !== WORKLOAD_CERT_SECRET);
      // Only "default", not yet issued: no answer, Envoy waits for the push.
      if (!held.length && !never.length) return;
      sentVersion = String(this.version);
      call.write({
        version_info: sentVersion,
        type_url: SECRET_TYPE_URL,
        nonce: String(++nonce),
        resources: held.map((n) => anyOf(SECRET_TYPE_URL, workloadSecret(n, secrets.certificate(n)!))),
      });
    };
    this.streams.add(state);
    const end = () => this.streams.delete(state);
    call.on('error', end);
    call.on('close', end);
    call.on('end', () => {
      end();
      call.end();
    });
    call.on('data', (req: Obj | MalformedRequest) => {
      if (req instanceof MalformedRequest) {
        end();
        call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: req.message });
        return;
      }
      if (req.type_url && req.type_url !== SECRET_TYPE_URL) {
        end();
        call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: `local SDS serves ${SECRET_TYPE_URL}, not ${req.type_url}` });
        return;
      }
      const names = new Set<string>(req.resource_names ?? []);
      const isReply = req.response_nonce !== '' && req.response_nonce !== undefined;
      if (isReply && req.error_detail && req.response_nonce === String(nonce)) {
        this.nacks++;
        log('warn', 'Envoy refused its workload certificate (SDS NACK)', { names: [...names], version: sentVersion, error: req.error_detail.message, code: req.error_detail.code });
      }
      const unknown = [...names].filter((n) => n !== WORKLOAD_CERT_SECRET && !state.names.has(n));
      if (unknown.length) log('warn', 'Envoy asked the local SDS for secrets it does not hold', { names: unknown, holds: [WORKLOAD_CERT_SECRET] });
      const changed = names.size !== state.names.size || [...names].some((n) => !state.names.has(n));
      state.names = names;
      // The first request and a change of names are answered; an ACK or a NACK of what was sent is not (a NACK waits for the next version).
      if (!isReply || changed) send();
    });
  }
}
