import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CompiledRouteTable } from '../../../src/proxy/router/route-table';
import { stripPort } from '../../../src/proxy/router/virtual-host-index';
import { request, vhost } from './fixtures';

const table = new CompiledRouteTable({
  name: 'outbound',
  virtualHosts: [
    vhost('exact', ['api.foo.com', 'greeter:50051', 'api.foo.com:8443']),
    vhost('bare', ['greeter']),
    vhost('suffix-short', ['*.foo.com']),
    vhost('suffix-long', ['*.bar.foo.com']),
    vhost('suffix-dash', ['*-x.foo.com']),
    vhost('suffix-port', ['*.foo.com:9000']),
    vhost('prefix-short', ['web*']),
    vhost('prefix-long', ['web.internal.*']),
    vhost('ipv6', ['[::1]']),
    vhost('default', ['*']),
  ],
});

const cases: [host: string, expected: string, why: string][] = [
  ['api.foo.com', 'exact', 'exact domain'],
  ['api.foo.com:8443', 'exact', 'exact domain with its port as given'],
  ['greeter:50051', 'exact', 'exact host:port'],
  ['greeter:9999', 'default', 'a wrong port is not the bare name: exact domains match the host as given'],
  ['greeter', 'bare', 'exact domain without port'],
  ['a.foo.com', 'suffix-short', 'suffix wildcard'],
  ['a.bar.foo.com', 'suffix-long', 'longest suffix wildcard wins'],
  ['b.a.bar.foo.com', 'suffix-long', 'a wildcard covers several labels'],
  ['a-x.foo.com', 'suffix-dash', 'a suffix need not start with a dot'],
  ['a.foo.com:9000', 'suffix-port', 'a wildcard with a port matches the host as given first'],
  ['a.foo.com:8080', 'suffix-short', 'then the host without port'],
  ['foo.com', 'default', 'the wildcard never matches the empty string'],
  ['.foo.com', 'default', 'nor an empty label before the suffix'],
  ['webapp', 'prefix-short', 'prefix wildcard'],
  ['web.internal.eu', 'prefix-long', 'longest prefix wildcard wins'],
  ['web', 'default', 'a prefix wildcard never matches the empty string'],
  ['api.bar.foo.com.web', 'default', 'neither suffix nor prefix'],
  ['[::1]', 'ipv6', 'an IPv6 literal as exact domain'],
  ['[::1]:8080', 'default', 'exact domains match with the port as given, IPv6 too'],
  ['other', 'default', 'catch-all'],
];

for (const [host, expected, why] of cases) {
  test(`virtual host: ${host} → ${expected} (${why})`, () => {
    assert.equal(table.virtualHost(host)?.name, expected);
    assert.equal(table.match(request('/', { host }))?.virtualHost.name, expected);
    // Memoized answers stay the same.
    assert.equal(table.virtualHost(host)?.name, expected);
  });
}

test('virtual host: suffix wildcards beat prefix wildcards, exact beats both', () => {
  const t = new CompiledRouteTable({
    name: 'r',
    virtualHosts: [vhost('prefix', ['api.*']), vhost('suffix', ['*.com']), vhost('exact', ['api.com'])],
  });
  assert.equal(t.virtualHost('api.com')?.name, 'exact');
  assert.equal(t.virtualHost('api.foo.com')?.name, 'suffix');
  assert.equal(t.virtualHost('api.foo.org')?.name, 'prefix');
});

test('virtual host: none without a catch-all; the first virtual host claiming a domain keeps it', () => {
  const t = new CompiledRouteTable({ name: 'r', virtualHosts: [vhost('a', ['x', '*.y']), vhost('b', ['x', '*.y'])] });
  assert.equal(t.virtualHost('nope'), undefined);
  assert.equal(t.match(request('/', { host: 'nope' })), undefined);
  assert.equal(t.virtualHost('x')?.name, 'a');
  assert.equal(t.virtualHost('q.y')?.name, 'a');
});

test('virtual host: the memo of non-exact lookups is bounded and stays correct past its bound', () => {
  const t = new CompiledRouteTable({ name: 'r', virtualHosts: [vhost('s', ['*.svc']), vhost('d', ['*'])] });
  for (let i = 0; i < 10_000; i++) assert.equal(t.virtualHost(`h${i}.svc`)?.name, 's');
  assert.equal(t.virtualHost('h1.svc')?.name, 's');
  assert.equal(t.virtualHost('other')?.name, 'd');
});

test('stripPort', () => {
  assert.equal(stripPort('a:80'), 'a');
  assert.equal(stripPort('a'), 'a');
  assert.equal(stripPort('[::1]:80'), '[::1]');
  assert.equal(stripPort('[::1]'), '[::1]');
});
