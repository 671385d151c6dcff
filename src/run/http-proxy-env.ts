// HTTP_PROXY and NO_PROXY as curl reads them: which proxy, and which hosts
// skip it. Used by the Node preload of `weft run` (node-proxy-preload.ts).
import * as net from 'node:net';

export interface ProxyTarget {
  host: string;
  port: number;
}

/** The HTTP proxy of the environment (http_proxy wins over HTTP_PROXY, as in curl); undefined when unset or not http://. */
export function proxyFromEnv(env: NodeJS.ProcessEnv): ProxyTarget | undefined {
  const text = env.http_proxy || env.HTTP_PROXY;
  if (!text) return undefined;
  let url: URL;
  try {
    url = new URL(text.includes('://') ? text : `http://${text}`);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'http:') return undefined;
  return { host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || 80) };
}

/**
 * Whether NO_PROXY (no_proxy wins) exempts host:port: entries are host names
 * (matching the name and its subdomains; a leading "." or "*." is ignored),
 * IP addresses, each optionally with ":port"; "*" exempts everything.
 */
export function bypassesProxy(host: string, port: number, noProxy: string | undefined): boolean {
  if (!noProxy) return false;
  const name = host.replace(/^\[|\]$/g, '').replace(/\.$/, '').toLowerCase();
  for (const raw of noProxy.split(/[,\s]+/)) {
    let entry = raw.trim().toLowerCase();
    if (!entry) continue;
    if (entry === '*') return true;
    // "host:port" or "[v6]:port" names one port; a bare IPv6 address has several colons and none.
    const withPort = /^(\[[^\]]*\]|[^:]*):(\d+)$/.exec(entry);
    if (withPort) {
      if (Number(withPort[2]) !== port) continue;
      entry = withPort[1];
    }
    entry = entry.replace(/^\[|\]$/g, '').replace(/^\*?\./, '');
    if (name === entry || (!net.isIP(name) && name.endsWith(`.${entry}`))) return true;
  }
  return false;
}
