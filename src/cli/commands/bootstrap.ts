import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import { grpcBootstrap } from '../../xds/bootstrap';
import { envoyBootstrap } from '../../xds/envoy-bootstrap';

export interface BootstrapCliOptions {
  grpc?: boolean;
  envoy?: boolean;
  xds: string;
  nodeId?: string;
  service?: string;
  namespace: string;
  zone?: string;
  caFile?: string;
  joinTokenFile?: string;
  adminPort?: string;
  outboundPort?: string;
  inboundPort?: string;
  appPort?: string;
  sdsSocket?: string;
}

function port(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > 65535) throw new Error(`bootstrap: ${flag} "${value}" is not a port (1-65535)`);
  return n;
}

export function runBootstrap(opts: BootstrapCliOptions): void {
  // The flag says which client the file is for: a weft sidecar needs none.
  if (opts.grpc === opts.envoy || (!opts.grpc && !opts.envoy)) {
    throw new Error(
      `bootstrap: ${opts.grpc ? 'choose one of --grpc and --envoy' : 'add --grpc or --envoy'}. --grpc prints the bootstrap file of a proxyless gRPC client (grpc-js-xds, grpc-go…: GRPC_XDS_BOOTSTRAP=<file>); --envoy --service <name> prints an Envoy sidecar's (envoy -c <file>); a weft sidecar needs no bootstrap file (\`weft run --service <name> --port <port> -- <app>\` or \`weft proxy --xds <host:port>\`).`,
    );
  }
  const nodeId = opts.nodeId ?? `${opts.service ?? 'client'}-${crypto.randomBytes(4).toString('hex')}`;
  if (opts.envoy) {
    if (!opts.service) throw new Error('bootstrap --envoy: add --service <name>: the service this Envoy is the sidecar of (its node cluster and identity)');
    const token = opts.joinTokenFile ? fs.readFileSync(opts.joinTokenFile, 'utf8').trim() : process.env.WEFT_JOIN_TOKEN;
    const bootstrap = envoyBootstrap({
      xds: opts.xds,
      service: opts.service,
      namespace: opts.namespace,
      nodeId,
      zone: opts.zone,
      caFile: opts.caFile,
      joinToken: token || undefined,
      adminPort: port(opts.adminPort, '--admin-port'),
      outboundPort: port(opts.outboundPort, '--outbound-port'),
      inboundPort: port(opts.inboundPort, '--inbound-port'),
      appPort: port(opts.appPort, '--app-port'),
      sdsSocket: opts.sdsSocket,
    });
    process.stdout.write(JSON.stringify(bootstrap, null, 2) + '\n');
    return;
  }
  const bootstrap = grpcBootstrap({
    xdsServer: opts.xds,
    nodeId,
    service: opts.service,
    namespace: opts.namespace,
    zone: opts.zone,
  });
  process.stdout.write(JSON.stringify(bootstrap, null, 2) + '\n');
}
