// Tracing through two sidecars on loopback: client → `client` sidecar
// (outbound, CLIENT span) → `api` sidecar (inbound, SERVER span) → app. A
// fake OTLP/HTTP collector decodes what the sidecars' exporters send. The
// context crosses each hop in the format it came with, the app's parent is
// the inbound sidecar's span, sampling follows the caller and the ratio, and
// a collector that is down costs the requests nothing and memory stays
// bounded, until it returns and the held spans flow again.
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import type * as http from 'node:http';
import { admin, docs, exitGuard, freePort, HttpUpstream, Mesh, parsePrometheus, request, serviceYaml, T, waitFor, type Sidecar } from '../../helpers/proxy-harness';
import { OtlpCollector, type DecodedSpan } from '../../helpers/otlp-collector';

let mesh: Mesh;
let collector: OtlpCollector;
let app: HttpUpstream;
let client: Sidecar;
let server: Sidecar;
let serverInbound: number;

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const CALLER = '00f067aa0ba902b7';
const fast = { flushMs: 30 };

before(async () => {
  collector = await OtlpCollector.start();
  app = await HttpUpstream.start('api');
  serverInbound = await freePort();
  mesh = await Mesh.start({
    'mesh.yaml': docs(serviceYaml({ name: 'api', endpoints: [serverInbound] }), serviceYaml({ name: 'nowhere' })),
  });
  const tracing = { endpoint: collector.url, sampleRatio: 1, queue: fast };
  client = await mesh.sidecar({ nodeId: 'client-1', service: 'client', tracing });
  server = await mesh.sidecar({ nodeId: 'api-1', service: 'api', inboundPort: serverInbound, appPort: app.port, tracing });
}, T);

after(async () => {
  exitGuard();
  await mesh.close();
  await app.close();
  await collector.close();
});

/** One request through the client sidecar to the app; returns what the app saw. */
async function call(headers: http.OutgoingHttpHeaders = {}, path = '/hello?x=1'): Promise<http.IncomingHttpHeaders> {
  const before = app.seen.length;
  const res = await request(client.outboundPort, { host: 'api', path, headers });
  assert.equal(res.status, 200, res.text);
  assert.equal(app.seen.length, before + 1);
  return app.seen[app.seen.length - 1].headers;
}

/** The two spans of a trace once both arrived: [client (outbound), server (inbound)]. */
async function spansOf(traceId: string): Promise<[DecodedSpan, DecodedSpan]> {
  await waitFor(() => collector.trace(traceId).length >= 2, 5000, `two spans of trace ${traceId}`);
  const spans = collector.trace(traceId);
  assert.equal(spans.length, 2, 'one span per sidecar');
  const c = spans.find((s) => s.kind === 3);
  const s = spans.find((s) => s.kind === 2);
  assert.ok(c && s, `a CLIENT and a SERVER span: ${spans.map((x) => x.kind)}`);
  return [c, s];
}

