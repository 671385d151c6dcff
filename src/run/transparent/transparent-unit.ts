// `weft run --transparent`: the unit network (unit-network.ts), the service
// VIP sockets (vip-listeners.ts) and the DNS responder that answers service
// names with those VIPs (dns-responder.ts, mesh-names.ts), put together
// around one sidecar. run-app.ts starts the program inside with `command()`.
import * as fs from 'node:fs';
import type { Logger } from '../../observe/log';
import type { Proxy } from '../../proxy/proxy';
import { startDnsResponder, type DnsResponder } from './dns-responder';
import { MeshNames, parseResolvConf, unitResolvConf } from './mesh-names';
import { createUnitNetwork, sweepStaleUnits, type EgressMode, type UnitNetwork } from './unit-network';
import { capturedPorts, VipListeners } from './vip-listeners';

export interface TransparentUnitOptions {
  /** The unit's own namespace: a bare service name means one of it. */
  namespace: string;
  egress: EgressMode;
  log: Logger;
}

export class TransparentUnit {
  private vipListeners: VipListeners | undefined;
  private dns: DnsResponder | undefined;

  private constructor(
    readonly network: UnitNetwork,
    private readonly names: MeshNames,
    private readonly upstreams: string[],
    private readonly log: Logger,
  ) {}

  /** Makes the unit's network (before the sidecar starts: its node metadata names the unit's address). */
  static create(opts: TransparentUnitOptions): TransparentUnit {
    sweepStaleUnits(opts.log);
    const host = readHostResolvConf();
    const network = createUnitNetwork({ egress: opts.egress, log: opts.log, resolvConf: (address) => unitResolvConf(address, host.search) });
    const names = new MeshNames({ namespace: opts.namespace, searchSuffixes: host.search });
    return new TransparentUnit(network, names, host.nameservers, opts.log);
  }

  /** Where the sidecar reaches the program. */
  get appAddress(): string {
    return this.network.unitAddress;
  }

  /** Binds the VIP sockets and the DNS responder to the sidecar; resolves once the first config's VIPs listen. */
  async attach(proxy: Proxy): Promise<void> {
    const vips = new VipListeners({ vip: (i) => this.network.vip(i), handOver: (listener, socket) => proxy.listeners.handOver(listener, socket), log: this.log });
    this.vipListeners = vips;
    this.dns = await startDnsResponder({ address: this.network.hostAddress, port: 53, lookup: (q) => this.names.lookup(q), upstreams: this.upstreams, log: this.log });
    let first: () => void = () => {};
    const firstApplied = new Promise<void>((resolve) => (first = resolve));
    let applying = Promise.resolve();
    proxy.onConfigApplied((config) => {
      // Serialised like the sidecar's own listeners: binds of one config finish before the next.
      applying = applying
        .then(() => vips.apply(capturedPorts(config)))
        .then(() => this.names.set(vips.services()))
        .catch((err) => this.log('error', 'transparent capture: applying config failed', { error: String(err) }))
        .then(first);
    });
    await firstApplied;
  }

  /** The program's command line, run inside the unit (ip netns exec also binds the unit's resolv.conf). */
  command(argv: string[]): string[] {
    return ['ip', 'netns', 'exec', this.network.name, ...argv];
  }

  /** What the unit guard runs if weft run dies without closing the unit. */
  cleanup(): { commands: string[][]; paths: string[] } {
    return this.network.cleanupCommands();
  }

  async close(): Promise<void> {
    await this.vipListeners?.close();
    await this.dns?.close();
    this.network.destroy();
  }
}

function readHostResolvConf(): { nameservers: string[]; search: string[] } {
  try {
    return parseResolvConf(fs.readFileSync('/etc/resolv.conf', 'utf8'));
  } catch {
    return { nameservers: [], search: [] };
  }
}
