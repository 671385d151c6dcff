// DiscoveryResponse / DeltaDiscoveryResponse bodies assembled from pre-encoded
// fields. A body lacks only the nonce, which each stream appends (nonceField).
import { bytesField, encodeAny, stringField } from './wire';

/** envoy.service.discovery.v3.DiscoveryResponse field numbers. */
const SOTW = { versionInfo: 1, resources: 2, typeUrl: 4, nonce: 5 } as const;
/** envoy.service.discovery.v3.DeltaDiscoveryResponse field numbers. */
const DELTA = { systemVersionInfo: 1, resources: 2, typeUrl: 4, nonce: 5, removedResources: 6 } as const;
/** envoy.service.discovery.v3.Resource field numbers. */
const RESOURCE = { version: 1, resource: 2, name: 3 } as const;

/** The `resources` entry of a DiscoveryResponse: an Any holding the resource. */
export function sotwResourceEntry(typeUrl: string, bytes: Uint8Array): Buffer {
  return bytesField(SOTW.resources, encodeAny(typeUrl, bytes));
}

/** The `resources` entry of a DeltaDiscoveryResponse: a Resource {name, version, Any}. */
export function deltaResourceEntry(typeUrl: string, name: string, version: string, bytes: Uint8Array): Buffer {
  const resource = Buffer.concat([
    stringField(RESOURCE.name, name),
    stringField(RESOURCE.version, version),
    bytesField(RESOURCE.resource, encodeAny(typeUrl, bytes)),
  ]);
  return bytesField(DELTA.resources, resource);
}

export function sotwResponseBody(typeUrl: string, version: string, entries: readonly Buffer[]): Buffer {
  return Buffer.concat([stringField(SOTW.versionInfo, version), stringField(SOTW.typeUrl, typeUrl), ...entries]);
}

export function deltaResponseBody(
  typeUrl: string,
  systemVersion: string,
  entries: readonly Buffer[],
  removed: readonly string[],
): Buffer {
  return Buffer.concat([
    stringField(DELTA.systemVersionInfo, systemVersion),
    stringField(DELTA.typeUrl, typeUrl),
    ...entries,
    ...removed.map((name) => stringField(DELTA.removedResources, name)),
  ]);
}

/** The nonce field; the same field number (5) in both response messages. */
export function nonceField(nonce: string): Buffer {
  return stringField(SOTW.nonce, nonce);
}