test('W3C in → W3C out: client and server spans in one trace, parent links, attributes; the app’s parent is the inbound span', T, async () => {
  const seen = await call({ traceparent: `00-${TRACE}-${CALLER}-01`, tracestate: 'vendor=x' });
  const [c, s] = await spansOf(TRACE);
  assert.equal(c.parentSpanId, CALLER, 'the client span is the caller’s child');
  assert.equal(s.parentSpanId, c.spanId, 'the server span is the client span’s child');
  assert.equal(seen.traceparent, `00-${TRACE}-${s.spanId}-01`, 'the app’s parent is the inbound sidecar’s span');
  assert.equal(seen.tracestate, 'vendor=x', 'tracestate forwarded');
  assert.equal(seen.b3, undefined);
  for (const span of [c, s]) {
    assert.equal(span.attributes['http.request.method'], 'GET');
    assert.equal(span.attributes['url.path'], '/hello');
    assert.equal(span.attributes['server.address'], 'api');
    assert.equal(span.attributes['http.response.status_code'], 200);
    assert.equal(span.attributes['network.protocol.version'], '1.1');
    assert.equal(span.status.code, 0, 'not an error');
    assert.ok(span.endTimeUnixNano >= span.startTimeUnixNano && span.startTimeUnixNano > 0n);
    assert.equal(typeof span.attributes['weft.route'], 'string');
  }
  assert.match(String(c.attributes['weft.upstream.cluster']), /api/);
  assert.equal(c.attributes['weft.upstream.address'], `127.0.0.1:${serverInbound}`);
  assert.equal(s.attributes['weft.upstream.address'], `127.0.0.1:${app.port}`);
  assert.equal(c.resource['service.name'], 'client');
  assert.equal(s.resource['service.name'], 'api');
  assert.equal(s.resource['service.instance.id'], 'api-1');
  // The two spans come from two sidecar processes, each anchoring its clock at its own start
  // (performance.timeOrigin): under load the anchors differ by a fraction of a millisecond.
  const skew = 2_000_000n;
  assert.ok(s.startTimeUnixNano + skew >= c.startTimeUnixNano && s.endTimeUnixNano <= c.endTimeUnixNano + skew,
    `the server span lies within the client span, give or take the clocks of two processes: server ${s.startTimeUnixNano}..${s.endTimeUnixNano}, client ${c.startTimeUnixNano}..${c.endTimeUnixNano}`);
  assert.ok(collector.contentTypes.has('application/x-protobuf'));
  assert.deepEqual(collector.errors, []);
});

test('no context in: the client sidecar starts a trace (W3C), the client span is its root', T, async () => {
  const seen = await call();
  const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(String(seen.traceparent));
  assert.ok(m, `traceparent ${seen.traceparent}`);
  const [c, s] = await spansOf(m[1]);
  assert.equal(c.parentSpanId, '');
  assert.equal(s.parentSpanId, c.spanId);
  assert.equal(m[2], s.spanId);
});

test('B3 single in → B3 single out, with the parent span id', T, async () => {
  const trace = 'a1a2a3a4a5a6a7a8b1b2b3b4b5b6b7b8';
  const seen = await call({ b3: `${trace}-${CALLER}-1` });
  const [c, s] = await spansOf(trace);
  assert.equal(c.parentSpanId, CALLER);
  assert.equal(s.parentSpanId, c.spanId);
  assert.equal(seen.b3, `${trace}-${s.spanId}-1-${c.spanId}`);
  assert.equal(seen.traceparent, undefined, 'no W3C header added');
});

test('B3 multi in → B3 multi out', T, async () => {
  const trace = 'c1c2c3c4c5c6c7c8d1d2d3d4d5d6d7d8';
  const seen = await call({ 'X-B3-TraceId': trace, 'X-B3-SpanId': CALLER, 'X-B3-Sampled': '1' });
  const [c, s] = await spansOf(trace);
  assert.equal(c.parentSpanId, CALLER);
  assert.equal(seen['x-b3-traceid'], trace);
  assert.equal(seen['x-b3-spanid'], s.spanId);
  assert.equal(seen['x-b3-parentspanid'], c.spanId);
  assert.equal(seen['x-b3-sampled'], '1');
  assert.equal(seen.b3, undefined);
  assert.equal(seen.traceparent, undefined);
});

test('a local failure is an error span with its response flag', T, async () => {
  const trace = 'e1e2e3e4e5e6e7e8f1f2f3f4f5f6f7f8';
  const res = await request(client.outboundPort, { host: 'nowhere', headers: { traceparent: `00-${trace}-${CALLER}-01` } });
  assert.equal(res.status, 503);
  await waitFor(() => collector.trace(trace).length >= 1, 5000, 'the span of the failed request');
  const [span] = collector.trace(trace);
  assert.equal(span.kind, 3);
  assert.equal(span.status.code, 2, 'STATUS_CODE_ERROR');
  assert.equal(span.attributes['weft.response_flags'], 'UH');
  assert.equal(span.attributes['http.response.status_code'], 503);
});

