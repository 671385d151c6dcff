// The bootstrap of an Envoy that joins the mesh as a weft sidecar (`weft
// bootstrap --envoy`): who the node is (the metadata keys the control plane
// reads, node-info.ts), and delta ADS to the control plane over a static
// cluster "xds_cluster" (HTTP/2, TLS verified with the mesh's trust bundle,
// the join token sent as weft's own sidecar sends it: `authorization: Bearer`
// call metadata, ads-client.ts). Everything else (listeners, clusters,
// endpoints, routes, secrets) arrives over that one ADS stream.
//
// The shape is Envoy's JSON mapping of envoy.config.bootstrap.v3.Bootstrap
// (Envoy reads a JSON file as YAML); envoy-validate.ts checks it against
// Envoy's own protos and their protoc-gen-validate rules.
import * as net from 'node:net';
import * as path from 'node:path';
import { parseXdsAddresses } from './client/control-plane-addresses';
import { NODE_METADATA } from './node-info';
import { CONTROL_PLANE_CLUSTER } from './rate-limit-names';
import { LOCAL_SDS_CLUSTER } from '../translate/mtls';

/**
 * The static cluster of the control plane's replicas, the one ADS uses. Named as the
 * translator's global rate limit filter names the control plane (rate-limit-names.ts), so an
 * Envoy reaches weft's RateLimitService through the same cluster.
 */
export const XDS_CLUSTER = CONTROL_PLANE_CLUSTER;
export const DEFAULT_ENVOY_ADMIN_PORT = 15000;

const TYPE = 'type.googleapis.com/';
const HTTP_PROTOCOL_OPTIONS = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';
const UPSTREAM_TLS_CONTEXT = 'envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext';

export interface EnvoyBootstrapOptions {
  /** The control plane's xDS address, or several replicas' "a:15010,b:15010". */
  xds: string;
  service: string;
  namespace?: string;
  nodeId: string;
  zone?: string;
  /** The mesh's trust bundle (PEM file): TLS to the control plane verified with it. Absent: plaintext (a --dev control plane). */
  caFile?: string;
  /** The service's join token, sent on the ADS stream. */
  joinToken?: string;
  /** Envoy's admin listener on 127.0.0.1 (default 15000). */
  adminPort?: number;
  /** The ports the control plane puts the sidecar's listeners on (WEFT_OUTBOUND_PORT…); absent: its defaults. */
  outboundPort?: number;
  inboundPort?: number;
  appPort?: number;
  /**
   * A local SDS server's unix socket (`weft run --proxy envoy`): the node announces
   * WEFT_LOCAL_SDS=true, so the translator points the workload certificate at the
   * static cluster weft_sds, which dials this socket. Absent: the certificate is
   * expected over ADS, which weft's control plane cannot serve (it never holds a key).
   */
  sdsSocket?: string;
}

type Json = Record<string, unknown>;

/** "[::1]:15010" → { host: "::1", port: 15010 }. */
function hostPort(address: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(address) ?? /^([^:]+):(\d+)$/.exec(address);
  if (!m) throw new Error(`"${address}" is not host:port`);
  return { host: m[1], port: Number(m[2]) };
}

