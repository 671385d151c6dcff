// The sidecar's tracer: one span per request per sidecar — SERVER on the
// inbound listener, CLIENT on the outbound one — child of the context the
// request came with, and the context the next hop gets. Spans are made by
// the OpenTelemetry SDK (its id generator and samplers: parent-based, the
// root decided by trace-id ratio) and leave as OTLP/HTTP protobuf through
// the SDK's exporter, batched by a bounded queue (span-queue.ts).
// Only built when the proxy is given a collector: without one, the
// exchanges hold no tracer and change nothing on the wire.
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Span } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { AlwaysOnSampler, BasicTracerProvider, ParentBasedSampler, RandomIdGenerator, TraceIdRatioBasedSampler, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import {
  ATTR_CLIENT_ADDRESS,
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_NETWORK_PROTOCOL_VERSION,
  ATTR_SERVER_ADDRESS,
  ATTR_SERVER_PORT,
  ATTR_SERVICE_NAME,
  ATTR_URL_PATH,
  ATTR_URL_SCHEME,
} from '@opentelemetry/semantic-conventions';
import { extract, inject, PROPAGATION_FIELDS, type TraceFormat } from './propagation';
import { DEFAULT_SPAN_QUEUE, SpanQueue, type SpanQueueOptions } from './span-queue';

export interface TracingOptions {
  /** OTLP/HTTP traces endpoint, e.g. http://127.0.0.1:4318/v1/traces. */
  endpoint: string;
  /** Share of new traces recorded (0…1); a caller's decision is followed. */
  sampleRatio: number;
  /** One export (the exporter's own retries included) gives up after this long. */
  exportTimeoutMs?: number;
  queue?: Partial<SpanQueueOptions>;
}

/** Who the spans are from (the OTLP resource). */
export interface TracerIdentity {
  service?: string;
  namespace: string;
  nodeId: string;
}

/** What a request needs to know of its trace. */
export interface RequestTrace {
  /** The SDK span; absent when the request is not sampled (no span is made for it). */
  span: Span | undefined;
  traceId: string;
  /** Fields to write on the request to the next hop, flat [name, value, …]. */
  headers: string[];
  /** gRPC status from the response, when one came (trailers or trailers-only). */
  grpcStatus?: number;
}

/** What a request exposes to be traced (the exchanges' RequestInfo). */
export interface TracedRequest {
  readonly method: string;
  readonly host: string;
  readonly path: string;
  readonly grpc: boolean;
  header(lowerName: string): string | undefined;
}

export interface TraceEnd {
  status: number;
  flag: string;
  cluster?: string;
  endpoint?: string;
  route?: string;
}

// The rpc.* names of OpenTelemetry's (incubating) RPC conventions.
const RPC_SYSTEM = 'rpc.system';
const RPC_SERVICE = 'rpc.service';
const RPC_METHOD = 'rpc.method';
const RPC_GRPC_STATUS_CODE = 'rpc.grpc.status_code';

export class ProxyTracer {
  private readonly provider: BasicTracerProvider;
  private readonly tracer;
  private readonly root: TraceIdRatioBasedSampler;
  private readonly ids: RandomIdGenerator;
  readonly queue: SpanQueue;

  constructor(
    readonly opts: TracingOptions,
    id: TracerIdentity,
    exporter: SpanExporter = new OTLPTraceExporter({ url: opts.endpoint, timeoutMillis: opts.exportTimeoutMs ?? 10_000 }),
  ) {
    this.root = new TraceIdRatioBasedSampler(opts.sampleRatio);
    this.ids = new RandomIdGenerator();
    this.queue = new SpanQueue(exporter, { ...DEFAULT_SPAN_QUEUE, ...opts.queue });
    this.provider = new BasicTracerProvider({
      resource: resourceFromAttributes({
        [ATTR_SERVICE_NAME]: id.service ?? 'weft-proxy',
        'service.namespace': id.namespace,
        'service.instance.id': id.nodeId,
      }),
      // New roots are decided in start() by the ratio before any span exists (so an unsampled
      // request costs no SDK span); a span is made only for what is sampled.
      sampler: new ParentBasedSampler({ root: new AlwaysOnSampler() }),
      spanProcessors: [this.queue],
    });
    this.tracer = this.provider.getTracer('weft-proxy');
  }

  /** Starts the span of a request arriving on a listener of `direction` (inbound: SERVER, else CLIENT). */
  start(direction: string, req: TracedRequest, version: string, peer: string | undefined): RequestTrace {
    const { format, parent } = extract((n) => req.header(n));
    let ctx = ROOT_CONTEXT;
    if (parent) {
      // A deferred B3 decision is taken here, by the ratio: the trace id decides, so every hop agrees.
      const sampled = parent.sampled ?? this.root.shouldSample(ROOT_CONTEXT, parent.traceId).decision === 2;
      // Not sampled: no span, and the caller's context goes on untouched (the head too).
      if (!sampled) return { span: undefined, traceId: parent.traceId, headers: parent.sampled === undefined ? inject(format, parent.traceId, parent.spanId, undefined, false, parent.shortTraceId) : [] };
      ctx = trace.setSpanContext(ROOT_CONTEXT, { traceId: parent.traceId, spanId: parent.spanId, traceFlags: 1, isRemote: true });
    } else {
      const traceId = this.ids.generateTraceId();
      if (this.root.shouldSample(ROOT_CONTEXT, traceId).decision !== 2) {
        // A new trace that is not sampled: the next hops learn the decision (flag 0), no span is made.
        return { span: undefined, traceId, headers: inject(format, traceId, this.ids.generateSpanId(), undefined, false, false) };
      }
    }
    const server = direction === 'inbound';
    const attributes: Attributes = {
      [ATTR_HTTP_REQUEST_METHOD]: req.method,
      [ATTR_URL_PATH]: pathOnly(req.path),
      [ATTR_URL_SCHEME]: 'http',
      [ATTR_NETWORK_PROTOCOL_VERSION]: version,
      'weft.direction': direction,
    };
    const [host, port] = splitHost(req.host);
    attributes[ATTR_SERVER_ADDRESS] = host;
    if (port !== undefined) attributes[ATTR_SERVER_PORT] = port;
    if (server && peer) attributes[ATTR_CLIENT_ADDRESS] = peer;
    let name = `${req.method} ${host}`;
    if (req.grpc) {
      const [service, method] = grpcMethod(req.path);
      attributes[RPC_SYSTEM] = 'grpc';
      if (service) {
        attributes[RPC_SERVICE] = service;
        attributes[RPC_METHOD] = method;
        name = `${service}/${method}`;
      }
    }
    const span = this.tracer.startSpan(name, { kind: server ? SpanKind.SERVER : SpanKind.CLIENT, attributes }, ctx);
    const sc = span.spanContext();
    const headers = inject(format, sc.traceId, sc.spanId, parent?.spanId, (sc.traceFlags & 1) === 1, parent?.shortTraceId ?? false);
    return { span, traceId: sc.traceId, headers };
  }

  /** Ends a request's span with its outcome; 5xx, local failures (status 0) and gRPC errors are errors. */
  end(t: RequestTrace, e: TraceEnd): void {
    const span = t.span;
    if (!span || !span.isRecording()) return;
    if (e.status > 0) span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, e.status);
    if (e.flag) span.setAttribute('weft.response_flags', e.flag);
    if (e.cluster) span.setAttribute('weft.upstream.cluster', e.cluster);
    if (e.endpoint) span.setAttribute('weft.upstream.address', e.endpoint);
    if (e.route) span.setAttribute('weft.route', e.route);
    if (t.grpcStatus !== undefined) span.setAttribute(RPC_GRPC_STATUS_CODE, t.grpcStatus);
    if (e.status >= 500 || e.status === 0 || (t.grpcStatus !== undefined && t.grpcStatus !== 0)) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: e.flag || (e.status ? `HTTP ${e.status}` : t.grpcStatus ? `grpc-status ${t.grpcStatus}` : 'no response') });
    }
    span.end();
  }

  metrics(): string[] {
    const q = this.queue;
    return [
      '# HELP weft_trace_spans_exported_total Spans the collector accepted.',
      '# TYPE weft_trace_spans_exported_total counter',
      `weft_trace_spans_exported_total ${q.exported}`,
      '# HELP weft_trace_spans_dropped_total Spans dropped: the export queue was full (the collector slow or down) or the proxy stopped.',
      '# TYPE weft_trace_spans_dropped_total counter',
      `weft_trace_spans_dropped_total ${q.dropped}`,
      '# HELP weft_trace_export_failures_total Span exports that failed (each is retried after a back-off).',
      '# TYPE weft_trace_export_failures_total counter',
      `weft_trace_export_failures_total ${q.exportFailures}`,
      '# HELP weft_trace_spans_queued Spans held for export now (bounded by the queue size).',
      '# TYPE weft_trace_spans_queued gauge',
      `weft_trace_spans_queued ${q.held}`,
    ];
  }

  close(): Promise<void> {
    return this.queue.shutdown();
  }
}

export { PROPAGATION_FIELDS, type TraceFormat };
export { setTraceHeaders } from './trace-headers';

function pathOnly(path: string): string {
  const q = path.indexOf('?');
  return q < 0 ? path : path.slice(0, q);
}

function splitHost(authority: string): [string, number | undefined] {
  const m = /^(.*):(\d+)$/.exec(authority);
  if (!m || m[1].endsWith(']') === false && m[1].includes(':')) return [authority, undefined];
  return [m[1], Number(m[2])];
}

/** `/package.Service/Method` → [package.Service, Method]. */
function grpcMethod(path: string): [string, string] {
  const parts = path.split('/');
  return parts.length === 3 && parts[0] === '' ? [parts[1], parts[2]] : ['', ''];
}
