// The --store* flags of `weft control` and `weft store` as EtcdStoreOptions.
import type { EtcdStoreOptions } from '../store/etcd/etcd-connection';

export interface EtcdFlags {
  store?: string;
  storePrefix?: string;
  storeCaFile?: string;
  storeCertFile?: string;
  storeKeyFile?: string;
  storeUsername?: string;
}

/** undefined without --store: the embedded store. The password comes from the environment, never a flag (it would show in `ps`). */
export function etcdOptionsFrom(flags: EtcdFlags): EtcdStoreOptions | undefined {
  if (!flags.store) return undefined;
  return { url: flags.store, prefix: flags.storePrefix, caFile: flags.storeCaFile, certFile: flags.storeCertFile, keyFile: flags.storeKeyFile, username: flags.storeUsername, password: process.env.WEFT_STORE_PASSWORD };
}
