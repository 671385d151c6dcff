// The client's resources as JSON for the proxy's /config_dump: per type the
// version, the last NACK and every held resource decoded the way Envoy shows
// it (nested Anys unpacked with an "@type", bytes in base64).
import { sidecarMessageType } from '../sidecar-protos';
import type { ClientStates } from './config-assembly';
import type { NackRecord } from './resource-state';
import { REQUEST_ORDER, type XdsKind } from './resource-types';

type Obj = Record<string, unknown>;

export interface DumpedResource {
  name: string;
  version: string;
  resource: Obj;
}

export interface TypeDump {
  typeUrl: string;
  /** system_version_info of the last response applied in full. */
  version?: string;
  subscription: '*' | string[];
  lastNack?: NackRecord;
  resources: DumpedResource[];
}

export type ConfigDump = Record<XdsKind, TypeDump>;

/** A message as JSON-ready plain data, Anys unpacked when their type is known. */
export function dumpMessage(typeUrl: string, bytes: Uint8Array): Obj {
  // The sidecar's set only: a type outside it is shown as it came rather than loading all of Envoy's protos.
  const type = sidecarMessageType(typeUrl.replace(/^type\.googleapis\.com\//, ''));
  if (!type) throw new Error(`${typeUrl} is not a type weft proxy knows`);
  const obj = type.toObject(type.decode(bytes), { enums: String, longs: Number, bytes: String, defaults: false });
  return unpackAnys(obj) as Obj;
}

function unpackAnys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(unpackAnys);
  if (typeof value !== 'object' || value === null) return value;
  const obj = value as Obj;
  // An Any: type_url and (unless empty) value, nothing else.
  if (typeof obj.type_url === 'string' && Object.keys(obj).every((k) => k === 'type_url' || k === 'value')) {
    try {
      return { '@type': obj.type_url, ...dumpMessage(obj.type_url, Buffer.from((obj.value as string | undefined) ?? '', 'base64')) };
    } catch {
      // A type outside the loaded protos: shown as it came.
      return { '@type': obj.type_url, value: obj.value };
    }
  }
  return Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, unpackAnys(v)]));
}

export function configDump(states: ClientStates): ConfigDump {
  const out = {} as ConfigDump;
  for (const kind of REQUEST_ORDER) {
    const state = states[kind];
    const typeUrl = state.type.typeUrl;
    const dump: TypeDump = {
      typeUrl,
      subscription: state.type.wildcard ? '*' : [...state.subscribed].sort(),
      resources: [...state.resources.values()]
        .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
        .map((r) => ({ name: r.name, version: r.version, resource: dumpMessage(typeUrl, r.bytes) })),
    };
    if (state.version !== undefined) dump.version = state.version;
    if (state.lastNack) dump.lastNack = state.lastNack;
    out[kind] = dump;
  }
  return out;
}
