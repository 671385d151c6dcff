// The sidecar's xDS client: one delta ADS stream (DeltaAggregatedResources)
// to the control plane. LDS and CDS are wildcard subscriptions; RDS and EDS
// follow the names the held listeners and EDS clusters use.
//
// Each response is decoded resource by resource. What decodes is applied;
// what the proxy cannot apply is NACKed with the decoders' messages, and the
// previous version of that resource keeps serving. Like Envoy, a config is
// emitted only once warm: the first LDS and CDS responses are in, and every
// RDS and EDS name referenced is held or known not to exist; after
// `warmingTimeoutMs` it is emitted anyway with what is missing logged. Every
// applied change emits a new ProxyConfig object, so the data plane swaps
// configs atomically.
//
// The control plane may be several replicas (`--xds a:15010,b:15010`): the
// stream goes to one of them (the first drawn at random); when it ends, or a
// replica cannot be reached within `connectTimeoutMs`, the client moves to
// the next one at once, and waits with jittered exponential backoff only
// after a full round of failures (control-plane-addresses.ts holds the
// policy, shared with the certificate agent and the rate limit client).
// Meanwhile the last config keeps serving; every new stream announces what
// the client holds in initial_resource_versions, so a replica with the same
// config (versions are content hashes) sends only what changed.
import * as grpc from '@grpc/grpc-js';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { jsonLogger, type Logger } from '../../observe/log';
import { ConfigNackError } from '../../proxy/config/nack';
import type { ProxyConfig } from '../../proxy/config/types';
import { decodeMessage } from '../protos';
import { adsClientDefinition } from '../server/ads-service';
import { DEFAULT_BACKOFF, type BackoffOptions } from './backoff';
import { AddressListError, ControlPlaneAddresses, type FailoverStream } from './control-plane-addresses';
import {
  assembleConfig,
  giveUp,
  missingResources,
  referencedAssignments,
  rawResources,
  referencedRouteTables,
  type ClientStates,
  type RawResourceSet,
} from './config-assembly';
import { configDump, type ConfigDump } from './config-dump';
import { XdsClientError, XdsResourceError } from './errors';
import { TypeState, type NackRecord } from './resource-state';
import { kindOfTypeUrl, REQUEST_ORDER, RESOURCE_TYPES, SECRET_RESOURCE_TYPE, type ResourceType, type XdsKind } from './resource-types';
import type { DecodedSecret } from '../../proxy/config/decode-secret';

export interface XdsClientNode {
  id: string;
  /** Node metadata, e.g. WEFT_SERVICE, WEFT_NAMESPACE, WEFT_ROLE=sidecar and the sidecar ports (see node-info.ts). */
  metadata: Record<string, string>;
  zone?: string;
}

export interface XdsClientOptions {
  /** The control plane's xDS address, "host:port", or several replicas' ("a:15010,b:15010"), or a list shared with other clients of the control plane. */
  server: string | ControlPlaneAddresses;
  node: XdsClientNode;
  /** Sent as `authorization: Bearer <token>` on the stream: the service's join token (outside --dev the control plane needs it). */
  token?: string;
  /** Defaults to JSON lines on stderr (info and above). */
  log?: Logger;
  /** Reconnection backoff between full rounds of the addresses; default 100 ms doubling up to 10 s, with jitter. */
  backoff?: BackoffOptions;
  /** How long a replica may take to accept the stream (TCP, TLS, HTTP/2) before the next one is tried (default 5 s). */
  connectTimeoutMs?: number;
  /** How long a config waits for missing RDS/EDS resources before it is emitted anyway (Envoy's initial_fetch_timeout: 15 s). */
  warmingTimeoutMs?: number;
  /** TLS to the control plane (outside dev mode); plaintext when absent. */
  credentials?: grpc.ChannelCredentials;
  /** Secrets to subscribe to over ADS (the sidecar: ["ROOTCA"]); they reach onSecret(), not the config. */
  secretNames?: string[];
}

export interface XdsTypeStatus {
  typeUrl: string;
  /** system_version_info of the last response applied in full. */
  version?: string;
  resources: number;
  subscription: '*' | string[];
  /** Whether the latest response of this type was rejected (in whole or in part). */
  nacked: boolean;
  lastNack?: NackRecord;
}