test('a caller’s sampled=0 is honoured: the context goes on untouched (no span is made) and nothing is exported', T, async () => {
  const trace = '11112222333344445555666677778888';
  const seen = await call({ traceparent: `00-${trace}-${CALLER}-00` });
  assert.equal(seen.traceparent, `00-${trace}-${CALLER}-00`, 'propagated as it came, not sampled');
  const b3 = '99990000aaaabbbbccccddddeeeeffff';
  const seenB3 = await call({ b3: `${b3}-${CALLER}-0` });
  assert.equal(seenB3.b3, `${b3}-${CALLER}-0`);
  // A sampled request after them: once its spans are in, the unsampled ones would have been too.
  await call({ traceparent: `00-${'12'.repeat(16)}-${CALLER}-01` });
  await spansOf('12'.repeat(16));
  assert.equal(collector.trace(trace).length, 0);
  assert.equal(collector.trace(b3).length, 0);
});

test('ratio 0 exports nothing (and its callee follows the unsampled parent); ratio 0.5 samples about half', T, async () => {
  const off = await mesh.sidecar({ nodeId: 'off-1', service: 'off', tracing: { endpoint: collector.url, sampleRatio: 0, queue: fast } });
  const half = await mesh.sidecar({ nodeId: 'half-1', service: 'half', tracing: { endpoint: collector.url, sampleRatio: 0.5, queue: fast } });
  const offTraces: string[] = [];
  for (let i = 0; i < 20; i++) {
    const before = app.seen.length;
    assert.equal((await request(off.outboundPort, { host: 'api' })).status, 200);
    const tp = String(app.seen[before].headers.traceparent);
    assert.match(tp, /-00$/, 'propagated unsampled');
    offTraces.push(tp.slice(3, 35));
  }
  const N = 400;
  const sampledTraces = new Set<string>();
  for (let i = 0; i < N; i++) {
    const before = app.seen.length;
    assert.equal((await request(half.outboundPort, { host: 'api' })).status, 200);
    const tp = String(app.seen[before].headers.traceparent);
    if (tp.endsWith('-01')) sampledTraces.add(tp.slice(3, 35));
  }
  // Binomial(400, 0.5): mean 200, sd 10; ±5 sd.
  const k = sampledTraces.size;
  assert.ok(k >= 150 && k <= 250, `${k} of ${N} sampled`);
  await waitFor(() => collector.spans.filter((s) => s.resource['service.instance.id'] === 'half-1').length >= k, 8000, `${k} spans from half-1`);
  const halfSpans = collector.spans.filter((s) => s.resource['service.instance.id'] === 'half-1');
  assert.equal(halfSpans.length, k, 'exactly the sampled ones are exported');
  for (const s of halfSpans) assert.ok(sampledTraces.has(s.traceId));
  // The inbound sidecar follows the parent either way.
  await waitFor(() => [...sampledTraces].every((t) => collector.trace(t).length === 2), 8000, 'the server spans of the sampled traces');
  assert.equal(collector.spans.filter((s) => s.resource['service.instance.id'] === 'off-1').length, 0);
  for (const t of offTraces) assert.equal(collector.trace(t).length, 0, 'nor any server span of its traces');
});

