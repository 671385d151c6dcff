// The admin views a --concurrency primary merges from its workers' own:
// the shapes of one process, with what adds up added.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { mergeClusters, mergeListeners, mergeRequests } from '../../../src/proxy/workers/merge-views';
import type { RequestRecord } from '../../../src/observe/request-record';

const cluster = (active: number, open: number, endpoints: [string, number][]) => ({
  name: 'outbound|80||web.default',
  lbPolicy: 'ROUND_ROBIN',
  activeRequests: active,
  connections: { open, pending: 0, connectionsTotal: open, connectFailures: 1, pendingOverflow: 0 },
  endpoints: endpoints.map(([address, activeRequests]) => ({ address, weight: 1, health: 'healthy', activeRequests })),
});

test('/clusters: active requests and connections summed per cluster and endpoint; an endpoint one worker lacks is kept', () => {
  const merged = mergeClusters([[cluster(2, 3, [['a:1', 1], ['b:1', 1]])], [cluster(1, 2, [['a:1', 1], ['c:1', 0]])]]);
  assert.deepEqual(merged, [
    {
      ...cluster(3, 5, [['a:1', 2], ['b:1', 1], ['c:1', 0]]),
      connections: { open: 5, pending: 0, connectionsTotal: 5, connectFailures: 2, pendingOverflow: 0 },
    },
  ]);
});

test('/listeners: a listener that one worker could not bind shows as not bound', () => {
  const bound = { name: 'outbound', address: '127.0.0.1', port: 15001, state: 'bound' };
  const failed = { ...bound, state: 'failed', error: 'EADDRINUSE' };
  assert.deepEqual(mergeListeners([[bound], [failed]]), [failed]);
  assert.deepEqual(mergeListeners([[failed], [bound]]), [failed]);
  assert.deepEqual(mergeListeners([[bound], [bound]]), [bound]);
});

test('/requests: the latest of every ring, oldest first, at most `limit`', () => {
  const r = (time: number) => ({ time }) as RequestRecord;
  const merged = mergeRequests(
    [
      { capacity: 10, items: [r(1), r(4), r(6)] },
      { capacity: 10, items: [r(2), r(3), r(5)] },
    ],
    4,
  );
  assert.equal(merged.capacity, 20);
  assert.deepEqual(
    merged.items.map((x) => x.time),
    [3, 4, 5, 6],
  );
});