export function envoyBootstrap(opts: EnvoyBootstrapOptions): Json {
  if (!opts.service) throw new Error('envoy bootstrap: a service name is required (the node\'s cluster and WEFT_SERVICE)');
  if (!opts.nodeId) throw new Error('envoy bootstrap: a node id is required');
  const addresses = parseXdsAddresses(opts.xds).map(hostPort);
  const allIps = addresses.every((a) => net.isIP(a.host) !== 0);

  const metadata: Record<string, string> = {
    [NODE_METADATA.service]: opts.service,
    [NODE_METADATA.namespace]: opts.namespace ?? 'default',
    [NODE_METADATA.role]: 'sidecar',
  };
  if (opts.outboundPort) metadata[NODE_METADATA.outboundPort] = String(opts.outboundPort);
  if (opts.inboundPort) metadata[NODE_METADATA.inboundPort] = String(opts.inboundPort);
  if (opts.appPort) metadata[NODE_METADATA.appPort] = String(opts.appPort);
  if (opts.sdsSocket) metadata[NODE_METADATA.localSds] = 'true';

  const grpcService: Json = { envoy_grpc: { cluster_name: XDS_CLUSTER } };
  if (opts.joinToken) grpcService.initial_metadata = [{ key: 'authorization', value: `Bearer ${opts.joinToken}` }];

  const xdsCluster: Json = {
    name: XDS_CLUSTER,
    // IPs need no resolver; a name is resolved and re-resolved (every address it has is a replica).
    type: allIps ? 'STATIC' : 'STRICT_DNS',
    connect_timeout: '5s',
    load_assignment: {
      cluster_name: XDS_CLUSTER,
      endpoints: [
        {
          lb_endpoints: addresses.map((a) => ({ endpoint: { address: { socket_address: { address: a.host, port_value: a.port } } } })),
        },
      ],
    },
    typed_extension_protocol_options: {
      [HTTP_PROTOCOL_OPTIONS]: {
        '@type': TYPE + HTTP_PROTOCOL_OPTIONS,
        explicit_http_config: { http2_protocol_options: {} },
      },
    },
  };
  if (opts.caFile) xdsCluster.transport_socket = controlPlaneTls(opts.caFile, addresses.map((a) => a.host));

  return {
    node: {
      id: opts.nodeId,
      cluster: opts.service,
      metadata,
      ...(opts.zone ? { locality: { zone: opts.zone } } : {}),
    },
    dynamic_resources: {
      ads_config: {
        api_type: 'DELTA_GRPC',
        transport_api_version: 'V3',
        grpc_services: [grpcService],
        set_node_on_first_message_only: true,
      },
      cds_config: { ads: {}, resource_api_version: 'V3' },
      lds_config: { ads: {}, resource_api_version: 'V3' },
    },
    static_resources: { clusters: opts.sdsSocket ? [xdsCluster, localSdsCluster(opts.sdsSocket)] : [xdsCluster] },
    admin: {
      address: { socket_address: { address: '127.0.0.1', port_value: opts.adminPort ?? DEFAULT_ENVOY_ADMIN_PORT } },
    },
  };
}

/** The local SDS server's cluster: gRPC (HTTP/2) over a unix socket, no TLS (the socket's 0600 mode is the guard). */
function localSdsCluster(socket: string): Json {
  return {
    name: LOCAL_SDS_CLUSTER,
    type: 'STATIC',
    connect_timeout: '1s',
    load_assignment: {
      cluster_name: LOCAL_SDS_CLUSTER,
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { pipe: { path: path.resolve(socket) } } } }] }],
    },
    typed_extension_protocol_options: {
      [HTTP_PROTOCOL_OPTIONS]: {
        '@type': TYPE + HTTP_PROTOCOL_OPTIONS,
        explicit_http_config: { http2_protocol_options: {} },
      },
    },
  };
}

/**
 * TLS to the control plane as weft's own sidecar does it (control-plane-tls.ts):
 * the chain verified with the trust bundle and the certificate checked against
 * the host dialed, an IP SAN for an address, a DNS SAN (and SNI) for a name.
 */
function controlPlaneTls(caFile: string, hosts: string[]): Json {
  const names = [...new Set(hosts)];
  const dnsNames = names.filter((h) => net.isIP(h) === 0);
  const context: Json = {
    common_tls_context: {
      alpn_protocols: ['h2'],
      validation_context: {
        trusted_ca: { filename: path.resolve(caFile) },
        match_typed_subject_alt_names: names.map((h) => ({ san_type: net.isIP(h) ? 'IP_ADDRESS' : 'DNS', matcher: { exact: h } })),
      },
    },
  };
  // One SNI per cluster: only when every replica is dialed by the same name.
  if (dnsNames.length === 1 && names.length === 1) context.sni = dnsNames[0];
  return { name: 'envoy.transport_sockets.tls', typed_config: { '@type': TYPE + UPSTREAM_TLS_CONTEXT, ...context } };
}
