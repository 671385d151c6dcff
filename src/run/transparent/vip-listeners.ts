// Transparent capture in the sidecar: every service port the sidecar can
// call gets a socket on <service VIP>:<port>, and a connection accepted there
// is served by the listener that serves the port in HTTP_PROXY mode (the
// `outbound` HTTP listener, which routes by Host/:authority, or the port's
// TCP listener), so routing, policies, mTLS and metrics are the same in both
// modes. One socket per VIP:port is what lets Node, which cannot read a
// redirected connection's original destination, know where it was going.
import * as net from 'node:net';
import type { Logger } from '../../observe/log';
import type { ProxyConfig } from '../../proxy/config/types';
import { OUTBOUND_LISTENER, OUTBOUND_ROUTE_CONFIG } from '../../translate/names';

/** A service port the program may call, and the sidecar listener that serves it. */
export interface CapturedPort {
  name: string;
  namespace: string;
  port: number;
  listener: string;
}

/** What the unit's program can call, read from the sidecar's config: HTTP ports from the outbound route table, TCP ports from their listeners. */
export function capturedPorts(config: ProxyConfig): CapturedPort[] {
  const out = new Map<string, CapturedPort>();
  // A service port's virtual host always answers "<name>.<namespace>:<port>" (names.ts serviceDomains).
  for (const vhost of config.routeTables.get(OUTBOUND_ROUTE_CONFIG)?.virtualHosts ?? []) {
    for (const domain of vhost.domains) {
      const m = /^([a-z0-9-]+)\.([a-z0-9-]+):(\d+)$/.exec(domain);
      if (m) out.set(`${m[1]}.${m[2]}:${m[3]}`, { name: m[1], namespace: m[2], port: Number(m[3]), listener: OUTBOUND_LISTENER.name });
    }
  }
  // TCP listeners are named outbound|<port>|<name>.<namespace> (names.ts tcpListenerName).
  for (const name of config.listeners.keys()) {
    const m = /^outbound\|(\d+)\|([a-z0-9-]+)\.([a-z0-9-]+)$/.exec(name);
    if (m) out.set(`${m[2]}.${m[3]}:${m[1]}`, { name: m[2], namespace: m[3], port: Number(m[1]), listener: name });
  }
  return [...out.values()];
}

export interface VipListenersOptions {
  /** The i-th VIP of the unit's block (unit-network.ts). */
  vip(i: number): string;
  /** Hands an accepted connection to a sidecar listener by name; false when it is not bound. */
  handOver(listener: string, socket: net.Socket): boolean;
  log: Logger;
}

/** The unit's VIP sockets, kept in step with the sidecar's config. */
export class VipListeners {
  /** VIP by "name.namespace": kept for the unit's life, so an answer a program cached stays right. */
  private readonly vips = new Map<string, string>();
  private readonly servers = new Map<string, { server: net.Server; target: CapturedPort }>();
  private closed = false;

  constructor(private readonly opts: VipListenersOptions) {}

  /** The services with their VIPs (for the DNS responder). */
  services(): { name: string; namespace: string; vip: string }[] {
    return [...this.vips].map(([key, vip]) => {
      const [name, namespace] = key.split('.');
      return { name, namespace, vip };
    });
  }

  /** Binds a socket for each new service port and closes those of ports gone. Resolves when the binds are done. */
  async apply(ports: CapturedPort[]): Promise<void> {
    if (this.closed) return;
    const wanted = new Map<string, CapturedPort>();
    for (const p of ports) {
      const key = `${p.name}.${p.namespace}`;
      if (!this.vips.has(key)) this.vips.set(key, this.opts.vip(this.vips.size + 1));
      wanted.set(`${this.vips.get(key)}:${p.port}`, p);
    }
    for (const [address, bound] of this.servers) {
      if (wanted.has(address)) continue;
      this.servers.delete(address);
      bound.server.close();
    }
    const binds: Promise<void>[] = [];
    for (const [address, target] of wanted) {
      const bound = this.servers.get(address);
      if (bound) {
        bound.target = target; // a port that changed protocol moves to its new listener
        continue;
      }
      binds.push(this.bind(address, target));
    }
    await Promise.all(binds);
  }

  private bind(address: string, target: CapturedPort): Promise<void> {
    const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
    const server = net.createServer({ allowHalfOpen: true, noDelay: true });
    const entry = { server, target };
    this.servers.set(address, entry);
    server.on('connection', (socket) => {
      if (!this.opts.handOver(entry.target.listener, socket)) socket.destroy();
    });
    return new Promise((resolve) => {
      server.once('error', (err) => {
        this.servers.delete(address);
        this.opts.log('error', 'cannot listen for a service VIP', { service: `${target.name}.${target.namespace}`, address, error: err.message });
        resolve();
      });
      server.listen(port, host, () => {
        this.opts.log('debug', 'service VIP listening', { service: `${target.name}.${target.namespace}`, address });
        resolve();
      });
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const closing = [...this.servers.values()].map(({ server }) => new Promise<void>((resolve) => server.close(() => resolve())));
    this.servers.clear();
    await Promise.all(closing);
  }
}
