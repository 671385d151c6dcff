// The sidecar's side of mesh-wide telemetry: two streams it opens itself to
// the control plane replica its xDS stream is connected to (so no host needs
// an inbound port for telemetry), authenticated like xDS with the service's
// join token:
//   - StreamMetrics (Envoy's MetricsService): every `intervalMs`, the metrics
//     report (metrics-report.ts), only when something changed since the last
//     one: an idle sidecar sends nothing;
//   - the admin relay: the control plane asks for admin views and taps over
//     it while someone watches (telemetry-protocol.ts).
// The data plane never waits for either: reports are built on a timer, a
// stream that is backed up skips reports (the counters are cumulative, so
// the next report carries what a skipped one would have) and drops tap
// records (counted in weft_tap_dropped_total), and a stream that fails is
// opened again on a later tick with backoff.
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../../observe/log';
import type { RequestRecord } from '../../observe/request-record';
import { ADMIN_RELAY_PATH, adminRelayDefinition, METRICS_SERVICE_PATH, metricsServiceDefinition, type RelayDown, type RelayUp } from '../../observe/telemetry/telemetry-protocol';
import { Backoff } from '../../xds/client/backoff';
import type { XdsClient } from '../../xds/client/ads-client';
import { adminView, RELAYED_VIEWS, subscribeTap, type AdminSubject } from '../admin/admin-server';
import { metricsReport } from './metrics-report';

export interface TelemetryClientOptions {
  proxy: AdminSubject;
  xds: XdsClient;
  token?: string;
  credentials?: grpc.ChannelCredentials;
  log: Logger;
  /** How often the report is built (and sent when it changed); default 2 s. */
  intervalMs?: number;
}

/** Tap records waiting to be sent are flushed at this size or after TAP_FLUSH_MS. */
const TAP_BATCH = 64;
const TAP_FLUSH_MS = 100;
/** A report is sent at least this often, even unchanged: the control plane knows the stream carries data. */
const REPORT_REFRESH_MS = 60_000;
const CONNECT_POLL_MS = 200;

type RelayCall = grpc.ClientDuplexStream<RelayUp, RelayDown>;

export class TelemetryClient {
  private readonly intervalMs: number;
  private timer: NodeJS.Timeout | undefined;
  private soon: NodeJS.Timeout | undefined;
  private server: string | undefined;
  private client: grpc.Client | undefined;
  private metrics: grpc.ClientWritableStream<unknown> | undefined;
  private metricsBlocked = false;
  private lastSignature: string | undefined;
  private lastSentAt = 0;
  private relay: RelayCall | undefined;
  private readonly taps = new Map<number, { remove: () => void; batch: RequestRecord[]; timer?: NodeJS.Timeout }>();
  private readonly backoff = new Backoff({ initialMs: 1000, maxMs: 30_000 });
  private retryAt = 0;
  private loggedFailure = '';

  constructor(private readonly opts: TelemetryClientOptions) {
    this.intervalMs = opts.intervalMs ?? 2000;
  }

  start(): void {
    this.timer = setInterval(() => this.tick(), this.intervalMs);
    this.timer.unref();
    this.connectSoon();
  }

  /** Until the xDS stream is up, looks often: the relay should be open as soon as the sidecar is known. */
  private connectSoon(): void {
    if (!this.timer || this.relay) return;
    this.tick();
    this.soon = setTimeout(() => this.connectSoon(), CONNECT_POLL_MS);
    this.soon.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    clearTimeout(this.soon);
    this.timer = this.soon = undefined;
    this.close();
  }

  /** Follows the xDS stream's replica, opens what is closed, and reports. */
  tick(): void {
    const xds = this.opts.xds.status();
    const server = xds.connected ? xds.server : undefined;
    if (server !== this.server) {
      this.close();
      this.server = server;
      this.backoff.reset();
      this.retryAt = 0;
    }
    if (!server) return;
    if ((!this.metrics || !this.relay) && Date.now() >= this.retryAt) this.open(server);
    this.report();
  }

  private channel(server: string): grpc.Client {
    this.client ??= new grpc.Client(server, this.opts.credentials ?? grpc.credentials.createInsecure());
    return this.client;
  }

  private callMetadata(): grpc.Metadata {
    const m = new grpc.Metadata();
    if (this.opts.token) m.set('authorization', `Bearer ${this.opts.token}`);
    return m;
  }

