// Active health checks for one cluster, as Envoy's: every endpoint is checked
// every `interval` (the next check starts an interval after the last one
// ended), each check bounded by `timeout`.
//   http   GET path (Host: the configured host, else the cluster name); a
//          status in expected_statuses passes (default 200)
//   tcp    a connection opens
//   grpc   grpc.health.v1.Health/Check answers SERVING (@grpc/grpc-js; the two
//          tiny messages are encoded by hand, off the hot path)
// A new endpoint is `pending` (not picked) until its first check, which runs
// at once; one pass makes it healthy. Then unhealthy_threshold failures in a
// row take a healthy endpoint out, healthy_threshold passes in a row bring a
// failed one back. State outlives config changes; endpoints that leave the
// cluster are forgotten and their checks stop.
//
// As Envoy's, a check goes over the cluster's transport socket: to an
// endpoint the cluster reaches with mTLS, the check is an mTLS connection too
// (a tcp check passes once the handshake is done and the peer's identity
// verified). A plaintext probe of a strict sidecar would be refused and
// logged as an attack, and an http or grpc one would always fail. While this
// sidecar has no certificate yet, checks of such endpoints wait (they stay
// pending), as Envoy's wait for their cluster's secrets.
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import * as tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import type { Endpoint, HealthCheckConfig } from '../config/types';

export type HealthState = 'pending' | 'healthy' | 'failed';

/**
 * The TLS options of the cluster's transport socket for an endpoint; undefined: plaintext;
 * 'no_certificate': mTLS, but this sidecar has no certificate yet (the check waits for it).
 */
export type HealthCheckTransport = (endpoint: Endpoint) => tls.ConnectionOptions | undefined | 'no_certificate';

/** How soon a check that waits for the workload certificate looks again (at most the interval). */
const CERTIFICATE_WAIT_MS = 500;

/** A passed TLS check closes cleanly (close_notify, FIN) and is cut if the peer has not closed by then. */
const TLS_CLOSE_MS = 1000;

export interface EndpointHealthCheck {
  state: HealthState;
  /** Why the last check failed, if it did. */
  lastFailure?: string;
}

class Target implements EndpointHealthCheck {
  state: HealthState = 'pending';
  lastFailure: string | undefined;
  passes = 0;
  fails = 0;
  timer: NodeJS.Timeout | undefined;
  grpcClient: grpc.Client | undefined;
  /** The secure context grpcClient was made with: a rotated certificate makes a new client. */
  grpcContext: tls.SecureContext | undefined;
  stopped = false;
  /** Bumped on every config change: a check started under older settings reports nothing. */
  generation = 0;

  constructor(readonly endpoint: Endpoint) {}

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.grpcClient?.close();
    this.grpcClient = undefined;
  }
}

export class HealthChecker {
  private readonly targets = new Map<string, Target>();
  /** Checks run and checks failed (weft_health_checks_total / weft_health_check_failures_total). */
  checks = 0;
  failures = 0;

  constructor(
    private config: HealthCheckConfig,
    private readonly clusterName: string,
    /** Called when an endpoint's state changes. */
    private readonly changed: () => void,
    private readonly transport: HealthCheckTransport = () => undefined,
  ) {}

  /** Settings and endpoints of a (new) config; endpoints that stay keep their state. */
  configure(config: HealthCheckConfig, endpoints: Endpoint[]): void {
    const restart = JSON.stringify(config) !== JSON.stringify(this.config);
    this.config = config;
    const keep = new Set<string>();
    for (const e of endpoints) {
      keep.add(e.key);
      const t = this.targets.get(e.key);
      if (!t) {
        const fresh = new Target(e);
        this.targets.set(e.key, fresh);
        this.schedule(fresh, 0);
      } else if (restart) {
        clearTimeout(t.timer);
        t.grpcClient?.close();
        t.grpcClient = undefined;
        t.generation++;
        this.schedule(t, 0);
      }
    }
    for (const [key, t] of this.targets) {
      if (keep.has(key)) continue;
      t.stop();
      this.targets.delete(key);
    }
  }

  /** Not to be picked: failed, or not checked yet. */
  isExcluded(key: string): boolean {
    const t = this.targets.get(key);
    return t !== undefined && t.state !== 'healthy';
  }

  state(key: string): EndpointHealthCheck | undefined {
    return this.targets.get(key);
  }

  get unhealthy(): number {
    let n = 0;
    for (const t of this.targets.values()) if (t.state !== 'healthy') n++;
    return n;
  }

  stop(): void {
    for (const t of this.targets.values()) t.stop();
    this.targets.clear();
  }

  private schedule(t: Target, delayMs: number): void {
    const generation = t.generation;
    t.timer = setTimeout(() => {
      if (t.stopped || generation !== t.generation) return;
      const transport = this.transport(t.endpoint);
      if (transport === 'no_certificate') return this.schedule(t, Math.min(this.config.intervalMs, CERTIFICATE_WAIT_MS));
      this.checks++;
      this.runCheck(t, transport, (failure) => {
        if (t.stopped || generation !== t.generation) return;
        this.record(t, failure);
        this.schedule(t, this.config.intervalMs);
      });
    }, delayMs);
    t.timer.unref();
  }

