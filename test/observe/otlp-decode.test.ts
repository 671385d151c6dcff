// The test collector's decoder (OpenTelemetry's generated OTLP definitions,
// see test/helpers/otlp-collector.ts) against today's OTLP protobuf
// serializer — the code the exporter sends with: spans made by the SDK,
// serialized by ProtobufTraceSerializer, decoded, and every field the tests
// read compared.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { decodeExportTraceServiceRequest } from '../helpers/otlp-collector';

test('decodes what ProtobufTraceSerializer writes: ids, parent, kind, times, attributes, status, resource, scope', () => {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ resource: resourceFromAttributes({ 'service.name': 'svc', 'service.instance.id': 'n1' }), spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const tracer = provider.getTracer('scope-x');
  const parent = { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', traceFlags: 1, isRemote: true };
  const a = tracer.startSpan('GET api', { kind: SpanKind.SERVER, attributes: { 'http.request.method': 'GET', 'http.response.status_code': 503, ok: true, ratio: 0.25, list: ['x', 'y'] } }, trace.setSpanContext(ROOT_CONTEXT, parent));
  a.setStatus({ code: SpanStatusCode.ERROR, message: 'UF' });
  a.end();
  const b = tracer.startSpan('POST pay', { kind: SpanKind.CLIENT });
  b.end();
  const spans = exporter.getFinishedSpans();
  const bytes = ProtobufTraceSerializer.serializeRequest(spans)!;
  const decoded = decodeExportTraceServiceRequest(bytes);
  assert.equal(decoded.length, 2);
  const [da, db] = decoded;
  assert.equal(da.traceId, parent.traceId);
  assert.equal(da.parentSpanId, parent.spanId);
  assert.equal(da.spanId, a.spanContext().spanId);
  assert.equal(da.name, 'GET api');
  assert.equal(da.kind, 2, 'SPAN_KIND_SERVER');
  assert.equal(db.kind, 3, 'SPAN_KIND_CLIENT');
  assert.equal(db.parentSpanId, '');
  assert.deepEqual(da.attributes, { 'http.request.method': 'GET', 'http.response.status_code': 503, ok: true, ratio: 0.25, list: ['x', 'y'] });
  assert.deepEqual(da.status, { code: 2, message: 'UF' });
  assert.equal(db.status.code, 0);
  assert.equal(da.resource['service.name'], 'svc');
  assert.equal(da.resource['service.instance.id'], 'n1');
  assert.equal(da.scope, 'scope-x');
  const s = spans[0];
  assert.equal(da.startTimeUnixNano, BigInt(s.startTime[0]) * 1_000_000_000n + BigInt(s.startTime[1]));
  assert.equal(da.endTimeUnixNano, BigInt(s.endTime[0]) * 1_000_000_000n + BigInt(s.endTime[1]));
});
