// A sidecar's metrics address, "host:port": where `weft proxy
// --metrics-address` binds its Prometheus listener, and what it announces in
// its node metadata (WEFT_METRICS_ADDRESS) for the control plane's Prometheus
// service discovery. The host is an IP literal (IPv6 in brackets) or a name;
// 0.0.0.0 / [::] mean "every address of this host", which the discovery
// endpoint replaces with the address the sidecar's xDS connection comes from.
import * as net from 'node:net';

export class MetricsAddressError extends Error {
  readonly code = 'E_METRICS_ADDRESS';
}

export interface MetricsAddress {
  /** Without brackets: "0.0.0.0", "::", "198.18.3.2", "localhost". */
  host: string;
  port: number;
}

const HOST_PORT = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/;

/** "0.0.0.0:15090", "[::]:15090", "10.0.0.5:15090"; `allowPortZero` for a listener that picks its port (the announced address carries the real one). */
export function parseMetricsAddress(text: string, allowPortZero = false): MetricsAddress {
  const m = HOST_PORT.exec(text);
  const port = Number(m?.[3]);
  const host = m ? (m[1] ?? m[2]) : '';
  if (!m || port > 65535 || (port === 0 && !allowPortZero) || (m[1] !== undefined && net.isIPv6(host) === false)) {
    throw new MetricsAddressError(`"${text}" is not host:port (e.g. 0.0.0.0:15090, 10.0.0.5:15090 or [::]:15090)`);
  }
  if (m[2] !== undefined && net.isIPv6(host)) throw new MetricsAddressError(`"${text}": an IPv6 address goes in brackets, e.g. [${host}]:${port}`);
  return { host, port };
}

/** host:port with IPv6 in brackets. */
export function formatHostPort(host: string, port: number): string {
  return `${net.isIPv6(host) ? `[${host}]` : host}:${port}`;
}

/** 0.0.0.0 or :: (every address of the host). */
export function isUnspecifiedHost(host: string): boolean {
  return host === '0.0.0.0' || (net.isIPv6(host) && /^[0:]+$/.test(host));
}

/** 127.0.0.0/8, ::1 or localhost: reachable from this host only. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^::ffff:/, '');
  return h === 'localhost' || h === '::1' || h === '0:0:0:0:0:0:0:1' || (net.isIPv4(h) && h.startsWith('127.'));
}
