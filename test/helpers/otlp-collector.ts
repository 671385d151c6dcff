// A fake OTLP/HTTP collector on loopback: accepts POST /v1/traces
// (application/x-protobuf), decodes each ExportTraceServiceRequest and keeps
// the spans. Decoding uses OpenTelemetry's own OTLP definitions: the
// protobufjs root generated from opentelemetry-proto that
// @opentelemetry/otlp-transformer shipped up to 0.57 (installed as the dev
// dependency `otlp-proto-definitions`; today's otlp-transformer writes OTLP
// with a hand-rolled writer and has no decoder). otlp-decode.test.ts checks
// it against today's serializer (ProtobufTraceSerializer, what the exporter sends).
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type * as net from 'node:net';

// The generated root has no typings worth importing here: read it as plain objects.
const root = require('otlp-proto-definitions/build/src/generated/root');
const ExportTraceServiceRequest = root.opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest;

export type AttrValue = string | number | boolean | AttrValue[] | undefined;

export interface DecodedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  traceState: string;
  name: string;
  /** OTLP SpanKind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  kind: number;
  startTimeUnixNano: bigint;
  endTimeUnixNano: bigint;
  attributes: Record<string, AttrValue>;
  /** OTLP StatusCode: 0 unset, 1 ok, 2 error. */
  status: { code: number; message: string };
  resource: Record<string, AttrValue>;
  scope: string;
}

type Pb = Record<string, any>;

const hex = (b: Uint8Array | undefined) => (b && b.length ? Buffer.from(b).toString('hex') : '');
/** A uint64/int64 as protobufjs decodes it (a Long, or a number) → bigint. */
const big = (v: unknown): bigint => (v === undefined || v === null ? 0n : BigInt(String(v)));

function anyValue(v: Pb | undefined): AttrValue {
  if (!v) return undefined;
  if (v.stringValue !== undefined && v.stringValue !== null) return v.stringValue;
  if (v.boolValue !== undefined && v.boolValue !== null) return v.boolValue;
  if (v.intValue !== undefined && v.intValue !== null) return Number(v.intValue);
  if (v.doubleValue !== undefined && v.doubleValue !== null) return v.doubleValue;
  if (v.arrayValue) return (v.arrayValue.values ?? []).map(anyValue);
  return undefined;
}

function keyValues(list: Pb[] | undefined): Record<string, AttrValue> {
  const out: Record<string, AttrValue> = {};
  for (const kv of list ?? []) out[kv.key] = anyValue(kv.value);
  return out;
}

/** ExportTraceServiceRequest → its spans, each with its resource's attributes and scope name. */
export function decodeExportTraceServiceRequest(body: Uint8Array): DecodedSpan[] {
  const request = ExportTraceServiceRequest.decode(body) as Pb;
  const spans: DecodedSpan[] = [];
  for (const rs of request.resourceSpans ?? []) {
    const resource = keyValues(rs.resource?.attributes);
    for (const ss of rs.scopeSpans ?? []) {
      const scope: string = ss.scope?.name ?? '';
      for (const s of ss.spans ?? []) {
        spans.push({
          traceId: hex(s.traceId),
          spanId: hex(s.spanId),
          parentSpanId: hex(s.parentSpanId),
          traceState: s.traceState ?? '',
          name: s.name ?? '',
          kind: s.kind ?? 0,
          startTimeUnixNano: big(s.startTimeUnixNano),
          endTimeUnixNano: big(s.endTimeUnixNano),
          attributes: keyValues(s.attributes),
          status: { code: s.status?.code ?? 0, message: s.status?.message ?? '' },
          resource,
          scope,
        });
      }
    }
  }
  return spans;
}

/** The collector: every decoded span, and the requests it got (content types, failures to decode). */
export class OtlpCollector {
  readonly spans: DecodedSpan[] = [];
  requests = 0;
  readonly contentTypes = new Set<string>();
  readonly errors: string[] = [];
  private readonly sockets = new Set<net.Socket>();
  readonly server: http.Server;
  port = 0;

  constructor() {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        this.requests++;
        this.contentTypes.add(String(req.headers['content-type']));
        if (req.method !== 'POST' || req.url !== '/v1/traces') {
          this.errors.push(`${req.method} ${req.url}`);
          return res.writeHead(404).end();
        }
        try {
          this.spans.push(...decodeExportTraceServiceRequest(Buffer.concat(chunks)));
        } catch (err) {
          this.errors.push(String(err));
          return res.writeHead(400).end();
        }
        // An empty ExportTraceServiceResponse: full success.
        res.writeHead(200, { 'content-type': 'application/x-protobuf', 'content-length': 0 }).end();
      });
    });
    this.server.on('connection', (s: net.Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
  }

  static async start(port = 0): Promise<OtlpCollector> {
    const c = new OtlpCollector();
    await new Promise<void>((resolve, reject) => {
      c.server.once('error', reject);
      c.server.listen(port, '127.0.0.1', () => resolve());
    });
    c.port = (c.server.address() as AddressInfo).port;
    return c;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/v1/traces`;
  }

  trace(traceId: string): DecodedSpan[] {
    return this.spans.filter((s) => s.traceId === traceId);
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
