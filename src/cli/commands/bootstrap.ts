import * as crypto from 'node:crypto';
import { grpcBootstrap } from '../../xds/bootstrap';

export function runBootstrap(opts: { xds: string; nodeId?: string; service?: string; namespace: string; zone?: string }): void {
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
