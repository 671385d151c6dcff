// One header of a request by lower-case name, with the HTTP/2 pseudo-headers
// Envoy's matchers and hash policies accept mapped onto the request line.
import type { RequestInfo } from './route-table';

/** Where a header name reads from: resolved once, when a matcher or policy is compiled. */
export type HeaderSource = 'method' | 'authority' | 'path' | 'header';

export function headerSource(lowerName: string): HeaderSource {
  switch (lowerName) {
    case ':method':
      return 'method';
    // HTTP/1.1's Host is HTTP/2's :authority; Envoy keeps one of them.
    case ':authority':
    case 'host':
      return 'authority';
    case ':path':
      return 'path';
    default:
      return 'header';
  }
}

export function readHeader(req: RequestInfo, source: HeaderSource, lowerName: string): string | undefined {
  switch (source) {
    case 'method':
      return req.method;
    case 'authority':
      return req.host;
    case 'path':
      return req.path;
    case 'header':
      return req.header(lowerName);
  }
}
