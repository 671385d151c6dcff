// The sum `weft proxy --concurrency` serves: ProxyStats snapshots added in
// the primary must render exactly what one process that saw every request
// would, gone workers keep their counters but not their gauges, and the
// workers' other Prometheus lines add up (a 0/1 circuit-breaker state takes
// the largest value instead).
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { ProxyStats } from '../../../src/proxy/stats';
import { sumExposition } from '../../../src/proxy/workers/sum-exposition';
import { shareLocalRateLimits, decodeLocalRateLimit } from '../../../src/proxy/filters/local-rate-limit';
import { FieldPath } from '../../../src/proxy/config/nack';

type Traffic = (s: ProxyStats) => void;

const traffic: Traffic[] = [
  (s) => {
    const r = s.forCluster('outbound', 'outbound|80||web.default');
    r.requests += 3;
    r.response(200, 1.2, undefined, 'r1', -1, 100, 200);
    r.response(200, 30, undefined, 'r1', -1, 100, 200);
    r.response(503, 2, 'UF', 'r1');
    s.downstreamConnectionsTotal += 2;
    s.downstreamConnectionsActive += 1;
    s.rateLimited('local', 'in', true);
  },
  (s) => {
    const r = s.forCluster('outbound', 'outbound|80||web.default');
    r.requests += 2;
    r.retries += 1;
    r.response(200, 0.2, undefined, 'r1', -1, 10, 20);
    r.response(503, 7, 'UF', 'r1');
    s.forCluster('inbound', 'inbound|8080||', 'caller.default').response(200, 4, undefined, 'in', 0);
    const t = s.forTcp('outbound', 'outbound|5432||db.default');
    t.connections += 4;
    t.active += 2;
    t.received += 1000;
    s.downstreamConnectionsTotal += 3;
    s.downstreamConnectionsActive += 2;
    s.tlsRefused.set('plaintext', 1);
    s.mirrors.count(s.mirrors.sent, 'shadow');
    s.h2Error('stream', 'CANCEL');
  },
];

const stats = (...apply: Traffic[]) => {
  const s = new ProxyStats(0);
  s.identify('web', 'default');
  for (const a of apply) a(s);
  return s;
};

test('the sum of workers renders as one process that saw every request', () => {
  const sum = stats();
  for (const t of traffic) sum.add(stats(t).snapshot());
  assert.equal(sum.render(), stats(...traffic).render());
});

test('a gone worker keeps its counters in the sum, not its gauges', () => {
  const sum = stats();
  sum.add(stats(traffic[1]).snapshot(), false);
  const text = sum.render();
  assert.match(text, /^weft_downstream_connections_total 3$/m);
  assert.match(text, /^weft_downstream_connections_active 0$/m);
  assert.match(text, /^weft_tcp_connections_total\{.*\} 4$/m);
  assert.match(text, /^weft_tcp_connections_active\{.*\} 0$/m);
  assert.match(text, /^weft_retries_total\{.*\} 1$/m);
});

test("the workers' data-plane lines add up; a circuit breaker is open when one worker's is", () => {
  const worker = (open: number, conns: number, extra = false) => [
    '# HELP weft_upstream_connections_open Open upstream connections by cluster.',
    '# TYPE weft_upstream_connections_open gauge',
    `weft_upstream_connections_open{cluster="a"} ${conns}`,
    ...(extra ? ['weft_upstream_connections_open{cluster="b"} 1'] : []),
    '# HELP weft_circuit_breaker_open Whether a cluster is at a limit.',
    '# TYPE weft_circuit_breaker_open gauge',
    `weft_circuit_breaker_open{cluster="a",kind="requests"} ${open}`,
  ];
  assert.deepEqual(sumExposition([worker(0, 2), worker(1, 3, true), worker(0, 1)]), [
    '# HELP weft_upstream_connections_open Open upstream connections by cluster.',
    '# TYPE weft_upstream_connections_open gauge',
    'weft_upstream_connections_open{cluster="a"} 6',
    'weft_upstream_connections_open{cluster="b"} 1',
    '# HELP weft_circuit_breaker_open Whether a cluster is at a limit.',
    '# TYPE weft_circuit_breaker_open gauge',
    'weft_circuit_breaker_open{cluster="a",kind="requests"} 1',
  ]);
});

test('each worker decodes a local rate limit bucket as its share: the same tokens per fill, N times less often', () => {
  const msg = { stat_prefix: 'in', token_bucket: { max_tokens: 5, tokens_per_fill: { value: 2 }, fill_interval: { seconds: 1 } } };
  try {
    shareLocalRateLimits(2);
    assert.deepEqual(decodeLocalRateLimit(new FieldPath('Listener', 'inbound'), msg).bucket, { maxTokens: 3, tokensPerFill: 2, fillIntervalMs: 2000 });
  } finally {
    shareLocalRateLimits(1);
  }
  assert.deepEqual(decodeLocalRateLimit(new FieldPath('Listener', 'inbound'), msg).bucket, { maxTokens: 5, tokensPerFill: 2, fillIntervalMs: 1000 });
});
