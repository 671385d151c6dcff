// A worker's config source: the resources its primary accepted (and ACKed)
// on the one xDS stream, relayed raw and decoded here with the same
// decoders, so every worker applies exactly what the control plane was told
// was applied. Plays the XdsClient's part for the worker's Proxy.
import { decodeMessage } from '../../xds/protos';
import { assembleConfig, type ClientStates, type RawResourceSet } from '../../xds/client/config-assembly';
import type { XdsClientStatus } from '../../xds/client/ads-client';
import type { ConfigDump } from '../../xds/client/config-dump';
import { ControlPlaneAddresses } from '../../xds/client/control-plane-addresses';
import { TypeState } from '../../xds/client/resource-state';
import { REQUEST_ORDER, RESOURCE_TYPES, type XdsKind } from '../../xds/client/resource-types';
import type { ProxyConfig } from '../config/types';
import type { ConfigSource } from '../proxy';

/** Decodes a relayed resource set into the config the primary's XdsClient emitted for it. Throws when one does not decode. */
export function configFromRaw(raw: RawResourceSet): ProxyConfig {
  const states = {
    LDS: new TypeState(RESOURCE_TYPES.LDS),
    RDS: new TypeState(RESOURCE_TYPES.RDS),
    CDS: new TypeState(RESOURCE_TYPES.CDS),
    EDS: new TypeState(RESOURCE_TYPES.EDS),
  } as ClientStates;
  for (const kind of REQUEST_ORDER) {
    const state = states[kind] as TypeState<unknown>;
    const type = RESOURCE_TYPES[kind];
    for (const r of raw.resources[kind]) {
      const value = type.decode(decodeMessage(type.typeUrl, r.bytes)) as never;
      state.resources.set(r.name, { name: r.name, version: r.version, bytes: r.bytes, value });
    }
    state.version = raw.versions[kind] || undefined;
  }
  return assembleConfig(states);
}

export class RelayedConfig implements ConfigSource {
  readonly addresses: ControlPlaneAddresses;
  private readonly listeners = new Set<(config: ProxyConfig) => void>();
  private raw: RawResourceSet | undefined;

  constructor(xds: string) {
    // The worker's own clients of the control plane (rate limit service) use the same list.
    this.addresses = ControlPlaneAddresses.xds(xds);
  }

  onConfig(cb: (config: ProxyConfig) => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  /** A relayed set: decoded, then handed to the proxy. */
  apply(raw: RawResourceSet): ProxyConfig {
    const config = configFromRaw(raw);
    this.raw = raw;
    for (const cb of this.listeners) cb(config);
    return config;
  }

  /** The stream is the primary's; this says only what was relayed. */
  status(): XdsClientStatus {
    const types = {} as XdsClientStatus['types'];
    for (const kind of REQUEST_ORDER as XdsKind[]) {
      const t = RESOURCE_TYPES[kind];
      const version = this.raw?.versions[kind];
      types[kind] = { typeUrl: t.typeUrl, resources: this.raw?.resources[kind].length ?? 0, subscription: '*', nacked: false, ...(version ? { version } : {}) };
    }
    return { server: 'primary', servers: [], connected: this.raw !== undefined, reconnectAttempts: 0, warming: [], types };
  }

  configDump(): ConfigDump {
    return {} as ConfigDump;
  }

  stop(): void {
    this.listeners.clear();
  }
}
