// Builders for router tests.
import type { HeaderMatcher, Route, RouteAction, RouteMatch, VirtualHost } from '../../../src/proxy/config/types';
import type { RequestInfo } from '../../../src/proxy/router/route-table';

export function request(
  path: string,
  opts: { host?: string; method?: string; headers?: Record<string, string> } = {},
): RequestInfo {
  const headers = new Map(Object.entries(opts.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v]));
  return { method: opts.method ?? 'GET', host: opts.host ?? 'svc', path, header: (name) => headers.get(name) };
}

export function action(overrides: Partial<RouteAction> = {}): RouteAction {
  return { kind: 'route', clusters: [{ name: 'c', weight: 1 }], totalWeight: 1, timeoutMs: 0, hashPolicies: [], mirrors: [], ...overrides };
}

export function match(path: RouteMatch['path'], overrides: Partial<Omit<RouteMatch, 'path'>> = {}): RouteMatch {
  return { path, caseSensitive: true, headers: [], queryParams: [], ...overrides };
}

export function route(name: string, m: RouteMatch, a: Route['action'] = action()): Route {
  return {
    name,
    match: m,
    action: a,
    requestHeadersToAdd: [],
    requestHeadersToRemove: [],
    responseHeadersToAdd: [],
    responseHeadersToRemove: [],
  };
}

export function vhost(name: string, domains: string[], routes: Route[] = [route(`${name}-all`, match({ kind: 'prefix', value: '/' }))]): VirtualHost {
  return { name, domains, routes };
}

export function header(name: string, kind: HeaderMatcher['kind'], value?: string | RegExp, invert = false): HeaderMatcher {
  return value instanceof RegExp ? { name, kind, regex: value, invert } : { name, kind, value, invert };
}