  private open(server: string): void {
    const client = this.channel(server);
    if (!this.metrics) {
      const def = metricsServiceDefinition().StreamMetrics;
      const call = client.makeClientStreamRequest(def.path, def.requestSerialize, def.responseDeserialize, this.callMetadata(), {}, (err) => {
        if (this.metrics !== call) return;
        this.metrics = undefined;
        this.failed('metrics stream', err);
      });
      call.on('drain', () => (this.metricsBlocked = false));
      this.metrics = call;
      this.metricsBlocked = false;
      this.lastSignature = undefined; // the first report of a stream names the node and is always sent
    }
    if (!this.relay) {
      const def = adminRelayDefinition().Connect;
      const call = client.makeBidiStreamRequest(def.path, def.requestSerialize, def.responseDeserialize, this.callMetadata()) as RelayCall;
      call.on('data', (msg: RelayDown) => this.onRelay(call, msg));
      call.on('error', (err) => this.relayEnded(call, err as grpc.ServiceError));
      call.on('end', () => this.relayEnded(call));
      call.write({ hello: { node: this.opts.xds.nodeMessage() } });
      this.relay = call;
    }
  }

  private failed(what: string, err: grpc.ServiceError | null): void {
    if (!err || err.code === grpc.status.CANCELLED) return;
    this.retryAt = Date.now() + this.backoff.next();
    // Said once per distinct reason: a control plane without telemetry should not fill the log.
    const reason = `${what}: ${err.details || err.message}`;
    if (reason !== this.loggedFailure) {
      this.loggedFailure = reason;
      this.opts.log(err.code === grpc.status.UNIMPLEMENTED ? 'info' : 'warn', 'telemetry to the control plane failed; retrying with backoff', { server: this.server, error: reason });
    }
  }

  private report(): void {
    const call = this.metrics;
    if (!call || this.metricsBlocked) return;
    const { proxy } = this.opts;
    const report = metricsReport(proxy.countedStats(), proxy.unhealthyEndpoints());
    const now = Date.now();
    if (report.signature === this.lastSignature && now - this.lastSentAt < REPORT_REFRESH_MS) return;
    const first = this.lastSignature === undefined;
    this.lastSignature = report.signature;
    this.lastSentAt = now;
    const msg: Record<string, unknown> = { envoy_metrics: report.families };
    if (first) msg.identifier = { node: this.opts.xds.nodeMessage() };
    if (!call.write(msg)) this.metricsBlocked = true;
    this.backoff.reset();
  }

  // ---- the relay ----

  private onRelay(call: RelayCall, msg: RelayDown): void {
    if (this.relay !== call) return;
    this.loggedFailure = '';
    if ('get' in msg) {
      const url = new URL(msg.get + (msg.query ? `?${msg.query}` : ''), 'http://relay');
      if (!(RELAYED_VIEWS as readonly string[]).includes(url.pathname)) return void call.write({ id: msg.id, error: `${url.pathname} is not an admin view the relay serves (${RELAYED_VIEWS.join(' ')})` });
      const failed = (err: unknown) => call.write({ id: msg.id, error: (err as Error).message });
      try {
        // A promise under --concurrency (the workers answer over IPC).
        Promise.resolve(adminView(this.opts.proxy, url.pathname, url.searchParams)).then((body) => call.write({ id: msg.id, body }), failed);
      } catch (err) {
        failed(err);
      }
    } else if ('tap' in msg) {
      this.startTap(call, msg.id, new URLSearchParams(msg.tap));
    } else if ('cancel' in msg) {
      this.stopTap(msg.id);
    }
  }

  private startTap(call: RelayCall, id: number, query: URLSearchParams): void {
    if (this.taps.has(id)) return;
    const tap: { remove: () => void; batch: RequestRecord[]; timer?: NodeJS.Timeout } = { remove: () => {}, batch: [] };
    const flush = () => {
      clearTimeout(tap.timer);
      tap.timer = undefined;
      if (tap.batch.length === 0 || this.relay !== call) return;
      const records = tap.batch;
      tap.batch = [];
      call.write({ id, records });
    };
    try {
      tap.remove = subscribeTap(this.opts.proxy, query, (r) => {
        // A relay that is not draining: the record is dropped, not queued.
        if (call.writableLength > 256 * 1024) return void this.opts.proxy.stats.tapDropped++;
        tap.batch.push(r);
        if (tap.batch.length >= TAP_BATCH) flush();
        else tap.timer ??= setTimeout(flush, TAP_FLUSH_MS);
      });
    } catch (err) {
      return void call.write({ id, error: (err as Error).message });
    }
    this.taps.set(id, tap);
    flush();
  }

  private stopTap(id: number): void {
    const tap = this.taps.get(id);
    if (!tap) return;
    tap.remove();
    clearTimeout(tap.timer);
    this.taps.delete(id);
  }

  private relayEnded(call: RelayCall, err?: grpc.ServiceError): void {
    if (this.relay !== call) return;
    this.relay = undefined;
    for (const id of [...this.taps.keys()]) this.stopTap(id);
    this.failed('admin relay', err ?? null);
  }

  private close(): void {
    const metrics = this.metrics;
    const relay = this.relay;
    this.metrics = this.relay = undefined;
    for (const id of [...this.taps.keys()]) this.stopTap(id);
    metrics?.end();
    relay?.cancel();
    this.client?.close();
    this.client = undefined;
  }
}
