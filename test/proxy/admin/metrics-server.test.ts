// The sidecar's metrics listener on a real socket: only GET /stats/prometheus,
// and with a token nothing at all without `Authorization: Bearer <token>`.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { checkMetricsListener, MetricsListenerError, readMetricsToken, startMetricsServer } from '../../../src/proxy/admin/metrics-server';
import { tempDir } from '../../helpers/tmp';

const BODY = '# TYPE weft_requests_total counter\nweft_requests_total{source="a.default"} 3\n';

function get(port: number, p: string, headers: Record<string, string> = {}, method = 'GET'): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: p, method, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers }));
    });
    req.setTimeout(5000, () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

async function withServer(opts: { token?: string; dev?: boolean; address?: string }, fn: (port: number) => Promise<void>): Promise<void> {
  const server = await startMetricsServer({ address: opts.address ?? '127.0.0.1:0', token: opts.token, dev: opts.dev ?? false, render: () => BODY });
  try {
    await fn((server.address() as { port: number }).port);
  } finally {
    await new Promise((r) => server.close(r));
  }
}

test('with a token: 401 without it or with a wrong one (paths not told), 200 and the metrics with it, 404 on other paths', () =>
  withServer({ token: 's3cret-token' }, async (port) => {
    const refused: Record<string, string>[] = [{}, { authorization: 'Bearer wrong' }, { authorization: 'Bearer s3cret-toke' }, { authorization: 'Bearer s3cret-token2' }, { authorization: 's3cret-token' }, { authorization: 'Basic czNjcmV0LXRva2Vu' }, { authorization: 'Bearer ' }];
    for (const headers of refused) {
      const res = await get(port, '/stats/prometheus', headers);
      assert.equal(res.status, 401, JSON.stringify(headers));
      assert.match(res.body, /Authorization: Bearer <token>/);
      assert.equal(res.headers['www-authenticate'], 'Bearer realm="weft-metrics"');
      assert.doesNotMatch(res.body, /weft_requests_total/);
    }
    assert.equal((await get(port, '/config_dump')).status, 401, 'unauthenticated callers learn nothing about paths');
    const ok = await get(port, '/stats/prometheus', { authorization: 'Bearer s3cret-token' });
    assert.equal(ok.status, 200);
    assert.equal(ok.body, BODY);
    assert.equal(ok.headers['content-type'], 'text/plain; version=0.0.4');
    assert.equal((await get(port, '/stats/prometheus?x=1', { authorization: 'Bearer s3cret-token' })).status, 200);
    for (const p of ['/', '/config_dump', '/tap', '/requests', '/stats/prometheus/', '/stats']) {
      const res = await get(port, p, { authorization: 'Bearer s3cret-token' });
      assert.equal(res.status, 404, p);
      assert.match(res.body, /only GET \/stats\/prometheus/);
    }
    assert.equal((await get(port, '/stats/prometheus', { authorization: 'Bearer s3cret-token' }, 'POST')).status, 405);
  }));

test('without a token (loopback): the metrics for anyone, still nothing else', () =>
  withServer({}, async (port) => {
    const ok = await get(port, '/stats/prometheus');
    assert.equal(ok.status, 200);
    assert.equal(ok.body, BODY);
    assert.equal((await get(port, '/ready')).status, 404);
  }));

test('beyond loopback outside dev mode a token is required, and the error says what to pass', async () => {
  for (const address of ['0.0.0.0:15090', '[::]:15090', '198.18.3.2:15090', 'metrics.example:15090']) {
    assert.throws(
      () => checkMetricsListener({ address, dev: false }),
      (err: Error) => err instanceof MetricsListenerError && /--metrics-token-file <file>/.test(err.message) && /WEFT_METRICS_TOKEN_FILE/.test(err.message) && err.message.includes(address),
      address,
    );
    await assert.rejects(startMetricsServer({ address, dev: false, render: () => BODY }), /--metrics-token-file/);
  }
  // Loopback, dev mode, or a token: fine.
  for (const address of ['127.0.0.1:0', '127.0.0.2:15090', '[::1]:15090', 'localhost:15090']) checkMetricsListener({ address, dev: false });
  checkMetricsListener({ address: '0.0.0.0:15090', dev: true });
  checkMetricsListener({ address: '0.0.0.0:15090', dev: false, token: 't' });
  assert.throws(() => checkMetricsListener({ address: '15090', dev: true }), /is not host:port/);
});

test('the token file: trimmed; missing, empty or with spaces is an error naming the file', () => {
  const dir = tempDir(undefined, 'weft-metrics-token-');
  const file = (name: string, text: string) => (fs.writeFileSync(path.join(dir, name), text), path.join(dir, name));
  assert.equal(readMetricsToken(file('ok', '  abc.DEF-123\n')), 'abc.DEF-123');
  assert.throws(() => readMetricsToken(path.join(dir, 'missing')), /--metrics-token-file .*missing: ENOENT/);
  assert.throws(() => readMetricsToken(file('empty', '\n')), /is empty/);
  assert.throws(() => readMetricsToken(file('spaces', 'a b')), /printable ASCII without spaces/);
});
