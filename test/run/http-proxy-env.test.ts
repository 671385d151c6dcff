// HTTP_PROXY / NO_PROXY as the Node preload of `weft run` reads them (curl's rules).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bypassesProxy, proxyFromEnv } from '../../src/run/http-proxy-env';

test('the proxy comes from http_proxy, else HTTP_PROXY; only http:// proxies count', () => {
  assert.deepEqual(proxyFromEnv({ HTTP_PROXY: 'http://127.0.0.1:15001' }), { host: '127.0.0.1', port: 15001 });
  assert.deepEqual(proxyFromEnv({ HTTP_PROXY: 'http://a:1', http_proxy: 'http://b:2' }), { host: 'b', port: 2 });
  assert.deepEqual(proxyFromEnv({ HTTP_PROXY: '[::1]:3128' }), { host: '::1', port: 3128 });
  assert.deepEqual(proxyFromEnv({ HTTP_PROXY: 'http://proxy' }), { host: 'proxy', port: 80 });
  assert.equal(proxyFromEnv({}), undefined);
  assert.equal(proxyFromEnv({ HTTP_PROXY: 'socks5://127.0.0.1:1080' }), undefined);
});

test('NO_PROXY: names with their subdomains, addresses, ports, and *', () => {
  const table: [host: string, port: number, noProxy: string | undefined, bypass: boolean][] = [
    ['hello', 80, undefined, false],
    ['hello', 80, '', false],
    ['127.0.0.1', 8080, 'localhost,127.0.0.1', true],
    ['localhost', 80, 'localhost,127.0.0.1', true],
    ['hello', 80, 'localhost,127.0.0.1', false],
    ['api.example.com', 80, 'example.com', true],
    ['api.example.com', 80, '.example.com', true],
    ['api.example.com', 80, '*.example.com', true],
    ['notexample.com', 80, 'example.com', false],
    ['Example.COM.', 80, 'example.com', true],
    ['hello', 8080, 'hello:8080', true],
    ['hello', 80, 'hello:8080', false],
    ['::1', 80, '::1', true],
    ['[::1]', 9000, '[::1]:9000', true],
    ['[::1]', 9001, '[::1]:9000', false],
    ['10.0.0.1', 80, '0.0.1', false],
    ['anything', 80, '*', true],
    ['b', 80, 'a b, c', true],
  ];
  for (const [host, port, noProxy, bypass] of table) assert.equal(bypassesProxy(host, port, noProxy), bypass, `${host}:${port} with NO_PROXY=${noProxy}`);
});