export interface XdsClientStatus {
  /** The address of the replica the stream is open to (or being opened to). */
  server: string;
  /** Every control plane address the client may use, in the order given. */
  servers: string[];
  /** The stream is open on a ready connection to `server`. */
  connected: boolean;
  connectedAt?: Date;
  /** Reconnection attempts since a stream last reached the server (0 while connected). */
  reconnectAttempts: number;
  /** What the config waits for ("RDS outbound", "EDS outbound|80||a.default", …); empty when warm. */
  warming: string[];
  types: Record<XdsKind, XdsTypeStatus>;
}

/** The DeltaDiscoveryResponse as adsClientDefinition() decodes it. */
interface DeltaResponse {
  system_version_info: string;
  type_url: string;
  nonce: string;
  resources: { name: string; version: string; resource?: { type_url: string; value: Uint8Array } | null }[];
  removed_resources: string[];
}

const DEFAULT_WARMING_TIMEOUT_MS = 15_000;
const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
/** google.rpc.Code.INVALID_ARGUMENT, the code of a NACK's error_detail. */
const INVALID_ARGUMENT = 3;
const USER_AGENT = 'weft-proxy';

let clientConstructor: grpc.ServiceClientConstructor | undefined;
function adsClientConstructor(): grpc.ServiceClientConstructor {
  clientConstructor ??= grpc.makeGenericClientConstructor(adsClientDefinition(), 'AggregatedDiscoveryService');
  return clientConstructor;
}

function validate(options: XdsClientOptions): ControlPlaneAddresses {
  if (!options.node?.id) throw new XdsClientError('E_XDS_CLIENT_OPTIONS', 'node.id is required');
  let addresses: ControlPlaneAddresses;
  if (options.server instanceof ControlPlaneAddresses) {
    addresses = options.server;
  } else {
    try {
      addresses = ControlPlaneAddresses.xds(options.server ?? '');
    } catch (err) {
      if (!(err instanceof AddressListError)) throw err;
      throw new XdsClientError('E_XDS_CLIENT_OPTIONS', `server must be "host:port" or a comma-separated list of them, got "${options.server}": ${err.message}`);
    }
  }
  const b = options.backoff;
  if (b && !(b.initialMs > 0 && b.maxMs >= b.initialMs)) {
    throw new XdsClientError('E_XDS_CLIENT_OPTIONS', `backoff needs 0 < initialMs <= maxMs, got ${JSON.stringify(b)}`);
  }
  return addresses;
}

/** The message of a delta Resource, checked to be of the type and name it was sent as. */
function readResource(type: ResourceType<unknown>, name: string, any: { type_url: string; value: Uint8Array }): Record<string, any> {
  if (any.type_url !== type.typeUrl) throw new XdsResourceError(`is a ${any.type_url}, expected ${type.typeUrl}`);
  let msg: Record<string, any>;
  try {
    msg = decodeMessage(type.typeUrl, any.value);
  } catch (err) {
    throw new XdsResourceError(`does not decode: ${(err as Error).message}`);
  }
  if (type.nameOf(msg) !== name) throw new XdsResourceError(`is named "${type.nameOf(msg)}" in its message`);
  return msg;
}

export class XdsClient {
  private readonly states: ClientStates = {
    LDS: new TypeState(RESOURCE_TYPES.LDS),
    RDS: new TypeState(RESOURCE_TYPES.RDS),
    CDS: new TypeState(RESOURCE_TYPES.CDS),
    EDS: new TypeState(RESOURCE_TYPES.EDS),
  };
  private readonly secretState = new TypeState(SECRET_RESOURCE_TYPE);
  private readonly secretListeners = new Set<(secret: DecodedSecret) => void>();
  private readonly log: Logger;
  /** Every address of the control plane, shared with the sidecar's other clients of it. */
  readonly addresses: ControlPlaneAddresses;
  /** Which replica the next stream goes to, and when. */
  private readonly failover: FailoverStream;
  private readonly backoffOptions: BackoffOptions;
  private readonly connectTimeoutMs: number;
  private readonly warmingTimeoutMs: number;
  private readonly configListeners = new Set<(config: ProxyConfig) => void>();
  private lifecycle: 'new' | 'running' | 'stopped' = 'new';
  private grpcClient: grpc.Client | undefined;
  private call: grpc.ClientDuplexStream<object, DeltaResponse> | undefined;
  /** The current stream has carried its first request (which names the node). */
  private nodeSent = false;
  private connected = false;
  private connectedAt: Date | undefined;
  private reconnectAttempts = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private connectTimer: NodeJS.Timeout | undefined;
  private warmingTimer: NodeJS.Timeout | undefined;
  private config: ProxyConfig | undefined;

