import * as crypto from 'node:crypto';
import { grpcBootstrap } from '../../xds/bootstrap';

export function runBootstrap(opts: { grpc?: boolean; xds: string; nodeId?: string; service?: string; namespace: string; zone?: string }): void {
  // --grpc says which client the file is for: a weft sidecar needs none, and Envoy's is not made here.
  if (!opts.grpc) {
    throw new Error(
      'bootstrap: add --grpc. It prints the bootstrap file of a proxyless gRPC client (grpc-js-xds, grpc-go…: GRPC_XDS_BOOTSTRAP=<file>), the only kind it makes; a weft sidecar needs no bootstrap file (`weft run --service <name> --port <port> -- <app>` or `weft proxy --xds <host:port>`).',
    );
  }
  const nodeId = opts.nodeId ?? `${opts.service ?? 'client'}-${crypto.randomBytes(4).toString('hex')}`;
  const bootstrap = grpcBootstrap({
    xdsServer: opts.xds,
    nodeId,
    service: opts.service,
    namespace: opts.namespace,
    zone: opts.zone,
  });
  process.stdout.write(JSON.stringify(bootstrap, null, 2) + '\n');
}
