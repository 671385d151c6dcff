import * as path from 'node:path';
import { startControlPlane } from '../../control/control-plane';
import { jsonLogger, type LogLevel } from '../../observe/log';
import { etcdOptionsFrom, type EtcdFlags } from '../etcd-flags';

export async function runControl(opts: {
  config?: string;
  dataDir: string;
  xdsPort: number;
  apiPort: number;
  host: string;
  logLevel: LogLevel;
  dev?: boolean;
  trustDomain?: string;
  certTtl?: number;
  rootCert?: string;
  rootKey?: string;
  replicaId?: string;
  advertiseAddress?: string;
  caKeySecretFile?: string;
} & EtcdFlags): Promise<void> {
  const log = jsonLogger(opts.logLevel);
  const etcd = etcdOptionsFrom(opts);
  if (opts.caKeySecretFile && !etcd) throw new Error('--ca-key-secret-file seals the CA in etcd: it needs --store');
  const cp = await startControlPlane({
    etcd,
    caKeySecretFile: opts.caKeySecretFile,
    configDir: opts.config,
    dataDir: opts.dataDir,
    xdsPort: opts.xdsPort,
    apiPort: opts.apiPort,
    host: opts.host,
    log,
    dev: opts.dev,
    trustDomain: opts.trustDomain,
    certTtlMs: opts.certTtl,
    rootCertFile: opts.rootCert,
    rootKeyFile: opts.rootKey,
    replicaId: opts.replicaId,
    advertiseAddress: opts.advertiseAddress,
  });
  const tls = opts.dev ? 'plaintext, dev mode: certificates without join tokens' : `TLS; sidecars verify it with --ca-file ${path.join(path.resolve(opts.dataDir), 'ca', 'trust-bundle.pem')}`;
  process.stdout.write(`weft control plane ${cp.xds.replicaId}: xDS on ${opts.host}:${cp.xdsPort} (${tls}), API on ${cp.apiUrl}/api/v1/status${opts.dev ? `, dashboard on ${cp.apiUrl}/` : ' (with a credential: `weft admin-token`), dashboard through `weft dashboard`'}\n`);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log('info', 'stopping', { signal });
    cp.close().then(
      () => process.exit(0),
      (err) => {
        log('error', 'error while stopping', { error: String(err) });
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}