  private record(t: Target, failure: string | undefined): void {
    const before = t.state;
    if (failure === undefined) {
      t.fails = 0;
      t.passes++;
      t.lastFailure = undefined;
      if (t.state === 'pending' || (t.state === 'failed' && t.passes >= this.config.healthyThreshold)) t.state = 'healthy';
    } else {
      this.failures++;
      t.passes = 0;
      t.fails++;
      t.lastFailure = failure;
      if (t.state === 'pending' || (t.state === 'healthy' && t.fails >= this.config.unhealthyThreshold)) t.state = 'failed';
    }
    if (t.state !== before) this.changed();
  }

  /** One check; `done(undefined)` when it passed, `done(reason)` when not. Exactly one call. */
  private runCheck(t: Target, secure: tls.ConnectionOptions | undefined, done: (failure: string | undefined) => void): void {
    let settled = false;
    const finish = (failure: string | undefined) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      cleanup();
      done(failure);
    };
    const timer = setTimeout(() => finish(`timed out after ${this.config.timeoutMs} ms`), this.config.timeoutMs);
    let cleanup = () => {};
    const { address, port } = t.endpoint;
    const c = this.config;
    if (c.kind === 'tcp' && secure) {
      const socket = tls.connect(secure);
      let passed = false;
      cleanup = () => {
        if (!passed) return void socket.destroy();
        // Not destroy(): unread bytes (TLS 1.3 session tickets) would make it a reset the peer sees mid-handshake.
        socket.resume();
        socket.end();
        setTimeout(() => socket.destroy(), TLS_CLOSE_MS).unref();
      };
      socket.on('error', (err) => finish(`TLS connect: ${err.message}`));
      socket.once('secureConnect', () => {
        passed = true;
        finish(undefined);
      });
    } else if (c.kind === 'tcp') {
      const socket = net.connect({ host: address, port });
      cleanup = () => socket.destroy();
      socket.once('connect', () => finish(undefined));
      socket.once('error', (err) => finish(`connect: ${err.message}`));
    } else if (c.kind === 'http') {
      const options: https.RequestOptions = { host: address, port, path: c.path, method: 'GET', agent: false, headers: { host: c.host ?? this.clusterName, 'user-agent': 'weft-health-check' } };
      const req = secure ? https.request({ ...secure, ...options, ALPNProtocols: ['http/1.1'] } as https.RequestOptions) : http.request(options);
      cleanup = () => req.destroy();
      req.once('response', (res) => {
        res.resume();
        const status = res.statusCode ?? 0;
        const ok = (c.expectedStatuses ?? [[200, 201]]).some(([start, end]) => status >= start && status < end);
        finish(ok ? undefined : `HTTP ${status}`);
      });
      req.once('error', (err) => finish(err.message));
      req.end();
    } else {
      if (t.grpcClient && t.grpcContext !== secure?.secureContext) {
        t.grpcClient.close();
        t.grpcClient = undefined;
      }
      t.grpcContext = secure?.secureContext;
      const options: grpc.ChannelOptions = c.authority ? { 'grpc.default_authority': c.authority } : {};
      if (secure?.servername) options['grpc.ssl_target_name_override'] = secure.servername;
      const client = (t.grpcClient ??= new grpc.Client(
        `${net.isIPv6(address) ? `[${address}]` : address}:${port}`,
        secure?.secureContext
          ? grpc.credentials.createFromSecureContext(secure.secureContext, { checkServerIdentity: secure.checkServerIdentity })
          : grpc.credentials.createInsecure(),
        options,
      ));
      const call = client.makeUnaryRequest(
        '/grpc.health.v1.Health/Check',
        encodeHealthCheckRequest,
        decodeHealthCheckResponse,
        c.serviceName ?? '',
        new grpc.Metadata(),
        { deadline: Date.now() + c.timeoutMs },
        (err, status) => {
          if (err) return finish(`gRPC ${grpc.status[err.code] ?? err.code}: ${err.details}`);
          finish(status === SERVING ? undefined : `serving status ${SERVING_STATUS[status ?? 0] ?? status}`);
        },
      );
      cleanup = () => call.cancel();
    }
  }
}

// grpc.health.v1: HealthCheckRequest { string service = 1; },
// HealthCheckResponse { ServingStatus status = 1; } (UNKNOWN 0, SERVING 1, NOT_SERVING 2, SERVICE_UNKNOWN 3).
const SERVING = 1;
const SERVING_STATUS = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'];

function encodeHealthCheckRequest(service: string): Buffer {
  const bytes = Buffer.from(service, 'utf8');
  if (bytes.length === 0) return Buffer.alloc(0);
  return Buffer.concat([Buffer.from([0x0a]), varint(bytes.length), bytes]);
}

function varint(n: number): Buffer {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return Buffer.from(out);
}

/** The status field of a HealthCheckResponse (0 when absent); other fields are skipped. */
function decodeHealthCheckResponse(buf: Buffer): number {
  let i = 0;
  let status = 0;
  const readVarint = (): number => {
    let v = 0;
    for (let shift = 0; i < buf.length; shift += 7) {
      const b = buf[i++];
      v += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return v;
    }
    throw new Error('truncated varint');
  };
  while (i < buf.length) {
    const tag = readVarint();
    const wire = tag & 7;
    if (tag >>> 3 === 1 && wire === 0) status = readVarint();
    else if (wire === 0) readVarint();
    else if (wire === 2) i += readVarint();
    else if (wire === 1) i += 8;
    else if (wire === 5) i += 4;
    else throw new Error(`unexpected wire type ${wire}`);
  }
  return status;
}