test('collector down: requests unaffected, spans held stay within the queue, drops counted; then spans flow again', T, async () => {
  const downPort = await freePort();
  const maxQueueSize = 20;
  // exportTimeoutMs: a refused connection fails at once whatever it is; once the collector is back, an
  // export cut short by a busy machine would be sent again and its spans counted twice by the
  // collector. 700 ms stays below the exporter's own first retry (1 s ± 20 %): one attempt an export.
  const sc = await mesh.sidecar({
    nodeId: 'down-1',
    service: 'down',
    tracing: { endpoint: `http://127.0.0.1:${downPort}/v1/traces`, sampleRatio: 1, exportTimeoutMs: 700, queue: { maxQueueSize, maxBatchSize: 5, flushMs: 20, backoffMs: 50, maxBackoffMs: 200 } },
  });
  const queue = sc.proxy.tracer!.queue;
  let maxHeld = 0;
  const t0 = performance.now();
  for (let i = 0; i < 100; i++) {
    const res = await request(sc.outboundPort, { host: 'nowhere', timeoutMs: 2000 });
    assert.equal(res.status, 503); // UH: answered locally at once, collector or not
    maxHeld = Math.max(maxHeld, queue.held);
  }
  const ms = performance.now() - t0;
  assert.ok(ms < 5000, `100 requests took ${ms.toFixed(0)} ms`);
  assert.ok(maxHeld <= maxQueueSize, `held ${maxHeld} > ${maxQueueSize}`);
  // Every span ended is held, dropped or exported: wait until all 100 are accounted for.
  const accounted = () => queue.held + queue.dropped + queue.exported;
  await waitFor(() => accounted() === 100 && queue.exportFailures >= 2, 3000, 'every span accounted for, and failed exports');
  const stats = parsePrometheus((await admin(sc, '/stats/prometheus')).text);
  const value = (name: string) => stats.find((s) => s.name === name)?.value;
  assert.equal(value('weft_trace_spans_exported_total'), 0);
  assert.ok(value('weft_trace_spans_queued')! <= maxQueueSize);
  assert.equal(value('weft_trace_spans_dropped_total')! + value('weft_trace_spans_queued')!, 100, 'every span is held or counted as dropped');
  assert.ok(value('weft_trace_spans_dropped_total')! >= 80);
  assert.ok(value('weft_trace_export_failures_total')! >= 2);

  // Read while no export can succeed (nothing listens yet): once the collector is up, a batch may
  // be delivered before any code here runs again.
  const held = queue.held;
  const back = await OtlpCollector.start(downPort);
  try {
    // The collector has the spans when the request reaches it; the queue counts them exported only
    // once its answer is back at the sidecar: wait for both.
    await waitFor(() => back.spans.length >= held && queue.held === 0 && queue.exported >= held, 5000, `${held} held spans delivered once the collector is back`);
    assert.equal(back.spans.length, held);
    assert.equal(queue.exported, held);
    assert.equal(accounted(), 100);
    assert.ok(back.spans.every((s) => s.resource['service.instance.id'] === 'down-1' && s.attributes['weft.response_flags'] === 'UH'));
    await request(sc.outboundPort, { host: 'nowhere' });
    await waitFor(() => back.spans.length >= held + 1 && queue.exported >= held + 1, 3000, 'a new span, exported');
    assert.equal(back.spans.length, held + 1);
    assert.equal(queue.exported, held + 1);
    assert.equal(accounted(), 101);
  } finally {
    await back.close();
  }
});

test('tracing off (no collector given): the context passes untouched, nothing is exported', T, async () => {
  const plain = await mesh.sidecar({ nodeId: 'plain-1', service: 'plain' });
  const trace = '0123456789abcdef0123456789abcdef';
  const before = app.seen.length;
  const res = await request(plain.outboundPort, { host: 'api', headers: { traceparent: `00-${trace}-${CALLER}-01`, b3: `${trace}-${CALLER}-1` } });
  assert.equal(res.status, 200);
  // The inbound sidecar traces (it was given a collector): the app sees its span; the plain sidecar's hop added none.
  await waitFor(() => collector.trace(trace).length >= 1, 5000, 'the inbound span');
  const [s] = collector.trace(trace);
  assert.equal(s.kind, 2);
  assert.equal(s.parentSpanId, CALLER, 'the plain sidecar forwarded the caller’s context as it was');
  assert.equal(app.seen[before].headers.traceparent, `00-${trace}-${s.spanId}-01`);
  assert.equal(plain.proxy.tracer, undefined);
});
