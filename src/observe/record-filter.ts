// The filters of `weft tap` and the admin /tap and /requests endpoints, from
// URL query parameters: method, path (a prefix), authority (a prefix),
// status (a code like 503 or a class like 5xx), flag (one response flag,
// e.g. UH, matched within a comma-separated list), direction, protocol.
import type { RequestRecord } from './request-record';

export type RecordFilter = (r: RequestRecord) => boolean;

export const FILTER_PARAMS = ['method', 'path', 'authority', 'status', 'flag', 'direction', 'protocol'] as const;

/** Throws an Error naming the parameter when a value is malformed. */
export function recordFilter(params: URLSearchParams): RecordFilter {
  const tests: RecordFilter[] = [];
  const method = params.get('method');
  if (method) tests.push((r) => r.method === method.toUpperCase());
  const path = params.get('path');
  if (path) tests.push((r) => r.path.startsWith(path));
  const authority = params.get('authority');
  if (authority) tests.push((r) => r.authority.startsWith(authority.toLowerCase()));
  const status = params.get('status');
  if (status) {
    const cls = /^([0-5])xx$/i.exec(status);
    if (cls) tests.push((r) => ((r.status / 100) | 0) === Number(cls[1]));
    else if (/^\d{1,3}$/.test(status)) tests.push((r) => r.status === Number(status));
    else throw new Error(`status: expected a code (503) or a class (5xx), got "${status}"`);
  }
  const flag = params.get('flag');
  if (flag) tests.push((r) => r.flags.split(',').includes(flag.toUpperCase()));
  const direction = params.get('direction');
  if (direction) tests.push((r) => r.direction === direction);
  const protocol = params.get('protocol');
  if (protocol) tests.push((r) => r.protocol === protocol);
  return (r) => tests.every((t) => t(r));
}