  constructor(private readonly options: XdsClientOptions) {
    this.addresses = validate(options);
    this.log = options.log ?? jsonLogger();
    this.backoffOptions = options.backoff ?? DEFAULT_BACKOFF;
    this.failover = this.addresses.stream(this.backoffOptions);
    this.connectTimeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    this.warmingTimeoutMs = options.warmingTimeoutMs ?? DEFAULT_WARMING_TIMEOUT_MS;
    this.secretState.subscribed = new Set(options.secretNames ?? []);
  }

  /** Called with every Secret received (and accepted); returns a function that unsubscribes. */
  onSecret(cb: (secret: DecodedSecret) => void): () => void {
    this.secretListeners.add(cb);
    return () => this.secretListeners.delete(cb);
  }

  /** Opens the stream; reconnects by itself until stop(). */
  start(): void {
    if (this.lifecycle === 'stopped') throw new XdsClientError('E_XDS_CLIENT_STOPPED', 'a stopped XdsClient cannot be started again');
    if (this.lifecycle === 'running') return;
    this.lifecycle = 'running';
    this.connect();
  }

  /** Closes the stream for good. current() keeps the last config. */
  stop(): void {
    this.lifecycle = 'stopped';
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.warmingTimer);
    this.reconnectTimer = this.warmingTimer = undefined;
    this.closeStream();
  }

  /** Called with every new config; returns a function that unsubscribes. */
  onConfig(cb: (config: ProxyConfig) => void): () => void {
    this.configListeners.add(cb);
    return () => this.configListeners.delete(cb);
  }

  /** The last config emitted, if any. */
  current(): ProxyConfig | undefined {
    return this.config;
  }

  /** The resources behind the last config, as received (a primary relays them to its workers, which decode the same bytes). */
  held(): RawResourceSet {
    return rawResources(this.states);
  }

  status(): XdsClientStatus {
    const types = {} as Record<XdsKind, XdsTypeStatus>;
    for (const kind of REQUEST_ORDER) {
      const s = this.states[kind];
      types[kind] = {
        typeUrl: s.type.typeUrl,
        resources: s.resources.size,
        subscription: s.type.wildcard ? '*' : [...s.subscribed].sort(),
        nacked: s.nacked,
        ...(s.version !== undefined ? { version: s.version } : {}),
        ...(s.lastNack ? { lastNack: s.lastNack } : {}),
      };
    }
    return {
      server: this.failover.address ?? this.addresses.preferred,
      servers: [...this.addresses.list],
      connected: this.connected,
      ...(this.connectedAt ? { connectedAt: this.connectedAt } : {}),
      reconnectAttempts: this.reconnectAttempts,
      warming: missingResources(this.states),
      types,
    };
  }

  /** The held resources as JSON, by type, for the proxy's /config_dump. */
  configDump(): ConfigDump {
    return configDump(this.states);
  }

  // ---- the stream ----

  private connect(): void {
    const Ctor = adsClientConstructor();
    const server = this.failover.next();
    // A channel of its own per attempt: grpc-js would otherwise apply its own
    // (much longer) reconnect backoff to a shared subchannel.
    const client = new Ctor(server, this.options.credentials ?? grpc.credentials.createInsecure(), {
      'grpc.use_local_subchannel_pool': 1,
      'grpc.initial_reconnect_backoff_ms': this.backoffOptions.initialMs,
      'grpc.max_reconnect_backoff_ms': this.backoffOptions.maxMs,
    });
    const metadata = new grpc.Metadata();
    if (this.options.token) metadata.set('authorization', `Bearer ${this.options.token}`);
    const call = (client as unknown as { DeltaAggregatedResources(m: grpc.Metadata): grpc.ClientDuplexStream<object, DeltaResponse> }).DeltaAggregatedResources(metadata);
    this.grpcClient = client;
    this.call = call;
    this.nodeSent = false;
    this.watchReady(client, call, server);
    // A replica that does not answer the connection (a host gone, packets dropped) is left for the next one.
    this.connectTimer = setTimeout(() => {
      if (this.call === call && !this.connected) this.onStreamEnd(call, { code: grpc.status.UNAVAILABLE, details: `not connected within ${this.connectTimeoutMs} ms` });
    }, this.connectTimeoutMs);
    call.on('data', (response: DeltaResponse) => {
      if (this.call === call) this.onResponse(response);
    });
    // 'error' carries a non-OK status; 'status' always ends the call.
    call.on('error', () => {});
    call.on('status', (status: grpc.StatusObject) => this.onStreamEnd(call, status));
    for (const kind of REQUEST_ORDER) this.sendInitial(kind);
    this.sendInitial('SDS');
  }

  /** The first request of a type on a stream: the subscription and what is already held. */
  private sendInitial(kind: XdsKind | 'SDS'): void {
    const state: TypeState<unknown> = kind === 'SDS' ? this.secretState : this.states[kind];
    const request: Record<string, unknown> = { type_url: state.type.typeUrl, initial_resource_versions: state.initialVersions() };
    if (!state.type.wildcard) {
      // Nothing named yet: the first subscription change opens this type.
      if (state.subscribed.size === 0) return;
      request.resource_names_subscribe = [...state.subscribed];
    }
    this.send(request);
  }

  private send(request: Record<string, unknown>): void {
    if (!this.call) return;
    if (!this.nodeSent) {
      request.node = this.nodeMessage();
      this.nodeSent = true;
    }
    this.call.write(request);
  }

  /** The xDS Node this client announces (the telemetry streams send the same). */
  nodeMessage(): Record<string, unknown> {
    const { id, metadata, zone } = this.options.node;
    const node: Record<string, unknown> = {
      id,
      user_agent_name: USER_AGENT,
      // google.protobuf.Struct comes from protobufjs's bundled (camelCase) definitions.
      metadata: { fields: Object.fromEntries(Object.entries(metadata).map(([k, v]) => [k, { stringValue: v }])) },
    };
    if (zone) node.locality = { zone };
    return node;
  }

  /**
   * Marks the stream connected once its channel is READY. A server with
   * nothing new for a reconnecting client (initial_resource_versions match)
   * sends nothing, so an answer cannot be what says the stream works.
   */
  private watchReady(client: grpc.Client, call: grpc.ClientDuplexStream<object, DeltaResponse>, server: string): void {
    const channel = client.getChannel();
    const check = () => {
      if (this.call !== call) return;
      const state = channel.getConnectivityState(true);
      if (state === grpc.connectivityState.READY) {
        clearTimeout(this.connectTimer);
        this.connectTimer = undefined;
        this.connected = true;
        this.connectedAt = new Date();
        this.reconnectAttempts = 0;
        this.log('info', 'xds connected', { server, node: this.options.node.id, ...(this.addresses.size > 1 ? { servers: this.addresses.toString() } : {}) });
        return;
      }
      // Any change ends the wait (closing the channel too: SHUTDOWN); so does the deadline.
      channel.watchConnectivityState(state, Date.now() + 3_600_000, check);
    };
    check();
  }

  /**
   * A plaintext client that cannot reach a control plane may be talking to one that speaks TLS (outside
   * --dev it does): one TLS handshake tells, and the log then says what to pass instead of repeating
   * "failed to connect". Asked once per address.
   */
  private explainTls(server: string): void {
    if (this.tlsProbed.has(server)) return;
    this.tlsProbed.add(server);
    const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(server);
    if (!m) return;
    const socket = tls.connect({ host: m[1], port: Number(m[2]), rejectUnauthorized: false, ALPNProtocols: ['h2'], servername: net.isIP(m[1]) ? undefined : m[1] });
    const done = () => socket.destroy();
    socket.setTimeout(2000, done);
    socket.once('error', done);
    socket.once('secureConnect', () => {
      done();
      this.log('error', `the control plane at ${server} speaks TLS: pass --ca-file with its trust bundle (<data-dir>/ca/trust-bundle.pem on the control plane's host) and --join-token`, { server });
    });
  }

  private readonly tlsProbed = new Set<string>();

  private onStreamEnd(call: grpc.ClientDuplexStream<object, DeltaResponse>, status: Pick<grpc.StatusObject, 'code' | 'details'>): void {
    if (this.call !== call) return;
    const wasConnected = this.connected;
    const server = this.failover.address;
    this.closeStream();
    if (this.lifecycle !== 'running') return;
    // 0: the next replica at once; a delay only after a full round of failures.
    const delayMs = this.failover.ended();
    const next = this.addresses.preferred;
    const fields = {
      server,
      code: grpc.status[status.code] ?? status.code,
      details: status.details,
      ...(next !== server ? { next } : {}),
      retryInMs: delayMs,
      attempt: this.failover.failures,
    };
    // Loud once per outage; the retries after it are debug.
    this.log(wasConnected || this.failover.failures === 1 ? 'warn' : 'debug', 'xds stream ended, serving the last config and reconnecting', fields);
    if (server && !this.options.credentials && !wasConnected && status.code === grpc.status.UNAVAILABLE) this.explainTls(server);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (this.lifecycle !== 'running') return;
      this.reconnectAttempts++;
      this.connect();
    }, delayMs);
  }

  private closeStream(): void {
    const call = this.call;
    const client = this.grpcClient;
    this.call = undefined;
    this.grpcClient = undefined;
    this.connected = false;
    this.connectedAt = undefined;
    clearTimeout(this.connectTimer);
    this.connectTimer = undefined;
    call?.cancel();
    client?.close();
  }

  // ---- responses ----

  private onResponse(response: DeltaResponse): void {
    // The server answers: the stream works, and its replica is the one to use.
    this.failover.answered();
    const kind = kindOfTypeUrl(response.type_url);
    if (!kind && response.type_url === SECRET_RESOURCE_TYPE.typeUrl && this.secretState.subscribed.size > 0) {
      this.onSecretResponse(response);
      return;
    }
    if (!kind) {
      this.nack(response, `weft proxy did not subscribe to ${response.type_url}`);
      return;
    }
    const state: TypeState<unknown> = this.states[kind];
    const firstResponse = !state.received;
    state.received = true;
    const { changed, errors } = this.apply(state, response);
    if (errors.length > 0) {
      const message = errors.join('; ');
      state.nacked = true;
      state.lastNack = { version: response.system_version_info, message, at: new Date() };
      this.log('warn', 'xds update rejected (NACK)', { type: kind, version: response.system_version_info, error: message });
      this.nack(response, message);
    } else {
      state.nacked = false;
      state.version = response.system_version_info;
      this.send({ type_url: response.type_url, response_nonce: response.nonce });
    }
    const dropped = kind === 'LDS' || kind === 'CDS' ? this.updateSubscriptions() : false;
    if (changed || dropped || firstResponse) this.rebuild();
  }

  /** Secrets go to onSecret listeners; the data plane's config does not wait for them. */
  private onSecretResponse(response: DeltaResponse): void {
    const state = this.secretState;
    state.received = true;
    const before = new Map([...state.resources].map(([n, r]) => [n, r.value]));
    const { errors } = this.apply(state, response);
    if (errors.length > 0) {
      const message = errors.join('; ');
      state.nacked = true;
      state.lastNack = { version: response.system_version_info, message, at: new Date() };
      this.log('warn', 'xds secret rejected (NACK)', { version: response.system_version_info, error: message });
      this.nack(response, message);
    } else {
      state.nacked = false;
      state.version = response.system_version_info;
      this.send({ type_url: response.type_url, response_nonce: response.nonce });
    }
    for (const [name, r] of state.resources) {
      if (before.get(name) === r.value) continue;
      for (const cb of this.secretListeners) {
        try {
          cb(r.value);
        } catch (err) {
          this.log('error', 'xds secret listener failed', { error: (err as Error).message });
        }
      }
    }
  }

  private nack(response: DeltaResponse, message: string): void {
    this.send({ type_url: response.type_url, response_nonce: response.nonce, error_detail: { code: INVALID_ARGUMENT, message } });
  }

  /** Applies what decodes; returns whether anything changed and the rejections. */
  private apply<T>(state: TypeState<T>, response: DeltaResponse): { changed: boolean; errors: string[] } {
    const { type } = state;
    const errors: string[] = [];
    let changed = false;
    for (const r of response.resources) {
      // A name the client did not ask for (a wildcard takes any).
      if (!type.wildcard && !state.subscribed.has(r.name)) continue;
      const any = r.resource;
      if (!any) continue;
      try {
        const value = type.decode(readResource(type, r.name, any));
        state.resources.set(r.name, { name: r.name, version: r.version, bytes: any.value, value });
        state.absent.delete(r.name);
        state.givenUp.delete(r.name);
        changed = true;
      } catch (err) {
        // A subscribed name rejected before it was ever held: like Envoy, warming stops waiting for it.
        if (!type.wildcard && !state.resources.has(r.name) && !state.givenUp.has(r.name)) {
          state.givenUp.add(r.name);
          changed = true;
        }
        if (err instanceof ConfigNackError) {
          errors.push(err.message);
        } else {
          errors.push(`${type.resourceKind} "${r.name}": ${(err as Error).message}`);
          // Anything but a bad envelope is a decoder bug: still a NACK, so the last good config serves.
          if (!(err instanceof XdsResourceError)) this.log('error', 'xds resource decoder failed', { type: state.kind, name: r.name, error: String(err) });
        }
      }
    }
    for (const name of response.removed_resources) {
      if (state.resources.delete(name)) changed = true;
      state.givenUp.delete(name);
      // A subscribed name that does not exist: warming need not wait for it.
      if (!type.wildcard && state.subscribed.has(name) && !state.absent.has(name)) {
        state.absent.add(name);
        changed = true;
      }
    }
    return { changed, errors };
  }

  /**
   * Subscribes RDS and EDS to the names the held listeners and clusters use,
   * and unsubscribes (dropping what is held) from names no longer used.
   * Returns whether a held resource was dropped.
   */
  private updateSubscriptions(): boolean {
    const wanted = { RDS: referencedRouteTables(this.states.LDS), EDS: referencedAssignments(this.states.CDS) };
    let dropped = false;
    for (const kind of ['EDS', 'RDS'] as const) {
      const state = this.states[kind];
      const next = wanted[kind];
      const subscribe = [...next].filter((n) => !state.subscribed.has(n));
      const unsubscribe = [...state.subscribed].filter((n) => !next.has(n));
      if (subscribe.length === 0 && unsubscribe.length === 0) continue;
      state.subscribed = next;
      dropped = state.forget(unsubscribe) || dropped;
      this.send({ type_url: state.type.typeUrl, resource_names_subscribe: subscribe, resource_names_unsubscribe: unsubscribe });
    }
    return dropped;
  }

  // ---- configs ----

  /** Emits a config when warm; otherwise waits (bounded by the warming timeout). */
  private rebuild(): void {
    const missing = missingResources(this.states);
    if (missing.length === 0) {
      clearTimeout(this.warmingTimer);
      this.warmingTimer = undefined;
      this.emit();
      return;
    }
    this.log('debug', 'xds config warming', { missing });
    this.warmingTimer ??= setTimeout(() => {
      this.warmingTimer = undefined;
      if (this.lifecycle !== 'running') return;
      const still = missingResources(this.states);
      if (still.length === 0) return;
      this.log('warn', 'xds config emitted with resources missing after the warming timeout', { missing: still, timeoutMs: this.warmingTimeoutMs });
      giveUp(this.states);
      this.emit();
    }, this.warmingTimeoutMs);
  }

  private emit(): void {
    const config = assembleConfig(this.states);
    this.config = config;
    this.log('debug', 'xds config applied', { versions: config.versions });
    for (const cb of this.configListeners) {
      try {
        cb(config);
      } catch (err) {
        this.log('error', 'xds config listener failed', { error: (err as Error).message });
      }
    }
  }
}
