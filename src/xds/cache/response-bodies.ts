// DiscoveryResponse / DeltaDiscoveryResponse messages assembled from
// pre-encoded fields.
//
// A SotW response is built once per (type version, subscription) and the very
// same bytes are written to every stream that needs them, nonce included: each
// built response takes a process-wide unique nonce. A stream thus never sees
// one nonce on two different responses, which is all the nonce must ensure.
// (The same bytes may be sent twice on a stream, e.g. a subscription that
// flips back; the repeated nonce then names identical content.)
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

let nonceCounter = 0;

/** A nonce no other response of this process carries. */
export function nextNonce(): string {
  return (++nonceCounter).toString(36);
}

export function sotwResponseBody(typeUrl: string, version: string, entries: readonly Buffer[], nonce: string): Buffer {
  return Buffer.concat([
    stringField(SOTW.versionInfo, version),
    stringField(SOTW.typeUrl, typeUrl),
    stringField(SOTW.nonce, nonce),
    ...entries,
  ]);
}

export function deltaResponseBody(
  typeUrl: string,
  systemVersion: string,
  entries: readonly Buffer[],
  removed: readonly string[],
  nonce: string,
): Buffer {
  return Buffer.concat([
    stringField(DELTA.systemVersionInfo, systemVersion),
    stringField(DELTA.typeUrl, typeUrl),
    stringField(DELTA.nonce, nonce),
    ...entries,
    ...removed.map((name) => stringField(DELTA.removedResources, name)),
  ]);
}
