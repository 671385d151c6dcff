// The four resource types the sidecar subscribes to over ADS, each with the
// decoder that turns a decoded protobuf message into the proxy's typed
// config (after grpc-js-xds's XdsResourceType: decode, validate, name).
import { decodeCluster, type DecodedCluster } from '../../proxy/config/decode-cluster';
import { decodeClusterLoadAssignment } from '../../proxy/config/decode-endpoints';
import { decodeListener } from '../../proxy/config/decode-listener';
import { decodeRouteConfiguration } from '../../proxy/config/decode-route';
import type { ResourceKind } from '../../proxy/config/nack';
import type { EndpointSet, ListenerConfig, RouteTable } from '../../proxy/config/types';
import { TYPE_URL } from '../type-urls';
import { decodeSecret, type DecodedSecret } from '../../proxy/config/decode-secret';

export type XdsKind = 'LDS' | 'RDS' | 'CDS' | 'EDS';

type Obj = Record<string, any>;

export interface ResourceType<T> {
  kind: XdsKind | 'SDS';
  /** The message name, as NACK messages name resources. */
  resourceKind: ResourceKind;
  typeUrl: string;
  /** LDS and CDS are subscribed as a wildcard; RDS and EDS by the names listeners and clusters use. */
  wildcard: boolean;
  /** The name a resource message carries (it must match the name it was sent under). */
  nameOf(msg: Obj): string;
  /** Throws ConfigNackError for what the proxy cannot apply. */
  decode(msg: Obj): T;
}

export interface ResourceValues {
  LDS: ListenerConfig;
  RDS: RouteTable;
  CDS: DecodedCluster;
  EDS: EndpointSet;
}

export const RESOURCE_TYPES: { [K in XdsKind]: ResourceType<ResourceValues[K]> } = {
  LDS: {
    kind: 'LDS',
    resourceKind: 'Listener',
    typeUrl: TYPE_URL.Listener,
    wildcard: true,
    nameOf: (m) => m.name ?? '',
    decode: decodeListener,
  },
  RDS: {
    kind: 'RDS',
    resourceKind: 'RouteConfiguration',
    typeUrl: TYPE_URL.RouteConfiguration,
    wildcard: false,
    nameOf: (m) => m.name ?? '',
    decode: decodeRouteConfiguration,
  },
  CDS: {
    kind: 'CDS',
    resourceKind: 'Cluster',
    typeUrl: TYPE_URL.Cluster,
    wildcard: true,
    nameOf: (m) => m.name ?? '',
    decode: decodeCluster,
  },
  EDS: {
    kind: 'EDS',
    resourceKind: 'ClusterLoadAssignment',
    typeUrl: TYPE_URL.ClusterLoadAssignment,
    wildcard: false,
    nameOf: (m) => m.cluster_name ?? '',
    decode: decodeClusterLoadAssignment,
  },
};

/** The order of the first requests on a stream: clusters before their endpoints, listeners before their routes. */
export const REQUEST_ORDER: readonly XdsKind[] = ['CDS', 'EDS', 'LDS', 'RDS'];

export function kindOfTypeUrl(typeUrl: string): XdsKind | undefined {
  return REQUEST_ORDER.find((k) => RESOURCE_TYPES[k].typeUrl === typeUrl);
}

/** Secrets over ADS (the trust bundle "ROOTCA"): subscribed by name, handed to the proxy's SecretStore, not part of the ProxyConfig. */
export const SECRET_RESOURCE_TYPE: ResourceType<DecodedSecret> = {
  kind: 'SDS',
  resourceKind: 'Secret',
  typeUrl: TYPE_URL.Secret,
  wildcard: false,
  nameOf: (m) => m.name ?? '',
  decode: decodeSecret,
};
