// A fake OTLP/HTTP collector on loopback: accepts POST /v1/traces
// (application/x-protobuf), decodes each ExportTraceServiceRequest and keeps
// the spans. The installed @opentelemetry/otlp-transformer (0.223) ships no
// .proto files nor a generated protobuf root — it writes OTLP with a
// hand-rolled writer — so the decoding walks the messages with that
// package's own wire reader (ProtobufReader) by the field numbers its
// serializer documents; otlp-decode.test.ts checks this walk against the
// package's serializer (ProtobufTraceSerializer, what the exporter sends).
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type * as net from 'node:net';
import { ProtobufReader } from '@opentelemetry/otlp-transformer/build/src/common/protobuf/protobuf-reader';

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

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LEN = 2;

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** Walks a message: `on(field, wireType)` reads the field or returns false to skip it. */
function walk(data: Uint8Array, on: (r: ProtobufReader, field: number, wire: number) => boolean): void {
  const r = new ProtobufReader(data);
  while (!r.isAtEnd()) {
    const { fieldNumber, wireType } = r.readTag();
    if (!on(r, fieldNumber, wireType)) r.skip(wireType);
  }
}

function fixed64(r: ProtobufReader, data: Uint8Array): bigint {
  const v = Buffer.from(data.buffer, data.byteOffset + r.pos, 8).readBigUInt64LE(0);
  r.pos += 8;
  return v;
}

function anyValue(data: Uint8Array): AttrValue {
  let out: AttrValue;
  walk(data, (r, f, w) => {
    if (f === 1 && w === WIRE_LEN) out = r.readString();
    else if (f === 2 && w === WIRE_VARINT) out = r.readVarint() !== 0;
    else if (f === 3 && w === WIRE_VARINT) out = r.readVarint();
    else if (f === 4 && w === WIRE_FIXED64) {
      const b = r.pos;
      out = Buffer.from(data.buffer, data.byteOffset + b, 8).readDoubleLE(0);
      r.pos += 8;
    } else if (f === 5 && w === WIRE_LEN) {
      const values: AttrValue[] = [];
      walk(r.readBytes(), (rr, ff, ww) => ff === 1 && ww === WIRE_LEN && values.push(anyValue(rr.readBytes())) > 0);
      out = values;
    } else return false;
    return true;
  });
  return out;
}

function keyValues(into: Record<string, AttrValue>, data: Uint8Array): void {
  let key = '';
  let value: AttrValue;
  walk(data, (r, f, w) => {
    if (f === 1 && w === WIRE_LEN) key = r.readString();
    else if (f === 2 && w === WIRE_LEN) value = anyValue(r.readBytes());
    else return false;
    return true;
  });
  into[key] = value;
}

function decodeSpan(data: Uint8Array, resource: Record<string, AttrValue>, scope: string): DecodedSpan {
  const s: DecodedSpan = { traceId: '', spanId: '', parentSpanId: '', traceState: '', name: '', kind: 0, startTimeUnixNano: 0n, endTimeUnixNano: 0n, attributes: {}, status: { code: 0, message: '' }, resource, scope };
  walk(data, (r, f, w) => {
    if (f === 1 && w === WIRE_LEN) s.traceId = hex(r.readBytes());
    else if (f === 2 && w === WIRE_LEN) s.spanId = hex(r.readBytes());
    else if (f === 3 && w === WIRE_LEN) s.traceState = r.readString();
    else if (f === 4 && w === WIRE_LEN) s.parentSpanId = hex(r.readBytes());
    else if (f === 5 && w === WIRE_LEN) s.name = r.readString();
    else if (f === 6 && w === WIRE_VARINT) s.kind = r.readVarint();
    else if (f === 7 && w === WIRE_FIXED64) s.startTimeUnixNano = fixed64(r, data);
    else if (f === 8 && w === WIRE_FIXED64) s.endTimeUnixNano = fixed64(r, data);
    else if (f === 9 && w === WIRE_LEN) keyValues(s.attributes, r.readBytes());
    else if (f === 15 && w === WIRE_LEN) {
      walk(r.readBytes(), (rr, ff, ww) => {
        if (ff === 2 && ww === WIRE_LEN) s.status.message = rr.readString();
        else if (ff === 3 && ww === WIRE_VARINT) s.status.code = rr.readVarint();
        else return false;
        return true;
      });
    } else return false;
    return true;
  });
  return s;
}

/** ExportTraceServiceRequest → its spans, each with its resource's attributes and scope name. */
export function decodeExportTraceServiceRequest(body: Uint8Array): DecodedSpan[] {
  const spans: DecodedSpan[] = [];
  walk(body, (r, f, w) => {
    if (f !== 1 || w !== WIRE_LEN) return false; // resource_spans
    const resource: Record<string, AttrValue> = {};
    const scopeSpans: Uint8Array[] = [];
    walk(r.readBytes(), (rr, ff, ww) => {
      if (ff === 1 && ww === WIRE_LEN) walk(rr.readBytes(), (r3, f3, w3) => f3 === 1 && w3 === WIRE_LEN && (keyValues(resource, r3.readBytes()), true));
      else if (ff === 2 && ww === WIRE_LEN) scopeSpans.push(rr.readBytes());
      else return false;
      return true;
    });
    for (const ss of scopeSpans) {
      let scope = '';
      const raw: Uint8Array[] = [];
      walk(ss, (rr, ff, ww) => {
        if (ff === 1 && ww === WIRE_LEN) walk(rr.readBytes(), (r3, f3, w3) => f3 === 1 && w3 === WIRE_LEN && ((scope = r3.readString()), true));
        else if (ff === 2 && ww === WIRE_LEN) raw.push(rr.readBytes());
        else return false;
        return true;
      });
      for (const sp of raw) spans.push(decodeSpan(sp, resource, scope));
    }
    return true;
  });
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
