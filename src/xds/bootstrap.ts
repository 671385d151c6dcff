// The bootstrap a proxyless gRPC client (@grpc/grpc-js-xds, grpc-go, grpc-java)
// reads from GRPC_XDS_BOOTSTRAP (a file) or GRPC_XDS_BOOTSTRAP_CONFIG (the
// JSON itself): where the xDS server is, and who this node is. The node
// metadata keys are the ones the control plane reads (node-info.ts).
import { NODE_METADATA } from './node-info';

/**
 * The Listener name an xDS-enabled gRPC server asks for, "%s" being its
 * listening address ("0.0.0.0:50051", "[::]:50051").
 */
export const SERVER_LISTENER_NAME_TEMPLATE = 'weft.dev/grpc/lds/inbound/%s';

export interface GrpcBootstrapOptions {
  /** The control plane's xDS address, "host:port". */
  xdsServer: string;
  nodeId: string;
  /** The service this client runs as (its dependsOn scopes what it receives). */
  service?: string;
  namespace?: string;
  zone?: string;
}

export interface GrpcBootstrap {
  xds_servers: { server_uri: string; channel_creds: { type: string }[]; server_features: string[] }[];
  node: {
    id: string;
    metadata: Record<string, string>;
    locality: { zone?: string };
  };
  server_listener_resource_name_template: string;
}

export function grpcBootstrap(opts: GrpcBootstrapOptions): GrpcBootstrap {
  const metadata: Record<string, string> = {};
  if (opts.service) metadata[NODE_METADATA.service] = opts.service;
  metadata[NODE_METADATA.namespace] = opts.namespace ?? 'default';
  metadata[NODE_METADATA.role] = 'proxyless';
  // grpc-js requires node.locality, even empty.
  const locality: { zone?: string } = opts.zone ? { zone: opts.zone } : {};
  return {
    xds_servers: [{ server_uri: opts.xdsServer, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
    node: { id: opts.nodeId, metadata, locality },
    server_listener_resource_name_template: SERVER_LISTENER_NAME_TEMPLATE,
  };
}
